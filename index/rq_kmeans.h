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
  // Where an imported model came from (format, source file and its SHA-256, the source's own
  // config; see index/checkpoint_import.h); null for a model semid trained. Part of the config,
  // so the content hash covers it and `semid info` and `GET {c}` show it.
  nlohmann::json source = nullptr;

  Status validate() const;
  nlohmann::json to_json() const;
  static Result<RqKMeansConfig> from_json(const nlohmann::json& j);
};

struct RqKMeansTrainOptions {
  // k-means iterations per level. Default: 25.
  int iterations = 25;
  // FAISS's k-means trains on a seeded sample of codebook_size * this many rows; 0 = every row.
  // Default: 512. (GloVe 331k, 3x256, one core: FAISS's progressive-dim k-means on every row took
  // 650 s for recall@10 0.134; plain k-means on every row 113 s for 0.132; this sample plus one
  // refinement round 56 s for 0.131; 256 rows per code and two rounds 44 s for 0.125.)
  int max_points_per_code = 512;
  // Passes over all rows after training on a sample: encode every row (beam search), then set
  // each level's codewords to the mean of the residuals assigned to them, level by level (block
  // coordinate descent on the quantisation error; each pass added ~0.003 recall@10 on GloVe).
  // Default: 1.
  int refine_rounds = 1;
  // FAISS's progressive-dimension k-means (k-means rerun over 10 growing dimension counts after a
  // PCA, ~5x the work of plain k-means) instead of plain k-means, when the data holds at most this
  // many floats (rows x dim); 0 = never. Default: 2^24 (movielens' 9,742 x 512 is 5M and took
  // ~40 s). On small catalogues it finds much better codebooks (ml-100k, 1,682 items, 3x256,
  // user-profile recall@10: 0.382 progressive vs 0.281 plain; the RQ-VAE started from them reached
  // 0.415 vs 0.323); on large ones more rows matter more and it would cost many minutes (GloVe
  // 331k x 100: 150 s on a 65k sample; Fashion-MNIST 60k x 784: over 10 minutes).
  std::size_t progressive_dim_max_floats = std::size_t{1} << 24;
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
  // A model from given codebooks (levels * codebook_size * dim floats, level-major), as an import
  // makes it. InvalidArgument for a bad config, a wrong size or NaN/Inf in the codebooks.
  static Result<std::unique_ptr<RqKMeans>> from_codebooks(const RqKMeansConfig& config,
                                                          std::vector<float> codebooks);

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
  Result<std::string> to_bytes() const override;
  // The latent is the input (L2-normalised for cosine): latent_dim() == dim().
  int latent_dim() const override { return config_.dim; }
  Status encode_latent(std::size_t n, const float* x, float* latent) const override;
  // Codebook of level l: codebook_size * dim floats (copy), in the input space.
  std::vector<float> codebook(int level) const override;
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
