// `semid ingest`, `semid stats`: loading vectors into a durable collection and describing it.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "index/quantizer.h"
#include "index/vecs_io.h"
#include "storage/collection_manager.h"
#include "tools/commands.h"

namespace semid::tools {
namespace {

struct IngestArgs {
  std::string data_dir, collection, model, data, ids, payloads;
  std::string collision_policy = "suffix";
  bool sync = false;
  std::size_t batch = 10000;
  std::size_t limit = 0;
};

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() &&
         text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> read_lines(const std::string& path, std::size_t max_lines) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> lines;
  for (std::string line; lines.size() < max_lines && std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Item ids: one per line (.txt), or a one-column .ivecs / .npy; otherwise row numbers.
std::vector<std::uint64_t> load_ids(const std::string& path, std::size_t rows) {
  std::vector<std::uint64_t> ids;
  if (path.empty()) {
    for (std::size_t i = 0; i < rows; ++i) ids.push_back(i);
    return ids;
  }
  if (ends_with(path, ".txt")) {
    for (const std::string& line : read_lines(path, rows)) {
      std::size_t used = 0;
      unsigned long long id = 0;
      try {
        id = std::stoull(line, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != line.size()) throw std::runtime_error(path + ": not an id: " + line);
      ids.push_back(id);
    }
  } else {
    ReadOptions options;
    options.max_rows = rows;
    const Int64Matrix m = value_or_throw(read_int64_vectors(path, options));
    if (m.cols != 1)
      throw std::runtime_error(path + " has " + std::to_string(m.cols) + " columns; ids need 1");
    for (std::int64_t id : m.data) {
      if (id < 0) throw std::runtime_error(path + " holds a negative id " + std::to_string(id));
      ids.push_back(static_cast<std::uint64_t>(id));
    }
  }
  if (ids.size() < rows) {
    throw std::runtime_error(path + " has " + std::to_string(ids.size()) + " ids for " +
                             std::to_string(rows) + " vectors");
  }
  return ids;
}

// Payloads: a .jsonl file's lines as they are (an empty line: no payload); any other text file's
// lines as {"text": line} (words.txt gives each word as its payload).
std::vector<std::string> load_payloads(const std::string& path, std::size_t rows) {
  if (path.empty()) return {};
  std::vector<std::string> lines = read_lines(path, rows);
  if (lines.size() < rows) {
    throw std::runtime_error(path + " has " + std::to_string(lines.size()) + " lines for " +
                             std::to_string(rows) + " vectors");
  }
  if (!ends_with(path, ".jsonl")) {
    for (std::string& line : lines) line = nlohmann::json{{"text", line}}.dump();
  }
  return lines;
}

void run_ingest(const IngestArgs& args) {
  std::shared_ptr<const Quantizer> model = value_or_throw(load_quantizer(args.model));
  // Opened and validated once; each batch then reads only its rows.
  const VectorFile file = value_or_throw(VectorFile::open(args.data));
  const VecsShape shape = file.shape();
  if (shape.cols != static_cast<std::size_t>(model->dim())) {
    throw std::runtime_error(args.data + " has dimension " + std::to_string(shape.cols) +
                             "; the model expects " + std::to_string(model->dim()));
  }
  const std::size_t rows = args.limit > 0 ? std::min(args.limit, shape.rows) : shape.rows;
  const std::vector<std::uint64_t> ids = load_ids(args.ids, rows);
  const std::vector<std::string> payloads = load_payloads(args.payloads, rows);

  storage::StoreOptions options;
  options.sync = args.sync;
  options.max_batch_items = std::max(options.max_batch_items, args.batch);
  auto manager = value_or_throw(storage::CollectionManager::open(args.data_dir, options));
  const bool exists = manager->exists(args.collection);
  const storage::CollisionPolicy policy =
      value_or_throw(storage::parse_collision_policy(args.collision_policy));
  auto collection = exists ? value_or_throw(manager->get(args.collection, model))
                           : value_or_throw(manager->create(args.collection, model, policy));
  spdlog::info("{} collection '{}' in {}: {} items; ingesting {} vectors from {} ({} per batch{})",
               exists ? "opened" : "created", args.collection, args.data_dir, collection->size(),
               rows, args.data, args.batch, args.sync ? ", fsync per batch" : "");

  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double last_log = 0;
  for (std::size_t first = 0; first < rows; first += args.batch) {
    const std::size_t count = std::min(args.batch, rows - first);
    ReadOptions read;
    read.first_row = first;
    read.max_rows = count;
    const FloatMatrix x = value_or_throw(file.read_floats(read));
    const std::span<const std::string> batch_payloads =
        payloads.empty() ? std::span<const std::string>()
                         : std::span(payloads).subspan(first, count);
    throw_if_error(
        collection->upsert(std::span(ids).subspan(first, count), x.data, batch_payloads)
            .with_context("rows " + std::to_string(first) + ".." + std::to_string(first + count)));
    if (elapsed() - last_log > 5 || first + count == rows) {
      last_log = elapsed();
      spdlog::info("{}/{} items, {:.0f} items/s", first + count, rows, (first + count) / last_log);
    }
  }
  // A bulk load ends with its memtables on disk: the next open has no write-ahead log to replay.
  throw_if_error(collection->flush());
  const double seconds = elapsed();
  const nlohmann::json out = {{"collection", args.collection},
                              {"ingested", rows},
                              {"items", collection->size()},
                              {"seconds", seconds},
                              {"items_per_second", seconds > 0 ? rows / seconds : 0.0},
                              {"sync", args.sync},
                              {"batch", args.batch}};
  std::printf("%s\n", out.dump(2).c_str());
  throw_if_error(manager->close_all());
}

void run_stats(const std::string& data_dir, const std::string& name) {
  auto manager = value_or_throw(storage::CollectionManager::open(data_dir));
  auto collection = value_or_throw(manager->get(name));
  const storage::CollectionStats stats = value_or_throw(collection->stats());
  nlohmann::json out = stats.to_json();
  out["collection"] = name;
  nlohmann::json hourglass = nlohmann::json::array();
  for (const auto& level : stats.codes.levels) hourglass.push_back(level.top_code_share);
  out["hourglass_top_code_share"] = hourglass;
  std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void register_storage_commands(CLI::App& app) {
  auto args = std::make_shared<IngestArgs>();
  auto* ingest =
      app.add_subcommand("ingest", "Upsert vectors (and payloads) into a durable collection");
  ingest->add_option("--data-dir", args->data_dir, "Data directory holding the collections")
      ->required();
  ingest->add_option("--collection", args->collection, "Collection name (created when missing)")
      ->required();
  ingest->add_option("--model", args->model, "Model file; must be the collection's own model")
      ->required();
  ingest->add_option("--data", args->data, "Vectors (.fvecs, .bvecs or .npy)")->required();
  ingest->add_option("--ids", args->ids,
                     "Item ids: .txt (one per line), .ivecs or .npy (default: row numbers)");
  ingest->add_option("--payloads", args->payloads,
                     "Payloads: .jsonl (one JSON value per line) or any text file (each line "
                     "becomes {\"text\": line})");
  ingest
      ->add_option("--collision-policy", args->collision_policy,
                   "How a new collection makes SIDs unique: suffix (TIGER's extra code) or "
                   "relocate (the nearest free SID of L codes); an existing collection keeps "
                   "its own")
      ->capture_default_str()
      ->check(CLI::IsMember({"suffix", "relocate"}));
  ingest->add_flag("--sync", args->sync, "fsync the WAL after every batch (survives power loss)");
  ingest->add_option("--batch", args->batch, "Items per write batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  ingest->add_option("--limit", args->limit, "Ingest only the first N vectors (0 = all)")
      ->capture_default_str();
  ingest->callback([args] { run_ingest(*args); });

  auto stats_args = std::make_shared<std::array<std::string, 2>>();
  auto* stats =
      app.add_subcommand("stats", "Describe a collection: sizes, code usage per level, collisions");
  stats->add_option("--data-dir", (*stats_args)[0], "Data directory holding the collections")
      ->required();
  stats->add_option("--collection", (*stats_args)[1], "Collection name")->required();
  stats->callback([stats_args] { run_stats((*stats_args)[0], (*stats_args)[1]); });
}

}  // namespace semid::tools
