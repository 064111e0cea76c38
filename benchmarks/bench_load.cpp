// End-to-end load on a running `semid serve` over loopback: searches and upserts together for a
// fixed time, then the same searches in-process (on the collection directly, with the server
// stopped), so the HTTP overhead is visible. Prints one table.
//
//   bench_load --port 8080 --collection glove --queries data/glove100/query.fvecs [--seconds 60]
//              [--clients 4] [--write-fraction 0.1] [--k 10]
//   bench_load --in-process --data-dir DIR --collection glove --queries Q [--seconds 10]
//
// Bounded by design: a fixed duration and loopback only.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "index/vecs_io.h"
#include "storage/collection_manager.h"

namespace {

namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Latencies {
  std::vector<double> ms;
  std::uint64_t errors = 0;
  void merge(const Latencies& o) {
    ms.insert(ms.end(), o.ms.begin(), o.ms.end());
    errors += o.errors;
  }
  double percentile(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1,
                       static_cast<std::size_t>(p * static_cast<double>(ms.size())))];
  }
};

std::string vector_json(const float* v, std::size_t d) {
  nlohmann::json a = nlohmann::json::array();
  for (std::size_t j = 0; j < d; ++j) a.push_back(v[j]);
  return a.dump();
}

struct Args {
  std::string host = "127.0.0.1", collection, queries, data_dir, api_key;
  unsigned short port = 8080;
  double seconds = 60, write_fraction = 0.1;
  int clients = 4, k = 10;
  bool in_process = false;
};

void print_row(const char* what, Latencies& l, double seconds) {
  std::printf("| %-22s | %9zu | %9.1f | %8.2f | %8.2f | %6llu |\n", what, l.ms.size(),
              static_cast<double>(l.ms.size()) / seconds, l.percentile(0.5), l.percentile(0.99),
              static_cast<unsigned long long>(l.errors));
}

int run_http(const Args& args, const semid::FloatMatrix& queries) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(args.seconds);
  std::mutex mutex;
  Latencies searches, upserts;
  std::atomic<std::uint64_t> next_id{1ull << 40};  // ids far from any ingested item
  std::vector<std::thread> threads;
  for (int c = 0; c < args.clients; ++c) {
    threads.emplace_back([&, c] {
      Latencies my_searches, my_upserts;
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 1);
      std::uniform_real_distribution<double> coin(0, 1);
      boost::asio::io_context ioc;
      tcp::socket socket(ioc);
      beast::flat_buffer buffer;
      try {
        socket.connect(tcp::endpoint(boost::asio::ip::make_address(args.host), args.port));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "client %d cannot connect: %s\n", c, e.what());
        my_searches.errors++;
        std::lock_guard lock(mutex);
        searches.merge(my_searches);
        return;
      }
      std::size_t q = static_cast<std::size_t>(c);
      while (Clock::now() < deadline) {
        const bool write = coin(rng) < args.write_fraction;
        const float* v = queries.row(q % queries.rows);
        q += static_cast<std::size_t>(args.clients);
        beast_http::request<beast_http::string_body> req;
        req.version(11);
        req.set(beast_http::field::host, args.host);
        req.set(beast_http::field::content_type, "application/json");
        if (!args.api_key.empty()) req.set("api-key", args.api_key);
        const std::string base = "/v1/collections/" + args.collection;
        if (write) {
          req.method(beast_http::verb::put);
          req.target(base + "/items");
          req.body() = "{\"items\":[{\"id\":" + std::to_string(next_id++) +
                       ",\"vector\":" + vector_json(v, queries.cols) + "}]}";
        } else {
          req.method(beast_http::verb::post);
          req.target(base + "/search");
          req.body() = "{\"vector\":" + vector_json(v, queries.cols) +
                       ",\"k\":" + std::to_string(args.k) + "}";
        }
        req.prepare_payload();
        const auto start = Clock::now();
        beast_http::response<beast_http::string_body> res;
        beast::error_code ec;
        beast_http::write(socket, req, ec);
        if (!ec) beast_http::read(socket, buffer, res, ec);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        Latencies& l = write ? my_upserts : my_searches;
        if (ec || res.result() != beast_http::status::ok) {
          ++l.errors;
          if (ec) break;
        } else {
          l.ms.push_back(ms);
        }
      }
      std::lock_guard lock(mutex);
      searches.merge(my_searches);
      upserts.merge(my_upserts);
    });
  }
  for (auto& t : threads) t.join();
  std::printf("\nHTTP load: %d clients, %.0f s, %.0f%% upserts, k=%d, collection '%s'\n\n",
              args.clients, args.seconds, args.write_fraction * 100, args.k,
              args.collection.c_str());
  std::printf("| %-22s | %9s | %9s | %8s | %8s | %6s |\n", "operation", "requests", "QPS", "p50 ms",
              "p99 ms", "errors");
  std::printf(
      "|------------------------|-----------|-----------|----------|----------|--------|\n");
  print_row("search (HTTP)", searches, args.seconds);
  print_row("upsert (HTTP)", upserts, args.seconds);
  return searches.errors + upserts.errors == 0 ? 0 : 1;
}

int run_in_process(const Args& args, const semid::FloatMatrix& queries) {
  auto manager = semid::storage::CollectionManager::open(args.data_dir);
  if (!manager) {
    std::fprintf(stderr, "%s\n", manager.status().to_string().c_str());
    return 1;
  }
  auto collection = (*manager)->get(args.collection);
  if (!collection) {
    std::fprintf(stderr, "%s\n", collection.status().to_string().c_str());
    return 1;
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(args.seconds);
  Latencies one;
  std::size_t q = 0;
  while (Clock::now() < deadline) {
    const auto start = Clock::now();
    auto hits = (*collection)
                    ->search(1, {queries.row(q % queries.rows), queries.cols},
                             static_cast<std::size_t>(args.k));
    ++q;
    if (!hits) {
      ++one.errors;
      continue;
    }
    one.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf("\nin-process: the same queries one at a time on one thread, %.0f s\n\n",
              args.seconds);
  std::printf("| %-22s | %9s | %9s | %8s | %8s | %6s |\n", "operation", "requests", "QPS", "p50 ms",
              "p99 ms", "errors");
  std::printf(
      "|------------------------|-----------|-----------|----------|----------|--------|\n");
  print_row("search (in-process)", one, args.seconds);
  return one.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app{"semid load benchmark"};
  app.add_option("--host", args.host)->capture_default_str();
  app.add_option("--port", args.port)->capture_default_str();
  app.add_option("--collection", args.collection)->required();
  app.add_option("--queries", args.queries, "Query vectors (.fvecs)")->required();
  app.add_option("--seconds", args.seconds)->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  app.add_option("--clients", args.clients)->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--write-fraction", args.write_fraction)
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--k", args.k)->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--api-key", args.api_key);
  app.add_flag("--in-process", args.in_process, "Search the collection directly (server stopped)");
  app.add_option("--data-dir", args.data_dir, "With --in-process");
  CLI11_PARSE(app, argc, argv);
  semid::ReadOptions read;
  read.max_rows = 10000;
  auto queries = semid::read_float_vectors(args.queries, read);
  if (!queries) {
    std::fprintf(stderr, "%s\n", queries.status().to_string().c_str());
    return 1;
  }
  return args.in_process ? run_in_process(args, *queries) : run_http(args, *queries);
}
