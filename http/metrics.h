// Prometheus metrics of the server: requests and latency by route and status, plus gauges that
// other parts (collections) contribute at scrape time. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace semid::http {

class Metrics {
 public:
  // Latency histogram buckets, in seconds (Prometheus `le` labels).
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

  // `route` is the route pattern (e.g. "/v1/collections/{name}/search"), never the raw path, so
  // label cardinality stays bounded.
  void observe(const std::string& method, const std::string& route, unsigned status,
               double seconds);

  // A source appends Prometheus text (with its own # HELP / # TYPE lines) at every scrape.
  using Source = std::function<void(std::string& out)>;
  void add_source(Source source);

  // The whole exposition, text format 0.0.4.
  std::string render() const;

 private:
  struct Series {
    std::uint64_t count = 0;
    double sum = 0;
    std::array<std::uint64_t, kBuckets.size()> buckets{};
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::map<unsigned, std::uint64_t>> requests_;
  std::map<std::pair<std::string, std::string>, Series> latency_;
  std::vector<Source> sources_;
};

// Escapes a Prometheus label value (backslash, quote, newline).
std::string prometheus_label(const std::string& value);

}  // namespace semid::http
