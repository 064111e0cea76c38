#include "http/json_fields.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace semid::http {
namespace {

using nlohmann::json;

// Runs `read` and returns the ApiError it throws (status 0 when it throws none).
template <typename Fn>
ApiError error_of(Fn read) {
  try {
    read();
  } catch (const ApiError& e) {
    return e;
  }
  return {static_cast<HttpStatus>(0), "", ""};
}

TEST(JsonFields, IntegersOutsideTheirRangeAre422AndNonIntegers400) {
  EXPECT_EQ(read_integer(json(5), "k", 1, 10), 5);
  EXPECT_EQ(read_integer(json(-3), "x", -5, 10), -3);
  EXPECT_EQ(error_of([] { read_integer(json(0), "k", 1, 10); }).status,
            HttpStatus::unprocessable_entity);
  EXPECT_EQ(error_of([] { read_integer(json(11), "k", 1, 10); }).status,
            HttpStatus::unprocessable_entity);
  EXPECT_EQ(error_of([] { read_integer(json(-1), "k", 0, 10); }).status,
            HttpStatus::unprocessable_entity);
  EXPECT_EQ(error_of([] {
              read_integer(json(std::numeric_limits<std::uint64_t>::max()), "k", 0, 10);
            }).status,
            HttpStatus::unprocessable_entity);
  for (const json& bad : {json(2.5), json("3"), json(true), json::array()}) {
    const ApiError e = error_of([&] { read_integer(bad, "k", 0, 10); });
    EXPECT_EQ(e.status, HttpStatus::bad_request) << bad;
    EXPECT_EQ(e.code, "invalid_field");
    EXPECT_NE(e.message.find("'k'"), std::string::npos) << e.message;
  }
}

TEST(JsonFields, UnsignedReadsTheWholeRange) {
  EXPECT_EQ(read_unsigned(json(std::numeric_limits<std::uint64_t>::max()), "id",
                          std::numeric_limits<std::uint64_t>::max()),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(error_of([] { read_unsigned(json(-1), "id", 100); }).status,
            HttpStatus::unprocessable_entity);
  EXPECT_EQ(error_of([] { read_unsigned(json(101), "id", 100); }).status,
            HttpStatus::unprocessable_entity);
}

TEST(JsonFields, VectorsNeedTheDimensionAndFloatRange) {
  std::vector<float> out;
  read_vector(json({1, 2.5, -3e38}), "v", 3, out);
  EXPECT_EQ(out, (std::vector<float>{1.0f, 2.5f, -3e38f}));
  EXPECT_EQ(error_of([] {
              std::vector<float> o;
              read_vector(json({1, 2}), "v", 3, o);
            }).code,
            "wrong_dimension");
  EXPECT_EQ(error_of([] {
              std::vector<float> o;
              read_vector(json({1, 2, 1e39}), "v", 3, o);
            }).code,
            "invalid_number");
  EXPECT_EQ(error_of([] {
              std::vector<float> o;
              read_vector(json({1, 2, nullptr}), "v", 3, o);
            }).code,
            "invalid_field");
  EXPECT_EQ(error_of([] {
              std::vector<float> o;
              read_vector(json("1,2,3"), "v", 3, o);
            }).code,
            "invalid_field");
}

TEST(JsonFields, CodesAreBoundedByLevelsAndCodebookSize) {
  EXPECT_EQ(read_codes(json({0, 15}), "p", 3, 16), (std::vector<std::int32_t>{0, 15}));
  EXPECT_EQ(error_of([] { read_codes(json({16}), "p", 3, 16); }).code, "invalid_value");
  EXPECT_EQ(error_of([] { read_codes(json({1, 1, 1, 1}), "p", 3, 16); }).code, "invalid_value");
}

TEST(JsonFields, UnknownAndMissingFieldsAre400) {
  const json body = {{"k", 3}, {"topk", 4}, {"nothing", nullptr}};
  Fields fields(body, "");
  EXPECT_EQ(fields.integer("k", 10, 1, 100), 3);
  EXPECT_EQ(fields.integer("absent", 10, 1, 100), 10);
  EXPECT_EQ(fields.find("nothing"), nullptr);  // null counts as absent
  const ApiError unknown = error_of([&] { fields.reject_unknown(); });
  EXPECT_EQ(unknown.code, "invalid_field");
  EXPECT_NE(unknown.message.find("'topk'"), std::string::npos);
  EXPECT_EQ(error_of([&] { fields.require("vector"); }).code, "invalid_field");
  Fields nested(json{{"x", 1}}, "filter");
  EXPECT_EQ(nested.path_of("x"), "filter.x");
  EXPECT_EQ(error_of([] { Fields f(json::array(), "items[2]"); }).code, "invalid_field");
}

TEST(JsonFields, BodiesParseToWhatNlohmannWouldGive) {
  // Through simdjson, with nlohmann's types: non-negative integers unsigned, negative signed,
  // doubles, strings, nesting; and what simdjson refuses but JSON allows (integers past 64 bits)
  // through nlohmann, as doubles.
  const std::string text =
      R"({"ids": [0, 7, 18446744073709551615], "neg": -9223372036854775808, "x": [1.5, -0.0, )"
      R"(1e-300], "s": "caf\u00e9 \"q\"", "t": true, "n": null, "o": {"a": {}, "b": []}})";
  const json body = parse_json_object(text, 8);
  EXPECT_EQ(body, json::parse(text));
  EXPECT_TRUE(body["ids"][1].is_number_unsigned());
  EXPECT_TRUE(body["neg"].is_number_integer() && !body["neg"].is_number_unsigned());
  const std::string big = R"({"id": 123456789012345678901234567890})";
  EXPECT_EQ(parse_json_object(big, 8), json::parse(big));
  EXPECT_TRUE(parse_json_object(big, 8)["id"].is_number_float());
  // A body past the reused parser's size parses with a parser of its own.
  std::string large = R"({"v": [)";
  for (int i = 0; i < 200000; ++i) large += (i > 0 ? ",0.125" : "0.125");
  large += "]}";
  ASSERT_GT(large.size(), std::size_t{1} << 20);
  EXPECT_EQ(parse_json_object(large, 8)["v"].size(), 200000u);
  for (const std::string bad : {R"({"a": 1} x)", R"({"a": 1e400})", R"({"a": 01})", "{", "",
                                R"({"a": "\x"})", R"({"a": 1, "a": 1})", "[1]"}) {
    const ApiError e = error_of([&] { parse_json_object(bad, 8); });
    EXPECT_EQ(e.status, HttpStatus::bad_request) << bad;
    EXPECT_EQ(e.code, bad == "[1]" ? "invalid_field" : "invalid_json") << bad << ": " << e.message;
  }
}

TEST(JsonFields, DepthScanSkipsBracketsInsideStrings) {
  EXPECT_TRUE(json_depth_within("[[[]]]", 3));
  EXPECT_FALSE(json_depth_within("[[[[]]]]", 3));
  EXPECT_TRUE(json_depth_within(R"({"a": "[[[[[[", "b": "\"[[[["})", 1));
  EXPECT_FALSE(json_depth_within(R"({"a": "\\", "b": [[]]})", 2));
}

TEST(JsonFields, FloatsPrintWithTheFewestDigits) {
  EXPECT_EQ(json_float(0.1f).dump(), "0.1");
  EXPECT_EQ(json_float(-2.5f).dump(), "-2.5");
  EXPECT_EQ(json_float(1.0f / 3.0f).get<float>(), 1.0f / 3.0f);
  EXPECT_TRUE(json_float(std::numeric_limits<float>::infinity()).is_null());
}

TEST(JsonFields, StorageStatusesMapToHttp) {
  EXPECT_EQ(error_of([] { throw_status(Status::invalid_argument("x")); }).status,
            HttpStatus::unprocessable_entity);
  EXPECT_EQ(error_of([] { throw_status(Status::not_found("x")); }).status, HttpStatus::not_found);
  EXPECT_EQ(error_of([] { throw_status(Status::already_exists("x")); }).status,
            HttpStatus::conflict);
  EXPECT_EQ(error_of([] { throw_status(Status::busy("x")); }).status,
            HttpStatus::service_unavailable);
  EXPECT_EQ(error_of([] { throw_status(Status::corruption("x")); }).status,
            HttpStatus::internal_server_error);
}

}  // namespace
}  // namespace semid::http
