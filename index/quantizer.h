// Quantizer: what every semantic-ID model in semid is, whatever its insides.
//
// A quantizer maps a d-dimensional vector to `levels` codes in [0, codebook_size), coarse to fine
// (the semantic ID), and maps codes back to a d-dimensional reconstruction. Two implementations:
// RqVae (MLP encoder, residual codebooks, MLP decoder; LibTorch) and RqKMeans (residual k-means on
// the vectors themselves; FAISS). Both save to and load from a safetensors model file whose
// metadata carries the kind, the config and a content hash.
//
// Thread safety: encode / decode / reconstruct are const and safe to call from many threads at
// once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/metric.h"
#include "index/status.h"

namespace semid {

class Quantizer {
 public:
  virtual ~Quantizer() = default;

  // "rqvae" or "rqkmeans".
  virtual std::string kind() const = 0;
  virtual int dim() const = 0;
  virtual int levels() const = 0;
  virtual int codebook_size() const = 0;
  // The data metric: kCosine means inputs are L2-normalised on the way in.
  virtual Metric metric() const = 0;

  // x: n * dim() floats, row-major (x[i * dim() + j]). codes: n * levels() outputs,
  // codes[i * levels() + l] in [0, codebook_size()). Deterministic: the same model and input
  // give the same codes. InvalidArgument for NaN/Inf in x (naming the row).
  virtual Status encode(std::size_t n, const float* x, std::int32_t* codes) const = 0;

  // codes: n * levels(); out: n * dim() reconstructions. InvalidArgument for a code outside
  // [0, codebook_size()) (naming row and level).
  virtual Status decode(std::size_t n, const std::int32_t* codes, float* out) const = 0;

  // encode then decode: the vector each input's semantic ID stands for.
  Status reconstruct(std::size_t n, const float* x, float* out) const;

  // The space the codebooks live in (the "latent"): the RQ-VAE's encoder output, or for RQ-KMeans
  // the input itself (L2-normalised for a cosine model). Codes are chosen there, level by level,
  // as the codeword nearest to what the levels above left over (the residual).
  virtual int latent_dim() const = 0;
  // x: n * dim() floats -> latent: n * latent_dim(). InvalidArgument for NaN/Inf (naming the row).
  virtual Status encode_latent(std::size_t n, const float* x, float* latent) const = 0;
  // Level l's codewords in the latent space: codebook_size() * latent_dim() floats (a copy).
  // l in [0, levels()).
  virtual std::vector<float> codebook(int level) const = 0;
  // How a level's codeword is chosen for a residual: false = nearest by L2 (every model semid
  // trains by default), true = largest cosine (an RQ-VAE with codebook_distance "cosine").
  virtual bool cosine_codewords() const { return false; }

  // Writes the model file atomically (safetensors; see model_file.h).
  virtual Status save(const std::string& path) const = 0;
  // The model file's bytes (what save() writes; quantizer_from_bytes reads them back).
  virtual Result<std::string> to_bytes() const = 0;

  // Hex SHA-256 over the config and every tensor: the model's identity (stores record it).
  virtual const std::string& content_hash() const = 0;

  // The model's configuration as JSON (what `semid` reports and stores).
  virtual nlohmann::json config_json() const = 0;
};

// Opens a model file of either kind (dispatching on its metadata). Errors: NotFound, Corruption
// (bad file, hash mismatch), InvalidArgument (unknown kind or version).
Result<std::unique_ptr<Quantizer>> load_quantizer(const std::string& path);
// The same from a model file's bytes (to_bytes(); e.g. a model stored inside a collection or an
// index file): the one place a model file becomes a model of the right kind.
Result<std::unique_ptr<Quantizer>> quantizer_from_bytes(std::string bytes);

// Checks that every value of x (n * d floats) is finite; InvalidArgument naming the first bad
// row and column otherwise.
Status check_finite(std::size_t n, std::size_t d, const float* x);

}  // namespace semid
