#include "index/trainer.h"

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/utils/distances.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "index/rqvae_impl.h"
#include "index/trainer_impl.h"

namespace semid {

Result<OptimizerKind> parse_optimizer(const std::string& name) {
  if (name == "adamw") return OptimizerKind::kAdamW;
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "adagrad") return OptimizerKind::kAdagrad;
  return Status::invalid_argument("optimizer must be 'adamw', 'adam' or 'adagrad', got '" + name +
                                  "'");
}

Result<CodebookUpdate> parse_codebook_update(const std::string& name) {
  if (name == "gradient") return CodebookUpdate::kGradient;
  if (name == "ema") return CodebookUpdate::kEma;
  return Status::invalid_argument("codebook_update must be 'gradient' or 'ema', got '" + name +
                                  "'");
}

namespace {
const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kAdamW:
      return "adamw";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdagrad:
      return "adagrad";
  }
  return "?";
}
}  // namespace

Status TrainOptions::validate() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& rule) {
    return Status::invalid_argument(field + " = " + value + ": " + rule);
  };
  if (epochs < 0) return bad("epochs", std::to_string(epochs), "must be >= 0 (0 = automatic)");
  if (max_steps < 0) return bad("max_steps", std::to_string(max_steps), "must be >= 0");
  if (!(time_budget_seconds >= 0)) {
    return bad("time_budget_seconds", std::to_string(time_budget_seconds), "must be >= 0");
  }
  if (batch_size < 1) return bad("batch_size", std::to_string(batch_size), "must be >= 1");
  if (!(learning_rate > 0 && learning_rate < 100)) {
    return bad("learning_rate", std::to_string(learning_rate), "must be in (0, 100)");
  }
  if (!(weight_decay >= 0))
    return bad("weight_decay", std::to_string(weight_decay), "must be >= 0");
  if (lr_warmup_steps < 0)
    return bad("lr_warmup_steps", std::to_string(lr_warmup_steps), "must be >= 0");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) {
    return bad("min_lr_ratio", std::to_string(min_lr_ratio), "must be in [0, 1]");
  }
  if (!(grad_clip >= 0)) return bad("grad_clip", std::to_string(grad_clip), "must be >= 0");
  if (!(validation_fraction >= 0 && validation_fraction < 0.5)) {
    return bad("validation_fraction", std::to_string(validation_fraction), "must be in [0, 0.5)");
  }
  if (patience < 0) return bad("patience", std::to_string(patience), "must be >= 0");
  if (threads < 1 || threads > 1024)
    return bad("threads", std::to_string(threads), "must be in [1, 1024]");
  if (warmup_epochs < 0) return bad("warmup_epochs", std::to_string(warmup_epochs), "must be >= 0");
  if (!(ema_decay > 0 && ema_decay < 1)) {
    return bad("ema_decay", std::to_string(ema_decay), "must be in (0, 1)");
  }
  if (kmeans_sample < 1) return bad("kmeans_sample", "0", "must be >= 1");
  if (kmeans_iterations < 1) {
    return bad("kmeans_iterations", std::to_string(kmeans_iterations), "must be >= 1");
  }
  if (dead_code_steps < 0)
    return bad("dead_code_steps", std::to_string(dead_code_steps), "must be >= 0");
  if (decoder_refine_epochs < 0) {
    return bad("decoder_refine_epochs", std::to_string(decoder_refine_epochs), "must be >= 0");
  }
  if (!(similarity_weight >= 0 && similarity_weight <= 1e4)) {
    return bad("similarity_weight", std::to_string(similarity_weight), "must be in [0, 10000]");
  }
  if (!(codebook_lr_ratio >= 0 && codebook_lr_ratio <= 100)) {
    return bad("codebook_lr_ratio", std::to_string(codebook_lr_ratio), "must be in [0, 100]");
  }
  return Status::ok();
}

nlohmann::json TrainOptions::to_json() const {
  return {{"epochs", epochs},
          {"max_steps", max_steps},
          {"time_budget_seconds", time_budget_seconds},
          {"batch_size", batch_size},
          {"optimizer", optimizer_name(optimizer)},
          {"learning_rate", learning_rate},
          {"weight_decay", weight_decay},
          {"lr_warmup_steps", lr_warmup_steps},
          {"min_lr_ratio", min_lr_ratio},
          {"grad_clip", grad_clip},
          {"validation_fraction", validation_fraction},
          {"patience", patience},
          {"seed", seed},
          {"threads", threads},
          {"warmup_epochs", warmup_epochs},
          {"codebook_update", codebook_update == CodebookUpdate::kEma ? "ema" : "gradient"},
          {"ema_decay", ema_decay},
          {"kmeans_init", kmeans_init},
          {"kmeans_sample", kmeans_sample},
          {"kmeans_iterations", kmeans_iterations},
          {"dead_code_steps", dead_code_steps},
          {"decoder_refine_epochs", decoder_refine_epochs},
          {"similarity_weight", similarity_weight},
          {"codebook_lr_ratio", codebook_lr_ratio},
          {"train_encoder", train_encoder}};
}

nlohmann::json TrainProgress::to_json() const {
  return {{"epoch", epoch},
          {"step", step},
          {"warmup", warmup},
          {"train_loss", train_loss},
          {"reconstruction_loss", reconstruction_loss},
          {"codebook_loss", codebook_loss},
          {"commitment_loss", commitment_loss},
          {"validation_loss", validation_loss},
          {"learning_rate", learning_rate},
          {"used_fraction", used_fraction},
          {"codes", codes.to_json()},
          {"validation_reconstruction", validation_reconstruction.to_json()},
          {"dead_codes_restarted", dead_codes_restarted},
          {"elapsed_seconds", elapsed_seconds}};
}

nlohmann::json TrainReport::to_json() const {
  nlohmann::json epochs_json = nlohmann::json::array();
  for (const auto& p : history) epochs_json.push_back(p.to_json());
  return {{"epochs_run", epochs_run},       {"steps", steps},
          {"train_seconds", train_seconds}, {"budget_reserved_seconds", budget_reserved_seconds},
          {"stop_reason", stop_reason},     {"decoder_refine_epochs", decoder_refine_epochs},
          {"codes", codes.to_json()},       {"reconstruction", reconstruction.to_json()},
          {"history", epochs_json}};
}

namespace {

using train_impl::BestWeights;
using train_impl::Budget;
using train_impl::index_tensor;
using train_impl::ScopedThreads;
using train_impl::shuffled_rows;

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o,
                                                        std::vector<torch::Tensor> network,
                                                        std::vector<torch::Tensor> codebooks) {
  using namespace torch::optim;
  // Codebooks get no weight decay: shrinking codewords towards 0 fights the k-means placement.
  auto groups = [&](auto options) {
    std::vector<OptimizerParamGroup> g;
    g.emplace_back(network, std::make_unique<decltype(options)>(options));
    if (!codebooks.empty()) {
      auto cb = options;
      cb.weight_decay(0.0);
      g.emplace_back(codebooks, std::make_unique<decltype(options)>(cb));
    }
    return g;
  };
  switch (o.optimizer) {
    case OptimizerKind::kAdamW: {
      AdamWOptions opts(o.learning_rate);
      opts.weight_decay(o.weight_decay);
      return std::make_unique<AdamW>(groups(opts), opts);
    }
    case OptimizerKind::kAdam: {
      AdamOptions opts(o.learning_rate);
      opts.weight_decay(o.weight_decay);
      return std::make_unique<Adam>(groups(opts), opts);
    }
    case OptimizerKind::kAdagrad: {
      AdagradOptions opts(o.learning_rate);
      opts.weight_decay(o.weight_decay);
      return std::make_unique<Adagrad>(groups(opts), opts);
    }
  }
  return nullptr;
}

// The whole training state, so the phases read as small functions.
class Trainer {
 public:
  Trainer(const RqVaeConfig& config, const TrainOptions& options, RqVaeNetImpl& net,
          std::mt19937_64& rng, const Budget& budget)
      : config_(config),
        options_(options),
        net_(net),
        rng_(rng),
        budget_(&budget),
        books_(config.shared_codebook ? 1 : config.levels),
        epochs_(options.epochs > 0 ? options.epochs : 200),
        best_(options.patience) {}

  Status run(const torch::Tensor& train_x, const torch::Tensor& val_x,
             const ProgressCallback& progress, TrainReport& report);

 private:
  struct StepLosses {
    torch::Tensor total, reconstruction, codebook, commitment;
    Quantized q;
  };

  StepLosses forward(const torch::Tensor& x, bool warmup);
  void kmeans_init(const torch::Tensor& train_x);
  void after_step(const Quantized& q);
  double learning_rate(std::int64_t step) const;
  double validation_loss(const torch::Tensor& val_x, bool warmup);
  void refine_decoder(const torch::Tensor& train_x, const torch::Tensor& val_x,
                      TrainReport& report);

  const RqVaeConfig& config_;
  const TrainOptions& options_;
  RqVaeNetImpl& net_;
  std::mt19937_64& rng_;
  const Budget* budget_;
  const int books_;
  const int epochs_;
  std::int64_t step_ = 0;
  std::int64_t total_steps_ = 1;
  bool codebooks_ready_ = false;
  std::vector<torch::Tensor> last_used_;  // per book [K] int64: last step a code was chosen
  std::vector<torch::Tensor> ema_count_, ema_sum_;
  std::vector<torch::Tensor> epoch_counts_;  // per level [K] int64 usage in this epoch
  std::int64_t restarted_ = 0;
  BestWeights best_;
};

Trainer::StepLosses Trainer::forward(const torch::Tensor& x, bool warmup) {
  StepLosses s;
  torch::Tensor z = net_.encode(x);
  if (warmup) {
    s.reconstruction = (net_.decode(z) - x).pow(2).sum(1).mean();
    s.codebook = torch::zeros({});
    s.commitment = torch::zeros({});
    s.total = s.reconstruction;
    return s;
  }
  s.q = net_.quantize(z, /*with_losses=*/true);
  // Straight-through: the decoder sees the quantised latent, the encoder gets its gradient.
  torch::Tensor z_st = z + (s.q.quantized - z).detach();
  s.reconstruction = (net_.decode(z_st) - x).pow(2).sum(1).mean();
  s.codebook = options_.codebook_update == CodebookUpdate::kGradient ? s.q.codebook_loss.sum()
                                                                     : torch::zeros({});
  s.commitment = s.q.commitment_loss.sum();
  s.total = s.reconstruction + s.codebook + config_.beta * s.commitment;
  return s;
}

void Trainer::kmeans_init(const torch::Tensor& train_x) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = train_x.size(0);
  torch::Tensor sample = train_x;
  if (static_cast<std::size_t>(n) > options_.kmeans_sample) {
    auto rows = shuffled_rows(static_cast<std::size_t>(n), rng_);
    rows.resize(options_.kmeans_sample);
    sample = train_x.index_select(0, index_tensor(rows));
  }
  torch::Tensor residual = net_.encode(sample).contiguous();
  const int K = config_.codebook_size;
  for (int l = 0; l < config_.levels; ++l) {
    if (options_.kmeans_init && l < books_) {
      faiss::ClusteringParameters cp;
      cp.niter = options_.kmeans_iterations;
      cp.seed = static_cast<int>(options_.seed % 1000003) + l;
      cp.min_points_per_centroid = 1;
      cp.max_points_per_centroid = 1 << 30;
      cp.spherical = config_.codebook_distance == CodebookDistance::kCosine;
      faiss::Clustering clustering(config_.latent_dim, K, cp);
      faiss::IndexFlatL2 index(config_.latent_dim);
      clustering.train(residual.size(0), residual.data_ptr<float>(), index);
      net_.codebook(l).copy_(
          torch::from_blob(clustering.centroids.data(), {K, config_.latent_dim}, torch::kFloat32));
    }
    torch::Tensor codes = net_.nearest(l, residual);
    residual = (residual - net_.codebook(l).index_select(0, codes)).contiguous();
  }
  for (int b = 0; b < books_; ++b) {
    last_used_.push_back(torch::full({K}, step_, torch::kInt64));
    ema_count_.push_back(torch::ones({K}));
    ema_sum_.push_back(net_.codebook(b).detach().clone());
  }
  codebooks_ready_ = true;
}

// EMA codebook updates and dead-code restarts, after the optimiser step.
void Trainer::after_step(const Quantized& q) {
  torch::NoGradGuard no_grad;
  const int K = config_.codebook_size;
  const int L = config_.levels;
  std::vector<torch::Tensor> counts(books_), sums(books_);
  for (int l = 0; l < L; ++l) {
    const int b = config_.shared_codebook ? 0 : l;
    torch::Tensor codes = q.codes.select(1, l);
    torch::Tensor c = torch::bincount(codes, {}, K);
    epoch_counts_[l] += c;
    last_used_[b].masked_fill_(c > 0, step_);
    if (options_.codebook_update == CodebookUpdate::kEma) {
      torch::Tensor s = torch::zeros({K, config_.latent_dim}).index_add_(0, codes, q.residuals[l]);
      counts[b] = counts[b].defined() ? counts[b] + c : c.to(torch::kFloat32);
      sums[b] = sums[b].defined() ? sums[b] + s : s;
    }
  }
  if (options_.codebook_update == CodebookUpdate::kEma) {
    const double decay = options_.ema_decay;
    for (int b = 0; b < books_; ++b) {
      ema_count_[b].mul_(decay).add_(counts[b], 1 - decay);
      ema_sum_[b].mul_(decay).add_(sums[b], 1 - decay);
      // Laplace smoothing keeps rarely used codes finite.
      const double total = ema_count_[b].sum().item<double>();
      torch::Tensor smoothed = (ema_count_[b] + 1e-5) / (total + K * 1e-5) * total;
      net_.codebook(b).copy_(ema_sum_[b] / smoothed.unsqueeze(1));
    }
  }
  if (options_.dead_code_steps == 0) return;
  for (int b = 0; b < books_; ++b) {
    torch::Tensor dead = ((step_ - last_used_[b]) >= options_.dead_code_steps).nonzero().flatten();
    const std::int64_t n_dead = dead.size(0);
    if (n_dead == 0) continue;
    // Re-seed from the residuals this level quantises worst: that splits crowded codes, which is
    // also what lowers the collision rate.
    const torch::Tensor& r = q.residuals[b];
    torch::Tensor error =
        (r - net_.codebook(b).index_select(0, q.codes.select(1, b))).pow(2).sum(1);
    const std::int64_t take = std::min<std::int64_t>(n_dead, r.size(0));
    torch::Tensor rows = torch::multinomial(error + 1e-12, take, /*replacement=*/false);
    torch::Tensor targets = dead.slice(0, 0, take);
    torch::Tensor seeds = r.index_select(0, rows);
    net_.codebook(b).index_copy_(0, targets, seeds);
    last_used_[b].index_fill_(0, targets, step_);
    if (options_.codebook_update == CodebookUpdate::kEma) {
      ema_sum_[b].index_copy_(0, targets, seeds);
      ema_count_[b].index_fill_(0, targets, 1.0);
    }
    restarted_ += take;
  }
}

double Trainer::learning_rate(std::int64_t step) const {
  const std::int64_t warm = options_.lr_warmup_steps;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps_ - warm));
  const double by_steps =
      std::min(1.0, static_cast<double>(std::max<std::int64_t>(0, step - warm)) / span);
  return train_impl::scheduled_learning_rate(options_, step,
                                             std::max(by_steps, budget_->fraction()));
}

double Trainer::validation_loss(const torch::Tensor& val_x, bool warmup) {
  if (val_x.size(0) == 0) return 0.0;
  torch::NoGradGuard no_grad;
  double total = 0;
  const std::int64_t n = val_x.size(0);
  for (std::int64_t begin = 0; begin < n; begin += options_.batch_size) {
    torch::Tensor xb = val_x.slice(0, begin, std::min(n, begin + options_.batch_size));
    StepLosses s = forward(xb, warmup);
    // Early stopping watches what users get: the error of the decoded semantic ID. The
    // commitment term is a training regulariser and grows with the latents' scale.
    total += s.reconstruction.item<double>() * static_cast<double>(xb.size(0));
  }
  return total / static_cast<double>(n);
}

// With the encoder and codebooks frozen, every item's SID is fixed; the decoder is then fitted to
// map those exact SIDs back to their items (during joint training the codes kept moving under it).
void Trainer::refine_decoder(const torch::Tensor& train_x, const torch::Tensor& val_x,
                             TrainReport& report) {
  if (options_.decoder_refine_epochs == 0) return;
  torch::Tensor train_z, val_z;
  {
    torch::NoGradGuard no_grad;
    train_z = net_.quantize(net_.encode(train_x), false).quantized;
    val_z = net_.quantize(net_.encode(val_x), false).quantized;
  }
  torch::optim::AdamW optimizer(
      net_.decoder->parameters(),
      torch::optim::AdamWOptions(options_.learning_rate * options_.min_lr_ratio)
          .weight_decay(options_.weight_decay));
  auto val_loss = [&] {
    torch::NoGradGuard no_grad;
    if (val_x.size(0) == 0) return 0.0;
    return (net_.decode(val_z) - val_x).pow(2).sum(1).mean().item<double>();
  };
  BestWeights refine_best(options_.patience);
  refine_best.offer(val_loss(), /*always=*/true, net_);
  const std::int64_t n = train_x.size(0);
  const std::int64_t batch = std::min<std::int64_t>(options_.batch_size, n);
  net_.train();
  for (int epoch = 0; epoch < options_.decoder_refine_epochs && !budget_->spent(); ++epoch) {
    auto order = index_tensor(shuffled_rows(static_cast<std::size_t>(n), rng_));
    // The time budget covers refinement too: a spent budget ends the epoch early.
    for (std::int64_t begin = 0; begin < n && !budget_->spent(); begin += batch) {
      torch::Tensor rows = order.slice(0, begin, std::min(n, begin + batch));
      torch::Tensor loss =
          (net_.decode(train_z.index_select(0, rows)) - train_x.index_select(0, rows))
              .pow(2)
              .sum(1)
              .mean();
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
    ++report.decoder_refine_epochs;
    if (refine_best.offer(val_loss(), /*always=*/val_x.size(0) == 0, net_)) break;
  }
  refine_best.restore(net_);
}

Status Trainer::run(const torch::Tensor& train_x, const torch::Tensor& val_x,
                    const ProgressCallback& progress, TrainReport& report) {
  auto elapsed = [&] { return budget_->elapsed(); };

  const std::int64_t n = train_x.size(0);
  const std::int64_t batch = std::min<std::int64_t>(options_.batch_size, n);
  const std::int64_t steps_per_epoch = (n + batch - 1) / batch;
  total_steps_ = steps_per_epoch * epochs_;
  if (options_.max_steps > 0) total_steps_ = std::min(total_steps_, options_.max_steps);

  std::vector<torch::Tensor> network_params, codebook_params;
  for (const auto& item : net_.named_parameters()) {
    const bool is_codebook = item.key().rfind("codebook_", 0) == 0;
    if (!is_codebook)
      network_params.push_back(item.value());
    else if (options_.codebook_update == CodebookUpdate::kGradient)
      codebook_params.push_back(item.value());
    else
      item.value().set_requires_grad(false);
  }
  auto optimizer = make_optimizer(options_, network_params, codebook_params);
  net_.train();

  report.stop_reason = "epochs";
  for (int epoch = 1; epoch <= epochs_; ++epoch) {
    const bool warmup = epoch <= options_.warmup_epochs;
    if (!warmup && !codebooks_ready_) kmeans_init(train_x);
    epoch_counts_.assign(config_.levels, torch::zeros({config_.codebook_size}, torch::kInt64));
    const std::int64_t restarted_before = restarted_;
    auto order = shuffled_rows(static_cast<std::size_t>(n), rng_);
    double sum_total = 0, sum_rec = 0, sum_cb = 0, sum_commit = 0;
    std::int64_t batches = 0;
    bool stop = false;
    for (std::int64_t begin = 0; begin < n && !stop; begin += batch) {
      std::vector<std::int64_t> rows(order.begin() + begin,
                                     order.begin() + std::min(n, begin + batch));
      torch::Tensor xb = train_x.index_select(0, index_tensor(rows));
      StepLosses s = forward(xb, warmup);
      optimizer->zero_grad();
      s.total.backward();
      if (options_.grad_clip > 0) {
        torch::nn::utils::clip_grad_norm_(net_.parameters(), options_.grad_clip);
      }
      const double lr = learning_rate(step_);
      for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
      optimizer->step();
      if (!warmup) after_step(s.q);
      ++step_;
      ++batches;
      sum_total += s.total.item<double>();
      sum_rec += s.reconstruction.item<double>();
      sum_cb += s.codebook.item<double>();
      sum_commit += s.commitment.item<double>();
      if (options_.max_steps > 0 && step_ >= options_.max_steps) {
        report.stop_reason = "max_steps";
        stop = true;
      } else if (budget_->spent()) {
        report.stop_reason = "time_budget";
        stop = true;
      }
    }
    net_.eval();
    TrainProgress p;
    p.epoch = epoch;
    p.epochs = epochs_;
    p.step = step_;
    p.warmup = warmup;
    p.train_loss = sum_total / static_cast<double>(batches);
    p.reconstruction_loss = sum_rec / static_cast<double>(batches);
    p.codebook_loss = sum_cb / static_cast<double>(batches);
    p.commitment_loss = sum_commit / static_cast<double>(batches);
    p.validation_loss = validation_loss(val_x, warmup);
    p.learning_rate = learning_rate(step_);
    if (!warmup) {
      for (const auto& counts : epoch_counts_) {
        p.used_fraction.push_back((counts > 0).sum().item<double>() / config_.codebook_size);
      }
    }
    if (!warmup) train_impl::epoch_health(net_, config_, train_x, val_x, p);
    p.dead_codes_restarted = restarted_ - restarted_before;
    p.elapsed_seconds = elapsed();
    p.eta_seconds = p.elapsed_seconds / epoch * (epochs_ - epoch);
    net_.train();
    report.history.push_back(p);
    report.epochs_run = epoch;

    if (!warmup) {
      // Without a validation split the last epoch counts as the best.
      if (best_.offer(p.validation_loss, /*always=*/val_x.size(0) == 0, net_)) {
        report.stop_reason = "early_stopping";
        stop = true;
      }
    }
    if (progress && !progress(p)) {
      report.stop_reason = "callback";
      stop = true;
    }
    if (stop) break;
  }
  if (!codebooks_ready_) kmeans_init(train_x);  // stopped during warm-up: still a usable model
  best_.restore(net_);
  refine_decoder(train_x, val_x, report);
  net_.eval();
  report.steps = step_;
  return Status::ok();
}

}  // namespace

Result<TrainResult> train_rqvae(const RqVaeConfig& config, const TrainOptions& options,
                                std::size_t n, const float* x, const ProgressCallback& progress) {
  SEMID_RETURN_IF_ERROR(config.validate());
  SEMID_RETURN_IF_ERROR(options.validate());
  SEMID_RETURN_IF_ERROR(check_finite(n, static_cast<std::size_t>(config.dim), x));
  ScopedThreads threads(options.threads);
  Budget budget(options.time_budget_seconds);
  std::mt19937_64 rng(options.seed);

  torch::Tensor all = to_tensor(n, static_cast<std::size_t>(config.dim), x);
  if (config.normalizes_input()) all = normalize_rows(all);
  auto rows = shuffled_rows(n, rng);
  const auto n_val =
      static_cast<std::size_t>(std::floor(static_cast<double>(n) * options.validation_fraction));
  const std::size_t n_train = n - n_val;
  if (n_train < static_cast<std::size_t>(config.codebook_size)) {
    return Status::invalid_argument(
        "too few training items: " + std::to_string(n_train) + " after holding out " +
        std::to_string(n_val) + " for validation, but codebook_size = " +
        std::to_string(config.codebook_size) + " needs at least that many for k-means");
  }
  std::vector<std::int64_t> val_rows(rows.begin(),
                                     rows.begin() + static_cast<std::ptrdiff_t>(n_val));
  std::vector<std::int64_t> train_rows(rows.begin() + static_cast<std::ptrdiff_t>(n_val),
                                       rows.end());

  SEMID_ASSIGN_OR_RETURN(auto model, RqVae::create(config, options.seed));
  TrainResult result;
  const RqVaeConfig& resolved = model->config();
  if (budget.limited()) {
    // The budget also covers the health pass over every item after training: its cost does not
    // depend on the weights, so timing it on a sample of the untrained model tells how much to
    // hold back (plus one sample pass for the trainer's last measurement).
    const std::size_t sample = std::min<std::size_t>(n, train_impl::kHealthSample);
    const double before = budget.elapsed();
    SEMID_RETURN_IF_ERROR(evaluate_health(*model, sample, x).status());
    const double per_row = (budget.elapsed() - before) / static_cast<double>(sample);
    budget.reserve(per_row * static_cast<double>(n + sample));
  }
  SEMID_RETURN_IF_ERROR(torch_guarded("training", [&] {
    if (resolved.residual()) {
      // The residual model is the catalogue's tokenizer: search ranks the decoded catalogue, so
      // it trains on every item; a fixed sample of them (the head of the shuffled rows) measures
      // progress and picks the best epoch.
      torch::Tensor shuffled = all.index_select(0, index_tensor(rows));
      torch::Tensor monitor =
          shuffled.slice(0, 0, std::min(train_impl::kHealthSample, shuffled.size(0)));
      return train_impl::train_residual(resolved, options, model->impl().network(), all, shuffled,
                                        monitor, progress, budget, rng, result.report);
    }
    // The MLP schedule holds out a validation split for early stopping.
    torch::Tensor train_x = all.index_select(0, index_tensor(train_rows));
    torch::Tensor val_x = all.index_select(0, index_tensor(val_rows));
    Trainer trainer(resolved, options, model->impl().network(), rng, budget);
    return trainer.run(train_x, val_x, progress, result.report);
  }));
  model->refresh_content_hash();

  SEMID_ASSIGN_OR_RETURN(auto health, evaluate_health(*model, n, x));
  result.report.codes = health.first;
  result.report.reconstruction = health.second;
  result.report.train_seconds = budget.elapsed();
  result.report.budget_reserved_seconds = budget.reserved();
  result.model = std::move(model);
  return result;
}

Result<std::pair<CodeHealth, ReconstructionQuality>> evaluate_health(const Quantizer& q,
                                                                     std::size_t n,
                                                                     const float* x) {
  const auto d = static_cast<std::size_t>(q.dim());
  std::vector<std::int32_t> codes(n * static_cast<std::size_t>(q.levels()));
  SEMID_RETURN_IF_ERROR(q.encode(n, x, codes.data()));
  std::vector<float> decoded(n * d);
  SEMID_RETURN_IF_ERROR(q.decode(n, codes.data(), decoded.data()));
  std::vector<float> reference(x, x + n * d);
  if (q.metric() == Metric::kCosine) faiss::fvec_renorm_L2(d, n, reference.data());
  return std::make_pair(code_health(n, q.levels(), q.codebook_size(), codes.data()),
                        reconstruction_quality(n, d, reference.data(), decoded.data()));
}

namespace train_impl {

std::vector<std::int64_t> shuffled_rows(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::int64_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  std::shuffle(rows.begin(), rows.end(), rng);
  return rows;
}

torch::Tensor index_tensor(const std::vector<std::int64_t>& rows) {
  return torch::tensor(rows, torch::kInt64);
}

double scheduled_learning_rate(const TrainOptions& o, std::int64_t step, double progress) {
  const double peak = o.learning_rate;
  if (step < o.lr_warmup_steps) {
    return peak * static_cast<double>(step + 1) / static_cast<double>(o.lr_warmup_steps);
  }
  const double t = std::clamp(progress, 0.0, 1.0);
  const double low = peak * o.min_lr_ratio;
  return low + 0.5 * (peak - low) * (1.0 + std::cos(M_PI * t));
}

void epoch_health(RqVaeNetImpl& net, const RqVaeConfig& config, const torch::Tensor& train_x,
                  const torch::Tensor& val_x, TrainProgress& p) {
  torch::NoGradGuard no_grad;
  // train_x rows are already in random order: its head is a fixed random sample.
  torch::Tensor sample = train_x.slice(0, 0, std::min(kHealthSample, train_x.size(0)));
  torch::Tensor codes =
      net.quantize(net.encode(sample), false).codes.to(torch::kInt32).contiguous();
  p.codes = code_health(static_cast<std::size_t>(sample.size(0)), config.levels,
                        config.codebook_size, codes.data_ptr<std::int32_t>());
  if (val_x.size(0) == 0) return;
  torch::Tensor decoded = net.decode(net.quantize(net.encode(val_x), false).quantized).contiguous();
  torch::Tensor reference = val_x.contiguous();
  p.validation_reconstruction = reconstruction_quality(
      static_cast<std::size_t>(val_x.size(0)), static_cast<std::size_t>(val_x.size(1)),
      reference.data_ptr<float>(), decoded.data_ptr<float>());
}

}  // namespace train_impl
}  // namespace semid
