#include "index/rq_kmeans.h"

#include <faiss/impl/FaissException.h>
#include <faiss/impl/ResidualQuantizer.h>
#include <faiss/impl/io.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/hamming.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "index/file_util.h"
#include "index/model_file.h"

namespace semid {
namespace {

std::vector<float> normalized_copy(std::size_t n, std::size_t d, const float* x) {
  std::vector<float> out(x, x + n * d);
  faiss::fvec_renorm_L2(d, n, out.data());
  return out;
}

int bits_of(int codebook_size) { return std::countr_zero(static_cast<unsigned>(codebook_size)); }

}  // namespace

Status RqKMeansConfig::validate() const {
  if (dim < 1 || dim > (1 << 20)) {
    return Status::invalid_argument("dim = " + std::to_string(dim) + ": must be in [1, 1048576]");
  }
  if (levels < 1 || levels > 16) {
    return Status::invalid_argument("levels = " + std::to_string(levels) + ": must be in [1, 16]");
  }
  if (codebook_size < 2 || codebook_size > 65536 ||
      !std::has_single_bit(static_cast<unsigned>(codebook_size))) {
    return Status::invalid_argument("codebook_size = " + std::to_string(codebook_size) +
                                    ": RQ-KMeans needs a power of two in [2, 65536]");
  }
  if (beam_size < 1 || beam_size > 256) {
    return Status::invalid_argument("beam_size = " + std::to_string(beam_size) +
                                    ": must be in [1, 256]");
  }
  if (metric != Metric::kCosine && metric != Metric::kL2) {
    return Status::invalid_argument(std::string("metric = ") + metric_name(metric) +
                                    ": must be 'cosine' or 'l2'");
  }
  return Status::ok();
}

nlohmann::json RqKMeansConfig::to_json() const {
  nlohmann::json j = {{"dim", dim},
                      {"levels", levels},
                      {"codebook_size", codebook_size},
                      {"beam_size", beam_size},
                      {"metric", metric_name(metric)}};
  if (!source.is_null()) j["source"] = source;
  return j;
}

Result<RqKMeansConfig> RqKMeansConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return Status::invalid_argument("RQ-KMeans config must be a JSON object");
  RqKMeansConfig c;
  try {
    for (const auto& [key, value] : j.items()) {
      if (key == "dim")
        c.dim = value.get<int>();
      else if (key == "levels")
        c.levels = value.get<int>();
      else if (key == "codebook_size")
        c.codebook_size = value.get<int>();
      else if (key == "beam_size")
        c.beam_size = value.get<int>();
      else if (key == "source")
        c.source = value;
      else if (key == "metric") {
        SEMID_ASSIGN_OR_RETURN(c.metric, parse_metric(value.get<std::string>()));
      } else {
        return Status::invalid_argument("unknown RQ-KMeans config field '" + key + "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::invalid_argument(
        std::string("RQ-KMeans config has a field of the wrong type: ") + e.what());
  }
  SEMID_RETURN_IF_ERROR(c.validate());
  return c;
}

RqKMeans::RqKMeans(RqKMeansConfig config, std::unique_ptr<faiss::ResidualQuantizer> rq)
    : config_(std::move(config)), rq_(std::move(rq)) {}
RqKMeans::~RqKMeans() = default;

namespace {
std::map<std::string, safetensors::Tensor> export_codebooks(const RqKMeansConfig& c,
                                                            const faiss::ResidualQuantizer& rq) {
  return {{"codebooks",
           safetensors::Tensor::from_floats({c.levels, c.codebook_size, c.dim}, rq.codebooks)}};
}

std::unique_ptr<faiss::ResidualQuantizer> make_rq(const RqKMeansConfig& c) {
  auto rq = std::make_unique<faiss::ResidualQuantizer>(
      static_cast<std::size_t>(c.dim), static_cast<std::size_t>(c.levels),
      static_cast<std::size_t>(bits_of(c.codebook_size)));
  rq->max_beam_size = c.beam_size;
  return rq;
}
}  // namespace

void RqKMeans::refresh_content_hash() {
  hash_ = model_file::content_hash(kind(), config_.to_json(), export_codebooks(config_, *rq_));
}

Result<std::unique_ptr<RqKMeans>> RqKMeans::train(const RqKMeansConfig& config,
                                                  const RqKMeansTrainOptions& options,
                                                  std::size_t n, const float* x) {
  SEMID_RETURN_IF_ERROR(config.validate());
  if (options.iterations < 1 || options.threads < 1) {
    return Status::invalid_argument("iterations and threads must be >= 1");
  }
  SEMID_RETURN_IF_ERROR(check_finite(n, static_cast<std::size_t>(config.dim), x));
  if (n < static_cast<std::size_t>(config.codebook_size)) {
    return Status::invalid_argument("too few training items: " + std::to_string(n) +
                                    " < codebook_size " + std::to_string(config.codebook_size));
  }
  if (options.max_points_per_code < 0 || options.refine_rounds < 0) {
    return Status::invalid_argument("max_points_per_code and refine_rounds must be >= 0");
  }
  const auto d = static_cast<std::size_t>(config.dim);
  std::vector<float> normalized;
  if (config.metric == Metric::kCosine) {
    normalized = normalized_copy(n, d, x);
    x = normalized.data();
  }
  auto rq = make_rq(config);
  rq->cp.niter = options.iterations;
  const bool progressive = n * d <= options.progressive_dim_max_floats;
  rq->train_type = progressive ? faiss::ResidualQuantizer::Train_progressive_dim
                               : faiss::ResidualQuantizer::Train_default;
  rq->cp.seed = static_cast<int>(options.seed % 1000003);
  rq->cp.min_points_per_centroid = 1;
  rq->cp.max_points_per_centroid = 1 << 30;
  // FAISS encodes every training row with the beam at every level: train on a seeded sample and
  // let the refinement passes see every row.
  const std::size_t cap = options.max_points_per_code == 0
                              ? n
                              : static_cast<std::size_t>(options.max_points_per_code) *
                                    static_cast<std::size_t>(config.codebook_size);
  std::vector<float> sample;
  const float* train_x = x;
  std::size_t train_n = n;
  if (n > cap) {
    std::vector<std::size_t> rows(n);
    std::iota(rows.begin(), rows.end(), 0);
    std::mt19937_64 rng(options.seed);
    std::shuffle(rows.begin(), rows.end(), rng);
    rows.resize(cap);
    std::sort(rows.begin(), rows.end());
    sample.resize(cap * d);
    for (std::size_t i = 0; i < cap; ++i) std::copy_n(x + rows[i] * d, d, sample.data() + i * d);
    train_x = sample.data();
    train_n = cap;
  }
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(options.threads);
  try {
    rq->train(train_n, train_x);
  } catch (const faiss::FaissException& e) {
    omp_set_num_threads(saved_threads);
    return Status::internal(std::string("FAISS residual quantizer training failed: ") + e.what());
  }
  std::unique_ptr<RqKMeans> model(new RqKMeans(config, std::move(rq)));
  if (train_n < n) {
    for (int round = 0; round < options.refine_rounds; ++round) model->refine_codebooks(n, x);
  }
  omp_set_num_threads(saved_threads);
  model->refresh_content_hash();
  return model;
}

void RqKMeans::refine_codebooks(std::size_t n, const float* x) {
  const auto d = static_cast<std::size_t>(config_.dim);
  const auto L = static_cast<std::size_t>(config_.levels);
  const auto K = static_cast<std::size_t>(config_.codebook_size);
  std::vector<std::int32_t> codes(n * L);
  encode_normalized(n, x, codes.data());
  // reconstruction[i] = sum over levels of the item's codewords, kept up to date level by level.
  std::vector<float> reconstruction(n * d);
  rq_->decode_unpacked(codes.data(), reconstruction.data(), n);
  std::vector<double> sums(K * d);
  std::vector<std::size_t> counts(K);
  for (std::size_t l = 0; l < L; ++l) {
    float* book = rq_->codebooks.data() + l * K * d;
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(codes[i * L + l]);
      ++counts[c];
      // The residual this level sees with every other level's codeword fixed.
      for (std::size_t j = 0; j < d; ++j) {
        sums[c * d + j] += x[i * d + j] - reconstruction[i * d + j] + book[c * d + j];
      }
    }
    std::vector<float> updated(book, book + K * d);
    for (std::size_t c = 0; c < K; ++c) {
      if (counts[c] == 0) continue;  // an unused codeword stays where it is
      for (std::size_t j = 0; j < d; ++j) {
        updated[c * d + j] = static_cast<float>(sums[c * d + j] / static_cast<double>(counts[c]));
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(codes[i * L + l]);
      for (std::size_t j = 0; j < d; ++j) {
        reconstruction[i * d + j] += updated[c * d + j] - book[c * d + j];
      }
    }
    std::copy(updated.begin(), updated.end(), book);
  }
}

Status RqKMeans::encode(std::size_t n, const float* x, std::int32_t* codes) const {
  const auto d = static_cast<std::size_t>(config_.dim);
  SEMID_RETURN_IF_ERROR(check_finite(n, d, x));
  std::vector<float> normalized;
  if (config_.metric == Metric::kCosine) {
    normalized = normalized_copy(n, d, x);
    x = normalized.data();
  }
  encode_normalized(n, x, codes);
  return Status::ok();
}

Status RqKMeans::encode_latent(std::size_t n, const float* x, float* latent) const {
  const auto d = static_cast<std::size_t>(config_.dim);
  SEMID_RETURN_IF_ERROR(check_finite(n, d, x));
  std::copy(x, x + n * d, latent);
  if (config_.metric == Metric::kCosine) faiss::fvec_renorm_L2(d, n, latent);
  return Status::ok();
}

void RqKMeans::encode_normalized(std::size_t n, const float* x, std::int32_t* codes) const {
  std::vector<std::uint8_t> packed(n * rq_->code_size);
  rq_->compute_codes(x, packed.data(), n);
  const auto L = static_cast<std::size_t>(config_.levels);
  const int nbits = bits_of(config_.codebook_size);
  for (std::size_t i = 0; i < n; ++i) {
    faiss::BitstringReader reader(packed.data() + i * rq_->code_size, rq_->code_size);
    for (std::size_t l = 0; l < L; ++l)
      codes[i * L + l] = static_cast<std::int32_t>(reader.read(nbits));
  }
}

Status RqKMeans::decode(std::size_t n, const std::int32_t* codes, float* out) const {
  const auto L = static_cast<std::size_t>(config_.levels);
  for (std::size_t i = 0; i < n * L; ++i) {
    if (codes[i] < 0 || codes[i] >= config_.codebook_size) {
      return Status::invalid_argument(
          "code " + std::to_string(codes[i]) + " at row " + std::to_string(i / L) + ", level " +
          std::to_string(i % L) + " is outside [0, " + std::to_string(config_.codebook_size) + ")");
    }
  }
  rq_->decode_unpacked(codes, out, n);
  return Status::ok();
}

Result<std::string> RqKMeans::to_bytes() const {
  return model_file::serialize(kind(), config_.to_json(), export_codebooks(config_, *rq_));
}

Status RqKMeans::save(const std::string& path) const {
  SEMID_ASSIGN_OR_RETURN(std::string bytes, to_bytes());
  return write_file_atomically(path, bytes).with_context("saving model");
}

std::vector<float> RqKMeans::codebook(int level) const {
  const auto size =
      static_cast<std::size_t>(config_.codebook_size) * static_cast<std::size_t>(config_.dim);
  const auto begin =
      rq_->codebooks.begin() + static_cast<std::ptrdiff_t>(size * static_cast<std::size_t>(level));
  return {begin, begin + static_cast<std::ptrdiff_t>(size)};
}

Result<std::unique_ptr<RqKMeans>> RqKMeans::from_parsed(const model_file::Parsed& parsed) {
  if (parsed.kind != "rqkmeans") {
    return Status::invalid_argument("model file holds a '" + parsed.kind +
                                    "' model, not 'rqkmeans'");
  }
  SEMID_ASSIGN_OR_RETURN(RqKMeansConfig config, RqKMeansConfig::from_json(parsed.config));
  SEMID_ASSIGN_OR_RETURN(std::vector<float> books, parsed.archive.floats("codebooks"));
  SEMID_RETURN_IF_ERROR(parsed.archive
                            .tensor("codebooks", safetensors::DType::kF32,
                                    {config.levels, config.codebook_size, config.dim})
                            .status());
  if (parsed.archive.names().size() != 1) {
    return Status::corruption("an rqkmeans model file holds exactly one tensor, 'codebooks'");
  }
  auto rq = make_rq(config);
  rq->codebooks = std::move(books);
  rq->is_trained = true;
  std::unique_ptr<RqKMeans> model(new RqKMeans(config, std::move(rq)));
  model->hash_ = parsed.hash;
  return model;
}

Result<std::unique_ptr<RqKMeans>> RqKMeans::from_codebooks(const RqKMeansConfig& config,
                                                           std::vector<float> codebooks) {
  SEMID_RETURN_IF_ERROR(config.validate());
  const std::size_t expected = static_cast<std::size_t>(config.levels) *
                               static_cast<std::size_t>(config.codebook_size) *
                               static_cast<std::size_t>(config.dim);
  if (codebooks.size() != expected) {
    return Status::invalid_argument(
        "codebooks hold " + std::to_string(codebooks.size()) + " floats; " +
        std::to_string(config.levels) + " x " + std::to_string(config.codebook_size) + " x " +
        std::to_string(config.dim) + " = " + std::to_string(expected) + " expected");
  }
  for (std::size_t i = 0; i < codebooks.size(); ++i) {
    if (!std::isfinite(codebooks[i])) {
      const std::size_t per_level = expected / static_cast<std::size_t>(config.levels);
      return Status::invalid_argument(
          "codebook of level " + std::to_string(i / per_level) + " holds " +
          std::to_string(codebooks[i]) + " at code " +
          std::to_string(i % per_level / static_cast<std::size_t>(config.dim)));
    }
  }
  auto rq = make_rq(config);
  rq->codebooks = std::move(codebooks);
  rq->is_trained = true;
  std::unique_ptr<RqKMeans> model(new RqKMeans(config, std::move(rq)));
  model->refresh_content_hash();
  return model;
}

Result<std::unique_ptr<RqKMeans>> RqKMeans::load(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto parsed, model_file::read(path));
  auto model = from_parsed(parsed);
  if (!model) return model.status().with_context("model file '" + path + "'");
  return model;
}

}  // namespace semid
