// The training schedule of the residual RQ-VAE (RqVaeArchitecture::kResidual).
//
//  1. Scale: cosine inputs are unit vectors already; L2 inputs are centred and divided by their
//     RMS norm (stored in the model and undone on decode), so raw scales such as pixels 0-255
//     train like unit vectors.
//  2. Start at the baseline: the encoder and decoder corrections start at zero and the codebooks
//     are residual k-means with beam search (RqKMeans) on the scaled inputs, so epoch 0 gives
//     exactly RQ-KMeans's semantic IDs and reconstructions.
//  3. Train for what users see: the decoder correction and the codebooks learn from the
//     reconstruction error (2 - 2 cos for cosine, squared error for L2) plus in-batch similarity
//     matching, mean((Y Y^T - X X^T)^2), with every batch's SIDs recomputed by beam search from
//     the current codebooks. Optionally the encoder correction too (straight-through).
//  4. Keep the best: the validation loss is measured at epoch 0 and after every epoch, and the
//     best weights are kept, so the result is never worse than the start on held-out items.
#include <algorithm>

#include "index/rq_kmeans.h"
#include "index/trainer_impl.h"

namespace semid::train_impl {
namespace {

struct Losses {
  torch::Tensor total, reconstruction, similarity, commitment;
  torch::Tensor codes;
  torch::Tensor output;  // the reconstructions in the scaled space
};

class ResidualTrainer {
 public:
  ResidualTrainer(const RqVaeConfig& config, const TrainOptions& options, RqVaeNetImpl& net,
                  const Budget& budget, std::mt19937_64& rng)
      : config_(config),
        options_(options),
        net_(net),
        budget_(budget),
        rng_(rng),
        epochs_(options.epochs > 0 ? options.epochs : 20) {}

  Status run(const torch::Tensor& all, const torch::Tensor& train_x, const torch::Tensor& val_x,
             const ProgressCallback& progress, TrainReport& report);

 private:
  void set_scale(const torch::Tensor& train_x);
  Status init_codebooks(const torch::Tensor& all);
  Losses forward(const torch::Tensor& x, bool grad);
  // One pass over the monitored rows: their loss (recorded as the validation loss), code health
  // and reconstruction quality, into p.
  void measure(const torch::Tensor& rows, TrainProgress& p);
  TrainProgress progress_of(int epoch, const torch::Tensor& val_x);

  const RqVaeConfig& config_;
  const TrainOptions& options_;
  RqVaeNetImpl& net_;
  const Budget& budget_;
  std::mt19937_64& rng_;
  const int epochs_;
  std::int64_t step_ = 0;
  std::vector<torch::Tensor> epoch_counts_;  // per level [K]: usage in this epoch's batches
  double sum_total_ = 0, sum_rec_ = 0, sum_commit_ = 0;
  std::int64_t batches_ = 0;
  double start_seconds_ = 0;  // when epoch 0 (the start) was measured
};

void ResidualTrainer::set_scale(const torch::Tensor& train_x) {
  torch::NoGradGuard no_grad;
  if (config_.metric == Metric::kCosine) return;  // unit vectors: shift 0, scale 1
  torch::Tensor mean = train_x.mean(0);
  torch::Tensor rms = (train_x - mean).pow(2).sum(1).mean().sqrt().clamp_min(1e-12);
  net_.input_shift.copy_(mean);
  net_.input_scale.copy_(rms.reshape({1}));
}

Status ResidualTrainer::init_codebooks(const torch::Tensor& all) {
  torch::NoGradGuard no_grad;
  // The encoder is the identity at the start: its latents are the scaled inputs.
  torch::Tensor z = net_.encode(all).contiguous();
  RqKMeansConfig rq{.dim = config_.dim,
                    .levels = config_.levels,
                    .codebook_size = config_.codebook_size,
                    .beam_size = config_.beam_size,
                    .metric = config_.metric == Metric::kCosine ? Metric::kCosine : Metric::kL2};
  RqKMeansTrainOptions rq_options;
  rq_options.iterations = options_.kmeans_iterations;
  rq_options.seed = options_.seed;
  rq_options.threads = options_.threads;
  SEMID_ASSIGN_OR_RETURN(
      auto baseline,
      RqKMeans::train(rq, rq_options, static_cast<std::size_t>(z.size(0)), z.data_ptr<float>()));
  for (int l = 0; l < config_.levels; ++l) {
    std::vector<float> book = baseline->codebook(l);
    net_.codebook(l).copy_(
        torch::from_blob(book.data(), {config_.codebook_size, config_.dim}, torch::kFloat32));
  }
  return Status::ok();
}

Losses ResidualTrainer::forward(const torch::Tensor& x, bool grad) {
  Losses s;
  const bool train_encoder = grad && options_.train_encoder;
  torch::Tensor z;
  {
    torch::NoGradGuard no_grad;
    z = net_.encode(x);
    s.codes = net_.beam_codes(z);
  }
  if (train_encoder) z = net_.encode(x);
  torch::Tensor q = net_.sum_codewords(s.codes);
  // Straight-through for the encoder: the decoder sees q, and its gradient reaches both the
  // codebooks (through q) and the encoder (through z).
  torch::Tensor decoder_input = train_encoder ? q + (z - z.detach()) : q;
  torch::Tensor y = net_.decode_scaled(decoder_input);
  torch::Tensor target =
      config_.metric == Metric::kCosine ? x : (x - net_.input_shift) / net_.input_scale;
  s.output = y;
  s.reconstruction = (y - target).pow(2).sum(1).mean();
  s.similarity = torch::zeros({});
  if (options_.similarity_weight > 0 && x.size(0) > 1) {
    s.similarity = (torch::matmul(y, y.t()) - torch::matmul(target, target.t())).pow(2).mean();
  }
  s.commitment = train_encoder ? (z - q.detach()).pow(2).sum(1).mean() : torch::zeros({});
  s.total =
      s.reconstruction + options_.similarity_weight * s.similarity + config_.beta * s.commitment;
  return s;
}

void ResidualTrainer::measure(const torch::Tensor& rows, TrainProgress& p) {
  torch::NoGradGuard no_grad;
  double total = 0;
  const std::int64_t n = rows.size(0);
  std::vector<torch::Tensor> codes, outputs;
  for (std::int64_t begin = 0; begin < n; begin += options_.batch_size) {
    torch::Tensor xb = rows.slice(0, begin, std::min(n, begin + options_.batch_size));
    Losses s = forward(xb, /*grad=*/false);
    total += (s.reconstruction + options_.similarity_weight * s.similarity).item<double>() *
             static_cast<double>(xb.size(0));
    codes.push_back(s.codes);
    outputs.push_back(s.output);
  }
  p.validation_loss = total / static_cast<double>(n);
  torch::Tensor all_codes = torch::cat(codes).to(torch::kInt32).contiguous();
  p.codes = code_health(static_cast<std::size_t>(n), config_.levels, config_.codebook_size,
                        all_codes.data_ptr<std::int32_t>());
  torch::Tensor decoded = torch::cat(outputs);
  if (config_.metric != Metric::kCosine) decoded = decoded * net_.input_scale + net_.input_shift;
  decoded = decoded.contiguous();
  torch::Tensor reference = rows.contiguous();
  p.validation_reconstruction =
      reconstruction_quality(static_cast<std::size_t>(n), static_cast<std::size_t>(rows.size(1)),
                             reference.data_ptr<float>(), decoded.data_ptr<float>());
}

TrainProgress ResidualTrainer::progress_of(int epoch, const torch::Tensor& val_x) {
  TrainProgress p;
  p.epoch = epoch;
  p.epochs = epochs_;
  p.step = step_;
  const double batches = static_cast<double>(std::max<std::int64_t>(1, batches_));
  p.train_loss = sum_total_ / batches;
  p.reconstruction_loss = sum_rec_ / batches;
  p.commitment_loss = sum_commit_ / batches;
  p.learning_rate = scheduled_learning_rate(options_, step_, 0);
  measure(val_x, p);
  for (int l = 0; l < config_.levels; ++l) {
    // Epoch 0 ran no batch: its usage is the health sample's.
    p.used_fraction.push_back(batches_ > 0 ? (epoch_counts_[l] > 0).sum().item<double>() /
                                                 config_.codebook_size
                                           : p.codes.levels[l].used_fraction);
  }
  p.elapsed_seconds = budget_.elapsed();
  // Epochs left at the pace since the start, and never past the time budget.
  if (epoch == 0) start_seconds_ = p.elapsed_seconds;
  const double per_epoch = epoch > 0 ? (p.elapsed_seconds - start_seconds_) / epoch : 0;
  p.eta_seconds = per_epoch * (epochs_ - epoch);
  p.eta_seconds = std::min(p.eta_seconds, budget_.remaining());
  return p;
}

Status ResidualTrainer::run(const torch::Tensor& all, const torch::Tensor& train_x,
                            const torch::Tensor& val_x, const ProgressCallback& progress,
                            TrainReport& report) {
  set_scale(train_x);
  SEMID_RETURN_IF_ERROR(init_codebooks(all));
  net_.eval();

  std::vector<torch::Tensor> network_params;
  for (const auto& p : net_.decoder->parameters()) network_params.push_back(p);
  if (options_.train_encoder) {
    for (const auto& p : net_.encoder->parameters()) network_params.push_back(p);
  }
  using namespace torch::optim;
  std::vector<OptimizerParamGroup> groups;
  groups.emplace_back(
      network_params,
      std::make_unique<AdamWOptions>(
          AdamWOptions(options_.learning_rate).weight_decay(options_.weight_decay)));
  // No weight decay on codebooks: shrinking codewords towards 0 fights the k-means placement.
  groups.emplace_back(net_.codebooks, std::make_unique<AdamWOptions>(
                                          AdamWOptions(options_.learning_rate).weight_decay(0.0)));
  AdamW optimizer(std::move(groups), AdamWOptions(options_.learning_rate));

  const std::int64_t n = train_x.size(0);
  const std::int64_t batch = std::min<std::int64_t>(options_.batch_size, n);
  const std::int64_t steps_per_epoch = (n + batch - 1) / batch;
  std::int64_t total_steps = steps_per_epoch * epochs_;
  if (options_.max_steps > 0) total_steps = std::min(total_steps, options_.max_steps);

  epoch_counts_.assign(config_.levels, torch::zeros({config_.codebook_size}, torch::kInt64));
  BestWeights best(options_.patience);
  report.stop_reason = "epochs";
  {
    TrainProgress p = progress_of(0, val_x);
    best.offer(p.validation_loss, /*always=*/true, net_);
    report.history.push_back(p);
    if (progress && !progress(p)) report.stop_reason = "callback";
  }
  bool stop = report.stop_reason == "callback";
  if (!stop && budget_.spent()) {
    report.stop_reason = "time_budget";
    stop = true;
  }
  for (int epoch = 1; epoch <= epochs_ && !stop; ++epoch) {
    epoch_counts_.assign(config_.levels, torch::zeros({config_.codebook_size}, torch::kInt64));
    sum_total_ = sum_rec_ = sum_commit_ = 0;
    batches_ = 0;
    auto order = shuffled_rows(static_cast<std::size_t>(n), rng_);
    net_.train();
    for (std::int64_t begin = 0; begin < n && !stop; begin += batch) {
      std::vector<std::int64_t> rows(order.begin() + begin,
                                     order.begin() + std::min(n, begin + batch));
      Losses s = forward(train_x.index_select(0, index_tensor(rows)), /*grad=*/true);
      optimizer.zero_grad();
      s.total.backward();
      if (options_.grad_clip > 0) {
        torch::nn::utils::clip_grad_norm_(net_.parameters(), options_.grad_clip);
      }
      const double by_steps = static_cast<double>(step_) / static_cast<double>(total_steps);
      const double lr =
          scheduled_learning_rate(options_, step_, std::max(by_steps, budget_.fraction()));
      optimizer.param_groups()[0].options().set_lr(lr);
      optimizer.param_groups()[1].options().set_lr(lr * options_.codebook_lr_ratio);
      optimizer.step();
      for (int l = 0; l < config_.levels; ++l) {
        epoch_counts_[l] += torch::bincount(s.codes.select(1, l), {}, config_.codebook_size);
      }
      ++step_;
      ++batches_;
      sum_total_ += s.total.item<double>();
      sum_rec_ += s.reconstruction.item<double>();
      sum_commit_ += s.commitment.item<double>();
      if (options_.max_steps > 0 && step_ >= options_.max_steps) {
        report.stop_reason = "max_steps";
        stop = true;
      } else if (budget_.spent()) {
        report.stop_reason = "time_budget";
        stop = true;
      }
    }
    net_.eval();
    TrainProgress p = progress_of(epoch, val_x);
    report.history.push_back(p);
    report.epochs_run = epoch;
    if (best.offer(p.validation_loss, /*always=*/false, net_)) {
      report.stop_reason = "early_stopping";
      stop = true;
    }
    if (progress && !progress(p)) {
      report.stop_reason = "callback";
      stop = true;
    }
  }
  best.restore(net_);
  net_.eval();
  report.steps = step_;
  return Status::ok();
}

}  // namespace

Status train_residual(const RqVaeConfig& config, const TrainOptions& options, RqVaeNetImpl& net,
                      const torch::Tensor& all, const torch::Tensor& train_x,
                      const torch::Tensor& val_x, const ProgressCallback& progress,
                      const Budget& budget, std::mt19937_64& rng, TrainReport& report) {
  ResidualTrainer trainer(config, options, net, budget, rng);
  return trainer.run(all, train_x, val_x, progress, report);
}

}  // namespace semid::train_impl
