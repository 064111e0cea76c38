// Internal (index/trainer*.cpp only): what the two training schedules share. Includes LibTorch.
#pragma once

#include <omp.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "index/rqvae_impl.h"
#include "index/trainer.h"

namespace semid::train_impl {

// Sets LibTorch's and OpenMP's thread counts for the scope, then restores them.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads)
      : torch_threads_(torch::get_num_threads()), omp_threads_(omp_get_max_threads()) {
    torch::set_num_threads(threads);
    omp_set_num_threads(threads);
  }
  ~ScopedThreads() {
    torch::set_num_threads(torch_threads_);
    omp_set_num_threads(omp_threads_);
  }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int torch_threads_;
  int omp_threads_;
};

// The wall clock of one training run: the time budget covers every phase.
class Budget {
 public:
  explicit Budget(double seconds) : seconds_(seconds), start_(std::chrono::steady_clock::now()) {}
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  bool limited() const { return seconds_ > 0; }
  // Holds back `seconds` of the budget for work after training (the final pass over every
  // item): training phases see a budget that much shorter.
  void reserve(double seconds) { reserved_ = std::clamp(seconds, 0.0, 0.5 * seconds_); }
  double reserved() const { return reserved_; }
  // Seconds of the training budget left (infinity without a budget).
  double remaining() const {
    return limited() ? std::max(0.0, seconds_ - reserved_ - elapsed())
                     : std::numeric_limits<double>::infinity();
  }
  bool spent() const { return limited() && elapsed() >= seconds_ - reserved_; }
  // Share of the training budget used, in [0, 1] (0 without a budget).
  double fraction() const {
    return limited() ? std::min(1.0, elapsed() / (seconds_ - reserved_)) : 0.0;
  }

 private:
  double seconds_;
  double reserved_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// Early stopping with the best weights kept: offer() each epoch's validation loss.
class BestWeights {
 public:
  explicit BestWeights(int patience) : patience_(patience) {}
  // Remembers the weights when `loss` is the best so far (or `always`); true when `patience`
  // epochs in a row brought no improvement (0 = never).
  bool offer(double loss, bool always, torch::nn::Module& net) {
    if (always || loss < best_) {
      best_ = loss;
      since_best_ = 0;
      weights_.clear();
      for (const auto& p : net.parameters()) weights_.push_back(p.detach().clone());
      return false;
    }
    return patience_ > 0 && ++since_best_ >= patience_;
  }
  // Puts the remembered weights back (nothing when none were remembered).
  void restore(torch::nn::Module& net) const {
    torch::NoGradGuard no_grad;
    auto params = net.parameters();
    for (std::size_t i = 0; i < params.size() && i < weights_.size(); ++i)
      params[i].copy_(weights_[i]);
  }

 private:
  int patience_;
  double best_ = std::numeric_limits<double>::infinity();
  int since_best_ = 0;
  std::vector<torch::Tensor> weights_;
};

// Items whose code usage, collisions and reconstruction are reported after each epoch (and whose
// loss picks the residual schedule's best epoch).
inline constexpr std::int64_t kHealthSample = 8192;

// Row indices [0, n) shuffled with the seed.
std::vector<std::int64_t> shuffled_rows(std::size_t n, std::mt19937_64& rng);
torch::Tensor index_tensor(const std::vector<std::int64_t>& rows);

// Linear warm-up over lr_warmup_steps, then cosine decay to learning_rate * min_lr_ratio as
// `progress` goes from 0 to 1.
double scheduled_learning_rate(const TrainOptions& o, std::int64_t step, double progress);

// Code usage and collisions over the head of train_x (a random sample: its rows are shuffled)
// and reconstruction quality over val_x, into p.
void epoch_health(RqVaeNetImpl& net, const RqVaeConfig& config, const torch::Tensor& train_x,
                  const torch::Tensor& val_x, TrainProgress& p);

// The schedule of the residual architecture (trainer_residual.cpp). `all` is every input row in
// the caller's order (L2-normalised for cosine), train_x the same rows shuffled, and val_x the
// rows whose loss picks the best epoch.
Status train_residual(const RqVaeConfig& config, const TrainOptions& options, RqVaeNetImpl& net,
                      const torch::Tensor& all, const torch::Tensor& train_x,
                      const torch::Tensor& val_x, const ProgressCallback& progress,
                      const Budget& budget, std::mt19937_64& rng, TrainReport& report);

}  // namespace semid::train_impl
