// The API through a real Server on loopback: every endpoint, the errors, keep-alive, concurrency.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/api.h"
#include "http/server.h"
#include "tests/http/api_test_util.h"
#include "tests/http/test_client.h"

namespace semid::http {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Headers;
using testing::kDim;
using testing::TestClient;

constexpr std::size_t kBodyLimit = 64u << 10;
const std::string kDocs = "/v1/collections/docs";

class ApiSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = testing::save_test_model(dir_);
    auto manager = storage::CollectionManager::open(dir_.file("data"));
    ASSERT_TRUE(manager.is_ok()) << manager.status().to_string();
    manager_ = std::move(manager).value();
  }

  void start(ApiOptions api_options = {}) {
    api_options.access_log = false;
    api_ = std::make_unique<Api>(*manager_, api_options);
    api_->set_readiness(Readiness::kReady);
    ServerOptions options;
    options.port = 0;
    options.body_limit = kBodyLimit;
    options.read_timeout = 5s;
    server_ = std::make_unique<Server>(options, api_->handler());
    ASSERT_TRUE(server_->start().is_ok());
  }

  // The "result" of a request that must answer `status` and keep the connection open.
  static json result(TestClient& client, Verb method, const std::string& target,
                     const json& body = nullptr, unsigned status = 200,
                     const Headers& headers = {}) {
    const auto r = client.request(method, target, body.is_null() ? "" : body.dump(),
                                  "application/json", headers);
    EXPECT_EQ(r.result_int(), status) << method << " " << target << ": " << r.body();
    EXPECT_TRUE(r.keep_alive()) << target;
    return json::parse(r.body()).value("result", json());
  }

  static void expect_error(TestClient& client, Verb method, const std::string& target,
                           const std::string& body, unsigned status, const std::string& code,
                           const std::string& content_type = "application/json",
                           const Headers& headers = {}) {
    const auto r = client.request(method, target, body, content_type, headers);
    EXPECT_EQ(r.result_int(), status) << method << " " << target << ": " << r.body();
    EXPECT_EQ(testing::error_code(r.body()), code) << r.body();
  }

  testing::TempDir dir_;
  std::string model_path_;
  std::unique_ptr<storage::CollectionManager> manager_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<Server> server_;  // declared last: stopped before the Api goes
};

TEST_F(ApiSocketTest, EveryEndpointOverOneKeepAliveConnection) {
  start();
  TestClient c(server_->port());
  EXPECT_EQ(result(c, Verb::get, "/healthz")["status"], "ok");
  EXPECT_EQ(result(c, Verb::get, "/readyz")["status"], "ready");
  EXPECT_EQ(result(c, Verb::put, kDocs, {{"model", model_path_}}, 201)["name"], "docs");
  EXPECT_EQ(result(c, Verb::put, kDocs + "/items", testing::items_body(0, 100))["upserted"], 100);
  EXPECT_EQ(result(c, Verb::get, "/v1/collections")["collections"][0]["items"], 100);
  EXPECT_EQ(result(c, Verb::get, kDocs)["items"], 100);

  const json item = result(c, Verb::get, kDocs + "/items/10?with_vector=true");
  EXPECT_EQ(item["payload"]["word"], "w10");
  EXPECT_EQ(item["vector"].size(), static_cast<std::size_t>(kDim));
  EXPECT_EQ(result(c, Verb::post, kDocs + "/items/retrieve", {{"ids", {10, 11}}})["items"].size(),
            2u);
  EXPECT_EQ(result(c, Verb::get, kDocs + "/items/10/sid")["sid"], item["sid"]);
  EXPECT_EQ(result(c, Verb::get, kDocs + "/items/10/reconstruction")["vector"].size(),
            static_cast<std::size_t>(kDim));
  EXPECT_EQ(result(c, Verb::post, kDocs + "/items/10/similar", {{"k", 3}}).size(), 3u);

  const json hits =
      result(c, Verb::post, kDocs + "/search", {{"vector", item["vector"]}, {"k", 5}});
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_TRUE(hits[0]["payload"].contains("word"));
  EXPECT_EQ(result(c, Verb::post, kDocs + "/search",
                   {{"vectors", {item["vector"], item["vector"]}}, {"mode", "prefix"}, {"k", 2}})
                .size(),
            2u);
  EXPECT_EQ(result(c, Verb::post, kDocs + "/encode", {{"vector", item["vector"]}})["sid"],
            item["sid"]);

  EXPECT_EQ(result(c, Verb::post, kDocs + "/trie/next", {{"prefix", json::array()}})["count"], 100);
  EXPECT_EQ(result(c, Verb::post, kDocs + "/trie/next", {{"prefixes", {{item["sid"][0]}}}}).size(),
            1u);
  const json page =
      result(c, Verb::post, kDocs + "/trie/items", {{"prefix", {item["sid"][0]}}, {"limit", 100}});
  EXPECT_FALSE(page["items"].empty());
  EXPECT_EQ(result(c, Verb::post, kDocs + "/trie/resolve",
                   {{"sid", item["sid"]}, {"collision_suffix", item["collision_suffix"]}})["id"],
            10);

  const std::string snapshot =
      result(c, Verb::post, kDocs + "/snapshots", nullptr, 201)["snapshot"];
  EXPECT_EQ(result(c, Verb::get, kDocs + "/snapshots")["snapshots"], json({snapshot}));
  EXPECT_EQ(result(c, Verb::delete_, kDocs + "/items/10")["deleted"], 1);
  EXPECT_EQ(result(c, Verb::post, kDocs + "/items/delete", {{"ids", {11, 12}}})["deleted"], 2);
  EXPECT_EQ(result(c, Verb::post, kDocs + "/snapshots/" + snapshot + "/restore")["items"], 100);
  EXPECT_EQ(result(c, Verb::delete_, kDocs + "/snapshots/" + snapshot)["deleted"], snapshot);

  const auto metrics = c.request(Verb::get, "/metrics");
  EXPECT_EQ(metrics.result_int(), 200);
  EXPECT_NE(metrics.body().find("route=\"/v1/collections/{name}/search\",status=\"200\"} 2"),
            std::string::npos);
  EXPECT_EQ(result(c, Verb::delete_, kDocs)["deleted"], "docs");
  EXPECT_EQ(result(c, Verb::get, "/v1/collections")["collections"], json::array());
}

TEST_F(ApiSocketTest, ErrorsOverTheWire) {
  start();
  TestClient c(server_->port());
  result(c, Verb::put, kDocs, {{"model", model_path_}}, 201);
  expect_error(c, Verb::get, "/v2", "", 404, "not_found");
  const auto not_allowed = c.request(Verb::delete_, "/v1/collections");
  EXPECT_EQ(not_allowed.result_int(), 405);
  EXPECT_EQ(not_allowed[boost::beast::http::field::allow], "GET");
  expect_error(c, Verb::post, kDocs + "/search", "{\"vector\": [", 400, "invalid_json");
  expect_error(c, Verb::post, kDocs + "/search", "{\"vector\": [1]}", 400, "wrong_dimension");
  expect_error(c, Verb::post, kDocs + "/search", "{\"vector\": [1]}", 415, "unsupported_media_type",
               "text/plain");
  expect_error(c, Verb::post, kDocs + "/search", "{\"vector\": [1,1,1,1,1,1,1,1], \"k\": 0}", 422,
               "invalid_value");
  expect_error(c, Verb::put, kDocs, "{\"model\": \"x\"}", 409, "already_exists");
  // Every error above kept the connection; a body over the limit is answered, then closed.
  expect_error(c, Verb::put, kDocs + "/items", std::string(kBodyLimit + 1, ' '), 413,
               "payload_too_large");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ApiSocketTest, KeysOverTheWire) {
  ApiOptions options;
  options.api_key = "w-key";
  options.read_only_key = "r-key";
  start(options);
  TestClient c(server_->port());
  const Headers writer = {{"api-key", "w-key"}};
  const Headers reader = {{"api-key", "r-key"}};
  result(c, Verb::put, kDocs, {{"model", model_path_}}, 201, writer);
  expect_error(c, Verb::get, kDocs, "", 401, "unauthorized");
  expect_error(c, Verb::get, kDocs, "", 403, "forbidden", "application/json",
               {{"api-key", "r-kez"}});
  expect_error(c, Verb::put, kDocs + "/items", testing::items_body(0, 1).dump(), 403, "read_only",
               "application/json", reader);
  EXPECT_EQ(
      result(c, Verb::put, kDocs + "/items", testing::items_body(0, 5), 200, writer)["upserted"],
      5);
  EXPECT_EQ(result(c, Verb::post, kDocs + "/trie/next", {{"prefix", json::array()}}, 200,
                   reader)["count"],
            5);
  EXPECT_EQ(result(c, Verb::get, "/healthz")["status"], "ok");
}

TEST_F(ApiSocketTest, ReadinessOverTheWire) {
  start();
  api_->set_readiness(Readiness::kStarting);
  TestClient c(server_->port());
  EXPECT_EQ(result(c, Verb::get, "/healthz")["status"], "ok");
  expect_error(c, Verb::get, "/readyz", "", 503, "starting");
  expect_error(c, Verb::get, "/v1/collections", "", 503, "starting");
  api_->set_readiness(Readiness::kReady);
  EXPECT_EQ(result(c, Verb::get, "/readyz")["status"], "ready");
}

TEST_F(ApiSocketTest, ConcurrentClientsWriteAndSearch) {
  start();
  {
    TestClient c(server_->port());
    result(c, Verb::put, kDocs, {{"model", model_path_}}, 201);
    result(c, Verb::put, kDocs + "/items", testing::items_body(0, 100));
  }
  constexpr int kWriters = 2, kReaders = 3, kBatches = 10, kBatchItems = 10, kSearches = 30;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      TestClient c(server_->port());
      for (int b = 0; b < kBatches; ++b) {
        const std::size_t first = 1000 + static_cast<std::size_t>((w * kBatches + b) * kBatchItems);
        const auto r =
            c.request(Verb::put, kDocs + "/items", testing::items_body(first, kBatchItems).dump());
        if (r.result_int() != 200 || json::parse(r.body())["result"]["upserted"] != kBatchItems)
          ++failures;
      }
    });
  }
  const json query = {{"vector", std::vector<float>(kDim, 0.3f)}, {"k", 5}};
  for (int q = 0; q < kReaders; ++q) {
    threads.emplace_back([&] {
      TestClient c(server_->port());
      for (int s = 0; s < kSearches; ++s) {
        const auto r = c.request(Verb::post, kDocs + "/search", query.dump());
        if (r.result_int() != 200 || json::parse(r.body())["result"].size() != 5) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(manager_->get("docs").value()->size(), 100u + kWriters * kBatches * kBatchItems);
}

}  // namespace
}  // namespace semid::http
