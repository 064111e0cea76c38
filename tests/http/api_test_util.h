// Helpers shared by the API tests: a tiny model file, items as request JSON, and requests.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "http/http_types.h"
#include "tests/index/model_test_util.h"
#include "tests/storage/storage_test_util.h"
#include "tests/test_util.h"

namespace semid::testing {

using nlohmann::json;

// Dimension, levels and codes of the test collections: 2 levels of 16 codes over 8-d vectors
// (256 SIDs, so some of 200 items collide).
inline constexpr int kDim = 8;
inline constexpr int kLevels = 2;
inline constexpr int kCodebookSize = 16;

// Saves a residual k-means model (trained in milliseconds) in `dir`; returns its path.
inline std::string save_test_model(const TempDir& dir) {
  const auto model = kmeans_model(kDim, kLevels, kCodebookSize);
  const std::string path = dir.file("model.safetensors");
  EXPECT_TRUE(model->save(path).is_ok());
  return path;
}

// Rows of clustered test vectors; item i of a collection filled by items_body(0, n) has row i.
inline FloatMatrix test_vectors(std::size_t n) { return clustered_data(n, kDim, kCodebookSize, 7); }

inline json vector_json(const FloatMatrix& m, std::size_t row) {
  return std::vector<float>(m.row(row), m.row(row) + m.cols);
}

// The payload word of item i, "w<i>" (appended: GCC 12 warns, falsely, on "w" + std::to_string).
inline std::string test_word(std::uint64_t i) {
  std::string word = "w";
  word += std::to_string(i);
  return word;
}

// {"items": [{"id": i, "vector": row i, "payload": {"word": "w<i>"}}, ...]} for ids [first, first +
// n).
inline json items_body(std::size_t first, std::size_t n) {
  const FloatMatrix m = test_vectors(first + n);
  json items = json::array();
  for (std::size_t i = first; i < first + n; ++i) {
    items.push_back(
        {{"id", i}, {"vector", vector_json(m, i)}, {"payload", {{"word", test_word(i)}}}});
  }
  return {{"items", items}};
}

using Headers = std::vector<std::pair<std::string, std::string>>;

inline http::Request make_request(http::Verb method, const std::string& target,
                                  const std::string& body = "",
                                  const std::string& content_type = "application/json",
                                  const Headers& headers = {}) {
  http::Request request{method, target, 11};
  request.set(http::beast_http::field::host, "127.0.0.1");
  if (!body.empty()) {
    if (!content_type.empty()) request.set(http::beast_http::field::content_type, content_type);
    request.body() = body;
  }
  for (const auto& [name, value] : headers) request.set(name, value);
  request.prepare_payload();
  return request;
}

// The error code of an error response ("" when the body is not an error).
inline std::string error_code(const std::string& body) {
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.contains("error")) return "";
  return parsed["error"].value("code", "");
}

}  // namespace semid::testing
