// The service's counters and latency histograms, written in the Prometheus text format.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace liber::serve {

// Histogram buckets (seconds), Prometheus-style upper bounds; +Inf is implicit. Requests
// take milliseconds; a partition's freshness, LLM calls of seconds to minutes.
inline constexpr std::array<double, 12> kLatencyBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
inline constexpr std::array<double, 12> kFreshnessBuckets{1,  2,   5,   10,  20,   30,
                                                          60, 120, 300, 600, 1800, 3600};

struct Histogram {
  std::span<const double> bounds = kLatencyBuckets;
  std::vector<uint64_t> counts;  // one per bound, then above every bound
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
};

class Metrics {
 public:
  // A finished request: its route pattern ("/v1/events", "/v1/users/{id}", "other"), status.
  void request(const std::string& route, int status, double seconds);
  // Adds to a counter: name{labels} (labels already formatted: outcome="accepted").
  void add(const std::string& name, const std::string& labels, uint64_t n);
  // A gauge's current value.
  void set(const std::string& name, const std::string& labels, double value);
  // A sample of a histogram that is not a request latency (kFreshnessBuckets).
  void observe(const std::string& name, double seconds);
  // Help text for a metric name (written once as # HELP / # TYPE).
  void describe(const std::string& name, const std::string& type, const std::string& help);

  std::string text() const;

  uint64_t counter(const std::string& name, const std::string& labels) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<std::string, std::string>> help_;  // name -> type, help
  std::map<std::string, std::map<std::string, double>> values_;      // name -> labels -> value
  std::map<std::pair<std::string, int>, uint64_t> requests_;         // (route, status)
  std::map<std::string, Histogram> latency_;                         // route
  std::map<std::string, Histogram> histograms_;                      // name
};

}  // namespace liber::serve
