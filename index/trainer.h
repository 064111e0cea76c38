// Training an RQ-VAE so that its codebooks do not collapse.
//
// The schedule (why each step exists):
//  1. Autoencoder warm-up: encoder and decoder train without quantisation for `warmup_epochs`, so
//     the latents reach their working scale first. (The PyTorch peer ran k-means at step 0 on the
//     outputs of an untrained encoder, norm ~0.03; the latents then grew to ~1.2 and most
//     first-level codes were never chosen again: 11 of 256 used.)
//  2. k-means initialisation of every level, in order, on the residuals of the warmed-up latents
//     (faiss::Clustering), so codewords start where the data is.
//  3. Joint training with straight-through gradients. Loss = reconstruction (squared error summed
//     over dimensions, mean over the batch) + sum over levels of
//     (||sg[r] - e||^2 + beta * ||r - sg[e]||^2); with EMA codebooks the first term is replaced by
//     exponential moving averages of the assigned residuals.
//  4. Dead-code restart: a code no item of the training batches chose for `dead_code_steps` steps
//     is re-seeded with a residual from the current batch at its level.
//  5. Validation after every epoch; training stops early when the validation loss has not
//     improved for `patience` epochs, and the best weights are kept.
//  6. Optionally, decoder refinement: encoder and codebooks frozen, the decoder is fitted to the
//     final SIDs (`decoder_refine_epochs`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/metrics.h"
#include "index/rqvae.h"
#include "index/status.h"

namespace semid {

enum class OptimizerKind { kAdamW, kAdam, kAdagrad };
enum class CodebookUpdate { kGradient, kEma };

Result<OptimizerKind> parse_optimizer(const std::string& name);
Result<CodebookUpdate> parse_codebook_update(const std::string& name);

struct TrainOptions {
  // Passes over the training split (warm-up included). 0 = automatic: 20 for the residual
  // architecture (its gain on movielens-use512 and GloVe flattened by then), 200 for kMlp.
  // Default: 0.
  int epochs = 0;
  // Stop after this many optimiser steps (0 = no limit). Default: 0.
  std::int64_t max_steps = 0;
  // Stop after this many seconds (0 = no limit). The budget covers every phase: initialisation,
  // warm-up, training and decoder refinement. Default: 0.
  double time_budget_seconds = 0;
  // Items per step. Default: 256. (TIGER used 1024; on movielens-use512 256 reached a lower
  // validation loss in the same time: 4x the optimiser steps per epoch at ~1.3x the cost.)
  int batch_size = 256;
  // Default: kAdamW. (TIGER used Adagrad with learning rate 0.4.)
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  // Peak learning rate. Default: 1e-3.
  double learning_rate = 1e-3;
  // Decoupled weight decay (AdamW) or L2 penalty (others). Default: 1e-4.
  double weight_decay = 1e-4;
  // Linear warm-up of the learning rate over this many steps, then cosine decay to
  // learning_rate * min_lr_ratio at the last epoch. Default: 200 steps, 0.05.
  std::int64_t lr_warmup_steps = 200;
  double min_lr_ratio = 0.05;
  // Gradient-norm clipping (0 = off). Default: 1.0.
  double grad_clip = 1.0;
  // Share of items held out for validation and early stopping (kMlp; the residual schedule trains
  // on every item and picks its best epoch on a fixed sample of them). Default: 0.05.
  double validation_fraction = 0.05;
  // Stop when the validation loss has not improved for this many epochs (0 = never).
  // Default: 40.
  int patience = 40;
  // Same seed + same data + same threads = the same model file, byte for byte. Default: 42.
  std::uint64_t seed = 42;
  // Intra-op threads for LibTorch and FAISS (never nested). Default: 1 — on a 2-core machine
  // LibTorch's MLPs ran several times slower with 2 threads than with 1 (see README).
  int threads = 1;

  // Epochs of autoencoder-only training before k-means initialisation. Default: 20.
  int warmup_epochs = 20;
  // Codebook learning. Default: kGradient.
  CodebookUpdate codebook_update = CodebookUpdate::kGradient;
  // EMA decay for kEma. Default: 0.99.
  double ema_decay = 0.99;
  // k-means initialisation of the codebooks after warm-up. Default: true.
  bool kmeans_init = true;
  // Items sampled for k-means initialisation. Default: 100000.
  std::size_t kmeans_sample = 100000;
  // k-means iterations per level. Default: 25.
  int kmeans_iterations = 25;
  // Re-seed a code no batch item chose for this many steps (0 = never). Default: 50.
  int dead_code_steps = 50;
  // Epochs of decoder-only training on the frozen SIDs after the main phase (early-stopped on
  // validation with `patience`; 0 = none). Default: 100 (movielens-use512 recall@10 0.443 ->
  // 0.455 at a cost of ~15 s).
  int decoder_refine_epochs = 100;

  // ---- the residual architecture (RqVaeArchitecture::kResidual) ----
  // Weight of the in-batch similarity-matching term mean((Y Y^T - X X^T)^2) over the batch's
  // (scaled) inputs X and reconstructions Y: it trains for what users see, neighbourhoods, not only
  // reconstruction error. Default: 5 (a Python prototype's sweep, see README: movielens-use512
  // user-profile recall@10 0.266 at 1, 0.284 at 5, 0.302 at 10).
  double similarity_weight = 5.0;
  // Codebooks learn at learning_rate times this (they start at residual k-means). Default: 0.1.
  double codebook_lr_ratio = 0.1;
  // Also train the encoder's correction E (straight-through, with the commitment term). Default:
  // false (on movielens-use512 it lowered user-profile recall and raised collisions 1.9% -> 3%).
  bool train_encoder = false;

  Status validate() const;
  nlohmann::json to_json() const;
};

// What the callback sees after every epoch.
struct TrainProgress {
  int epoch = 0;  // 1-based
  int epochs = 0;
  std::int64_t step = 0;
  bool warmup = false;  // autoencoder-only phase
  double train_loss = 0;
  double reconstruction_loss = 0;
  double codebook_loss = 0;
  double commitment_loss = 0;
  double validation_loss = 0;
  double learning_rate = 0;
  std::vector<double> used_fraction;  // per level, over this epoch's training batches
  // After warm-up: code usage and collisions over a fixed sample of up to 8,192 training items,
  // and reconstruction quality over the validation split (empty during warm-up).
  CodeHealth codes;
  ReconstructionQuality validation_reconstruction;
  std::int64_t dead_codes_restarted = 0;
  double elapsed_seconds = 0;
  double eta_seconds = 0;
  nlohmann::json to_json() const;
};

// Return false to stop training after this epoch (the best model so far is kept).
// The residual schedule also reports epoch 0: the residual k-means start, before any training.
using ProgressCallback = std::function<bool(const TrainProgress&)>;

struct TrainReport {
  std::vector<TrainProgress> history;
  int epochs_run = 0;
  std::int64_t steps = 0;
  double train_seconds = 0;  // every phase, the final health pass included
  // Of the time budget, what was held back for the final health pass (timed on a sample).
  double budget_reserved_seconds = 0;
  std::string stop_reason;  // "epochs", "early_stopping", "max_steps", "time_budget", "callback"
  int decoder_refine_epochs = 0;
  // Over all input items, after training.
  CodeHealth codes;
  ReconstructionQuality reconstruction;
  nlohmann::json to_json() const;
};

struct TrainResult {
  std::unique_ptr<RqVae> model;
  TrainReport report;
};

// x: n * config.dim floats, row-major. Errors: InvalidArgument for bad config or options, too few
// items (fewer than codebook_size training items, as k-means needs), NaN/Inf in x.
Result<TrainResult> train_rqvae(const RqVaeConfig& config, const TrainOptions& options,
                                std::size_t n, const float* x,
                                const ProgressCallback& progress = nullptr);

// Health of any quantizer on a data set: code usage and reconstruction quality.
Result<std::pair<CodeHealth, ReconstructionQuality>> evaluate_health(const Quantizer& q,
                                                                     std::size_t n, const float* x);

}  // namespace semid
