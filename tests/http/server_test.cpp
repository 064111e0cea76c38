#include "http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/http/test_client.h"

namespace semid::http {
namespace {

using namespace std::chrono_literals;
using testing::TestClient;

ServerOptions test_options() {
  ServerOptions o;
  o.port = 0;
  o.body_limit = 4096;
  o.header_limit = 2048;
  o.read_timeout = 500ms;
  o.shutdown_grace = 5s;
  return o;
}

// Echoes method, target and body length as JSON.
Response echo(const Request& request) {
  return json_response(request, HttpStatus::ok,
                       {{"method", std::string(request.method_string())},
                        {"target", std::string(request.target())},
                        {"body_bytes", request.body().size()}});
}

TEST(Server, AnswersAndKeepsTheConnectionAlive) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  for (int i = 0; i < 3; ++i) {
    auto r = client.request(Verb::post, "/v1/x?i=" + std::to_string(i), "{\"a\":1}");
    ASSERT_EQ(r.result(), HttpStatus::ok);
    auto body = nlohmann::json::parse(r.body());
    EXPECT_EQ(body["target"], "/v1/x?i=" + std::to_string(i));
    EXPECT_EQ(body["body_bytes"], 7);
    EXPECT_EQ(r[boost::beast::http::field::content_type], "application/json");
  }
}

TEST(Server, BodyOverTheLimitIs413) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  auto r = client.request(Verb::post, "/v1/x", std::string(5000, 'a'));
  EXPECT_EQ(r.result(), HttpStatus::payload_too_large);
  EXPECT_EQ(nlohmann::json::parse(r.body())["error"]["code"], "payload_too_large");
}

TEST(Server, HeadersOverTheLimitAre431) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  auto r = client.request(Verb::get, "/v1/x", "", "", {{"x-big", std::string(3000, 'h')}});
  EXPECT_EQ(r.result(), HttpStatus::request_header_fields_too_large);
}

TEST(Server, MalformedRequestIs400ThenClose) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  client.send_raw("NOT HTTP AT ALL\r\n\r\n");
  auto r = client.read_response();
  EXPECT_EQ(r.result(), HttpStatus::bad_request);
  EXPECT_TRUE(client.closed_by_server());
}

TEST(Server, TransferEncodingOtherThanChunkedIs400ThenClose) {
  // Request smuggling (issue 13): Beast read "chunked, identity" as an empty body and the chunk
  // data as a second request.
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  for (const char* coding : {"chunked, identity", "gzip, chunked", "identity"}) {
    TestClient client(server.port());
    client.send_raw(std::string("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ") + coding +
                    "\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
    auto r = client.read_response();
    EXPECT_EQ(r.result(), HttpStatus::bad_request) << coding;
    EXPECT_TRUE(client.closed_by_server()) << coding;
  }
  TestClient chunked(server.port());
  chunked.send_raw(
      "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  auto ok = chunked.read_response();
  EXPECT_EQ(ok.result(), HttpStatus::ok);
  EXPECT_NE(ok.body().find("\"body_bytes\":5"), std::string::npos) << ok.body();
}

TEST(Server, SlowClientIsCutOffByTheReadDeadline) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  client.send_raw("POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Server, ExpectContinueIsAnswered) {
  Server server(test_options(), echo);
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  client.send_raw(
      "POST /v1/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  auto interim = client.read_response();
  EXPECT_EQ(interim.result(), HttpStatus::continue_);
  client.send_raw("{}");
  auto r = client.read_response();
  EXPECT_EQ(r.result(), HttpStatus::ok);
  EXPECT_EQ(nlohmann::json::parse(r.body())["body_bytes"], 2);
}

TEST(Server, HandlerExceptionBecomes500AndServerLivesOn) {
  Server server(test_options(), [](const Request& request) -> Response {
    if (request.target() == "/boom") throw std::runtime_error("boom");
    return echo(request);
  });
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  EXPECT_EQ(client.request(Verb::get, "/boom").result(), HttpStatus::internal_server_error);
  EXPECT_EQ(client.request(Verb::get, "/fine").result(), HttpStatus::ok);
}

TEST(Server, StopFinishesInFlightRequestsThenRefusesConnections) {
  std::atomic<bool> entered{false};
  Server server(test_options(), [&](const Request& request) {
    entered = true;
    std::this_thread::sleep_for(300ms);
    return echo(request);
  });
  ASSERT_TRUE(server.start().is_ok());
  const auto port = server.port();
  TestClient client(port);
  std::thread stopper([&] {
    while (!entered) std::this_thread::sleep_for(1ms);
    server.stop();
  });
  auto r = client.request(Verb::get, "/slow");
  stopper.join();
  EXPECT_EQ(r.result(), HttpStatus::ok);
  EXPECT_THROW(TestClient late(port), boost::system::system_error);
}

TEST(ServerOptions, RejectsBadValues) {
  ServerOptions o;
  o.host = "not-an-ip";
  EXPECT_NE(o.validate().message().find("host"), std::string::npos);
  o = ServerOptions{};
  o.worker_threads = 0;
  EXPECT_NE(o.validate().message().find("worker_threads"), std::string::npos);
}

TEST(Server, BindFailureNamesTheAddress) {
  Server first(test_options(), echo);
  ASSERT_TRUE(first.start().is_ok());
  ServerOptions o = test_options();
  o.port = first.port();
  Server second(o, echo);
  Status s = second.start();
  EXPECT_EQ(s.code(), Status::Code::kIOError);
  EXPECT_NE(s.message().find(std::to_string(first.port())), std::string::npos);
}

}  // namespace
}  // namespace semid::http
