#include "http/metrics.h"

#include <gtest/gtest.h>

namespace semid::http {
namespace {

TEST(Metrics, RendersCountersHistogramsAndSources) {
  Metrics m;
  m.observe("GET", "/v1/collections", 200, 0.002);
  m.observe("GET", "/v1/collections", 200, 0.02);
  m.observe("GET", "/v1/collections", 404, 0.0001);
  m.add_source([](std::string& out) { out += "semid_collection_items{collection=\"a\"} 7\n"; });
  const std::string text = m.render();
  EXPECT_NE(
      text.find(
          "semid_http_requests_total{method=\"GET\",route=\"/v1/collections\",status=\"200\"} 2"),
      std::string::npos);
  EXPECT_NE(text.find("status=\"404\"} 1"), std::string::npos);
  EXPECT_NE(text.find("le=\"0.0025\"} 2"), std::string::npos);  // 0.0001 and 0.002
  EXPECT_NE(text.find("le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("semid_collection_items{collection=\"a\"} 7"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) { EXPECT_EQ(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd"); }

}  // namespace
}  // namespace semid::http
