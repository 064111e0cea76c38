// RQ-KMeans: residual k-means on the vectors themselves, no network — the simpler semantic-ID
// baseline that later work found competitive with RQ-VAE. Built on faiss::ResidualQuantizer
// (progressive-dimension k-means per level, beam search for encoding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/metric.h"
#include "index/quantizer.h"
#include "index/status.h"

namespace faiss {
struct ResidualQuantizer;
}

namespace semid {

namespace model_file {
struct Parsed;
}

struct RqKMeansConfig {
  // Input dimension d. Required.
  int dim = 0;
  // Levels L. Default: 3. Range [1, 16].
  int levels = 3;
  // Codes per level K; a power of two in [2, 65536]. Default: 256.
  int codebook_size = 256;
  // Beam width of training and encoding (FAISS's max_beam_size). Default: 5.
  int beam_size = 5;
  // The data metric; kCosine normalises inputs. Default: kCosine.
  Metric metric = Metric::kCosine;

  Status validate() const;
  nlohmann::json to_json() const;
  static Result<RqKMeansConfig> from_json(const nlohmann::json& j);
};

struct RqKMeansTrainOptions {
  // k-means iterations per level. Default: 25.
  int iterations = 25;
  // FAISS's residual k-means trains on a sample of codebook_size * this many rows (FAISS's own
  // max_points_per_centroid); 0 = every row. Default: 256. Training on all 331k GloVe rows took
  // 650 s; the sample and `refine_rounds` full-data passes keep its recall in a fraction of it.
  int max_points_per_code = 256;
  // Passes over all rows after training on the sample: encode every row (beam search), then set
  // each level's codewords to the mean of the residuals assigned to them, level by level (block
  // coordinate descent on the quantisation error). Default: 3.
  int refine_rounds = 3;
  // Seed of the k-means initialisations. Default: 42.
  std::uint64_t seed = 42;
  // OpenMP threads for FAISS. Default: 1.
  int threads = 1;
};

class RqKMeans final : public Quantizer {
 public:
  // Trains on x (n * config.dim). InvalidArgument for a bad config, n < codebook_size, NaN/Inf.
  static Result<std::unique_ptr<RqKMeans>> train(const RqKMeansConfig& config,
                                                 const RqKMeansTrainOptions& options, std::size_t n,
                                                 const float* x);
  static Result<std::unique_ptr<RqKMeans>> load(const std::string& path);
  static Result<std::unique_ptr<RqKMeans>> from_parsed(const model_file::Parsed& parsed);

  ~RqKMeans() override;
  RqKMeans(const RqKMeans&) = delete;
  RqKMeans& operator=(const RqKMeans&) = delete;

  const RqKMeansConfig& config() const { return config_; }
  std::string kind() const override { return "rqkmeans"; }
  int dim() const override { return config_.dim; }
  int levels() const override { return config_.levels; }
  int codebook_size() const override { return config_.codebook_size; }
  Metric metric() const override { return config_.metric; }

  Status encode(std::size_t n, const float* x, std::int32_t* codes) const override;
  Status decode(std::size_t n, const std::int32_t* codes, float* out) const override;
  Status save(const std::string& path) const override;
  // The model file's bytes (what save() writes).
  Result<std::string> to_bytes() const;
  // Codebook of level l: codebook_size * dim floats (copy), in the input space.
  std::vector<float> codebook(int level) const;
  const std::string& content_hash() const override { return hash_; }
  nlohmann::json config_json() const override { return config_.to_json(); }

 private:
  RqKMeans(RqKMeansConfig config, std::unique_ptr<faiss::ResidualQuantizer> rq);
  void refresh_content_hash();
  // encode() on inputs already normalised (cosine) and checked.
  void encode_normalized(std::size_t n, const float* x, std::int32_t* codes) const;
  // One refinement pass over x (already normalised): see RqKMeansTrainOptions::refine_rounds.
  void refine_codebooks(std::size_t n, const float* x);

  RqKMeansConfig config_;
  std::unique_ptr<faiss::ResidualQuantizer> rq_;
  std::string hash_;
};

}  // namespace semid
