// The HTTP transport: Boost.Beast on Asio, after Beast's advanced server example.
//
//   listener (async accept) -> session per connection (keep-alive) -> pure Handler on a worker pool
//
// - Each request gets a fresh parser with a body limit and a header limit; one deadline covers
//   the whole request read (headers and body), so a slow client cannot hold a connection.
// - Requests of one connection are answered in order, one at a time: a pipelining client's later
//   requests wait in the socket buffer (the pipelining cap is 1 in flight per connection).
// - Handlers run on a worker pool, never on the I/O threads: encoding and search do not stall
//   accepting or reading.
// - stop(): stop accepting, answer 503 to new requests on open connections, wait for in-flight
//   requests up to `shutdown_grace`, then close everything.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "http/http_types.h"
#include "index/status.h"

namespace semid::http {

struct ServerOptions {
  // Address to bind. Default: "127.0.0.1".
  std::string host = "127.0.0.1";
  // Port to bind; 0 picks a free one (see Server::port()). Default: 8080.
  unsigned short port = 8080;
  // Threads for accepting and socket I/O. Default: 1.
  int io_threads = 1;
  // Threads running request handlers (encoding, search, writes). Default: 2.
  int worker_threads = 2;
  // Largest request body; larger gets 413. Default: 32 MiB.
  std::size_t body_limit = 32u << 20;
  // Largest request header block; larger gets 431. Default: 16 KiB.
  std::size_t header_limit = 16u << 10;
  // Deadline for reading one whole request (and for an idle keep-alive connection). Default: 30 s.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  // Deadline for writing one response. Default: 30 s.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // How long stop() waits for in-flight requests. Default: 10 s.
  std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10);

  // InvalidArgument naming the field when a value is out of range.
  Status validate() const;
};

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the threads. IOError naming host:port when binding fails.
  Status start();
  // The bound port (after start()).
  unsigned short port() const;
  // Requests being handled right now.
  std::size_t in_flight() const;
  bool draining() const;
  // Graceful stop (idempotent); returns once every thread has ended.
  void stop();
  // Blocks until SIGINT or SIGTERM, then stop(). Returns the signal number.
  int wait_for_signal();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace semid::http
