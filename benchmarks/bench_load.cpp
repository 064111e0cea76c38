// End-to-end load on a running `semid serve` over loopback: searches, inserts, updates and deletes
// together for a fixed time, then the same searches in-process (on the collection directly, with
// the server stopped), so the HTTP overhead is visible. Prints one table.
//
//   bench_load --port 8080 --collection glove --queries data/glove100/query.fvecs [--seconds 60]
//              [--clients 4] [--write-fraction 0.1] [--update-fraction 0] [--delete-fraction 0]
//              [--trie-next-fraction 0] [--k 10] [--with-payload true]
//   bench_load --in-process --data-dir DIR --collection glove --queries Q [--seconds 10]
//
// Writes touch only ids the benchmark inserts (from 2^40 up), and it deletes them at the end.
// Bounded by design: a fixed duration and loopback only.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
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

#include "http/api.h"
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
  double seconds = 60, write_fraction = 0.1, update_fraction = 0, delete_fraction = 0,
         trie_next_fraction = 0;
  int clients = 4, k = 10;
  bool in_process = false;
  bool prefetch = true;
  bool through_api = false;
  bool with_payload = true;  // what HTTP search asks for (the API's default: true)
};

void print_row(const char* what, Latencies& l, double seconds) {
  std::printf("| %-22s | %9zu | %9.1f | %8.3f | %8.3f | %6llu |\n", what, l.ms.size(),
              static_cast<double>(l.ms.size()) / seconds, l.percentile(0.5), l.percentile(0.99),
              static_cast<unsigned long long>(l.errors));
}

// One request on an open connection: its status (0 for a transport error) and milliseconds.
struct Answer {
  unsigned status = 0;
  double ms = 0;
};

Answer send(tcp::socket& socket, beast::flat_buffer& buffer, const Args& args,
            beast_http::verb method, const std::string& target, std::string body) {
  beast_http::request<beast_http::string_body> req;
  req.version(11);
  req.method(method);
  req.target(target);
  req.set(beast_http::field::host, args.host);
  req.set(beast_http::field::content_type, "application/json");
  if (!args.api_key.empty()) req.set("api-key", args.api_key);
  req.body() = std::move(body);
  req.prepare_payload();
  const auto start = Clock::now();
  beast_http::response<beast_http::string_body> res;
  beast::error_code ec;
  beast_http::write(socket, req, ec);
  if (!ec) beast_http::read(socket, buffer, res, ec);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return {ec ? 0u : res.result_int(), ms};
}

// What a client does: searches, inserts of new ids, updates of ids it inserted (a new vector, so a
// new SID), deletes of ids it inserted.
// trie/next asks for the next codes under a depth-1 prefix (a populated first code), what a
// constrained decoder asks at its second step.
enum Op : std::size_t { kSearch, kInsert, kUpdate, kDelete, kTrieNext, kOps };
constexpr const char* kOpNames[kOps] = {"search (HTTP)", "insert (HTTP)", "update (HTTP)",
                                        "delete (HTTP)", "trie/next d1 (HTTP)"};

// The populated first codes of the collection (from trie/next at the root).
std::vector<int> first_codes(tcp::socket& socket, beast::flat_buffer& buffer, const Args& args,
                             const std::string& base) {
  beast_http::request<beast_http::string_body> req{beast_http::verb::post, base + "/trie/next", 11};
  req.set(beast_http::field::host, args.host);
  req.set(beast_http::field::content_type, "application/json");
  if (!args.api_key.empty()) req.set("api-key", args.api_key);
  req.body() = R"({"prefix": []})";
  req.prepare_payload();
  beast_http::write(socket, req);
  beast_http::response<beast_http::string_body> res;
  beast_http::read(socket, buffer, res);
  std::vector<int> codes;
  const nlohmann::json answer = nlohmann::json::parse(res.body());
  for (const auto& child : answer["result"]["next"]) {
    codes.push_back(child["code"].get<int>());
  }
  return codes;
}

int run_http(const Args& args, const semid::FloatMatrix& queries) {
  std::mutex mutex;
  std::array<Latencies, kOps> totals;
  std::uint64_t cleanup_errors = 0;
  std::atomic<std::uint64_t> next_id{1ull << 40};  // ids far from any ingested item
  const std::string base = "/v1/collections/" + args.collection;
  // Search bodies are written once, before the clock starts, as a load generator replays fixed
  // requests: the clients' own JSON writing stays out of what is measured.
  std::vector<std::string> search_bodies(queries.rows);
  for (std::size_t q = 0; q < queries.rows; ++q) {
    search_bodies[q] = "{\"vector\":" + vector_json(queries.row(q), queries.cols) +
                       ",\"k\":" + std::to_string(args.k) +
                       (args.with_payload ? "}" : ",\"with_payload\":false}");
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(args.seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < args.clients; ++c) {
    threads.emplace_back([&, c] {
      std::array<Latencies, kOps> mine;
      std::vector<std::uint64_t> inserted;  // this client's live ids
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 1);
      std::uniform_real_distribution<double> coin(0, 1);
      boost::asio::io_context ioc;
      tcp::socket socket(ioc);
      beast::flat_buffer buffer;
      try {
        socket.connect(tcp::endpoint(boost::asio::ip::make_address(args.host), args.port));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "client %d cannot connect: %s\n", c, e.what());
        std::lock_guard lock(mutex);
        totals[kSearch].errors++;
        return;
      }
      const std::vector<int> codes = args.trie_next_fraction > 0
                                         ? first_codes(socket, buffer, args, base)
                                         : std::vector<int>();
      const auto upsert_body = [&](std::uint64_t id, const float* v) {
        return "{\"items\":[{\"id\":" + std::to_string(id) +
               ",\"vector\":" + vector_json(v, queries.cols) + "}]}";
      };
      std::size_t q = static_cast<std::size_t>(c);
      while (Clock::now() < deadline) {
        const double r = coin(rng);
        const double writes = args.write_fraction + args.update_fraction + args.delete_fraction;
        Op op = r < args.write_fraction                          ? kInsert
                : r < args.write_fraction + args.update_fraction ? kUpdate
                : r < writes                                     ? kDelete
                : r < writes + args.trie_next_fraction           ? kTrieNext
                                                                 : kSearch;
        if (op == kTrieNext && codes.empty()) op = kSearch;
        if ((op == kUpdate || op == kDelete) && inserted.empty()) op = kInsert;
        const std::size_t row = q % queries.rows;
        const float* v = queries.row(row);
        q += static_cast<std::size_t>(args.clients);
        Answer answer;
        if (op == kTrieNext) {
          const int code = codes[q % codes.size()];
          answer = send(socket, buffer, args, beast_http::verb::post, base + "/trie/next",
                        "{\"prefix\":[" + std::to_string(code) + "]}");
        } else if (op == kSearch) {
          answer = send(socket, buffer, args, beast_http::verb::post, base + "/search",
                        search_bodies[row]);
        } else if (op == kInsert) {
          const std::uint64_t id = next_id++;
          answer = send(socket, buffer, args, beast_http::verb::put, base + "/items",
                        upsert_body(id, v));
          if (answer.status == 200) inserted.push_back(id);
        } else {
          const std::size_t pick =
              std::uniform_int_distribution<std::size_t>(0, inserted.size() - 1)(rng);
          if (op == kUpdate) {
            answer = send(socket, buffer, args, beast_http::verb::put, base + "/items",
                          upsert_body(inserted[pick], v));
          } else {
            answer = send(socket, buffer, args, beast_http::verb::delete_,
                          base + "/items/" + std::to_string(inserted[pick]), "");
            if (answer.status == 200) {
              inserted[pick] = inserted.back();
              inserted.pop_back();
            }
          }
        }
        if (answer.status != 200) {
          ++mine[op].errors;
          if (answer.status == 0) break;
        } else {
          mine[op].ms.push_back(answer.ms);
        }
      }
      // Leave the collection as it was: delete what this client inserted (not timed).
      std::uint64_t failed = 0;
      for (std::size_t begin = 0; begin < inserted.size(); begin += 1000) {
        nlohmann::json ids = nlohmann::json::array();
        for (std::size_t i = begin; i < std::min(inserted.size(), begin + 1000); ++i) {
          ids.push_back(inserted[i]);
        }
        const Answer answer = send(socket, buffer, args, beast_http::verb::post,
                                   base + "/items/delete", nlohmann::json{{"ids", ids}}.dump());
        if (answer.status != 200) ++failed;
      }
      std::lock_guard lock(mutex);
      for (std::size_t o = 0; o < kOps; ++o) totals[o].merge(mine[o]);
      cleanup_errors += failed;
    });
  }
  for (auto& t : threads) t.join();
  std::printf(
      "\nHTTP load: %d clients, %.0f s, %.0f%% inserts, %.0f%% updates, %.0f%% deletes, %.0f%% "
      "trie/next, k=%d, collection '%s'\n\n",
      args.clients, args.seconds, args.write_fraction * 100, args.update_fraction * 100,
      args.delete_fraction * 100, args.trie_next_fraction * 100, args.k, args.collection.c_str());
  std::printf("| %-22s | %9s | %9s | %8s | %8s | %6s |\n", "operation", "requests", "QPS", "p50 ms",
              "p99 ms", "errors");
  std::printf(
      "|------------------------|-----------|-----------|----------|----------|--------|\n");
  std::uint64_t errors = cleanup_errors;
  for (std::size_t o = 0; o < kOps; ++o) {
    if (o != kSearch && totals[o].ms.empty() && totals[o].errors == 0) continue;
    print_row(kOpNames[o], totals[o], args.seconds);
    errors += totals[o].errors;
  }
  if (cleanup_errors > 0) {
    std::fprintf(stderr, "%llu clean-up deletes failed\n",
                 static_cast<unsigned long long>(cleanup_errors));
  }
  return errors == 0 ? 0 : 1;
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
  // As `semid serve` does after start-up (--prefetch-reconstructions): the reconstruction cache
  // filled before the first search, so both sides are measured warm.
  if (args.prefetch) {
    for (std::size_t position = 0;;) {
      auto next = (*collection)->prefetch_reconstructions(position, 1024);
      if (!next || *next == position) break;
      position = *next;
    }
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
  // The same searches as HTTP requests handed to the API layer directly (no sockets): what the
  // server does per request besides the transport (reading the JSON body, the answer).
  Latencies api_rows;
  if (args.through_api) {
    semid::http::ApiOptions options;
    options.access_log = false;  // as the benchmark scripts serve (--no-access-log)
    semid::http::Api api(**manager, options);
    api.set_readiness(semid::http::Readiness::kReady);
    std::vector<std::string> bodies(queries.rows);
    for (std::size_t r = 0; r < queries.rows; ++r) {
      bodies[r] = "{\"vector\":" + vector_json(queries.row(r), queries.cols) +
                  ",\"k\":" + std::to_string(args.k) +
                  (args.with_payload ? "}" : ",\"with_payload\":false}");
    }
    const std::string target = "/v1/collections/" + args.collection + "/search";
    const auto end = Clock::now() + std::chrono::duration<double>(args.seconds);
    for (std::size_t i = 0; Clock::now() < end; ++i) {
      semid::http::Request request{beast_http::verb::post, target, 11};
      request.set(beast_http::field::content_type, "application/json");
      request.body() = bodies[i % bodies.size()];
      request.prepare_payload();
      const auto start = Clock::now();
      const semid::http::Response response = api.handle(request);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (response.result_int() != 200) {
        ++api_rows.errors;
      } else {
        api_rows.ms.push_back(ms);
      }
    }
  }
  // next_tokens under each populated depth-1 prefix, one at a time.
  Latencies next;
  if (args.trie_next_fraction > 0) {
    auto root = (*collection)->next_tokens({{}});
    if (root && !(*root)[0].empty()) {
      const auto& children = (*root)[0];
      const auto end = Clock::now() + std::chrono::duration<double>(args.seconds / 4);
      for (std::size_t i = 0; Clock::now() < end; ++i) {
        const std::vector<std::vector<std::int32_t>> prefix = {
            {children[i % children.size()].code}};
        const auto start = Clock::now();
        auto found = (*collection)->next_tokens(prefix);
        next.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (!found) ++next.errors;
      }
    }
  }
  std::printf("\nin-process: the same queries one at a time on one thread, %.0f s\n\n",
              args.seconds);
  std::printf("| %-22s | %9s | %9s | %8s | %8s | %6s |\n", "operation", "requests", "QPS", "p50 ms",
              "p99 ms", "errors");
  std::printf(
      "|------------------------|-----------|-----------|----------|----------|--------|\n");
  print_row("search (in-process)", one, args.seconds);
  if (args.through_api) print_row("search (Api::handle)", api_rows, args.seconds);
  if (!next.ms.empty()) print_row("trie/next d1 (in-proc)", next, args.seconds / 4);
  return one.errors + next.errors + api_rows.errors == 0 ? 0 : 1;
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
  app.add_option("--update-fraction", args.update_fraction,
                 "Share of requests that upsert an id this client inserted, with a new vector")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--delete-fraction", args.delete_fraction,
                 "Share of requests that delete an id this client inserted")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--trie-next-fraction", args.trie_next_fraction,
                 "Share of requests that are trie/next under a depth-1 prefix (HTTP), and measure "
                 "next_tokens in-process too")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--k", args.k)->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--api-key", args.api_key);
  app.add_flag("--in-process", args.in_process, "Search the collection directly (server stopped)");
  app.add_option("--with-payload", args.with_payload,
                 "HTTP searches ask for payloads (false: ids, SIDs and scores only)");
  app.add_option("--data-dir", args.data_dir, "With --in-process");
  app.add_flag("--through-api", args.through_api,
               "With --in-process: also hand the same searches to the HTTP API layer "
               "(http::Api::handle, no sockets)");
  app.add_option("--prefetch", args.prefetch,
                 "With --in-process: fill the reconstruction cache first, as semid serve does")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (args.write_fraction + args.update_fraction + args.delete_fraction > 1.0) {
    std::fprintf(stderr, "--write-fraction + --update-fraction + --delete-fraction must be <= 1\n");
    return 2;
  }
  semid::ReadOptions read;
  read.max_rows = 10000;
  auto queries = semid::read_float_vectors(args.queries, read);
  if (!queries) {
    std::fprintf(stderr, "%s\n", queries.status().to_string().c_str());
    return 1;
  }
  return args.in_process ? run_in_process(args, *queries) : run_http(args, *queries);
}
