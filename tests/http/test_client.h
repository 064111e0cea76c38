// A small synchronous HTTP client over loopback for the server tests.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace semid::testing {

namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

class TestClient {
 public:
  explicit TestClient(unsigned short port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }

  beast_http::response<beast_http::string_body> request(
      beast_http::verb method, const std::string& target, const std::string& body = "",
      const std::string& content_type = "application/json",
      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    beast_http::request<beast_http::string_body> req{method, target, 11};
    req.set(beast_http::field::host, "127.0.0.1");
    if (!body.empty() || method == beast_http::verb::post || method == beast_http::verb::put) {
      req.set(beast_http::field::content_type, content_type);
      req.body() = body;
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    req.prepare_payload();
    beast_http::write(socket_, req);
    return read_response();
  }

  // Sends raw bytes (for malformed requests).
  void send_raw(const std::string& bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes));
  }

  beast_http::response<beast_http::string_body> read_response() {
    beast_http::response_parser<beast_http::string_body> parser;
    parser.body_limit(256u << 20);
    beast_http::read(socket_, buffer_, parser);
    return parser.release();
  }

  // True when the server closed the connection (a read hits end of stream).
  bool closed_by_server() {
    beast::error_code ec;
    char byte;
    socket_.read_some(boost::asio::buffer(&byte, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

 private:
  boost::asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

}  // namespace semid::testing
