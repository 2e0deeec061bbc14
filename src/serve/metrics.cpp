#include "liber/serve/metrics.h"

#include <fmt/format.h>

namespace liber::serve {

void Histogram::observe(double seconds) {
  if (counts.empty()) counts.assign(bounds.size() + 1, 0);
  std::size_t b = 0;
  while (b < bounds.size() && seconds > bounds[b]) ++b;
  ++counts[b];
  ++count;
  sum += seconds;
}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_[route].observe(seconds);
}

void Metrics::observe(const std::string& name, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Histogram& h = histograms_[name];
  h.bounds = kFreshnessBuckets;
  h.observe(seconds);
}

void Metrics::add(const std::string& name, const std::string& labels, uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  values_[name][labels] += static_cast<double>(n);
}

void Metrics::set(const std::string& name, const std::string& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  values_[name][labels] = value;
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard<std::mutex> lock(mutex_);
  help_[name] = {type, help};
}

uint64_t Metrics::counter(const std::string& name, const std::string& labels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto n = values_.find(name);
  if (n == values_.end()) return 0;
  const auto v = n->second.find(labels);
  return v == n->second.end() ? 0 : static_cast<uint64_t>(v->second);
}

std::string Metrics::text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  auto header = [&](const std::string& name, const std::string& type, const std::string& help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  for (const auto& [name, series] : values_) {
    const auto h = help_.find(name);
    header(name, h == help_.end() ? "untyped" : h->second.first,
           h == help_.end() ? name : h->second.second);
    for (const auto& [labels, value] : series)
      out += fmt::format("{}{} {}\n", name, labels.empty() ? "" : "{" + labels + "}", value);
  }
  header("liber_http_requests_total", "counter", "HTTP requests answered, by route and status");
  for (const auto& [key, n] : requests_)
    out += fmt::format("liber_http_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", key.first,
                       key.second, n);
  // One histogram's series; `labels` is empty or ends with a comma.
  auto histogram = [&](const std::string& name, const std::string& labels, const Histogram& h) {
    uint64_t cumulative = 0;
    for (std::size_t b = 0; b < h.bounds.size(); ++b) {
      cumulative += h.counts.empty() ? 0 : h.counts[b];
      out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, labels, h.bounds[b], cumulative);
    }
    out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, labels, h.count);
    const std::string plain = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, plain, h.sum, name, plain, h.count);
  };
  header("liber_http_request_duration_seconds", "histogram",
         "time from a request's arrival to its response, by route");
  for (const auto& [route, h] : latency_)
    histogram("liber_http_request_duration_seconds", fmt::format("route=\"{}\",", route), h);
  for (const auto& [name, h] : histograms_) {
    const auto d = help_.find(name);
    header(name, "histogram", d == help_.end() ? name : d->second.second);
    histogram(name, "", h);
  }
  return out;
}

}  // namespace liber::serve
