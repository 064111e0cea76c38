// bench_index: recall and speed of IndexRQVAE's search modes next to FAISS's own indexes at the
// same bytes per item, on real embeddings, printed as one table.
//
// Data sets (cosine; ground truth = exact neighbours of the original vectors):
//   movielens  ../shared/datasets/movielens-use512: 9,742 x 512 movies, 1,000 item queries
//              (ground-truth column 0 is the query item itself, as the data set's README counts it)
//   glove      data/glove100 (scripts/fetch-data glove): 331k x 100 words, 10,000 queries
// Rows: IndexRQVAE in cosine / prefix / exhaustive mode, FAISS's IndexResidualQuantizer (RQ3x8)
// and IndexPQ (PQ4x6, also 3 bytes) trained on the same base, and IndexFlatIP (exact).
// Columns: recall@1/10/100 (one k = 100 search), queries per second of a k = 10 search of all
// queries with each of --threads OpenMP thread counts (default 1,2; best of --repeats runs), code
// bytes per item, train and add seconds. Run it with OMP_WAIT_POLICY=PASSIVE: spinning OpenMP
// workers cost more than they save on a 2-core machine.
//
// The model is loaded from --model (any semid model file: RQ-VAE or RQ-KMeans), else from
// <model-dir>/<dataset>_rqvae.safetensors when that exists (unless --retrain), else an RQ-VAE with
// the default architecture is trained (--epochs, --time-budget) and saved there.
#include <faiss/IndexFlat.h>
#include <faiss/index_factory.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "index/metrics.h"
#include "index/quantizer.h"
#include "index/rqvae.h"
#include "index/trainer.h"
#include "index/vecs_io.h"
#include "plugin/IndexRQVAE.h"

namespace {

using semid::FloatMatrix;
using semid::Int32Matrix;
using idx_t = faiss::Index::idx_t;
namespace fs = std::filesystem;

struct Options {
  std::string dataset = "all";
  std::string model;
  std::string model_dir = SEMID_SOURCE_DIR "/data/models";
  bool retrain = false;
  int epochs = semid::TrainOptions{}.epochs;
  int warmup_epochs = semid::TrainOptions{}.warmup_epochs;
  double time_budget = 0;
  int latent = 0;
  std::vector<int> hidden;  // empty: RqVaeConfig's default
  std::vector<int> threads = {1, 2};
  std::size_t max_queries = 0;
  idx_t shortlist = 0;
  int repeats = 2;
  std::vector<std::string> methods = {"cosine", "prefix", "exhaustive", "rq", "pq", "flat"};
};

bool wanted(const Options& o, const std::string& method) {
  return std::find(o.methods.begin(), o.methods.end(), method) != o.methods.end();
}

struct Dataset {
  std::string name;
  FloatMatrix base;     // as read
  FloatMatrix queries;  // as read
  Int32Matrix truth;    // >= 100 columns
};

struct Row {
  std::string dataset, method;
  double recall1 = 0, recall10 = 0, recall100 = 0;
  std::vector<double> qps;  // per Options::threads entry
  std::size_t bytes = 0;
  double train_s = -1, add_s = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <class T>
T value_or_die(semid::Result<T> result, const std::string& what) {
  if (!result) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), result.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(result).value();
}

Dataset load_dataset(const std::string& name, std::size_t max_queries) {
  Dataset ds;
  ds.name = name;
  std::string base, queries, truth;
  if (name == "movielens") {
    const std::string dir = SEMID_SHARED_DIR "/datasets/movielens-use512/";
    base = dir + "mllatestsmall_use512_base.fvecs";
    queries = dir + "mllatestsmall_use512_query_items.fvecs";
    truth = dir + "mllatestsmall_use512_groundtruth_items_angular.ivecs";
  } else {
    const std::string dir = SEMID_SOURCE_DIR "/data/glove100/";
    base = dir + "base.fvecs";
    queries = dir + "query.fvecs";
    truth = dir + "groundtruth.ivecs";
  }
  semid::ReadOptions rows;
  rows.max_rows = max_queries;
  ds.base = value_or_die(semid::read_float_vectors(base), base);
  ds.queries = value_or_die(semid::read_float_vectors(queries, rows), queries);
  ds.truth = value_or_die(semid::read_int32_vectors(truth, rows), truth);
  return ds;
}

FloatMatrix normalized(const FloatMatrix& m) {
  FloatMatrix out = m;
  faiss::fvec_renorm_L2(out.cols, out.rows, out.data.data());
  return out;
}

// Searches every query with k results; returns the labels as an Int32Matrix and the wall time.
Int32Matrix search_all(const faiss::Index& index, const FloatMatrix& queries, idx_t k,
                       const faiss::SearchParameters* params, double* seconds) {
  const auto nq = static_cast<idx_t>(queries.rows);
  std::vector<float> distances(static_cast<std::size_t>(nq * k));
  std::vector<idx_t> labels(static_cast<std::size_t>(nq * k));
  const auto start = std::chrono::steady_clock::now();
  index.search(nq, queries.data.data(), k, distances.data(), labels.data(), params);
  *seconds = seconds_since(start);
  Int32Matrix out(queries.rows, static_cast<std::size_t>(k));
  for (std::size_t i = 0; i < labels.size(); ++i)
    out.data[i] = static_cast<std::int32_t>(labels[i]);
  return out;
}

int build_threads(const Options& o) {
  return *std::max_element(o.threads.begin(), o.threads.end());
}

void measure(const Options& o, const faiss::Index& index, const FloatMatrix& queries,
             const Int32Matrix& truth, const faiss::SearchParameters* params, Row* row) {
  double seconds = 0;
  const int repeats = o.repeats;
  omp_set_num_threads(build_threads(o));
  // Warm-up on a few queries (lazy initialisation inside FAISS and LibTorch).
  FloatMatrix few(std::min<std::size_t>(queries.rows, 16), queries.cols);
  std::copy_n(queries.data.begin(), few.data.size(), few.data.begin());
  search_all(index, few, 10, params, &seconds);
  const Int32Matrix found = search_all(index, queries, 100, params, &seconds);
  row->recall1 = semid::recall_at_k(found, truth, 1);
  row->recall10 = semid::recall_at_k(found, truth, 10);
  row->recall100 = semid::recall_at_k(found, truth, 100);
  for (int threads : o.threads) {
    omp_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
      search_all(index, queries, 10, params, &seconds);
      best = std::max(best, static_cast<double>(queries.rows) / seconds);
    }
    row->qps.push_back(best);
  }
  omp_set_num_threads(build_threads(o));
}

std::shared_ptr<const semid::Quantizer> model_for(const Options& o, const Dataset& ds,
                                                  double* train_s) {
  const std::string path =
      !o.model.empty() ? o.model : o.model_dir + "/" + ds.name + "_rqvae.safetensors";
  if (!o.retrain && fs::exists(path)) {
    std::printf("[%s] loading model %s\n", ds.name.c_str(), path.c_str());
    return value_or_die(semid::load_quantizer(path), path);
  }
  semid::RqVaeConfig config;
  config.dim = static_cast<int>(ds.base.cols);
  if (!o.hidden.empty()) config.hidden = o.hidden;
  if (o.latent != 0) {
    config.architecture = semid::RqVaeArchitecture::kMlp;
    config.latent_dim = o.latent;
  }
  semid::TrainOptions options;
  options.epochs = o.epochs;
  options.warmup_epochs = o.warmup_epochs;
  options.time_budget_seconds = o.time_budget;
  std::printf("[%s] training an RQ-VAE (%d epochs, time budget %.0f s)\n", ds.name.c_str(),
              o.epochs, o.time_budget);
  const auto start = std::chrono::steady_clock::now();
  auto trained =
      value_or_die(semid::train_rqvae(config, options, ds.base.rows, ds.base.data.data(),
                                      [&](const semid::TrainProgress& p) {
                                        std::printf("  epoch %d/%d loss %.5f val %.5f (%.0f s)\n",
                                                    p.epoch, p.epochs, p.train_loss,
                                                    p.validation_loss, p.elapsed_seconds);
                                        std::fflush(stdout);
                                        return true;
                                      }),
                   "training");
  *train_s = seconds_since(start);
  fs::create_directories(fs::path(path).parent_path());
  if (auto saved = trained.model->save(path); !saved) {
    std::fprintf(stderr, "saving %s: %s\n", path.c_str(), saved.to_string().c_str());
  }
  return std::shared_ptr<const semid::Quantizer>(std::move(trained.model));
}

void bench_dataset(const Options& o, const std::string& name, std::vector<Row>* rows) {
  Dataset ds = load_dataset(name, o.max_queries);
  std::printf("[%s] base %zu x %zu, %zu queries\n", name.c_str(), ds.base.rows, ds.base.cols,
              ds.queries.rows);
  const auto d = static_cast<int>(ds.base.cols);
  const auto n = static_cast<idx_t>(ds.base.rows);
  const FloatMatrix base = normalized(ds.base);
  const FloatMatrix queries = normalized(ds.queries);

  double train_s = -1;
  auto model = model_for(o, ds, &train_s);
  semid::IndexRQVAE index(model);
  auto start = std::chrono::steady_clock::now();
  index.add(n, ds.base.data.data());
  const double add_s = seconds_since(start);
  std::printf(
      "[%s] IndexRQVAE: %zu code bytes per item; in memory also a 4-byte norm term, a "
      "%zu-byte level-1 group copy and %.1f trie bytes per item\n",
      name.c_str(), index.code_size, index.code_size - index.codec().bytes_per_level() + 8,
      static_cast<double>(index.trie().memory_bytes()) / static_cast<double>(n));
  struct Mode {
    const char* method;
    const char* label;
    semid::SearchMode mode;
  };
  for (const Mode& m :
       {Mode{"cosine", "IndexRQVAE cosine", semid::SearchMode::kCosine},
        Mode{"prefix", "IndexRQVAE prefix", semid::SearchMode::kPrefix},
        Mode{"exhaustive", "IndexRQVAE exhaustive", semid::SearchMode::kExhaustive}}) {
    if (!wanted(o, m.method)) continue;
    semid::SearchParametersRQVAE params;
    params.mode = m.mode;
    if (m.mode != semid::SearchMode::kExhaustive) params.shortlist = o.shortlist;
    Row row;
    row.dataset = name;
    row.method = m.label;
    row.bytes = index.sa_code_size();
    row.train_s = train_s;
    row.add_s = add_s;
    std::printf("[%s] %s\n", name.c_str(), m.label);
    std::fflush(stdout);
    measure(o, index, ds.queries, ds.truth, &params, &row);
    rows->push_back(row);
  }

  struct Faiss {
    const char* method;
    const char* label;
    const char* factory;
  };
  for (const Faiss& f : {Faiss{"rq", "FAISS IndexResidualQuantizer RQ3x8", "RQ3x8"},
                         Faiss{"pq", "FAISS IndexPQ PQ4x6", "PQ4x6"},
                         Faiss{"flat", "FAISS IndexFlatIP (exact)", "Flat"}}) {
    if (!wanted(o, f.method)) continue;
    std::printf("[%s] %s\n", name.c_str(), f.label);
    std::fflush(stdout);
    std::unique_ptr<faiss::Index> faiss_index(
        faiss::index_factory(d, f.factory, faiss::METRIC_INNER_PRODUCT));
    Row row;
    row.dataset = name;
    row.method = f.label;
    omp_set_num_threads(build_threads(o));
    start = std::chrono::steady_clock::now();
    faiss_index->train(n, base.data.data());
    row.train_s = seconds_since(start);
    start = std::chrono::steady_clock::now();
    faiss_index->add(n, base.data.data());
    row.add_s = seconds_since(start);
    row.bytes = faiss_index->sa_code_size();
    measure(o, *faiss_index, queries, ds.truth, nullptr, &row);
    rows->push_back(row);
  }
}

void print_table(const Options& o, const std::vector<Row>& rows) {
  std::printf("\n| data set | method | R@1 | R@10 | R@100 |");
  for (int t : o.threads) std::printf(" QPS %d thr |", t);
  std::printf(" bytes/item | train s | add s |\n|---|---|---|---|---|");
  for (std::size_t i = 0; i < o.threads.size(); ++i) std::printf("---|");
  std::printf("---|---|---|\n");
  for (const Row& r : rows) {
    char train[32];
    if (r.train_s < 0)
      std::snprintf(train, sizeof(train), "loaded");
    else
      std::snprintf(train, sizeof(train), "%.1f", r.train_s);
    std::printf("| %s | %s | %.3f | %.3f | %.3f |", r.dataset.c_str(), r.method.c_str(), r.recall1,
                r.recall10, r.recall100);
    for (double q : r.qps) std::printf(" %.0f |", q);
    std::printf(" %zu | %s | %.2f |\n", r.bytes, train, r.add_s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Recall and QPS of IndexRQVAE next to FAISS indexes at the same bytes per item"};
  app.add_option("--dataset", o.dataset, "movielens, glove or all")
      ->check(CLI::IsMember({"movielens", "glove", "all"}))
      ->capture_default_str();
  app.add_option("--model", o.model,
                 "Pre-trained model file, RQ-VAE or RQ-KMeans (one data set only)");
  app.add_option("--model-dir", o.model_dir, "Where models are loaded from and saved to")
      ->capture_default_str();
  app.add_flag("--retrain", o.retrain, "Train even when a saved model exists");
  app.add_option("--epochs", o.epochs, "Training epochs")->capture_default_str();
  app.add_option("--warmup-epochs", o.warmup_epochs, "Autoencoder-only epochs")
      ->capture_default_str();
  app.add_option("--time-budget", o.time_budget, "Training seconds (0 = no limit)")
      ->capture_default_str();
  app.add_option("--latent", o.latent, "Latent size (non-zero: the MLP architecture)")
      ->capture_default_str();
  app.add_option("--hidden", o.hidden, "Hidden sizes (default: RqVaeConfig's)")->delimiter(',');
  app.add_option("--threads", o.threads, "OpenMP thread counts to time, comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--queries", o.max_queries, "Use the first N queries (0 = all)")
      ->capture_default_str();
  app.add_option("--shortlist", o.shortlist, "IndexRQVAE shortlist (0 = the index's default)")
      ->capture_default_str();
  app.add_option("--repeats", o.repeats, "Timed runs per thread count (the best is shown)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--methods", o.methods,
                 "Rows to run, comma-separated: cosine,prefix,exhaustive,rq,pq,flat")
      ->delimiter(',')
      ->check(CLI::IsMember({"cosine", "prefix", "exhaustive", "rq", "pq", "flat"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!o.model.empty() && o.dataset == "all") {
    std::fprintf(stderr, "--model needs a single --dataset\n");
    return 1;
  }
  std::vector<Row> rows;
  for (const std::string name : {"movielens", "glove"}) {
    if (o.dataset == "all" || o.dataset == name) bench_dataset(o, name, &rows);
  }
  print_table(o, rows);
  return 0;
}
