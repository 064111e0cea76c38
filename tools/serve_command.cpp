// `semid serve`: the HTTP API (http/api.h) over the collections of a data directory.
//
// Start-up: the server listens first (so /healthz answers and /readyz says "starting"), then every
// collection is opened (its index and trie rebuilt from RocksDB), then /v1 becomes ready.
// Shutdown on SIGTERM or SIGINT: stop accepting, finish in-flight requests within the grace
// period, close every collection (RocksDB flush), exit 0.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http/api.h"
#include "http/server.h"
#include "index/rqvae.h"
#include "storage/collection_manager.h"
#include "tools/commands.h"

namespace semid::tools {
namespace {

// The flags bind to the server's and the API's own options, so their defaults (and the range
// checks of their validate()) are the ones written there.
struct ServeArgs {
  std::string data_dir;
  std::string api_key;
  std::string read_only_key;
  bool no_access_log = false;
  bool prefetch_reconstructions = true;
  storage::StoreOptions store;
  http::ServerOptions server;
  http::ApiOptions api;
  double idle_timeout_s = seconds(server.idle_timeout);
  double read_timeout_s = seconds(server.read_timeout);
  long busy_poll_us = server.busy_poll.count();

  static double seconds(std::chrono::milliseconds ms) {
    return static_cast<double>(ms.count()) / 1e3;
  }
  static std::chrono::milliseconds millis(double s) {
    return std::chrono::milliseconds(std::llround(s * 1e3));
  }
};

// The flag's value, else the environment variable's (keys on a command line show in `ps`).
std::string key_from(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr ? value : "";
}

// After start-up, while the server answers: decodes each collection's stored SIDs into its
// search's reconstruction cache, so the first searches do not pay for the decoder (on GloVe,
// decoding the shortlist is about a third of a cold search). Small steps under the reader lock,
// on this thread at a low priority: searches and writers go first.
void prefetch(storage::CollectionManager& manager, const std::vector<std::string>& names,
              const std::atomic<bool>& stopping) {
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);  // this thread only (Linux)
  constexpr std::size_t kStep = 1024;
  for (const std::string& name : names) {
    auto collection = manager.get(name);
    if (!collection) return;  // dropped meanwhile
    const auto start = std::chrono::steady_clock::now();
    std::size_t position = 0;
    while (!stopping) {
      auto next = (*collection)->prefetch_reconstructions(position, kStep);
      if (!next || *next == position) break;
      position = *next;
    }
    if (stopping) return;
    spdlog::info("collection '{}': reconstructions of {} items' SIDs cached in {:.1f} s", name,
                 position,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

void run_serve(const ServeArgs& args) {
  // SIGINT and SIGTERM stay pending for sigwait() below: blocked here, before any thread starts,
  // so every thread inherits the mask and none can die of a signal during start-up.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // One level of parallelism: requests run on the worker pool, each model call on one thread.
  RqVae::set_threads(1);

  auto manager = value_or_throw(storage::CollectionManager::open(args.data_dir, args.store));

  http::ApiOptions api_options = args.api;
  api_options.api_key = key_from(args.api_key, "SEMID_API_KEY");
  api_options.read_only_key = key_from(args.read_only_key, "SEMID_READ_ONLY_KEY");
  api_options.access_log = !args.no_access_log;
  throw_if_error(api_options.validate());
  http::Api api(*manager, api_options);

  http::ServerOptions server_options = args.server;
  server_options.run_inline = [&api](const http::Request& request) {
    return api.is_quick(request);
  };
  server_options.idle_timeout = ServeArgs::millis(args.idle_timeout_s);
  server_options.read_timeout = ServeArgs::millis(args.read_timeout_s);
  server_options.busy_poll = std::chrono::microseconds(args.busy_poll_us);
  throw_if_error(server_options.validate());
  http::Server server(server_options, api.handler());
  throw_if_error(server.start());
  spdlog::info(
      "semid serving {} on http://{}:{} ({} worker threads, at most {} connections, {}, {})",
      args.data_dir, server_options.host, server.port(), server_options.worker_threads,
      server_options.connection_limit(),
      api_options.api_key.empty() && api_options.read_only_key.empty() ? "no API key"
                                                                       : "API key required",
      args.store.sync ? "fsync per write" : "WAL without fsync");

  std::atomic<bool> open_failed{false};
  std::atomic<bool> stopping{false};
  std::thread opener([&] {
    auto names = manager->list();
    Status status = names.status();
    for (const std::string& name : names ? *names : std::vector<std::string>{}) {
      auto collection = manager->get(name);
      if (!collection) {
        status = collection.status().with_context("collection '" + name + "'");
        break;
      }
      spdlog::info("opened collection '{}': {} items", name, (*collection)->size());
    }
    if (status) {
      api.set_readiness(http::Readiness::kReady);
      spdlog::info("ready");
      if (args.prefetch_reconstructions) prefetch(*manager, *names, stopping);
      return;
    }
    spdlog::error("cannot open the collections: {}", printable(status.to_string()));
    open_failed = true;
    kill(getpid(), SIGTERM);  // wakes sigwait() below
  });

  int signal = 0;
  sigwait(&stop_signals, &signal);
  stopping = true;
  if (!open_failed) spdlog::info("signal {} received: draining", signal);
  api.set_readiness(http::Readiness::kDraining);
  server.stop();
  opener.join();
  throw_if_error(manager->close_all());
  if (open_failed) throw std::runtime_error("serve stopped: a collection could not be opened");
  spdlog::info("stopped cleanly");
}

}  // namespace

void register_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "Serve the collections of a data directory over HTTP");
  serve
      ->add_option("--data-dir", args->data_dir,
                   "Data directory holding the collections (created when missing)")
      ->required();
  serve->add_option("--host", args->server.host, "Address to bind")->capture_default_str();
  serve->add_option("--port", args->server.port, "Port to bind (0: any free port)")
      ->capture_default_str();
  serve->add_option("--api-key", args->api_key,
                    "Key for every endpoint (default: $SEMID_API_KEY; none: open)");
  serve->add_option("--read-only-key", args->read_only_key,
                    "Key for read endpoints only (default: $SEMID_READ_ONLY_KEY)");
  serve->add_flag("--sync", args->store.sync,
                  "fsync the WAL after every write batch (survives power loss)");
  serve
      ->add_option("--reconstruction-cache-bytes", args->store.reconstruction_cache_bytes,
                   "Per collection: memory for search's decoded reconstructions, cached by SID "
                   "(0: no cache; results are the same either way)")
      ->capture_default_str();
  serve
      ->add_option("--prefetch-reconstructions", args->prefetch_reconstructions,
                   "After start-up, fill each collection's reconstruction cache in the "
                   "background (low priority), so first searches skip the decoder")
      ->capture_default_str();
  serve->add_option("--threads", args->server.worker_threads, "Worker threads running requests")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  serve
      ->add_option("--body-limit", args->server.body_limit,
                   "Largest request body in bytes (larger: 413)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 34));
  serve
      ->add_option("--max-response-bytes", args->api.max_response_bytes,
                   "Largest answer body: larger answers are 422 response_too_large before they "
                   "are built, and trie/items pages are cut short with a cursor")
      ->capture_default_str();
  serve
      ->add_option("--trim-after-bytes", args->server.trim_after_bytes,
                   "After an answer this large, return freed memory to the system (malloc_trim; "
                   "0: never)")
      ->capture_default_str();
  serve
      ->add_option("--max-connections", args->server.max_connections,
                   "Most open connections; at the limit the least recently active idle one is "
                   "closed for a new one (0: the fd limit less a reserve of min(limit/2, 256))")
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout", args->idle_timeout_s,
                   "Seconds a connection may wait for its next request's first byte")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  serve
      ->add_option("--read-timeout", args->read_timeout_s,
                   "Seconds to read one whole request, from its first byte (>= --idle-timeout)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  serve
      ->add_option("--busy-poll-us", args->busy_poll_us,
                   "After an event, with no request in flight, I/O threads poll this many "
                   "microseconds for the next one before sleeping (lower latency for busy "
                   "keep-alive clients; 0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  serve->add_flag("--no-access-log", args->no_access_log, "Do not log one line per request");
  serve->callback([args] { run_serve(*args); });
}

}  // namespace semid::tools
