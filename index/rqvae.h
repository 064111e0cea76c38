// RQ-VAE: MLP encoder -> residual quantisation over `levels` codebooks -> MLP decoder
// (Lee et al. 2022; as used for semantic IDs in TIGER, Rajput et al. 2023).
//
// This header is free of LibTorch: the network lives behind a pimpl in rqvae.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "index/metric.h"
#include "index/quantizer.h"
#include "index/status.h"

namespace semid {

namespace model_file {
struct Parsed;
}

// How the nearest codeword to a residual is chosen.
enum class CodebookDistance { kL2, kCosine };

// The network around the codebooks.
//  kResidual (default): encoder z = x' + E(x') and decoder y = s + D(s), where E and D are MLPs
//    whose last layer starts at zero and x' is the input with its scale taken out (unit vectors
//    for cosine; centred and divided by the RMS norm for L2, undone on decode). The latent is the
//    input space itself, the codebooks start as residual k-means with beam search, so training
//    starts exactly at the RQ-KMeans baseline and only moves where the validation loss improves.
//  kMlp: TIGER's bottleneck, d -> hidden... -> latent_dim -> mirrored decoder (the round-1
//    model; on movielens-use512 its 32-d bottleneck cost more than the whole code).
enum class RqVaeArchitecture { kResidual, kMlp };
enum class Activation { kReLU, kSiLU };

// The architecture of an RQ-VAE: everything needed to rebuild the network from a model file.
// Defaults follow TIGER (Rajput et al. 2023) unless a comment names a measurement.
struct RqVaeConfig {
  // Input dimension d. Required (no default).
  int dim = 0;
  // Default: kResidual. Model files written before this field existed are kMlp.
  RqVaeArchitecture architecture = RqVaeArchitecture::kResidual;
  // Hidden layer sizes. kResidual: of the correction MLPs E and D (d -> hidden... -> d).
  // kMlp: of the encoder (the decoder mirrors them). Default: {512}.
  std::vector<int> hidden = {512};
  // Activation between layers. Default: kSiLU (kMlp model files before this field: kReLU).
  Activation activation = Activation::kSiLU;
  // Size of the latent vector that is quantised. 0 = automatic: d for kResidual (the only size it
  // takes), 32 for kMlp. Default: 0.
  int latent_dim = 0;
  // Beam width of encoding: the B best partial SIDs are kept per level (as faiss's
  // ResidualQuantizer; FAISS measured 0.429 -> 0.4725 recall@10 on movielens from beam 5 over
  // greedy). Default: 5 (model files before this field: 1, greedy).
  int beam_size = 5;
  // Number of residual levels L (the semantic ID's length). Default: 3. Range [1, 16].
  int levels = 3;
  // Codes per level K. Default: 256 (one byte per level). Range [2, 65536].
  int codebook_size = 256;
  // One codebook for all levels instead of one per level. Default: false.
  bool shared_codebook = false;
  // Nearest-codeword rule. Default: kL2.
  CodebookDistance codebook_distance = CodebookDistance::kL2;
  // Commitment weight in the loss. Default: 0.25.
  float beta = 0.25f;
  // The data metric. kCosine L2-normalises inputs on the way in. Default: kCosine.
  Metric metric = Metric::kCosine;
  // Normalisation overrides for imported networks that normalise other than the metric says
  // (null: follow the metric, whose kCosine L2-normalises both the input and the decoder's
  // output). RQ-VAE-Recommender: raw input, unit-norm output. Default: null.
  std::optional<bool> input_normalization;
  std::optional<bool> output_normalization;
  // kMlp: L2-normalise the encoder's output before quantisation (RQ-VAE-Recommender's
  // codebook_normalize). Default: false.
  bool normalize_latent = false;
  // Where an imported model came from (format, source file and its SHA-256, the source's own
  // config; index/checkpoint_import.h); null for a model semid trained. Default: null.
  nlohmann::json source = nullptr;

  // InvalidArgument naming the field and value when a field is out of range.
  Status validate() const;
  nlohmann::json to_json() const;
  // Missing fields take their defaults; unknown fields and wrong types are InvalidArgument.
  static Result<RqVaeConfig> from_json(const nlohmann::json& j);
  bool normalizes_input() const { return input_normalization.value_or(metric == Metric::kCosine); }
  bool normalizes_output() const {
    return output_normalization.value_or(metric == Metric::kCosine);
  }
  bool residual() const { return architecture == RqVaeArchitecture::kResidual; }
  // latent_dim with 0 resolved (d for kResidual, 32 for kMlp).
  int latent() const { return latent_dim != 0 ? latent_dim : (residual() ? dim : 32); }
};

const char* to_string(CodebookDistance distance);
Result<CodebookDistance> parse_codebook_distance(const std::string& name);
const char* to_string(RqVaeArchitecture architecture);
Result<RqVaeArchitecture> parse_architecture(const std::string& name);
const char* to_string(Activation activation);
Result<Activation> parse_activation(const std::string& name);

class RqVae final : public Quantizer {
 public:
  // A freshly initialised network (weights from `seed`). InvalidArgument for a bad config.
  static Result<std::unique_ptr<RqVae>> create(const RqVaeConfig& config, std::uint64_t seed);
  // Loads a model file written by save(). See model_file.h for the checks.
  static Result<std::unique_ptr<RqVae>> load(const std::string& path);
  // Parses model-file bytes (the same checks as load()).
  static Result<std::unique_ptr<RqVae>> from_bytes(std::string_view bytes);
  // Builds the model from a verified model file of kind "rqvae".
  static Result<std::unique_ptr<RqVae>> from_parsed(const model_file::Parsed& parsed);

  ~RqVae() override;
  RqVae(const RqVae&) = delete;
  RqVae& operator=(const RqVae&) = delete;

  const RqVaeConfig& config() const;

  std::string kind() const override { return "rqvae"; }
  int dim() const override { return config().dim; }
  int levels() const override { return config().levels; }
  int codebook_size() const override { return config().codebook_size; }
  Metric metric() const override { return config().metric; }

  Status encode(std::size_t n, const float* x, std::int32_t* codes) const override;
  Status decode(std::size_t n, const std::int32_t* codes, float* out) const override;

  // The encoder's output before quantisation: n * config().latent() floats.
  int latent_dim() const override { return config().latent(); }
  Status encode_latent(std::size_t n, const float* x, float* latent) const override;
  // Decoder applied to arbitrary latents (n * latent()) -> n * dim.
  Status decode_latent(std::size_t n, const float* latent, float* out) const;
  // Codebook of level l: codebook_size * latent() floats (copy).
  std::vector<float> codebook(int level) const override;
  bool cosine_codewords() const override {
    return config().codebook_distance == CodebookDistance::kCosine;
  }

  Status save(const std::string& path) const override;
  Result<std::string> to_bytes() const override;
  const std::string& content_hash() const override;
  nlohmann::json config_json() const override { return config().to_json(); }

  // LibTorch's intra-op thread count for this process (inference; training sets its own from
  // TrainOptions::threads). On a 2-core machine 1 is usually fastest: see benchmarks/bench_rqvae.
  static void set_threads(int threads);
  static int threads();

  // For the trainer (rqvae.cpp / trainer.cpp only): the LibTorch network.
  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }
  // Recomputes the content hash after the weights changed (the trainer calls it when done).
  void refresh_content_hash();

 private:
  explicit RqVae(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace semid
