#include "http/server.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

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
  o.idle_timeout = 500ms;
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

// Waits up to `limit` for `done`.
template <typename F>
bool eventually(F done, std::chrono::milliseconds limit = 3000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
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

TEST(Server, AHandlerLongerThanEveryTimeoutIsStillAnswered) {
  // The read and idle deadlines (500 ms) end when the request is read: a handler that takes
  // longer is not cut off by the deadline sweep, and the connection stays usable.
  Server server(test_options(), [](const Request& request) {
    std::this_thread::sleep_for(1200ms);
    return echo(request);
  });
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  for (int i = 0; i < 2; ++i) {
    auto r = client.request(Verb::get, "/slow");
    EXPECT_EQ(r.result(), HttpStatus::ok);
  }
}

TEST(Server, AClientThatNeverReadsIsCutOffByTheWriteDeadline) {
  // A large answer to a client that does not read fills the socket buffers; the write deadline
  // closes the connection instead of holding it (and the answer) forever.
  ServerOptions o = test_options();
  o.write_timeout = 300ms;
  const std::string big(std::size_t{64} << 20, 'x');
  Server server(o, [&big](const Request& request) {
    Response response{boost::beast::http::status::ok, request.version()};
    response.body() = big;
    response.prepare_payload();
    return response;
  });
  ASSERT_TRUE(server.start().is_ok());
  TestClient client(server.port());
  client.send_raw("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(1500ms);  // never reading: the server's write stalls
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
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

TEST(Server, IdleKeepAliveConnectionsCloseAfterTheIdleTimeoutNotTheReadTimeout) {
  // Issue 13.1: idle keep-alive connections were held for the whole 30 s read timeout.
  ServerOptions o = test_options();
  o.idle_timeout = 200ms;
  o.read_timeout = 10s;
  Server server(o, echo);
  ASSERT_TRUE(server.start().is_ok());
  const auto start = std::chrono::steady_clock::now();
  TestClient after_a_request(server.port());
  EXPECT_EQ(after_a_request.request(Verb::get, "/x").result(), HttpStatus::ok);
  TestClient silent(server.port());  // never sends a byte
  EXPECT_TRUE(after_a_request.closed_by_server());
  EXPECT_TRUE(silent.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // A request that has begun has the read timeout, not the idle one.
  TestClient slow(server.port());
  slow.send_raw("GET /x HTTP/1.1\r\n");
  std::this_thread::sleep_for(500ms);
  slow.send_raw("Host: h\r\n\r\n");
  EXPECT_EQ(slow.read_response().result(), HttpStatus::ok);
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
}

TEST(Server, AtTheConnectionLimitIdleAndHalfSentConnectionsCloseFirst) {
  // Issue 13.1: 300 idle keep-alive clients took every file descriptor and a search timed out.
  ServerOptions o = test_options();
  o.max_connections = 4;
  o.idle_timeout = 10s;
  o.read_timeout = 10s;
  Server server(o, echo);
  ASSERT_TRUE(server.start().is_ok());
  std::vector<std::unique_ptr<TestClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<TestClient>(server.port()));
    ASSERT_EQ(idle.back()->request(Verb::get, "/x").result(), HttpStatus::ok);
  }
  TestClient half_sent(server.port());
  half_sent.send_raw("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nsome");
  ASSERT_TRUE(eventually([&] { return server.connections() == 4; }));
  // Many newcomers, each served at once; the least recently active connections make room.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    TestClient newcomer(server.port());
    EXPECT_EQ(newcomer.request(Verb::get, "/new").result(), HttpStatus::ok) << i;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(idle[0]->closed_by_server());  // the least recently active went first
  EXPECT_TRUE(half_sent.closed_by_server());
  EXPECT_TRUE(eventually([&] { return server.connections() <= 4; }));
}

TEST(Server, AtTheConnectionLimitWithEveryConnectionBusyANewOneIs503) {
  std::atomic<bool> release{false};
  std::atomic<int> entered{0};
  ServerOptions o = test_options();
  o.max_connections = 2;
  o.read_timeout = 10s;
  o.idle_timeout = 10s;
  Server server(o, [&](const Request& request) {
    ++entered;
    while (!release) std::this_thread::sleep_for(1ms);
    return echo(request);
  });
  ASSERT_TRUE(server.start().is_ok());
  std::vector<std::thread> busy;
  for (int i = 0; i < 2; ++i) {
    busy.emplace_back([&] {
      TestClient client(server.port());
      EXPECT_EQ(client.request(Verb::get, "/slow").result(), HttpStatus::ok);
    });
  }
  ASSERT_TRUE(eventually([&] { return entered == 2; }));
  TestClient third(server.port());
  auto r = third.read_response();  // answered without sending anything
  EXPECT_EQ(r.result(), HttpStatus::service_unavailable);
  EXPECT_EQ(nlohmann::json::parse(r.body())["error"]["code"], "too_many_connections");
  EXPECT_TRUE(third.closed_by_server());
  release = true;
  for (auto& t : busy) t.join();
}

TEST(ServerOptions, TheConnectionLimitDerivesFromTheFdLimitWithAReserve) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  ServerOptions o;
  // The soft limit lowered for a moment (the process may raise it back up to the hard limit).
  const auto derived_at = [&](rlim_t soft) {
    rlimit lowered = saved;
    lowered.rlim_cur = std::min(soft, saved.rlim_max);
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    const std::size_t limit = o.connection_limit();
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    return limit;
  };
  if (saved.rlim_max >= 1024) {
    EXPECT_EQ(derived_at(128), 64u);    // half kept for files
    EXPECT_EQ(derived_at(1024), 768u);  // a reserve of 256
  }
  EXPECT_EQ(derived_at(12), 8u);  // never fewer than 8
  o.max_connections = 17;
  EXPECT_EQ(o.connection_limit(), 17u);
  o.idle_timeout = o.read_timeout + 1ms;
  EXPECT_NE(o.validate().message().find("idle_timeout"), std::string::npos);
}

TEST(ServerOptions, RejectsBadValues) {
  ServerOptions o;
  o.host = "not-an-ip";
  EXPECT_NE(o.validate().message().find("host"), std::string::npos);
  o = ServerOptions{};
  o.worker_threads = 0;
  EXPECT_NE(o.validate().message().find("worker_threads"), std::string::npos);
  for (const std::chrono::microseconds bad : {-1us, std::chrono::microseconds(1001ms)}) {
    o = ServerOptions{};
    o.busy_poll = bad;
    EXPECT_NE(o.validate().message().find("busy_poll"), std::string::npos);
  }
}

TEST(Server, BusyPollingServesInlineAndPooledRequestsAndStopsPromptly) {
  // A poll window far longer than the test: the I/O thread is polling whenever no request is in
  // flight, and must still hand requests to the pool, answer inline ones, and stop.
  ServerOptions o = test_options();
  o.busy_poll = 1s;
  o.worker_threads = 1;
  std::atomic<int> pooled{0};
  o.run_inline = [](const Request& request) { return request.target() == "/quick"; };
  Server server(o, [&](const Request& request) {
    if (request.target() != "/quick") ++pooled;
    return echo(request);
  });
  ASSERT_TRUE(server.start().is_ok());
  {
    TestClient client(server.port());
    for (int i = 0; i < 20; ++i) {
      const std::string target = i % 2 == 0 ? "/quick" : "/pooled";
      auto r = client.request(Verb::get, target);
      ASSERT_EQ(r.result(), HttpStatus::ok);
      EXPECT_EQ(nlohmann::json::parse(r.body())["target"], target);
    }
  }
  EXPECT_EQ(pooled, 10);
  const auto start = std::chrono::steady_clock::now();
  server.stop();  // nothing in flight: no grace to wait out, and the polling loop ends
  EXPECT_LT(std::chrono::steady_clock::now() - start, o.shutdown_grace);
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
