#include "http/api.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "index/vecs_io.h"
#include "tests/http/api_test_util.h"

namespace semid::http {
namespace {

using nlohmann::json;
using storage::CollectionManager;
using testing::Headers;
using testing::kCodebookSize;
using testing::kDim;
using testing::kLevels;
using testing::make_request;

constexpr std::size_t kItems = 200;
const std::string kDocs = "/v1/collections/docs";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = testing::save_test_model(dir_);
    auto manager = CollectionManager::open(dir_.file("data"));
    ASSERT_TRUE(manager.is_ok()) << manager.status().to_string();
    manager_ = std::move(manager).value();
    make_api({});
  }

  void make_api(ApiOptions options) {
    options.access_log = false;
    api_ = std::make_unique<Api>(*manager_, options);
    api_->set_readiness(Readiness::kReady);
  }

  Response call(Verb method, const std::string& target, const json& body = nullptr,
                const Headers& headers = {}) {
    return api_->handle(make_request(method, target, body.is_null() ? "" : body.dump(),
                                     "application/json", headers));
  }
  Response call_text(Verb method, const std::string& target, const std::string& body,
                     const std::string& content_type = "application/json") {
    return api_->handle(make_request(method, target, body, content_type));
  }

  // The "result" of a call that must answer `status`.
  json result(Verb method, const std::string& target, const json& body = nullptr,
              unsigned status = 200) {
    const Response r = call(method, target, body);
    EXPECT_EQ(r.result_int(), status) << method << " " << target << ": " << r.body();
    const json parsed = json::parse(r.body());
    EXPECT_TRUE(parsed.contains("time"));
    return parsed.value("result", json());
  }

  static void expect_error(const Response& r, unsigned status, const std::string& code) {
    EXPECT_EQ(r.result_int(), status) << r.body();
    EXPECT_EQ(testing::error_code(r.body()), code) << r.body();
    EXPECT_EQ(r[beast_http::field::content_type], "application/json");
  }

  // An API whose answers may take at most `max_response_bytes`, over "docs" holding items
  // 0..kItems-1 with payloads of about 1,000 bytes each.
  void create_padded_docs(std::size_t max_response_bytes) {
    ApiOptions options;
    options.max_response_bytes = max_response_bytes;
    make_api(options);
    result(Verb::put, kDocs, {{"model", model_path_}}, 201);
    json body = testing::items_body(0, kItems);
    for (json& item : body["items"]) item["payload"]["pad"] = std::string(1000, 'x');
    ASSERT_EQ(result(Verb::put, kDocs + "/items", body)["upserted"], kItems);
  }

  // Collection "docs" with items 0..kItems-1.
  void create_docs() {
    result(Verb::put, kDocs, {{"model", model_path_}}, 201);
    const json upserted = result(Verb::put, kDocs + "/items", testing::items_body(0, kItems));
    ASSERT_EQ(upserted["upserted"], kItems);
  }

  std::shared_ptr<storage::Collection> docs() { return manager_->get("docs").value(); }

  testing::TempDir dir_;
  std::string model_path_;
  std::unique_ptr<CollectionManager> manager_;
  std::unique_ptr<Api> api_;
};

// ---- health, readiness, routing -------------------------------------------------------------

TEST_F(ApiTest, HealthzIsAlways200AndReadyzFollowsReadiness) {
  api_->set_readiness(Readiness::kStarting);
  EXPECT_EQ(result(Verb::get, "/healthz")["status"], "ok");
  expect_error(call(Verb::get, "/readyz"), 503, "starting");
  expect_error(call(Verb::get, "/v1/collections"), 503, "starting");
  api_->set_readiness(Readiness::kReady);
  EXPECT_EQ(result(Verb::get, "/readyz")["status"], "ready");
  EXPECT_EQ(result(Verb::get, "/v1/collections")["collections"], json::array());
  api_->set_readiness(Readiness::kDraining);
  expect_error(call(Verb::get, "/readyz"), 503, "draining");
  expect_error(call(Verb::put, kDocs, {{"model", model_path_}}), 503, "draining");
  EXPECT_EQ(call(Verb::get, "/healthz").result_int(), 200);
}

TEST_F(ApiTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  expect_error(call(Verb::get, "/v2/collections"), 404, "not_found");
  expect_error(call(Verb::get, "/v1/collections/"), 404, "not_found");
  const Response r = call(Verb::post, "/v1/collections");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r[beast_http::field::allow], "GET");
  const Response item = call(Verb::patch, kDocs + "/items/3");
  expect_error(item, 405, "method_not_allowed");
  EXPECT_EQ(item[beast_http::field::allow], "GET, DELETE");
  // A literal segment beats a parameter: GET on items/delete is a 405, not item id "delete".
  expect_error(call(Verb::get, kDocs + "/items/delete"), 405, "method_not_allowed");
}

TEST_F(ApiTest, MetricsCountRequestsByRoutePatternAndReportCollectionGauges) {
  create_docs();
  result(Verb::get, kDocs + "/items/5");
  call(Verb::get, kDocs + "/items/99999");
  call(Verb::get, "/nowhere");
  const Response r = call(Verb::get, "/metrics");
  ASSERT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[beast_http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = r.body();
  EXPECT_NE(text.find("semid_http_requests_total{method=\"GET\",route=\"/v1/collections/{name}/"
                      "items/{id}\",status=\"200\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("route=\"/v1/collections/{name}/items/{id}\",status=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("route=\"unmatched\",status=\"404\"} 1"), std::string::npos);
  EXPECT_NE(text.find("semid_collection_items{collection=\"docs\"} 200"), std::string::npos)
      << text;
  EXPECT_NE(text.find("semid_collection_level_used_fraction{collection=\"docs\",level=\"2\"}"),
            std::string::npos);
  EXPECT_NE(text.find("semid_collection_collision_rate{collection=\"docs\"}"), std::string::npos);
}

// ---- request validation ---------------------------------------------------------------------

TEST_F(ApiTest, BodiesMustBeWellFormedJsonObjects) {
  create_docs();
  const std::string search = kDocs + "/search";
  expect_error(call_text(Verb::post, search, "{\"vector\": [1, 2"), 400, "invalid_json");
  expect_error(call_text(Verb::post, search, "[1, 2, 3]"), 400, "invalid_field");
  expect_error(call_text(Verb::post, search, "{\"vector\": [NaN, 1]}"), 400, "invalid_json");
  // An overflowing literal is malformed JSON (nlohmann refuses to turn it into inf).
  expect_error(call_text(Verb::post, search, "{\"vector\": [1e400, 0, 0, 0, 0, 0, 0, 0]}"), 400,
               "invalid_json");
  expect_error(call_text(Verb::post, search, std::string(100, '[') + std::string(100, ']')), 400,
               "invalid_json");
  expect_error(call_text(Verb::post, search, "{\"vector\": [1]}", "text/plain"), 415,
               "unsupported_media_type");
  expect_error(call_text(Verb::post, search, "{}", ""), 415, "unsupported_media_type");
  // Parser differentials (issue 13): a NUL ends nlohmann's input; a repeated key keeps the last.
  expect_error(call_text(Verb::post, search, std::string("{\"k\": 1}\0garbage", 17)), 400,
               "invalid_json");
  expect_error(call_text(Verb::post, search, "{\"k\": 1, \"k\": 2}"), 400, "invalid_json");
  expect_error(call_text(Verb::post, search, "{\"a\": {\"x\": 1, \"x\": 1}}"), 400, "invalid_json");
  // The same key in different objects is fine (the search then rejects the unknown fields).
  expect_error(call_text(Verb::post, search, "{\"a\": {\"x\": 1}, \"b\": {\"x\": 1}}"), 400,
               "invalid_field");
  EXPECT_EQ(call_text(Verb::post, kDocs + "/trie/next", "{\"prefix\": []}",
                      "application/json; charset=utf-8")
                .result_int(),
            200);
}

TEST_F(ApiTest, SearchRejectsWrongTypesDimensionsAndValues) {
  create_docs();
  const std::string search = kDocs + "/search";
  const json v = std::vector<float>(kDim, 0.5f);
  expect_error(call(Verb::post, search, {{"vector", std::vector<float>(kDim + 1, 0.5f)}}), 400,
               "wrong_dimension");
  expect_error(call(Verb::post, search, {{"vector", {1, 2, 3, 4, 5, 6, 7, "8"}}}), 400,
               "invalid_field");
  expect_error(call(Verb::post, search, {{"vector", {1, 2, 3, 4, 5, 6, 7, 1e39}}}), 400,
               "invalid_number");
  expect_error(call(Verb::post, search, {{"vector", v}, {"vectors", {v}}}), 400, "invalid_field");
  expect_error(call(Verb::post, search, json::object()), 400, "invalid_field");
  expect_error(call(Verb::post, search, {{"vector", v}, {"topk", 3}}), 400, "invalid_field");
  expect_error(call(Verb::post, search, {{"vector", v}, {"k", "3"}}), 400, "invalid_field");
  expect_error(call(Verb::post, search, {{"vector", v}, {"k", 2.5}}), 400, "invalid_field");
  expect_error(call(Verb::post, search, {{"vector", v}, {"k", 0}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"k", 1001}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"mode", "fast"}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"filter", {{"prefix", {1, 2, 3}}}}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"filter", {{"prefix", {kCodebookSize}}}}}),
               422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"filter", {{"ids", {-1}}}}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"filter", {{"sid", {1}}}}}), 400,
               "invalid_field");
  // A field the mode does not use is refused by the index, not ignored.
  expect_error(call(Verb::post, search, {{"vector", v}, {"mode", "prefix"}, {"beam", 4}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, "/v1/collections/nope/search", {{"vector", v}}), 404, "not_found");
}

TEST_F(ApiTest, LimitsAreEnforcedAs422) {
  ApiOptions options;
  options.max_batch_items = 10;
  options.max_queries = 3;
  options.max_k = 5;
  options.max_page = 7;
  options.max_candidates = 20;
  make_api(options);
  result(Verb::put, kDocs, {{"model", model_path_}}, 201);
  expect_error(call(Verb::put, kDocs + "/items", testing::items_body(0, 11)), 422, "invalid_value");
  EXPECT_EQ(result(Verb::put, kDocs + "/items", testing::items_body(0, 10))["upserted"], 10);
  const json v = std::vector<float>(kDim, 0.5f);
  const std::string search = kDocs + "/search";
  expect_error(call(Verb::post, search, {{"vectors", {v, v, v, v}}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"k", 6}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"rerank", 21}}), 422, "invalid_value");
  expect_error(call(Verb::post, search, {{"vector", v}, {"shortlist", 21}}), 422, "invalid_value");
  // queries x max(k, rerank) must stay within max_queries x max_k = 15.
  expect_error(call(Verb::post, search, {{"vectors", {v, v, v}}, {"rerank", 6}}), 422,
               "invalid_value");
  EXPECT_EQ(result(Verb::post, search, {{"vectors", {v, v, v}}, {"k", 5}}).size(), 3u);
  expect_error(
      call(Verb::post, search, {{"vector", v}, {"filter", {{"ids", std::vector<int>(11, 1)}}}}),
      422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/items/retrieve", {{"ids", std::vector<int>(11, 1)}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, kDocs + "/items/delete", {{"ids", std::vector<int>(11, 1)}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, kDocs + "/encode", {{"vectors", {v, v, v, v}}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/next",
                    {{"prefixes", {json::array(), json::array(), json::array(), json::array()}}}),
               422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/items", {{"limit", 8}}), 422, "invalid_value");
}

TEST_F(ApiTest, HitsWithoutPayloadsComeFromMemoryAndMatchTheStoredItems) {
  // Without payloads or vectors a hit's row comes from the collection's in-memory places (only a
  // relocated item's record is read, for its model SID): the rows must be what the records say.
  result(Verb::put, kDocs, {{"model", model_path_}, {"collision_policy", "relocate"}}, 201);
  ASSERT_EQ(result(Verb::put, kDocs + "/items", testing::items_body(0, kItems))["upserted"],
            kItems);
  const json queries = json::array({testing::vector_json(testing::test_vectors(3), 0),
                                    testing::vector_json(testing::test_vectors(3), 1),
                                    testing::vector_json(testing::test_vectors(3), 2)});
  const json fast = result(Verb::post, kDocs + "/search",
                           {{"vectors", queries}, {"k", 50}, {"with_payload", false}});
  const json full = result(Verb::post, kDocs + "/search", {{"vectors", queries}, {"k", 50}});
  ASSERT_EQ(fast.size(), 3u);
  std::size_t moved = 0;
  for (std::size_t q = 0; q < 3; ++q) {
    ASSERT_EQ(fast[q].size(), full[q].size());
    for (std::size_t r = 0; r < fast[q].size(); ++r) {
      json expected = full[q][r];
      expected.erase("payload");
      EXPECT_EQ(fast[q][r], expected) << "query " << q << " row " << r;
      moved += fast[q][r].contains("model_sid");
    }
  }
  EXPECT_GT(moved, 0u) << "the test model must relocate some items to test model_sid";
}

TEST_F(ApiTest, AnswersOverTheResponseLimitAre422BeforeTheyAreBuilt) {
  // Issue 13.3: a 47-byte request made a 101 MB answer; 30 of them took 2.8 GiB.
  create_padded_docs(64 << 10);
  std::vector<int> all(kItems);
  for (std::size_t i = 0; i < kItems; ++i) all[i] = static_cast<int>(i);
  const Response big = call(Verb::post, kDocs + "/items/retrieve", {{"ids", all}});
  expect_error(big, 422, "response_too_large");
  EXPECT_NE(big.body().find("65536 bytes"), std::string::npos) << big.body();
  EXPECT_NE(big.body().find("fewer ids"), std::string::npos) << big.body();
  EXPECT_EQ(result(Verb::post, kDocs + "/items/retrieve",
                   {{"ids", all}, {"with_payload", false}})["items"]
                .size(),
            kItems);
  const json v = testing::vector_json(testing::test_vectors(1), 0);
  const Response hits = call(Verb::post, kDocs + "/search", {{"vector", v}, {"k", 200}});
  expect_error(hits, 422, "response_too_large");
  EXPECT_NE(hits.body().find("smaller k"), std::string::npos) << hits.body();
  EXPECT_FALSE(
      result(Verb::post, kDocs + "/search", {{"vector", v}, {"k", 200}, {"with_payload", false}})
          .empty());
  // The same 10 items for 100 queries: counted per row, not per distinct item.
  const json many = json::array_t(100, v);
  expect_error(call(Verb::post, kDocs + "/search", {{"vectors", many}, {"k", 10}}), 422,
               "response_too_large");
  expect_error(call(Verb::post, kDocs + "/items/0/similar", {{"k", 200}}), 422,
               "response_too_large");
  EXPECT_EQ(result(Verb::post, kDocs + "/items/0/similar", {{"k", 20}}).size(), 20u);
  // Deleting needs no answer of that size.
  EXPECT_EQ(result(Verb::post, kDocs + "/items/delete", {{"ids", all}})["deleted"], kItems);
}

TEST_F(ApiTest, TriePagesAreCutShortWithACursorUnderTheResponseLimit) {
  constexpr std::size_t kLimit = 32 << 10;
  create_padded_docs(kLimit);
  std::set<std::uint64_t> seen;
  json cursor = nullptr;
  int pages = 0;
  do {
    json body = {{"limit", 1000}, {"with_payload", true}};
    if (!cursor.is_null()) body["cursor"] = cursor;
    const Response r = call(Verb::post, kDocs + "/trie/items", body);
    ASSERT_EQ(r.result_int(), 200u) << r.body().substr(0, 300);
    EXPECT_LE(r.body().size(), kLimit);
    const json page = json::parse(r.body())["result"];
    EXPECT_FALSE(page["items"].empty());
    for (const json& item : page["items"]) {
      EXPECT_TRUE(seen.insert(item["id"].get<std::uint64_t>()).second);
      EXPECT_EQ(item["payload"]["pad"].get<std::string>().size(), 1000u);
    }
    cursor = page["next_cursor"];
    ++pages;
  } while (!cursor.is_null() && pages < 100);
  EXPECT_EQ(seen.size(), kItems);
  EXPECT_GE(pages, 7);  // 200 items of ~1 KB in pages of under 32 KiB
}

TEST_F(ApiTest, NoHostileBodyOnAnyEndpointGivesA5xx) {
  create_docs();
  const std::vector<std::string> bodies = {
      "",
      "{}",
      "[]",
      "null",
      "1",
      "\"text\"",
      "{\"a\":",
      "{\"vector\": null}",
      "{\"vector\": {}}",
      "{\"vectors\": [[]]}",
      "{\"vectors\": [1]}",
      "{\"k\": -1}",
      "{\"k\": 18446744073709551615}",
      "{\"k\": 1e308}",
      "{\"ids\": [18446744073709551615]}",
      "{\"ids\": [1.5]}",
      "{\"prefix\": [1e10]}",
      "{\"prefixes\": [[], null, 1]}",
      "{\"items\": [{\"id\": 1, \"vector\": [1,1,1,1,1,1,1,1], \"payload\": " +
          std::string(60, '[') + std::string(60, ']') + "}]}",
      "{\"items\": [null, [], {\"id\": null}]}",
      "{\"sid\": [0, 0], \"collision_suffix\": -1}",
      "{\"cursor\": \"" + std::string(1000, 'f') + "\"}",
      "{\"filter\": []}",
      "{\"model\": \"/dev/null\"}",
      "{\"train\": {\"data\": \"/dev/null\"}}",
      "{\"train\": {\"data\": \"/etc/passwd\", \"kind\": \"rqkmeans\"}}",
      "{\"train\": {\"data\": \"/dev/null\", \"hidden\": [1e9]}}",
      std::string("{\"s\": \"\xff\xfe\"}"),
      std::string(20000, '{')};
  const std::vector<std::pair<Verb, std::string>> routes = {
      {Verb::put, "/v1/collections/fresh"},
      {Verb::put, kDocs + "/items"},
      {Verb::post, kDocs + "/items/retrieve"},
      {Verb::post, kDocs + "/items/delete"},
      {Verb::post, kDocs + "/items/3/similar"},
      {Verb::post, kDocs + "/search"},
      {Verb::post, kDocs + "/encode"},
      {Verb::post, kDocs + "/trie/next"},
      {Verb::post, kDocs + "/trie/items"},
      {Verb::post, kDocs + "/trie/resolve"},
      {Verb::post, kDocs + "/snapshots/nope/restore"}};
  for (const auto& [method, target] : routes) {
    for (const std::string& body : bodies) {
      const Response r = call_text(method, target, body);
      EXPECT_LT(r.result_int(), 500u)
          << method << " " << target << " " << body.substr(0, 80) << ": " << r.body();
      EXPECT_FALSE(testing::error_code(r.body()).empty() && r.result_int() >= 400) << r.body();
    }
  }
  for (const std::string& target :
       {kDocs + "/items/%00", kDocs + "/items/3?with_vector", kDocs + "/items/3?&&=",
        kDocs + "/items/0x10", kDocs + "/items/ 1", "/v1/collections/" + std::string(300, 'a')}) {
    EXPECT_LT(call(Verb::get, target).result_int(), 500u) << target;
  }
}

// ---- collections ------------------------------------------------------------------------------

TEST_F(ApiTest, CreateDescribeListAndDeleteACollection) {
  const json created = result(Verb::put, kDocs, {{"model", model_path_}}, 201);
  EXPECT_EQ(created["name"], "docs");
  EXPECT_EQ(created["items"], 0);
  EXPECT_EQ(created["dim"], kDim);
  EXPECT_EQ(created["levels"], kLevels);
  EXPECT_EQ(created["codebook_size"], kCodebookSize);
  EXPECT_EQ(created["model"]["kind"], "rqkmeans");
  EXPECT_EQ(created["model"]["config"]["dim"], kDim);
  result(Verb::put, kDocs + "/items", testing::items_body(0, kItems));

  const json described = result(Verb::get, kDocs);
  EXPECT_EQ(described["items"], kItems);
  ASSERT_EQ(described["codes"]["levels"].size(), static_cast<std::size_t>(kLevels));
  EXPECT_GT(described["codes"]["levels"][0]["used_fraction"].get<double>(), 0.2);
  EXPECT_TRUE(described["codes"].contains("collision_rate"));
  EXPECT_TRUE(described.contains("collision_groups"));
  EXPECT_EQ(described["store"]["sync"], false);

  result(Verb::put, "/v1/collections/other", {{"model", model_path_}}, 201);
  const json listed = result(Verb::get, "/v1/collections");
  ASSERT_EQ(listed["collections"].size(), 2u);
  EXPECT_EQ(listed["collections"][0]["name"], "docs");
  EXPECT_EQ(listed["collections"][0]["items"], kItems);
  EXPECT_EQ(listed["collections"][1]["name"], "other");

  EXPECT_EQ(result(Verb::delete_, kDocs)["deleted"], "docs");
  expect_error(call(Verb::get, kDocs), 404, "not_found");
  expect_error(call(Verb::delete_, kDocs), 404, "not_found");
  EXPECT_EQ(result(Verb::get, "/v1/collections")["collections"].size(), 1u);
}

TEST_F(ApiTest, CreateRejectsTakenNamesBadNamesAndBadSources) {
  result(Verb::put, kDocs, {{"model", model_path_}}, 201);
  expect_error(call(Verb::put, kDocs, {{"model", model_path_}}), 409, "already_exists");
  expect_error(call(Verb::put, "/v1/collections/.hidden", {{"model", model_path_}}), 422,
               "invalid_value");
  expect_error(call(Verb::put, "/v1/collections/x", {{"model", dir_.file("missing.safetensors")}}),
               422, "invalid_value");
  expect_error(call(Verb::put, "/v1/collections/x", {{"model", 3}}), 400, "invalid_field");
  expect_error(call(Verb::put, "/v1/collections/x", json::object()), 400, "invalid_field");
  expect_error(
      call(Verb::put, "/v1/collections/x", {{"model", model_path_}, {"train", {{"data", "d"}}}}),
      400, "invalid_field");
  expect_error(
      call(Verb::put, "/v1/collections/x", {{"train", {{"data", dir_.file("missing.fvecs")}}}}),
      422, "invalid_value");
  expect_error(call(Verb::get, "/v1/collections/..%2Fetc"), 404, "not_found");
  EXPECT_FALSE(manager_->exists("x"));
}

TEST_F(ApiTest, CreateByTrainingOnAServerFile) {
  const std::string data = dir_.file("train.fvecs");
  ASSERT_TRUE(write_fvecs(data, testing::test_vectors(400)).is_ok());
  const json kmeans = result(Verb::put, "/v1/collections/km",
                             {{"train",
                               {{"data", data},
                                {"kind", "rqkmeans"},
                                {"levels", 2},
                                {"codebook_size", 16},
                                {"kmeans_iterations", 5}}}},
                             201);
  EXPECT_EQ(kmeans["model"]["kind"], "rqkmeans");
  EXPECT_EQ(kmeans["training"]["items"], 400);

  const json rqvae = result(Verb::put, "/v1/collections/vae",
                            {{"train",
                              {{"data", data},
                               {"levels", 2},
                               {"codebook_size", 16},
                               {"latent_dim", 4},
                               {"hidden", {16}},
                               {"epochs", 3},
                               {"warmup_epochs", 1},
                               {"decoder_refine_epochs", 0},
                               {"batch_size", 64},
                               {"max_rows", 300}}}},
                            201);
  EXPECT_EQ(rqvae["model"]["kind"], "rqvae");
  EXPECT_EQ(rqvae["model"]["config"]["latent_dim"], 4);
  EXPECT_EQ(rqvae["training"]["items"], 300);
  EXPECT_EQ(rqvae["training"]["epochs_run"], 3);
  EXPECT_FALSE(rqvae["training"].contains("history"));

  // Options of the other kind, bad values and unknown fields are refused before training.
  expect_error(call(Verb::put, "/v1/collections/bad",
                    {{"train", {{"data", data}, {"kind", "rqkmeans"}, {"epochs", 3}}}}),
               400, "invalid_field");
  expect_error(
      call(Verb::put, "/v1/collections/bad", {{"train", {{"data", data}, {"kind", "pq"}}}}), 422,
      "invalid_value");
  expect_error(call(Verb::put, "/v1/collections/bad", {{"train", {{"data", data}, {"levels", 0}}}}),
               422, "invalid_value");
  expect_error(
      call(Verb::put, "/v1/collections/bad", {{"train", {{"data", data}, {"hidden", {0}}}}}), 422,
      "invalid_value");
  expect_error(call(Verb::put, "/v1/collections/bad",
                    {{"train", {{"data", data}, {"metric", "manhattan"}}}}),
               422, "invalid_value");
  // More codes than training items: the trainer refuses (422), nothing is created.
  expect_error(call(Verb::put, "/v1/collections/bad",
                    {{"train", {{"data", data}, {"kind", "rqkmeans"}, {"codebook_size", 1024}}}}),
               422, "invalid_value");
  EXPECT_FALSE(manager_->exists("bad"));
}

TEST_F(ApiTest, DrainingStopsATrainingAfterItsCurrentEpoch) {
  const std::string data = dir_.file("train.fvecs");
  ASSERT_TRUE(write_fvecs(data, testing::test_vectors(400)).is_ok());
  std::thread drain([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    api_->set_readiness(Readiness::kDraining);
  });
  const auto start = std::chrono::steady_clock::now();
  const Response r = call(Verb::put, "/v1/collections/long",
                          {{"train",
                            {{"data", data},
                             {"levels", 2},
                             {"codebook_size", 16},
                             {"latent_dim", 4},
                             {"hidden", {16}},
                             {"epochs", 1000000},
                             {"warmup_epochs", 1},
                             {"patience", 0},
                             {"decoder_refine_epochs", 0}}}});
  drain.join();
  expect_error(r, 503, "draining");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_FALSE(manager_->exists("long"));
}

// ---- items ------------------------------------------------------------------------------------

TEST_F(ApiTest, UpsertWritesValidItemsAndReportsInvalidOnes) {
  result(Verb::put, kDocs, {{"model", model_path_}}, 201);
  const json good = std::vector<float>(kDim, 0.25f);
  json items = json::array({
      {{"id", 1}, {"vector", good}, {"payload", {{"word", "one"}}}},
      {{"id", 2}, {"vector", std::vector<float>(kDim - 1, 0.25f)}},  // wrong dimension
      {{"id", 3}, {"vector", {1, 2, 3, 4, 5, 6, 7, "x"}}},           // wrong type
      {{"id", -4}, {"vector", good}},                                // negative id
      {{"id", 5.5}, {"vector", good}},                               // float id
      {{"id", 6}},                                                   // no vector
      {{"id", 7}, {"vector", good}, {"colour", "red"}},              // unknown field
      {{"id", 1}, {"vector", good}},                                 // duplicate id
      {{"id", 9}, {"vector", {1, 2, 3, 4, 5, 6, 7, 1e300}}},         // beyond float
      "not an object",
      {{"id", 11}, {"vector", good}, {"payload", std::string(2 << 20, 'p')}},  // payload > 1 MiB
      {{"id", 12}, {"vector", good}},
      {{"id", std::uint64_t{1} << 63}, {"vector", good}},  // id > 2^63 - 1
  });
  const json out = result(Verb::put, kDocs + "/items", {{"items", items}});
  EXPECT_EQ(out["upserted"], 2);
  const std::vector<std::pair<int, std::string>> expected = {
      {1, "wrong_dimension"}, {2, "invalid_field"},  {3, "invalid_value"}, {4, "invalid_field"},
      {5, "invalid_field"},   {6, "invalid_field"},  {7, "invalid_value"}, {8, "invalid_number"},
      {9, "invalid_field"},   {10, "invalid_value"}, {12, "invalid_value"}};
  ASSERT_EQ(out["errors"].size(), expected.size()) << out.dump(1);
  for (std::size_t e = 0; e < expected.size(); ++e) {
    const json& error = out["errors"][e];
    EXPECT_EQ(error["index"], expected[e].first) << error;
    EXPECT_EQ(error["code"], expected[e].second) << error;
    EXPECT_FALSE(error["message"].get<std::string>().empty());
  }
  EXPECT_EQ(out["errors"][0]["id"], 2);
  EXPECT_TRUE(out["errors"][8]["id"].is_null());
  EXPECT_EQ(docs()->size(), 2u);
  EXPECT_EQ(result(Verb::get, kDocs + "/items/1")["payload"]["word"], "one");
  EXPECT_TRUE(result(Verb::get, kDocs + "/items/12")["payload"].is_null());

  expect_error(call(Verb::put, kDocs + "/items", json::object()), 400, "invalid_field");
  expect_error(call(Verb::put, kDocs + "/items", {{"items", {{"id", 1}}}}), 400, "invalid_field");
  expect_error(call(Verb::put, kDocs + "/items", {{"items", json::array()}, {"wait", true}}), 400,
               "invalid_field");
  EXPECT_EQ(result(Verb::put, kDocs + "/items", {{"items", json::array()}})["upserted"], 0);
}

TEST_F(ApiTest, UpsertReplacesAnItemAndItsPayload) {
  create_docs();
  const json replaced = {
      {"items", {{{"id", 7}, {"vector", std::vector<float>(kDim, -1.0f)}, {"payload", {1, 2}}}}}};
  result(Verb::put, kDocs + "/items", replaced);
  const json item = result(Verb::get, kDocs + "/items/7?with_vector=true");
  EXPECT_EQ(item["payload"], json({1, 2}));
  EXPECT_EQ(item["vector"], json(std::vector<float>(kDim, -1.0f)));
  EXPECT_EQ(docs()->size(), kItems);
}

TEST_F(ApiTest, GetAnItemWithOrWithoutVectorAndPayload) {
  create_docs();
  const storage::Item stored = docs()->get(17).value();
  const json item = result(Verb::get, kDocs + "/items/17");
  EXPECT_EQ(item["id"], 17);
  EXPECT_EQ(item["sid"], json(stored.sid));
  EXPECT_EQ(item["collision_suffix"], stored.collision_suffix);
  EXPECT_EQ(item["payload"], json({{"word", "w17"}}));
  EXPECT_FALSE(item.contains("vector"));
  const json full = result(Verb::get, kDocs + "/items/17?with_vector=1&with_payload=false");
  EXPECT_FALSE(full.contains("payload"));
  ASSERT_EQ(full["vector"].size(), static_cast<std::size_t>(kDim));
  for (int j = 0; j < kDim; ++j) EXPECT_EQ(full["vector"][j].get<float>(), stored.vector[j]);

  expect_error(call(Verb::get, kDocs + "/items/17?with_vector=yes"), 400, "invalid_field");
  expect_error(call(Verb::get, kDocs + "/items/17?pretty=true"), 400, "invalid_field");
  expect_error(call(Verb::get, kDocs + "/items/abc"), 400, "invalid_field");
  expect_error(call(Verb::get, kDocs + "/items/-1"), 400, "invalid_field");
  expect_error(call(Verb::get, kDocs + "/items/9223372036854775808"), 422, "invalid_value");
  expect_error(call(Verb::get, kDocs + "/items/99999999999999999999999"), 422, "invalid_value");
  expect_error(call(Verb::get, kDocs + "/items/100000"), 404, "not_found");
  expect_error(call(Verb::get, "/v1/collections/nope/items/1"), 404, "not_found");
}

TEST_F(ApiTest, RetrieveManyReportsMissingIds) {
  create_docs();
  const json out = result(Verb::post, kDocs + "/items/retrieve",
                          {{"ids", {3, 100000, 4}}, {"with_vector", true}});
  ASSERT_EQ(out["items"].size(), 2u);
  EXPECT_EQ(out["items"][0]["id"], 3);
  EXPECT_EQ(out["items"][1]["id"], 4);
  EXPECT_EQ(out["items"][1]["vector"].size(), static_cast<std::size_t>(kDim));
  EXPECT_EQ(out["not_found"], json({100000}));
  expect_error(call(Verb::post, kDocs + "/items/retrieve", {{"ids", 3}}), 400, "invalid_field");
}

TEST_F(ApiTest, DeleteOneAndMany) {
  create_docs();
  EXPECT_EQ(result(Verb::delete_, kDocs + "/items/5")["deleted"], 1);
  expect_error(call(Verb::delete_, kDocs + "/items/5"), 404, "not_found");
  const json out = result(Verb::post, kDocs + "/items/delete", {{"ids", {6, 7, 5, 7, 100000}}});
  EXPECT_EQ(out["deleted"], 2);
  EXPECT_EQ(out["not_found"], json({5, 100000}));
  EXPECT_EQ(docs()->size(), kItems - 3);
  expect_error(call(Verb::get, kDocs + "/items/6"), 404, "not_found");
}

TEST_F(ApiTest, AnItemsSidAndReconstruction) {
  create_docs();
  const auto collection = docs();
  const storage::Item stored = collection->get(42).value();
  const json sid = result(Verb::get, kDocs + "/items/42/sid");
  EXPECT_EQ(sid,
            json({{"id", 42}, {"sid", stored.sid}, {"collision_suffix", stored.collision_suffix}}));
  const json reconstruction = result(Verb::get, kDocs + "/items/42/reconstruction");
  const std::vector<float> expected = collection->reconstruct(42).value();
  ASSERT_EQ(reconstruction["vector"].size(), expected.size());
  for (std::size_t j = 0; j < expected.size(); ++j) {
    EXPECT_EQ(reconstruction["vector"][j].get<float>(), expected[j]);
  }
  EXPECT_EQ(reconstruction["sid"], json(stored.sid));
  expect_error(call(Verb::get, kDocs + "/items/100000/reconstruction"), 404, "not_found");
}

// ---- search ---------------------------------------------------------------------------------

TEST_F(ApiTest, SearchReturnsWhatTheCollectionReturnsWithSidsAndPayloads) {
  create_docs();
  const auto collection = docs();
  const FloatMatrix vectors = testing::test_vectors(kItems);
  for (const std::string mode : {"cosine", "prefix", "exhaustive"}) {
    const json hits =
        result(Verb::post, kDocs + "/search",
               {{"vector", testing::vector_json(vectors, 9)}, {"k", 5}, {"mode", mode}});
    storage::SearchOptions options;
    options.mode = mode == "cosine"   ? SearchMode::kCosine
                   : mode == "prefix" ? SearchMode::kPrefix
                                      : SearchMode::kExhaustive;
    const auto expected =
        collection->search(1, std::span(vectors.row(9), kDim), 5, options).value()[0];
    ASSERT_EQ(hits.size(), expected.size()) << mode;
    for (std::size_t r = 0; r < expected.size(); ++r) {
      EXPECT_EQ(hits[r]["id"], expected[r].id) << mode;
      EXPECT_FLOAT_EQ(hits[r]["score"].get<float>(), expected[r].distance) << mode;
      const storage::Item item = collection->get(expected[r].id).value();
      EXPECT_EQ(hits[r]["sid"], json(item.sid));
      EXPECT_EQ(hits[r]["payload"]["word"], testing::test_word(item.id));
      EXPECT_FALSE(hits[r].contains("vector"));
    }
  }
}

TEST_F(ApiTest, SearchBatchFiltersAndOutputOptions) {
  create_docs();
  const FloatMatrix vectors = testing::test_vectors(kItems);
  const json batch =
      result(Verb::post, kDocs + "/search",
             {{"vectors", {testing::vector_json(vectors, 1), testing::vector_json(vectors, 2)}},
              {"k", 3},
              {"with_payload", false},
              {"with_vector", true}});
  ASSERT_EQ(batch.size(), 2u);
  for (const json& hits : batch) {
    ASSERT_EQ(hits.size(), 3u);
    EXPECT_FALSE(hits[0].contains("payload"));
    EXPECT_EQ(hits[0]["vector"].size(), static_cast<std::size_t>(kDim));
  }
  // Prefix filter: every hit lies under the prefix.
  const std::int32_t first_code = docs()->get(1).value().sid[0];
  const json under = result(Verb::post, kDocs + "/search",
                            {{"vector", testing::vector_json(vectors, 50)},
                             {"k", 50},
                             {"filter", {{"prefix", {first_code}}}}});
  ASSERT_FALSE(under.empty());
  for (const json& hit : under) EXPECT_EQ(hit["sid"][0], first_code);
  // Id filter: only those ids.
  const json only = result(Verb::post, kDocs + "/search",
                           {{"vector", testing::vector_json(vectors, 50)},
                            {"k", 10},
                            {"filter", {{"ids", {3, 4, 100000}}}}});
  std::set<std::uint64_t> ids;
  for (const json& hit : only) ids.insert(hit["id"].get<std::uint64_t>());
  EXPECT_EQ(ids, (std::set<std::uint64_t>{3, 4}));
  // Options pass through: rerank scores by the original vectors, so item 50 scores 1.
  const json reranked = result(Verb::post, kDocs + "/search",
                               {{"vector", testing::vector_json(vectors, 50)},
                                {"k", 1},
                                {"rerank", 50},
                                {"mode", "exhaustive"}});
  ASSERT_EQ(reranked.size(), 1u);
  EXPECT_NEAR(reranked[0]["score"].get<double>(), 1.0, 1e-5);
  EXPECT_EQ(result(Verb::post, kDocs + "/search", {{"vectors", json::array()}}), json::array());
}

TEST_F(ApiTest, SimilarItemsExcludeTheItemItself) {
  create_docs();
  const json hits = result(Verb::post, kDocs + "/items/12/similar", {{"k", 4}});
  ASSERT_EQ(hits.size(), 4u);
  for (const json& hit : hits) EXPECT_NE(hit["id"], 12);
  // No body at all means the defaults (k = 10).
  EXPECT_EQ(api_->handle(make_request(Verb::post, kDocs + "/items/12/similar")).result_int(), 200);
  EXPECT_EQ(result(Verb::post, kDocs + "/items/12/similar", json::object()).size(), 10u);
  expect_error(call(Verb::post, kDocs + "/items/100000/similar", json::object()), 404, "not_found");
  expect_error(call(Verb::post, kDocs + "/items/12/similar", {{"vector", {1}}}), 400,
               "invalid_field");
}

TEST_F(ApiTest, EncodeGivesTheModelsSidsWithoutStoring) {
  create_docs();
  const auto collection = docs();
  const FloatMatrix vectors = testing::test_vectors(3);
  std::vector<std::int32_t> codes(3 * kLevels);
  ASSERT_TRUE(collection->model()->encode(3, vectors.data.data(), codes.data()).is_ok());
  const json one =
      result(Verb::post, kDocs + "/encode", {{"vector", testing::vector_json(vectors, 0)}});
  EXPECT_EQ(one["sid"], json({codes[0], codes[1]}));
  const json batch =
      result(Verb::post, kDocs + "/encode",
             {{"vectors", {testing::vector_json(vectors, 1), testing::vector_json(vectors, 2)}}});
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[1]["sid"], json({codes[4], codes[5]}));
  EXPECT_EQ(collection->size(), kItems);
  expect_error(call(Verb::post, kDocs + "/encode", {{"vector", {1, 2}}}), 400, "wrong_dimension");
}

// ---- trie ---------------------------------------------------------------------------------------

TEST_F(ApiTest, TrieNextTokensForOneOrManyPrefixes) {
  create_docs();
  const auto collection = docs();
  const json root = result(Verb::post, kDocs + "/trie/next", {{"prefix", json::array()}});
  EXPECT_EQ(root["prefix"], json::array());
  EXPECT_EQ(root["count"], kItems);
  std::uint64_t total = 0;
  std::int32_t previous = -1;
  for (const json& next : root["next"]) {
    EXPECT_GT(next["code"].get<std::int32_t>(), previous);
    previous = next["code"].get<std::int32_t>();
    const std::vector<std::int32_t> prefix = {previous};
    EXPECT_EQ(next["count"], collection->count(prefix).value());
    total += next["count"].get<std::uint64_t>();
  }
  EXPECT_EQ(total, kItems);

  const storage::Item item = collection->get(3).value();
  const json many = result(Verb::post, kDocs + "/trie/next",
                           {{"prefixes", {json::array(), {item.sid[0]}, item.sid}}});
  ASSERT_EQ(many.size(), 3u);
  EXPECT_EQ(many[0], root);
  EXPECT_EQ(many[1]["count"], collection->count(std::span(item.sid.data(), 1)).value());
  EXPECT_EQ(many[2]["next"], json::array());  // a full SID: its collision group's size
  EXPECT_EQ(many[2]["count"], collection->count(item.sid).value());

  expect_error(call(Verb::post, kDocs + "/trie/next", {{"prefix", {1, 2, 3}}}), 422,
               "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/next", {{"prefix", {-1}}}), 422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/next", {{"prefix", {}}, {"prefixes", {}}}), 400,
               "invalid_field");
}

TEST_F(ApiTest, TrieItemsPageThroughEveryItemOnce) {
  create_docs();
  std::set<std::uint64_t> seen;
  json cursor = nullptr;
  int pages = 0;
  do {
    json body = {{"prefix", json::array()}, {"limit", 37}};
    if (!cursor.is_null()) body["cursor"] = cursor;
    const json page = result(Verb::post, kDocs + "/trie/items", body);
    for (const json& item : page["items"]) {
      EXPECT_TRUE(seen.insert(item["id"].get<std::uint64_t>()).second);
      EXPECT_EQ(item["sid"].size(), static_cast<std::size_t>(kLevels));
      EXPECT_FALSE(item.contains("payload"));
    }
    cursor = page["next_cursor"];
    ++pages;
  } while (!cursor.is_null() && pages < 100);
  EXPECT_EQ(seen.size(), kItems);
  EXPECT_EQ(pages, 6);

  const std::int32_t code = docs()->get(0).value().sid[0];
  const json under = result(Verb::post, kDocs + "/trie/items",
                            {{"prefix", {code}}, {"limit", 1000}, {"with_payload", true}});
  EXPECT_EQ(under["items"].size(), docs()->count(std::vector<std::int32_t>{code}).value());
  EXPECT_TRUE(under["next_cursor"].is_null());
  for (const json& item : under["items"]) {
    EXPECT_EQ(item["sid"][0], code);
    EXPECT_EQ(item["payload"]["word"], testing::test_word(item["id"].get<std::uint64_t>()));
  }
  expect_error(call(Verb::post, kDocs + "/trie/items", {{"cursor", "zz"}}), 422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/items", {{"limit", 0}}), 422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/items", {{"limit", 100001}}), 422, "invalid_value");
}

TEST_F(ApiTest, TrieResolveAFullSemanticId) {
  create_docs();
  const storage::Item item = docs()->get(77).value();
  const json resolved = result(Verb::post, kDocs + "/trie/resolve",
                               {{"sid", item.sid}, {"collision_suffix", item.collision_suffix}});
  EXPECT_EQ(resolved["id"], 77);
  EXPECT_EQ(resolved["payload"]["word"], "w77");
  expect_error(call(Verb::post, kDocs + "/trie/resolve", {{"sid", {item.sid[0]}}}), 422,
               "invalid_value");
  expect_error(
      call(Verb::post, kDocs + "/trie/resolve", {{"sid", item.sid}, {"collision_suffix", 65535}}),
      404, "not_found");
  expect_error(
      call(Verb::post, kDocs + "/trie/resolve", {{"sid", item.sid}, {"collision_suffix", 65536}}),
      422, "invalid_value");
  expect_error(call(Verb::post, kDocs + "/trie/resolve", json::object()), 400, "invalid_field");
}

// ---- snapshots ----------------------------------------------------------------------------------

TEST_F(ApiTest, SnapshotsCreateListRestoreDelete) {
  create_docs();
  const std::string id = result(Verb::post, kDocs + "/snapshots", nullptr, 201)["snapshot"];
  EXPECT_EQ(result(Verb::get, kDocs + "/snapshots")["snapshots"], json({id}));
  result(Verb::post, kDocs + "/items/delete", {{"ids", {1, 2, 3}}});
  EXPECT_EQ(docs()->size(), kItems - 3);
  const json restored = result(Verb::post, kDocs + "/snapshots/" + id + "/restore");
  EXPECT_EQ(restored["restored"], id);
  EXPECT_EQ(restored["items"], kItems);
  EXPECT_EQ(result(Verb::get, kDocs + "/items/2")["id"], 2);
  EXPECT_EQ(result(Verb::delete_, kDocs + "/snapshots/" + id)["deleted"], id);
  EXPECT_EQ(result(Verb::get, kDocs + "/snapshots")["snapshots"], json::array());
  expect_error(call(Verb::post, kDocs + "/snapshots/" + id + "/restore"), 404, "not_found");
  expect_error(call(Verb::post, kDocs + "/snapshots/..%2F..%2Fetc/restore"), 422, "invalid_value");
  expect_error(call(Verb::post, "/v1/collections/nope/snapshots"), 404, "not_found");
  expect_error(call(Verb::get, "/v1/collections/nope/snapshots"), 404, "not_found");
}

// ---- auth and logging -------------------------------------------------------------------------

TEST_F(ApiTest, KeysGateReadsAndWrites) {
  ApiOptions options;
  options.api_key = "write-secret";
  options.read_only_key = "read-secret";
  make_api(options);
  const Headers writer = {{"api-key", "write-secret"}};
  const Headers reader = {{"Authorization", "Bearer read-secret"}};
  EXPECT_EQ(call(Verb::put, kDocs, {{"model", model_path_}}, writer).result_int(), 201);
  EXPECT_EQ(call(Verb::put, kDocs + "/items", testing::items_body(0, 20), writer).result_int(),
            200);

  const Response unauthorized = call(Verb::get, kDocs);
  expect_error(unauthorized, 401, "unauthorized");
  EXPECT_EQ(unauthorized[beast_http::field::www_authenticate], "Bearer");
  expect_error(call(Verb::get, kDocs, nullptr, {{"api-key", "write-secreT"}}), 403, "forbidden");
  expect_error(call(Verb::get, kDocs, nullptr, {{"Authorization", "Basic d3JpdGUtc2VjcmV0"}}), 401,
               "unauthorized");
  expect_error(call(Verb::get, "/metrics"), 401, "unauthorized");
  // Routes are not revealed without a key (issue 13): unknown paths and methods are 401 too.
  expect_error(call(Verb::get, "/v1/secret-admin"), 401, "unauthorized");
  expect_error(call(Verb::patch, kDocs), 401, "unauthorized");
  expect_error(call(Verb::get, "/v1/secret-admin", nullptr, reader), 404, "not_found");
  EXPECT_EQ(call(Verb::get, "/healthz").result_int(), 200);
  EXPECT_EQ(call(Verb::get, "/readyz").result_int(), 200);

  EXPECT_EQ(call(Verb::get, kDocs, nullptr, reader).result_int(), 200);
  EXPECT_EQ(call(Verb::get, "/metrics", nullptr, reader).result_int(), 200);
  EXPECT_EQ(
      call(Verb::post, kDocs + "/search", {{"vector", std::vector<float>(kDim, 1.0f)}}, reader)
          .result_int(),
      200);
  EXPECT_EQ(
      call(Verb::post, kDocs + "/trie/next", {{"prefix", json::array()}}, reader).result_int(),
      200);
  EXPECT_EQ(
      call(Verb::get, kDocs, nullptr, {{"authorization", "bearer write-secret"}}).result_int(),
      200);
  expect_error(call(Verb::put, kDocs + "/items", testing::items_body(0, 1), reader), 403,
               "read_only");
  expect_error(call(Verb::delete_, kDocs, nullptr, reader), 403, "read_only");
  expect_error(call(Verb::post, kDocs + "/snapshots", nullptr, reader), 403, "read_only");
  EXPECT_EQ(docs()->size(), 20u);
}

TEST_F(ApiTest, OptionsValidate) {
  ApiOptions options;
  EXPECT_TRUE(options.validate().is_ok());
  options.api_key = options.read_only_key = "same";
  EXPECT_FALSE(options.validate().is_ok());
  options = ApiOptions{};
  options.max_k = 0;
  EXPECT_FALSE(options.validate().is_ok());
  options = ApiOptions{};
  options.max_page = storage::kMaxScanLimit + 1;
  EXPECT_FALSE(options.validate().is_ok());
}

TEST_F(ApiTest, AccessLogNamesTheRouteAndNeverTheKey) {
  std::ostringstream captured;
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  ApiOptions options;
  options.api_key = "very-secret-key";
  api_ = std::make_unique<Api>(*manager_, options);  // access_log on
  api_->set_readiness(Readiness::kReady);
  call(Verb::get, "/v1/collections", nullptr, {{"api-key", "very-secret-key"}});
  call(Verb::get, "/v1/collections", nullptr, {{"api-key", "wrong-secret-key"}});
  spdlog::set_default_logger(previous);
  const std::string log = captured.str();
  EXPECT_NE(log.find("GET /v1/collections 200"), std::string::npos) << log;
  EXPECT_NE(log.find("GET /v1/collections 403"), std::string::npos) << log;
  EXPECT_EQ(log.find("secret"), std::string::npos) << log;
}

}  // namespace
}  // namespace semid::http
