#include "liber/serve/metrics.h"

#include <fmt/format.h>

namespace liber::serve {

void Histogram::observe(double seconds) {
  std::size_t b = 0;
  while (b < kLatencyBuckets.size() && seconds > kLatencyBuckets[b]) ++b;
  ++counts[b];
  ++count;
  sum += seconds;
}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_[route].observe(seconds);
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
  header("liber_http_request_duration_seconds", "histogram",
         "time from a request's arrival to its response, by route");
  for (const auto& [route, h] : latency_) {
    uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kLatencyBuckets.size(); ++b) {
      cumulative += h.counts[b];
      out += fmt::format("liber_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                         route, kLatencyBuckets[b], cumulative);
    }
    out += fmt::format("liber_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                       route, h.count);
    out += fmt::format("liber_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, h.sum);
    out += fmt::format("liber_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, h.count);
  }
  return out;
}

}  // namespace liber::serve
