#include "http/server.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace semid::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

Status ServerOptions::validate() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& rule) {
    return Status::invalid_argument(field + " = " + value + ": " + rule);
  };
  if (io_threads < 1 || io_threads > 256)
    return bad("io_threads", std::to_string(io_threads), "must be in [1, 256]");
  if (worker_threads < 1 || worker_threads > 1024) {
    return bad("worker_threads", std::to_string(worker_threads), "must be in [1, 1024]");
  }
  if (body_limit < 1024)
    return bad("body_limit", std::to_string(body_limit), "must be >= 1024 bytes");
  if (header_limit < 1024)
    return bad("header_limit", std::to_string(header_limit), "must be >= 1024 bytes");
  if (read_timeout.count() <= 0)
    return bad("read_timeout", std::to_string(read_timeout.count()), "must be > 0 ms");
  if (write_timeout.count() <= 0)
    return bad("write_timeout", std::to_string(write_timeout.count()), "must be > 0 ms");
  if (busy_poll.count() < 0 || busy_poll > std::chrono::seconds(1)) {
    return bad("busy_poll", std::to_string(busy_poll.count()), "must be in [0, 1000000] us");
  }
  if (shutdown_grace.count() < 0)
    return bad("shutdown_grace", std::to_string(shutdown_grace.count()), "must be >= 0 ms");
  if (idle_timeout.count() <= 0 || idle_timeout > read_timeout) {
    return bad("idle_timeout", std::to_string(idle_timeout.count()),
               "must be > 0 ms and at most read_timeout (" + std::to_string(read_timeout.count()) +
                   " ms)");
  }
  if (max_connections > (1u << 20)) {
    return bad("max_connections", std::to_string(max_connections),
               "must be at most 1048576 (0 derives it from the file-descriptor limit)");
  }
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) return bad("host", "'" + host + "'", "is not an IP address");
  return Status::ok();
}

std::size_t ServerOptions::connection_limit() const {
  if (max_connections != 0) return max_connections;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65536;
  const auto fds = static_cast<std::size_t>(limit.rlim_cur);
  const std::size_t reserve = std::min<std::size_t>(fds / 2, 256);
  return std::clamp<std::size_t>(fds - reserve, 8, 65536);
}

struct Server::Impl {
  // What the connection cap needs of a session: its phase and a way to close it.
  struct Connection {
    enum class Phase { kIdle, kReading, kBusy };
    using Clock = std::chrono::steady_clock;
    virtual ~Connection() = default;
    virtual void evict() = 0;  // closes the connection on its own strand
    // The deadline of the operation under way (idle wait, request read, answer write): a time
    // point's count, 0 for none. Sessions set it, the sweeper closes connections past it.
    void expires_after(std::chrono::milliseconds timeout) {
      deadline = (Clock::now() + timeout).time_since_epoch().count();
    }
    std::atomic<Phase> phase{Phase::kIdle};
    std::atomic<Clock::rep> deadline{0};
    std::list<std::weak_ptr<Connection>>::iterator place;  // in `connections`, under its mutex
  };

  Impl(ServerOptions o, Handler h)
      : options(std::move(o)),
        handler(std::move(h)),
        ioc(options.io_threads),
        acceptor(asio::make_strand(ioc)),
        workers(static_cast<std::size_t>(options.worker_threads)) {}

  void accept();
  // Every sweep_interval, closes the connections whose deadline has passed. One timer for the
  // server instead of one per operation: rearming a per-connection timer cost a timerfd_settime
  // call, about 4 us of every request on a keep-alive connection (trie/next p50 54 -> 50 us).
  void sweep();
  std::chrono::milliseconds sweep_interval() const;
  // What each I/O thread runs: the io_context, busy-polling between requests (busy_poll).
  void run_io();
  void run_handler(const Request& request, Response& response);
  // Registers a new connection, most recently active. False (and not registered) when the cap is
  // reached and no idle or mid-request connection could be closed to make room.
  bool admit(const std::shared_ptr<Connection>& connection);
  // Marks `connection` most recently active.
  void touch(Connection& connection);
  void forget(Connection& connection);

  ServerOptions options;
  Handler handler;
  // Open connections, least recently active first (guarded by connections_mutex). Declared
  // before the io_context: sessions its destructor drops still unregister here.
  std::size_t connection_limit = options.connection_limit();
  std::mutex connections_mutex;
  std::list<std::weak_ptr<Connection>> connections;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::thread_pool workers;
  // Keeps the I/O threads running while a request is on the worker pool and no socket operation
  // is pending (during stop(), after the acceptor closed).
  asio::executor_work_guard<asio::io_context::executor_type> work_guard{ioc.get_executor()};
  std::vector<std::thread> io_threads;
  // accept() failures (EMFILE when file descriptors run out, ...) back off instead of spinning:
  // 10 ms doubling to 1 s, reset by the next success; logged at most once a second.
  asio::steady_timer accept_retry{acceptor.get_executor()};  // on the acceptor's strand
  asio::steady_timer sweeper{acceptor.get_executor()};       // also on the acceptor's strand
  std::chrono::milliseconds accept_backoff{0};
  std::chrono::steady_clock::time_point last_accept_log{};
  std::size_t accept_failures_unlogged = 0;
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  unsigned short port = 0;
  std::mutex mutex;
  std::condition_variable idle;
};

bool Server::Impl::admit(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(connections_mutex);
  if (connections.size() >= connection_limit) {
    // Close the least recently active connection that is not being answered.
    std::shared_ptr<Connection> victim;
    for (auto it = connections.begin(); it != connections.end(); ++it) {
      auto candidate = it->lock();
      if (candidate && candidate->phase != Connection::Phase::kBusy) {
        victim = std::move(candidate);
        connections.splice(connections.end(), connections, it);  // not picked again at once
        break;
      }
    }
    if (!victim) return false;
    victim->phase = Connection::Phase::kBusy;
    victim->evict();
  }
  connection->place = connections.insert(connections.end(), connection);
  return true;
}

void Server::Impl::touch(Connection& connection) {
  std::lock_guard lock(connections_mutex);
  connections.splice(connections.end(), connections, connection.place);
}

void Server::Impl::forget(Connection& connection) {
  std::lock_guard lock(connections_mutex);
  connections.erase(connection.place);
}

namespace {

// One connection: read a request, hand it to the worker pool, write the answer, repeat.
class Session : public Server::Impl::Connection, public std::enable_shared_from_this<Session> {
 public:
  using Phase = Server::Impl::Connection::Phase;
  // `server` outlives every session: Server::stop() joins all threads before it goes.
  Session(tcp::socket&& socket, Server::Impl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() override {
    if (admitted_) server_->forget(*this);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    admitted_ = server_->admit(shared_from_this());
    if (!admitted_) {
      // Every connection is busy being answered: say so, and close.
      asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
        self->refuse(HttpStatus::service_unavailable, "too_many_connections",
                     "the server is at its limit of " +
                         std::to_string(self->server_->connection_limit) +
                         " connections, all busy; retry shortly");
      });
      return;
    }
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::read, shared_from_this()));
  }

  void evict() override {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

 private:
  // Waits (idle_timeout at most) for the first byte of the next request.
  void read() {
    phase = Phase::kIdle;
    if (buffer_.size() > 0) return read_request();  // a pipelined request is already here
    expires_after(server_->options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->close();  // idle too long, closed, or evicted
                              self->read_request();
                            });
  }

  void read_request() {
    phase = Phase::kReading;
    parser_.emplace();  // a fresh parser per message
    parser_->body_limit(server_->options.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.header_limit));
    // One deadline over the whole request read: headers, any 100-continue, and the body.
    expires_after(server_->options.read_timeout);
    beast::http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    const auto& header = parser_->get();
    // Request smuggling: a framing a proxy may read otherwise ("chunked, identity", "gzip,
    // chunked") is refused, not guessed at (RFC 9112 6.3: 400 and close).
    if (const auto coding = header[beast::http::field::transfer_encoding];
        !coding.empty() && !beast::iequals(coding, "chunked")) {
      return refuse(HttpStatus::bad_request, "bad_request",
                    "Transfer-Encoding '" + std::string(coding) +
                        "' is not supported: only 'chunked' alone is accepted");
    }
    if (beast::iequals(header[beast::http::field::expect], "100-continue")) {
      // curl waits a second for this before sending a large body.
      auto cont = std::make_shared<beast::http::response<beast::http::empty_body>>(
          beast::http::status::continue_, header.version());
      beast::http::async_write(
          stream_, *cont, [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
            if (wec) return self->close();
            self->read_body();
          });
      return;
    }
    read_body();
  }

  void read_body() {
    beast::http::async_read(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  // Answers a request that cannot be read on, then closes (the stream is out of sync).
  void refuse(HttpStatus status, const std::string& code, const std::string& message) {
    Request stub;
    stub.version(11);
    stub.keep_alive(false);
    Response response = error_response(stub, status, code, message);
    response.keep_alive(false);
    write(std::move(response));
  }

  void on_read_error(beast::error_code ec) {
    if (ec == beast::http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return close();
    }
    // A malformed or oversized request: answer it, then close (the stream is out of sync).
    Request stub;
    stub.version(11);
    stub.keep_alive(false);
    Response response;
    if (ec == beast::http::error::body_limit) {
      response = error_response(stub, HttpStatus::payload_too_large, "payload_too_large",
                                "request body exceeds the limit of " +
                                    std::to_string(server_->options.body_limit) + " bytes");
    } else if (ec == beast::http::error::header_limit) {
      response =
          error_response(stub, HttpStatus::request_header_fields_too_large, "header_too_large",
                         "request headers exceed the limit of " +
                             std::to_string(server_->options.header_limit) + " bytes");
    } else {
      response = error_response(stub, HttpStatus::bad_request, "bad_request",
                                "malformed HTTP request: " + ec.message());
    }
    response.keep_alive(false);
    write(std::move(response));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    phase = Phase::kBusy;
    deadline = 0;  // a handler takes as long as it takes; the answer's write has its own
    server_->touch(*this);
    auto request = std::make_shared<Request>(parser_->release());
    auto self = shared_from_this();
    ++server_->in_flight;
    if (server_->options.run_inline && server_->options.run_inline(*request)) {
      Response response;
      server_->run_handler(*request, response);
      return write(std::move(response), /*counts_in_flight=*/true);
    }
    asio::post(server_->workers, [self, request] {
      Response response;
      self->server_->run_handler(*request, response);
      asio::post(self->stream_.get_executor(), [self, r = std::move(response)]() mutable {
        self->write(std::move(r), /*counts_in_flight=*/true);
      });
    });
  }

  void finish_request() {
    if (--server_->in_flight == 0) {
      std::lock_guard lock(server_->mutex);
      server_->idle.notify_all();
    }
  }

  // A handled request stays "in flight" until its response is written, so stop() never cuts a
  // response off.
  void write(Response response, bool counts_in_flight = false) {
    phase = Phase::kBusy;
    counts_in_flight_ = counts_in_flight;
    response_ = std::make_shared<Response>(std::move(response));
    expires_after(server_->options.write_timeout);
    beast::http::async_write(stream_, *response_,
                             beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t written) {
    const bool keep_alive = response_->keep_alive();
    response_.reset();
    // glibc keeps the pages of a large answer's freed buffers; hand them back to the system, on
    // a worker (malloc_trim walks the heap), so RSS falls again after large requests.
    const std::size_t trim_after = server_->options.trim_after_bytes;
    if (trim_after != 0 && written >= trim_after)
      asio::post(server_->workers, [] { malloc_trim(0); });
    if (counts_in_flight_) finish_request();
    if (ec || !keep_alive || server_->stopped) return close();
    read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::shared_ptr<Response> response_;
  bool counts_in_flight_ = false;
  bool admitted_ = false;
  Server::Impl* server_;
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(
      asio::make_strand(ioc), [self = this](beast::error_code ec, tcp::socket socket) {
        if (!ec) {
          self->accept_backoff = std::chrono::milliseconds(0);
          std::make_shared<Session>(std::move(socket), self)->start();
          return self->accept();
        }
        if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
        self->accept_backoff =
            std::min(std::chrono::milliseconds(1000),
                     std::max(std::chrono::milliseconds(10), self->accept_backoff * 2));
        const auto now = std::chrono::steady_clock::now();
        if (now - self->last_accept_log >= std::chrono::seconds(1)) {
          spdlog::warn(
              "accept failed: {} (retrying in {} ms; {} more failures since the last "
              "report)",
              ec.message(), self->accept_backoff.count(), self->accept_failures_unlogged);
          self->last_accept_log = now;
          self->accept_failures_unlogged = 0;
        } else {
          ++self->accept_failures_unlogged;
        }
        self->accept_retry.expires_after(self->accept_backoff);
        self->accept_retry.async_wait([self](beast::error_code wait_ec) {
          if (!wait_ec && self->acceptor.is_open()) self->accept();
        });
      });
}

std::chrono::milliseconds Server::Impl::sweep_interval() const {
  // A tenth of the shortest timeout, within [5 ms, 250 ms]: deadlines are kept to within 10%.
  const auto shortest =
      std::min({options.idle_timeout, options.read_timeout, options.write_timeout});
  return std::clamp(shortest / 10, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
}

void Server::Impl::sweep() {
  sweeper.expires_after(sweep_interval());
  sweeper.async_wait([this](beast::error_code ec) {
    if (ec || !acceptor.is_open()) return;  // stopping
    const auto now = Connection::Clock::now().time_since_epoch().count();
    {
      std::lock_guard lock(connections_mutex);
      for (const auto& weak : connections) {
        const auto connection = weak.lock();
        if (!connection) continue;
        auto due = connection->deadline.load();
        if (due != 0 && due < now && connection->deadline.compare_exchange_strong(due, 0)) {
          connection->evict();
        }
      }
    }
    sweep();
  });
}

void Server::Impl::run_io() {
  if (options.busy_poll.count() == 0) {
    ioc.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  while (!ioc.stopped()) {
    if (ioc.run_one() == 0) return;  // blocks until an event; 0 once stopped
    // Poll on while nothing is in flight: a request handed to a worker, which may share this
    // core, is not competed with.
    auto until = Clock::now() + options.busy_poll;
    while (in_flight == 0 && !ioc.stopped() && Clock::now() < until) {
      if (ioc.poll() > 0) until = Clock::now() + options.busy_poll;
    }
  }
}

void Server::Impl::run_handler(const Request& request, Response& response) {
  if (draining) {
    response = error_response(request, HttpStatus::service_unavailable, "draining",
                              "the server is shutting down");
    response.keep_alive(false);
    return;
  }
  try {
    response = handler(request);
  } catch (const std::exception& e) {
    // Handlers do not throw by contract; this is the last line of defence.
    const auto method = request.method_string();
    const auto target = request.target();
    spdlog::error("handler threw on {} {}: {}", printable({method.data(), method.size()}),
                  printable({target.data(), target.size()}), printable(e.what()));
    response =
        error_response(request, HttpStatus::internal_server_error, "internal", "internal error");
  }
}

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() { stop(); }

Status Server::start() {
  SEMID_RETURN_IF_ERROR(impl_->options.validate());
  const auto address = asio::ip::make_address(impl_->options.host);
  const tcp::endpoint endpoint(address, impl_->options.port);
  beast::error_code ec;
  auto fail = [&](const char* what) {
    return Status::io_error(std::string("cannot ") + what + " " + impl_->options.host + ":" +
                            std::to_string(impl_->options.port) + ": " + ec.message());
  };
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  impl_->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  asio::post(impl_->acceptor.get_executor(), [impl = impl_.get()] { impl->sweep(); });
  for (int i = 0; i < impl_->options.io_threads; ++i) {
    impl_->io_threads.emplace_back([impl = impl_.get()] { impl->run_io(); });
  }
  return Status::ok();
}

unsigned short Server::port() const { return impl_->port; }
std::size_t Server::in_flight() const { return impl_->in_flight; }
std::size_t Server::connections() const {
  std::lock_guard lock(impl_->connections_mutex);
  return impl_->connections.size();
}
bool Server::draining() const { return impl_->draining; }

void Server::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->draining = true;
  asio::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->accept_retry.cancel();
    impl->sweeper.cancel();
  });
  {
    std::unique_lock lock(impl_->mutex);
    impl_->idle.wait_for(lock, impl_->options.shutdown_grace,
                         [&] { return impl_->in_flight == 0; });
  }
  impl_->workers.join();
  impl_->work_guard.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->io_threads) {
    if (t.joinable()) t.join();
  }
}

int Server::wait_for_signal() {
  asio::io_context signal_context;
  asio::signal_set signals(signal_context, SIGINT, SIGTERM);
  int received = 0;
  signals.async_wait([&](const beast::error_code&, int signal) { received = signal; });
  signal_context.run();
  spdlog::info("signal {} received: draining (grace {} ms)", received,
               impl_->options.shutdown_grace.count());
  stop();
  return received;
}

}  // namespace semid::http
