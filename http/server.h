// The HTTP transport: Boost.Beast on Asio, after Beast's advanced server example.
//
//   listener (async accept) -> session per connection (keep-alive) -> pure Handler on a worker pool
//
// - Each request gets a fresh parser with a body limit and a header limit; one deadline covers
//   the whole request read (headers and body), so a slow client cannot hold a connection; a
//   shorter idle deadline covers the wait for a request's first byte.
// - Connections are capped (derived from the fd limit): at the cap, the least recently active
//   connection that is idle or mid-request is closed for the new one.
// - Requests of one connection are answered in order, one at a time: a pipelining client's later
//   requests wait in the socket buffer (the pipelining cap is 1 in flight per connection).
// - Handlers run on a worker pool, not on the I/O threads: encoding and search do not stall
//   accepting or reading. Only what ServerOptions::run_inline picks (microsecond reads of memory)
//   is answered on the I/O thread that read it.
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
  // Deadline for reading one whole request, from its first byte. Default: 30 s.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  // How long a connection may wait for the first byte of its next request (a keep-alive
  // connection between requests, a new one before its first); then it is closed. At most
  // read_timeout. Default: 5 s.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(5);
  // Most open connections; 0 derives it from the process's file-descriptor limit (RLIMIT_NOFILE
  // soft limit, less a reserve of min(limit / 2, 256) for RocksDB's and the model's files, in
  // [8, 65536]). At the limit a new connection closes the least recently active one that is idle
  // or has not sent a complete request; when every one is busy, the new one is answered 503 and
  // closed. Default: 0 (derived).
  std::size_t max_connections = 0;
  // After writing an answer of at least this many bytes, glibc's malloc_trim hands the freed
  // pages back to the system (on a worker thread); 0: never. Default: 4 MiB.
  std::size_t trim_after_bytes = std::size_t{4} << 20;
  // Requests for which this is true are answered on the I/O thread that read them, not handed to
  // the worker pool (for microsecond reads: the hand-off costs two thread wake-ups). Must be
  // cheap and never block. Default: none (every request goes to the pool).
  std::function<bool(const Request&)> run_inline;
  // After handling an event while no request is in flight, an I/O thread keeps polling its
  // sockets (without sleeping) this long for the next one before it blocks: a keep-alive client's
  // next request is then read without the thread being put to sleep and woken, which costs tens of
  // microseconds on a virtual machine. Spins only between requests, never while one is being
  // answered, so it takes no CPU from the workers; idle, it costs nothing. 0: never. Default:
  // 50 us (the value Linux's documentation suggests for its socket busy polling, busy_read).
  std::chrono::microseconds busy_poll{50};
  // Deadline for writing one response. Default: 30 s.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // How long stop() waits for in-flight requests. Default: 10 s.
  std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10);

  // InvalidArgument naming the field when a value is out of range.
  Status validate() const;
  // max_connections, or the limit derived from the file-descriptor limit when it is 0.
  std::size_t connection_limit() const;
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
  // Connections open right now.
  std::size_t connections() const;
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
