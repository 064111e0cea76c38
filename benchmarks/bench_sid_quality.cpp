// bench_sid_quality: how good are the semantic IDs? semid's RQ-VAE (default settings), semid's
// RQ-KMeans (default settings) and FAISS's own residual quantizer (IndexResidualQuantizer, beam 5,
// FAISS's defaults), trained in this one process on the same base at the same bytes per item, one
// table per data set.
//
// Columns, per query set:
//   recall@10 decoded  every item ranked by the exact metric between the query and the item's
//                      decoded SID (what `semid eval` reports; the quality of the IDs themselves)
//   recall@10 prefix   IndexRQVAE's prefix mode: items sharing the longest SID prefix with the
//                      query's SID, ranked exactly (FAISS row: FAISS's own search instead)
// and per model: code usage per level, collision rate, largest collision group, the share of items
// moved, train seconds. Each semid model has a second row "+ relocate": the same model's SIDs with
// the relocate collision policy applied in catalogue order (index/relocate.h), i.e. what a
// collection created with --collision-policy relocate stores; its train seconds include the
// relocation.
//
// Data sets (skipped with a note when their files are missing):
//   movielens      ../shared movielens-use512 ml-latest-small, 9,742 x 512, cosine; item queries
//                  and user-profile queries
//   ml100k         ../shared movielens-use512 ml-100k, 1,682 x 512, cosine; user-profile queries
//   glove          data/glove100 (scripts/fetch-data glove), 331k x 100, cosine
//   fashion-mnist  data/fashion-mnist (scripts/fetch-data fashion-mnist), 60k x 784 pixels 0-255,
//   L2
// Run pinned to one core for stable train times: taskset -c 1 build/benchmarks/bench_sid_quality
#include <faiss/IndexAdditiveQuantizer.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/hamming.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <array>
#include <bit>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "index/exact_knn.h"
#include "index/metrics.h"
#include "index/relocate.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"
#include "index/trainer.h"
#include "index/vecs_io.h"
#include "plugin/IndexRQVAE.h"

namespace {

using semid::FloatMatrix;
using semid::Int32Matrix;
using semid::Metric;
namespace fs = std::filesystem;

struct QuerySet {
  std::string name;
  FloatMatrix queries;
  Int32Matrix truth;
};

struct Dataset {
  std::string name;
  Metric metric = Metric::kCosine;
  FloatMatrix base;
  std::vector<QuerySet> query_sets;
};

struct Options {
  std::vector<std::string> datasets = {"movielens", "ml100k", "glove", "fashion-mnist"};
  int levels = 3;
  int codebook_size = 256;
  double time_budget = 240;  // the main job's training budget
  int threads = 1;
  std::size_t max_queries = 0;
  bool faiss = true;
};

struct Row {
  std::string method;
  std::vector<double> decoded, prefix;  // per query set
  semid::CodeHealth health;
  double train_s = 0;
  double moved = -1;  // share of items the relocate policy moved (-1: not relocated)
};

template <class T>
T value_or_die(semid::Result<T> r, const std::string& what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), r.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

FloatMatrix read_floats(const std::string& path, std::size_t max_rows = 0) {
  auto m = value_or_die(semid::read_float_vectors(path), path);
  if (max_rows > 0 && m.rows > max_rows) {
    m.data.resize(max_rows * m.cols);
    m.rows = max_rows;
  }
  return m;
}

Int32Matrix read_ints(const std::string& path, std::size_t max_rows = 0) {
  auto m = value_or_die(semid::read_int32_vectors(path), path);
  if (max_rows > 0 && m.rows > max_rows) {
    m.data.resize(max_rows * m.cols);
    m.rows = max_rows;
  }
  return m;
}

// nullopt-like: a Dataset with an empty name when its files are missing.
Dataset load(const std::string& name, std::size_t max_queries) {
  Dataset ds;
  const std::string ml = SEMID_SHARED_DIR "/datasets/movielens-use512/";
  const std::string data = SEMID_SOURCE_DIR "/data/";
  std::string base;
  std::vector<std::array<std::string, 3>> sets;
  if (name == "movielens") {
    base = ml + "mllatestsmall_use512_base.fvecs";
    sets = {{"items", ml + "mllatestsmall_use512_query_items.fvecs",
             ml + "mllatestsmall_use512_groundtruth_items_angular.ivecs"},
            {"users", ml + "mllatestsmall_use512_query_userprofile.fvecs",
             ml + "mllatestsmall_use512_groundtruth_userprofile_angular.ivecs"}};
  } else if (name == "ml100k") {
    base = ml + "ml100k_use512_base.fvecs";
    sets = {{"users", ml + "ml100k_use512_query_userprofile.fvecs",
             ml + "ml100k_use512_groundtruth_userprofile_angular.ivecs"}};
  } else if (name == "glove") {
    base = data + "glove100/base.fvecs";
    sets = {{"words", data + "glove100/query.fvecs", data + "glove100/groundtruth.ivecs"}};
  } else if (name == "fashion-mnist") {
    ds.metric = Metric::kL2;
    base = data + "fashion-mnist/base.fvecs";
    sets = {
        {"images", data + "fashion-mnist/query.fvecs", data + "fashion-mnist/groundtruth.ivecs"}};
  } else {
    std::fprintf(stderr, "unknown data set '%s'\n", name.c_str());
    std::exit(2);
  }
  if (!fs::exists(base)) {
    std::printf("[%s] skipped: %s is missing (scripts/fetch-data %s)\n", name.c_str(), base.c_str(),
                name.c_str());
    return ds;
  }
  ds.name = name;
  ds.base = read_floats(base);
  for (const auto& [set, queries, truth] : sets) {
    ds.query_sets.push_back(
        {set, read_floats(queries, max_queries), read_ints(truth, max_queries)});
  }
  return ds;
}

FloatMatrix normalized_if(const FloatMatrix& x, Metric metric) {
  FloatMatrix out = x;
  if (metric == Metric::kCosine) faiss::fvec_renorm_L2(out.cols, out.rows, out.data.data());
  return out;
}

double decoded_recall(const FloatMatrix& decoded, const QuerySet& qs, Metric metric) {
  auto knn = value_or_die(semid::exact_knn(decoded, qs.queries, 10, metric), "exact k-NN");
  return semid::recall_at_k(knn.ids, qs.truth, 10);
}

double search_recall(const faiss::Index& index, const QuerySet& qs,
                     const faiss::SearchParameters* params) {
  const auto nq = static_cast<faiss::Index::idx_t>(qs.queries.rows);
  std::vector<float> distances(qs.queries.rows * 10);
  std::vector<faiss::Index::idx_t> labels(qs.queries.rows * 10);
  index.search(nq, qs.queries.data.data(), 10, distances.data(), labels.data(), params);
  Int32Matrix found(qs.queries.rows, 10);
  for (std::size_t i = 0; i < labels.size(); ++i)
    found.data[i] = static_cast<std::int32_t>(labels[i]);
  return semid::recall_at_k(found, qs.truth, 10);
}

Int32Matrix encode_all(const semid::Quantizer& model, const Dataset& ds) {
  Int32Matrix codes(ds.base.rows, static_cast<std::size_t>(model.levels()));
  if (auto s = model.encode(ds.base.rows, ds.base.data.data(), codes.data.data()); !s) {
    std::fprintf(stderr, "encode: %s\n", s.to_string().c_str());
    std::exit(1);
  }
  return codes;
}

// The relocate collision policy applied to the whole catalogue: in row order, one item at a time,
// as a collection ingesting it item by item would (storage/impl/placement.cpp), or `joint`ly, as
// one batch (SidRelocator::place_batch). Returns the stored SIDs; *moved = the share of items
// moved off their own SID.
Int32Matrix relocated(const semid::Quantizer& model, const Dataset& ds, const Int32Matrix& codes,
                      bool joint, double* moved, double* seconds) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = ds.base.rows, L = codes.cols;
  const auto key = [&](std::span<const std::int32_t> sid) {
    std::uint64_t k = 0;
    for (std::int32_t c : sid) k = k * static_cast<std::uint64_t>(model.codebook_size()) + c;
    return k;
  };
  std::unordered_set<std::uint64_t> taken;
  Int32Matrix out = codes;
  const semid::SidRelocator relocator(model);
  std::size_t count = 0;
  if (joint) {
    std::vector<float> latents(n * static_cast<std::size_t>(model.latent_dim()));
    if (auto s = model.encode_latent(n, ds.base.row(0), latents.data()); !s) std::exit(1);
    const auto levels = relocator.place_batch(n, latents.data(), out.row(0),
                                              [](std::span<const std::int32_t>) { return false; });
    for (const auto& level : levels) count += level && static_cast<std::size_t>(*level) < L;
    *moved = static_cast<double>(count) / static_cast<double>(n);
    *seconds = seconds_since(start);
    return out;
  }
  std::vector<float> latent(static_cast<std::size_t>(model.latent_dim()));
  for (std::size_t i = 0; i < n; ++i) {
    std::span<std::int32_t> sid(out.row(i), L);
    if (taken.contains(key(sid))) {
      if (auto s = model.encode_latent(1, ds.base.row(i), latent.data()); !s) std::exit(1);
      const auto level = relocator.place(
          latent.data(), sid.data(),
          [&](std::span<const std::int32_t> candidate) { return taken.contains(key(candidate)); });
      count += level && static_cast<std::size_t>(*level) < L;
    }
    taken.insert(key(sid));
  }
  *moved = static_cast<double>(count) / static_cast<double>(n);
  *seconds = seconds_since(start);
  return out;
}

// A semid model's row for the SIDs `codes`: decoded recall, prefix-mode recall, health.
Row semid_row(const std::string& method, std::shared_ptr<const semid::Quantizer> model,
              const Dataset& ds, const Int32Matrix& codes, double train_s) {
  Row row;
  row.method = method;
  row.train_s = train_s;
  const std::size_t n = ds.base.rows;
  FloatMatrix decoded(n, ds.base.cols);
  if (auto s = model->decode(n, codes.data.data(), decoded.data.data()); !s) {
    std::fprintf(stderr, "decode: %s\n", s.to_string().c_str());
    std::exit(1);
  }
  row.health = semid::code_health(n, model->levels(), model->codebook_size(), codes.data.data());
  semid::IndexRQVAE index(model);
  std::vector<std::uint8_t> packed(n * index.code_size);
  for (std::size_t i = 0; i < n; ++i) {
    index.codec().pack(codes.row(i), packed.data() + i * index.code_size);
  }
  index.add_codes(static_cast<faiss::Index::idx_t>(n), packed.data(), nullptr);
  semid::SearchParametersRQVAE prefix;
  prefix.mode = semid::SearchMode::kPrefix;
  for (const auto& qs : ds.query_sets) {
    row.decoded.push_back(decoded_recall(decoded, qs, ds.metric));
    row.prefix.push_back(search_recall(index, qs, &prefix));
  }
  return row;
}

// The model's own SIDs, then the same model under the relocate policy.
void semid_rows(const std::string& method, std::shared_ptr<const semid::Quantizer> model,
                const Dataset& ds, double train_s, std::vector<Row>* rows) {
  const Int32Matrix codes = encode_all(*model, ds);
  rows->push_back(semid_row(method, model, ds, codes, train_s));
  double moved = 0, seconds = 0;
  for (const bool joint : {false, true}) {
    const Int32Matrix placed = relocated(*model, ds, codes, joint, &moved, &seconds);
    rows->push_back(semid_row(method + (joint ? " + relocate, one batch" : " + relocate"), model,
                              ds, placed, train_s + seconds));
    rows->back().moved = moved;
  }
}

// FAISS's IndexResidualQuantizer with its defaults (beam 5, FAISS's training sample).
Row faiss_row(const Options& o, const Dataset& ds) {
  Row row;
  row.method = "FAISS ResidualQuantizer (beam 5)";
  const int bits = std::countr_zero(static_cast<unsigned>(o.codebook_size));
  const faiss::MetricType metric =
      ds.metric == Metric::kCosine ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
  const auto d = static_cast<int>(ds.base.cols);
  const auto n = static_cast<faiss::Index::idx_t>(ds.base.rows);
  // For L2, FAISS's default search decompresses every item per query (8 queries/s on
  // Fashion-MNIST); a stored float norm gives it the lookup-table search. Same codes either way.
  const auto search_type = ds.metric == Metric::kL2 ? faiss::AdditiveQuantizer::ST_norm_float
                                                    : faiss::AdditiveQuantizer::ST_decompress;
  faiss::IndexResidualQuantizer index(d, static_cast<std::size_t>(o.levels),
                                      static_cast<std::size_t>(bits), metric, search_type);
  index.rq.max_beam_size = 5;
  const FloatMatrix base = normalized_if(ds.base, ds.metric);
  const auto start = std::chrono::steady_clock::now();
  index.train(n, base.data.data());
  row.train_s = seconds_since(start);
  index.add(n, base.data.data());
  Int32Matrix codes(ds.base.rows, static_cast<std::size_t>(o.levels));
  for (std::size_t i = 0; i < ds.base.rows; ++i) {
    faiss::BitstringReader reader(index.codes.data() + i * index.code_size, index.code_size);
    for (int l = 0; l < o.levels; ++l)
      codes.row(i)[l] = static_cast<std::int32_t>(reader.read(bits));
  }
  FloatMatrix decoded(ds.base.rows, ds.base.cols);
  index.rq.decode_unpacked(codes.data.data(), decoded.data.data(), ds.base.rows);
  row.health = semid::code_health(ds.base.rows, o.levels, o.codebook_size, codes.data.data());
  for (const auto& qs : ds.query_sets) {
    row.decoded.push_back(decoded_recall(decoded, qs, ds.metric));
    const FloatMatrix queries = normalized_if(qs.queries, ds.metric);
    row.prefix.push_back(search_recall(index, {qs.name, queries, qs.truth}, nullptr));
  }
  return row;
}

void print_table(const Options& o, const Dataset& ds, const std::vector<Row>& rows) {
  std::printf("\n%s: %zu x %zu, %s, %dx%d (%d bytes per item)\n", ds.name.c_str(), ds.base.rows,
              ds.base.cols, semid::metric_name(ds.metric), o.levels, o.codebook_size,
              o.levels * (o.codebook_size <= 256 ? 1 : 2));
  std::printf("| method |");
  for (const auto& qs : ds.query_sets) std::printf(" R@10 decoded, %s |", qs.name.c_str());
  for (const auto& qs : ds.query_sets) std::printf(" R@10 prefix, %s |", qs.name.c_str());
  std::printf(" used per level | collision rate | largest group | moved | train s |\n|---|");
  for (std::size_t i = 0; i < 2 * ds.query_sets.size(); ++i) std::printf("---|");
  std::printf("---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s |", r.method.c_str());
    for (double v : r.decoded) std::printf(" %.4f |", v);
    for (double v : r.prefix) std::printf(" %.4f |", v);
    std::string usage;
    for (const auto& level : r.health.levels) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%.3f", level.used_fraction);
      usage += (usage.empty() ? "" : " / ") + std::string(buf);
    }
    char moved[16] = "-";
    if (r.moved >= 0) std::snprintf(moved, sizeof(moved), "%.4f", r.moved);
    std::printf(" %s | %.4f | %zu | %s | %.1f |\n", usage.c_str(), r.health.collision_rate,
                r.health.max_collision_group, moved, r.train_s);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Semantic-ID quality: semid RQ-VAE vs semid RQ-KMeans vs FAISS, one table per data set"};
  app.add_option("--datasets", o.datasets, "Comma-separated: movielens,ml100k,glove,fashion-mnist")
      ->delimiter(',')
      ->check(CLI::IsMember({"movielens", "ml100k", "glove", "fashion-mnist"}))
      ->capture_default_str();
  app.add_option("--levels", o.levels, "Levels L")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--codebook-size", o.codebook_size, "Codes per level K (a power of two)")
      ->check(CLI::Range(2, 65536))
      ->capture_default_str();
  app.add_option("--time-budget", o.time_budget, "RQ-VAE training budget in seconds (0 = none)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "Threads for every model (LibTorch and OpenMP)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--queries", o.max_queries, "Use the first N queries of each set (0 = all)")
      ->capture_default_str();
  app.add_option("--faiss", o.faiss,
                 "Also train FAISS's residual quantizer (its progressive-dim k-means takes over 10 "
                 "minutes on Fashion-MNIST)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  omp_set_num_threads(o.threads);
  semid::RqVae::set_threads(o.threads);
  for (const std::string& name : o.datasets) {
    const Dataset ds = load(name, o.max_queries);
    if (ds.name.empty()) continue;
    std::printf("[%s] %zu x %zu\n", name.c_str(), ds.base.rows, ds.base.cols);
    std::fflush(stdout);
    std::vector<Row> rows;

    semid::RqVaeConfig config;
    config.dim = static_cast<int>(ds.base.cols);
    config.levels = o.levels;
    config.codebook_size = o.codebook_size;
    config.metric = ds.metric;
    semid::TrainOptions train;
    train.time_budget_seconds = o.time_budget;
    train.threads = o.threads;
    auto start = std::chrono::steady_clock::now();
    auto vae = value_or_die(semid::train_rqvae(config, train, ds.base.rows, ds.base.data.data()),
                            "RQ-VAE training");
    double train_s = seconds_since(start);
    std::printf("[%s] RQ-VAE trained in %.1f s (%s)\n", name.c_str(), train_s,
                vae.report.stop_reason.c_str());
    std::fflush(stdout);
    semid_rows("semid RQ-VAE (default)",
               std::shared_ptr<const semid::Quantizer>(std::move(vae.model)), ds, train_s, &rows);

    semid::RqKMeansConfig rq{.dim = config.dim,
                             .levels = o.levels,
                             .codebook_size = o.codebook_size,
                             .metric = ds.metric};
    semid::RqKMeansTrainOptions rq_train;
    rq_train.threads = o.threads;
    start = std::chrono::steady_clock::now();
    auto kmeans = value_or_die(
        semid::RqKMeans::train(rq, rq_train, ds.base.rows, ds.base.data.data()), "RQ-KMeans");
    train_s = seconds_since(start);
    std::printf("[%s] RQ-KMeans trained in %.1f s\n", name.c_str(), train_s);
    std::fflush(stdout);
    semid_rows("semid RQ-KMeans (default)",
               std::shared_ptr<const semid::Quantizer>(std::move(kmeans)), ds, train_s, &rows);

    if (o.faiss) rows.push_back(faiss_row(o, ds));
    print_table(o, ds, rows);
  }
  return 0;
}
