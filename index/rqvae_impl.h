// Internal (index/*.cpp only): the LibTorch network behind RqVae. Includes <torch/torch.h>.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <string>
#include <vector>

#include "index/rqvae.h"

namespace semid {

// Runs `body`, turning a LibTorch exception (c10::Error, e.g. out of memory) into
// Status::internal: no exception leaves index/.
template <typename Body>
auto torch_guarded(const char* what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return Status::internal(std::string(what) + " failed in LibTorch: " + e.what());
  }
}

// Row-major floats -> a [n, d] tensor that owns a copy.
torch::Tensor to_tensor(std::size_t n, std::size_t d, const float* x);
// L2-normalises rows (zero rows stay zero).
torch::Tensor normalize_rows(const torch::Tensor& x);

// Result of residual quantisation of a batch of latents.
struct Quantized {
  torch::Tensor codes;                   // [n, L] int64
  torch::Tensor quantized;               // [n, latent] sum of the chosen codewords
  std::vector<torch::Tensor> residuals;  // L tensors [n, latent]: the input of each level
  torch::Tensor codebook_loss;           // [L] mean over the batch of ||sg[r] - e||^2
  torch::Tensor commitment_loss;         // [L] mean over the batch of ||r - sg[e]||^2
};

struct RqVaeNetImpl : torch::nn::Module {
  explicit RqVaeNetImpl(const RqVaeConfig& config);

  // Input (already L2-normalised for cosine) -> latent. kResidual: z = x' + E(x'), x' the input
  // with its shift and scale taken out.
  torch::Tensor encode(const torch::Tensor& x);
  // Latent -> output in the scaled space the loss works in (kResidual: s + D(s)). With the cosine
  // metric the output is L2-normalised: only its direction counts, so the reconstruction loss
  // ||x - y||^2 = 2 - 2 cos(x, y) spends no capacity on the norm.
  torch::Tensor decode_scaled(const torch::Tensor& s);
  // decode_scaled with the input's shift and scale put back: the reconstruction users see.
  torch::Tensor decode(const torch::Tensor& s);
  // Beam search over the residual codebooks (beam B, the last level keeps 1): [n, L] int64.
  torch::Tensor beam_codes(const torch::Tensor& z);
  // Sum of the codewords of codes [n, L]: [n, latent]. Differentiable in the codebooks.
  torch::Tensor sum_codewords(const torch::Tensor& codes);
  // The codebook of level l ([K, latent]); with a shared codebook the same tensor for every l.
  torch::Tensor& codebook(int level) { return codebooks[shared ? 0 : level]; }
  // Nearest codeword of each residual row at level l: [n] int64.
  torch::Tensor nearest(int level, const torch::Tensor& residual);
  // Residual quantisation of z. With `with_losses`, the per-level loss terms are computed
  // (straight-through training, greedy); otherwise only codes and the quantised sum (beam search
  // when beam > 1).
  Quantized quantize(const torch::Tensor& z, bool with_losses);

  // kResidual: whether E is identically zero (its last layer all zeros, as it starts and stays
  // unless --train-encoder trains it), so that encode() can skip the MLP: z = x'. Rechecked
  // whenever that layer's tensors change (their version counters), so training stays exact.
  // Writes through data pointers bump no counter: from_bytes fills the weights so, before any
  // encode has checked.
  bool encoder_is_zero();

  torch::nn::Sequential encoder{nullptr};
  torch::nn::Sequential decoder{nullptr};
  std::vector<torch::Tensor> codebooks;    // 1 (shared) or L parameters [K, latent]
  torch::Tensor input_shift, input_scale;  // kResidual only: [d] and [1], not trained
  int levels = 0;
  int beam = 1;
  bool normalize_output = false;
  bool normalize_latent = false;
  bool shared = false;
  bool residual = false;
  CodebookDistance distance = CodebookDistance::kL2;

 private:
  std::vector<torch::Tensor> encoder_last_;  // kResidual: E's last layer's weight and bias
  // Inference runs on many threads at once: each may redo the check, all store the same answer.
  std::atomic<std::int64_t> zero_checked_version_{-1};  // sum of the last layer's versions
  std::atomic<bool> encoder_zero_{false};
};
TORCH_MODULE(RqVaeNet);

struct RqVae::Impl {
  RqVaeConfig config;
  RqVaeNet net{nullptr};
  std::string hash;
  // The network, non-const: inference (forward under InferenceMode) mutates nothing.
  RqVaeNetImpl& network() const { return *net.ptr(); }
};

}  // namespace semid
