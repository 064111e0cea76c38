#include "http/metrics.h"

#include <fmt/format.h>

namespace semid::http {

std::string prometheus_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Metrics::observe(const std::string& method, const std::string& route, unsigned status,
                      double seconds) {
  std::lock_guard lock(mutex_);
  const auto key = std::make_pair(method, route);
  ++requests_[key][status];
  Series& s = latency_[key];
  ++s.count;
  s.sum += seconds;
  for (std::size_t b = 0; b < kBuckets.size(); ++b) {
    if (seconds <= kBuckets[b]) ++s.buckets[b];
  }
}

void Metrics::add_source(Source source) {
  std::lock_guard lock(mutex_);
  sources_.push_back(std::move(source));
}

std::string Metrics::render() const {
  std::vector<Source> sources;
  std::string out;
  {
    std::lock_guard lock(mutex_);
    out += "# HELP semid_http_requests_total HTTP requests by method, route and status.\n";
    out += "# TYPE semid_http_requests_total counter\n";
    for (const auto& [key, by_status] : requests_) {
      for (const auto& [status, count] : by_status) {
        out += fmt::format(
            "semid_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {}\n", key.first,
            prometheus_label(key.second), status, count);
      }
    }
    out += "# HELP semid_http_request_duration_seconds Request latency by method and route.\n";
    out += "# TYPE semid_http_request_duration_seconds histogram\n";
    for (const auto& [key, s] : latency_) {
      const std::string labels =
          fmt::format("method=\"{}\",route=\"{}\"", key.first, prometheus_label(key.second));
      for (std::size_t b = 0; b < kBuckets.size(); ++b) {
        out += fmt::format("semid_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                           labels, kBuckets[b], s.buckets[b]);
      }
      out += fmt::format("semid_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n",
                         labels, s.count);
      out += fmt::format("semid_http_request_duration_seconds_sum{{{}}} {}\n", labels, s.sum);
      out += fmt::format("semid_http_request_duration_seconds_count{{{}}} {}\n", labels, s.count);
    }
    sources = sources_;
  }
  for (const auto& source : sources) source(out);
  return out;
}

}  // namespace semid::http
