// bench_storage: what a durable collection costs, on real embeddings, printed as one table.
//
// Ingest: the vectors (read into memory first, so file reading is not timed) are upserted into a
// fresh collection in batches; items/s includes encoding with the model, the RocksDB WriteBatch
// (WAL write, and with --sync an fsync per batch) and the in-memory index and trie update. One row
// per (batch size, sync) pair; the encoder alone is timed too, for reference.
// Reads, on the last collection built (every item, no sync): reopening it (rebuild of index and
// trie from RocksDB plus the agreement check), prefix scans (a page of up to --page items under the
// prefix of a random stored item, at each depth), next-token lookups (at each depth), point gets
// and k = 10 searches; latencies as p50 / p99 over --ops operations each. Writes on that
// collection: inserts of new ids, updates of existing ids (new vectors, so new SIDs) and deletes,
// batch 1 and 1,000; then search latency quiet and while a second thread deletes 10 items per
// second.
//
// Default data: data/glove100/base.fvecs (331k x 100, scripts/fetch-data glove) with
// base_words.txt as payloads ({"text": word}). The model is read from --model; when that file does
// not exist, an RQ-VAE of the default architecture is trained on the data for --train-seconds (no
// decoder refinement: SIDs, not reconstructions, are what this benchmark stores) and saved there.
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/quantizer.h"
#include "index/rqvae.h"
#include "index/trainer.h"
#include "index/vecs_io.h"
#include "storage/collection.h"

namespace {

namespace fs = std::filesystem;
using semid::storage::Collection;
using semid::storage::StoreOptions;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string data = SEMID_SOURCE_DIR "/data/glove100/base.fvecs";
  std::string payloads = SEMID_SOURCE_DIR "/data/glove100/base_words.txt";
  std::string model;
  std::string dir;
  std::size_t limit = 0;
  std::vector<std::size_t> batches = {10000, 256};
  std::size_t sync_limit = 0;
  std::size_t ops = 2000;
  std::size_t page = 100;
  int threads = 1;
  double train_seconds = 240;
};

template <class T>
T value_or_die(semid::Result<T> result, const std::string& what) {
  if (!result) {
    std::fprintf(stderr, "bench_storage: %s: %s\n", what.c_str(),
                 result.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(result).value();
}

void die_if_error(const semid::Status& status, const std::string& what) {
  if (!status) {
    std::fprintf(stderr, "bench_storage: %s: %s\n", what.c_str(), status.to_string().c_str());
    std::exit(1);
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Latency {
  double p50_us = 0, p99_us = 0;
};

// Runs op(i) for i < ops and returns its p50 / p99 latency.
Latency measure(std::size_t ops, const std::function<void(std::size_t)>& op) {
  std::vector<double> us(ops);
  for (std::size_t i = 0; i < ops; ++i) {
    const auto start = Clock::now();
    op(i);
    us[i] = seconds_since(start) * 1e6;
  }
  std::sort(us.begin(), us.end());
  return {us[ops / 2], us[std::min(ops - 1, ops * 99 / 100)]};
}

void print_row(const std::string& what, const std::string& value, const std::string& note = "") {
  std::printf("| %-44s | %22s | %-34s |\n", what.c_str(), value.c_str(), note.c_str());
}

std::string fmt(const char* format, double a, double b = 0) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, a, b);
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"bench_storage: ingest throughput and read latencies of a durable collection"};
  app.add_option("--data", o.data, "Vectors (.fvecs/.npy)")->capture_default_str();
  app.add_option("--payloads", o.payloads, "Text file, one payload word per line ('' for none)")
      ->capture_default_str();
  app.add_option("--model", o.model,
                 "Model file (semid train); trained and saved here when missing")
      ->required();
  app.add_option("--train-seconds", o.train_seconds, "Training time when --model is missing")
      ->capture_default_str();
  app.add_option("--dir", o.dir, "Scratch directory for the collections (default: a temp dir)");
  app.add_option("--limit", o.limit, "Use only the first N vectors (0 = all)")
      ->capture_default_str();
  app.add_option("--batches", o.batches, "Batch sizes to ingest with")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--sync-limit", o.sync_limit, "Items for the --sync runs (0 = as many as --limit)")
      ->capture_default_str();
  app.add_option("--ops", o.ops, "Operations per latency measurement")->capture_default_str();
  app.add_option("--page", o.page, "Items per prefix-scan page")->capture_default_str();
  app.add_option("--threads", o.threads, "LibTorch and OpenMP threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  semid::RqVae::set_threads(o.threads);
  omp_set_num_threads(o.threads);

  semid::ReadOptions read;
  read.max_rows = o.limit;
  const semid::FloatMatrix x = value_or_die(semid::read_float_vectors(o.data, read), o.data);
  const std::size_t n = x.rows, d = x.cols;
  if (!fs::exists(o.model)) {
    semid::RqVaeConfig config;
    config.dim = static_cast<int>(d);
    semid::TrainOptions train;
    train.time_budget_seconds = o.train_seconds;
    train.epochs = 40;
    train.warmup_epochs = 2;
    train.decoder_refine_epochs = 0;
    train.threads = o.threads;
    std::fprintf(stderr,
                 "bench_storage: training an RQ-VAE on %zu vectors for up to %.0f s -> %s\n", n,
                 o.train_seconds, o.model.c_str());
    auto trained = value_or_die(semid::train_rqvae(config, train, n, x.data.data()), "training");
    die_if_error(trained.model->save(o.model), "saving " + o.model);
  }
  std::shared_ptr<const semid::Quantizer> model =
      value_or_die(semid::load_quantizer(o.model), o.model);
  std::vector<std::string> payloads;
  if (!o.payloads.empty()) {
    std::ifstream in(o.payloads);
    for (std::string line; payloads.size() < n && std::getline(in, line);) {
      payloads.push_back(nlohmann::json{{"text", line}}.dump());
    }
    if (payloads.size() != n) {
      std::fprintf(stderr, "bench_storage: %s has fewer than %zu lines\n", o.payloads.c_str(), n);
      return 1;
    }
  }
  std::vector<std::uint64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = i;
  const fs::path root = o.dir.empty() ? fs::temp_directory_path() /
                                            ("semid_bench_storage_" + std::to_string(::getpid()))
                                      : fs::path(o.dir);
  fs::create_directories(root);

  std::printf(
      "bench_storage: %zu x %zu from %s; model %s (%s, %d levels x %d codes); %d thread(s)\n\n", n,
      d, o.data.c_str(), o.model.c_str(), model->kind().c_str(), model->levels(),
      model->codebook_size(), o.threads);
  std::printf("| %-44s | %22s | %-34s |\n", "measurement", "value", "note");
  std::printf("|%s|%s|%s|\n", std::string(46, '-').c_str(), std::string(24, '-').c_str(),
              std::string(36, '-').c_str());

  // The model alone, in chunks of several sizes (StoreOptions::encode_chunk picks one).
  for (std::size_t chunk : {64, 256, 1024, 8192}) {
    std::vector<std::int32_t> codes(n * static_cast<std::size_t>(model->levels()));
    const auto start = Clock::now();
    for (std::size_t first = 0; first < n; first += chunk) {
      const std::size_t count = std::min(chunk, n - first);
      die_if_error(model->encode(count, x.row(first), codes.data() + first * model->levels()),
                   "encode");
    }
    print_row("encode only, chunks of " + std::to_string(chunk),
              fmt("%.0f items/s", n / seconds_since(start)),
              chunk == StoreOptions().encode_chunk ? "StoreOptions::encode_chunk default" : "");
  }

  fs::path last;
  for (bool sync : {true, false}) {
    const std::size_t items = sync && o.sync_limit > 0 ? std::min(o.sync_limit, n) : n;
    for (std::size_t batch : o.batches) {
      const fs::path dir = root / ("c_" + std::to_string(batch) + (sync ? "_sync" : ""));
      fs::remove_all(dir);
      StoreOptions options;
      options.sync = sync;
      options.max_batch_items = std::max(options.max_batch_items, batch);
      auto c = value_or_die(Collection::create(dir.string(), model, options), "create");
      const auto start = Clock::now();
      for (std::size_t first = 0; first < items; first += batch) {
        const std::size_t count = std::min(batch, items - first);
        die_if_error(c->upsert(std::span(ids).subspan(first, count),
                               std::span(x.data).subspan(first * d, count * d),
                               payloads.empty()
                                   ? std::span<const std::string>()
                                   : std::span<const std::string>(payloads).subspan(first, count)),
                     "upsert");
      }
      const double seconds = seconds_since(start);
      die_if_error(c->close(), "close");
      const auto bytes = [&] {
        std::uint64_t total = 0;
        for (const auto& e : fs::recursive_directory_iterator(dir))
          total += e.is_regular_file() ? e.file_size() : 0;
        return total;
      }();
      print_row(std::string("ingest ") + (sync ? "--sync" : "no sync") + ", batch " +
                    std::to_string(batch),
                fmt("%.0f items/s", items / seconds),
                fmt("%.0f items in %.1f s", static_cast<double>(items), seconds) +
                    fmt(", %.0f MiB", bytes / 1048576.0));
      last = dir;
    }
  }

  // Reads on the last collection (the last batch size without --sync: every item).
  const auto open_start = Clock::now();
  auto c = value_or_die(Collection::open(last.string(), {}, model), "open");
  print_row("open: rebuild index + trie, check agreement", fmt("%.2f s", seconds_since(open_start)),
            fmt("%.0f items", static_cast<double>(c->size())));
  std::mt19937_64 rng(7);
  const std::size_t stored = c->size();
  const int L = c->levels();
  // Random stored items' SIDs: the prefixes the scans and lookups ask for.
  std::vector<std::vector<std::int32_t>> sids(o.ops);
  for (auto& sid : sids) sid = value_or_die(c->get(rng() % stored), "get").sid;
  for (int depth = 0; depth <= L; ++depth) {
    std::size_t listed = 0;
    const Latency lat = measure(o.ops, [&](std::size_t i) {
      auto page = c->prefix_scan(std::span(sids[i]).first(depth), "", o.page);
      listed += page->items.size();
    });
    print_row("prefix scan, depth " + std::to_string(depth) + ", page <= " + std::to_string(o.page),
              fmt("p50 %.1f / p99 %.1f us", lat.p50_us, lat.p99_us),
              fmt("%.1f items per page", static_cast<double>(listed) / o.ops));
  }
  for (int depth = 0; depth < L; ++depth) {
    std::size_t children = 0;
    const Latency lat = measure(o.ops, [&](std::size_t i) {
      auto tokens =
          c->next_tokens({std::vector<std::int32_t>(sids[i].begin(), sids[i].begin() + depth)});
      children += (*tokens)[0].size();
    });
    print_row("next tokens, depth " + std::to_string(depth),
              fmt("p50 %.1f / p99 %.1f us", lat.p50_us, lat.p99_us),
              fmt("%.1f next codes", static_cast<double>(children) / o.ops));
  }
  {
    const Latency lat = measure(o.ops, [&](std::size_t) { (void)c->get(rng() % stored); });
    print_row("get by id (record: SID, vector, payload)",
              fmt("p50 %.1f / p99 %.1f us", lat.p50_us, lat.p99_us));
  }
  for (auto mode : {semid::SearchMode::kCosine, semid::SearchMode::kPrefix}) {
    semid::storage::SearchOptions options;
    options.mode = mode;
    const std::size_t ops = std::min<std::size_t>(o.ops, 200);
    const Latency lat = measure(ops, [&](std::size_t i) {
      (void)c->search(1, std::span(x.data).subspan((i * 7919 % n) * d, d), 10, options);
    });
    print_row(std::string("search k=10, one query, ") +
                  (mode == semid::SearchMode::kCosine ? "cosine" : "prefix"),
              fmt("p50 %.0f / p99 %.0f us", lat.p50_us, lat.p99_us),
              fmt("%.0f queries", static_cast<double>(ops)));
  }

  // Writes on the same collection, one after another: new ids, existing ids (new vectors, so new
  // SIDs), deletes; batch 1 (latency) and batch 1,000 (latency of the whole batch).
  const auto rows_from = [&](std::size_t first, std::size_t count) {
    std::vector<float> rows(count * d);
    for (std::size_t r = 0; r < count; ++r) {
      const std::size_t source = (first + r) * 7919 % n;
      std::copy_n(x.row(source), d, rows.data() + r * d);
    }
    return rows;
  };
  std::vector<std::uint64_t> alive(stored);  // the ingest stored ids 0..stored-1
  std::iota(alive.begin(), alive.end(), std::uint64_t{0});
  std::shuffle(alive.begin(), alive.end(), rng);
  std::uint64_t next_new = n;
  std::size_t next_alive = 0;  // alive[next_alive..] are neither updated nor deleted yet
  const std::size_t write_ops = std::min<std::size_t>(o.ops, 500);
  // Ids each consumes: updates and deletes of batch 1 and 1,000, and the deletes during searches.
  if (stored < 2 * write_ops + 2 * 5 * 1000 + 1000) {
    std::fprintf(stderr, "bench_storage: %zu items are too few for the write measurements\n",
                 stored);
    std::exit(1);
  }
  for (std::size_t batch : {std::size_t{1}, std::size_t{1000}}) {
    const std::size_t ops = batch == 1 ? write_ops : 5;
    const std::string each = batch == 1 ? "" : " (the whole batch)";
    const Latency insert = measure(ops, [&](std::size_t i) {
      std::vector<std::uint64_t> fresh(batch);
      for (auto& id : fresh) id = next_new++;
      die_if_error(c->upsert(fresh, rows_from(i * batch, batch)), "insert");
    });
    print_row("insert new ids, batch " + std::to_string(batch),
              fmt("p50 %.0f / p99 %.0f us", insert.p50_us, insert.p99_us), "per call" + each);
    const Latency update = measure(ops, [&](std::size_t i) {
      const std::vector<std::uint64_t> some(alive.begin() + next_alive,
                                            alive.begin() + next_alive + batch);
      next_alive += batch;
      die_if_error(c->upsert(some, rows_from(i * batch + 13, batch)), "update");
    });
    print_row("update existing ids (new SIDs), batch " + std::to_string(batch),
              fmt("p50 %.0f / p99 %.0f us", update.p50_us, update.p99_us), "per call" + each);
    const Latency remove = measure(ops, [&](std::size_t) {
      const std::vector<std::uint64_t> some(alive.begin() + next_alive,
                                            alive.begin() + next_alive + batch);
      next_alive += batch;
      die_if_error(c->remove(some), "delete");
    });
    print_row("delete, batch " + std::to_string(batch),
              fmt("p50 %.0f / p99 %.0f us", remove.p50_us, remove.p99_us), "per call" + each);
  }

  // Search latency while a writer deletes 10 items per second (one each 100 ms), next to quiet.
  {
    semid::storage::SearchOptions options;
    const std::size_t ops = std::min<std::size_t>(o.ops, 2000);
    const auto query = [&](std::size_t i) {
      (void)c->search(1, std::span(x.data).subspan((i * 104729 % n) * d, d), 10, options);
    };
    const Latency quiet = measure(ops, query);
    std::atomic<bool> stop{false};
    std::size_t deleted = 0;
    std::thread writer([&] {
      while (!stop.load()) {
        die_if_error(c->remove(std::span(alive).subspan(next_alive++, 1)), "delete");
        ++deleted;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    const Latency busy = measure(ops, query);
    stop = true;
    writer.join();
    print_row("search k=10 cosine, quiet",
              fmt("p50 %.0f / p99 %.0f us", quiet.p50_us, quiet.p99_us),
              fmt("%.0f queries", static_cast<double>(ops)));
    print_row("search k=10 cosine, during 10 deletes/s",
              fmt("p50 %.0f / p99 %.0f us", busy.p50_us, busy.p99_us),
              fmt("%.0f deletes meanwhile", static_cast<double>(deleted)));
  }
  die_if_error(c->close(), "close");
  if (o.dir.empty()) fs::remove_all(root);
  return 0;
}
