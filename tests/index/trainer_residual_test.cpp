// The residual RQ-VAE's schedule: it starts exactly at residual k-means, only keeps what improves
// its objective, takes L2 data at any scale, and stays inside its time budget.
#include <gtest/gtest.h>

#include <cmath>

#include "index/rq_kmeans.h"
#include "index/trainer.h"
#include "tests/index/model_test_util.h"

namespace semid {
namespace {

RqVaeConfig residual_config(int dim, int levels, int codebook_size, Metric metric) {
  RqVaeConfig c;
  c.dim = dim;
  c.hidden = {64};
  c.levels = levels;
  c.codebook_size = codebook_size;
  c.metric = metric;
  return c;
}

TrainOptions quick(int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.lr_warmup_steps = 10;
  o.batch_size = 128;
  return o;
}

std::vector<std::int32_t> codes_of(const Quantizer& q, const FloatMatrix& x) {
  std::vector<std::int32_t> codes(x.rows * static_cast<std::size_t>(q.levels()));
  EXPECT_TRUE(q.encode(x.rows, x.data.data(), codes.data()).is_ok());
  return codes;
}

double share_equal_rows(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b,
                        std::size_t levels) {
  std::size_t same = 0;
  const std::size_t rows = a.size() / levels;
  for (std::size_t i = 0; i < rows; ++i) {
    same +=
        std::equal(a.begin() + i * levels, a.begin() + (i + 1) * levels, b.begin() + i * levels);
  }
  return static_cast<double>(same) / static_cast<double>(rows);
}

TEST(ResidualTrainer, IdentityStartGivesTheBaselinesSids) {
  auto x = testing::clustered_data(2000, 32, 16, 21, 16);
  const RqVaeConfig config = residual_config(32, 2, 16, Metric::kCosine);
  // Stop at epoch 0: the model is its start.
  auto start = train_rqvae(config, quick(5), x.rows, x.data.data(),
                           [](const TrainProgress& p) { return p.epoch > 0; });
  ASSERT_TRUE(start.is_ok()) << start.status().to_string();
  EXPECT_EQ(start->report.stop_reason, "callback");
  EXPECT_EQ(start->report.history.size(), 1u);
  RqKMeansConfig rq{
      .dim = 32, .levels = 2, .codebook_size = 16, .beam_size = 5, .metric = Metric::kCosine};
  auto baseline = RqKMeans::train(rq, RqKMeansTrainOptions{}, x.rows, x.data.data());
  ASSERT_TRUE(baseline.is_ok()) << baseline.status().to_string();
  const auto a = codes_of(*start->model, x);
  const auto b = codes_of(**baseline, x);
  EXPECT_GE(share_equal_rows(a, b, 2), 0.999);
  // ... and the same reconstructions (the decoder correction starts at zero).
  std::vector<float> ya(32 * 50), yb(32 * 50);
  ASSERT_TRUE(start->model->decode(50, a.data(), ya.data()).is_ok());
  ASSERT_TRUE((*baseline)->decode(50, a.data(), yb.data()).is_ok());
  for (std::size_t i = 0; i < 50; ++i) {
    double dot = 0, nb = 0;
    for (std::size_t j = 0; j < 32; ++j) {
      dot += ya[i * 32 + j] * yb[i * 32 + j];
      nb += yb[i * 32 + j] * yb[i * 32 + j];
    }
    EXPECT_NEAR(dot / std::sqrt(nb), 1.0, 1e-4) << "row " << i;  // ya is a unit vector
  }
}

TEST(ResidualTrainer, KeepsOnlyWhatImprovesItsObjective) {
  auto x = testing::clustered_data(1500, 24, 8, 22, 8, 0.2f);
  auto r = train_rqvae(residual_config(24, 2, 8, Metric::kCosine), quick(6), x.rows, x.data.data());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& h = r->report.history;
  ASSERT_EQ(h.size(), 7u);  // epoch 0 (the start) and six epochs
  EXPECT_EQ(h.front().epoch, 0);
  double best = h.front().validation_loss;
  for (const auto& p : h) best = std::min(best, p.validation_loss);
  EXPECT_LT(best, h.front().validation_loss);  // training moved it
  // Fine-tuning the codebooks kills no code the start used.
  ASSERT_EQ(h.back().codes.levels.size(), 2u);
  for (std::size_t l = 0; l < 2; ++l) {
    EXPECT_GE(h.back().codes.levels[l].used_fraction, h.front().codes.levels[l].used_fraction);
  }
  EXPECT_GE(r->report.reconstruction.mean_cosine,
            h.front().validation_reconstruction.mean_cosine - 0.01);
}

TEST(ResidualTrainer, L2DataTrainsTheSameAtAnyScale) {
  auto x = testing::clustered_data(1500, 16, 8, 23, 8);
  FloatMatrix big = x;
  for (auto& v : big.data) v = v * 255.0f + 100.0f;
  const RqVaeConfig config = residual_config(16, 2, 16, Metric::kL2);
  auto a = train_rqvae(config, quick(3), x.rows, x.data.data());
  auto b = train_rqvae(config, quick(3), big.rows, big.data.data());
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  const auto ca = codes_of(*a->model, x);
  const auto cb = codes_of(*b->model, big);
  EXPECT_GE(share_equal_rows(ca, cb, 2), 0.95);
  // The reconstruction comes back in the input's own scale.
  std::vector<float> yb(big.data.size());
  ASSERT_TRUE(b->model->decode(big.rows, cb.data(), yb.data()).is_ok());
  double err = 0, norm = 0;
  for (std::size_t i = 0; i < yb.size(); ++i) {
    err += (yb[i] - big.data[i]) * (yb[i] - big.data[i]);
    norm += (big.data[i] - 100.0f) * (big.data[i] - 100.0f);
  }
  EXPECT_LT(err / norm, 0.05);
  EXPECT_NEAR(a->report.reconstruction.mse * 255.0 * 255.0, b->report.reconstruction.mse,
              0.1 * b->report.reconstruction.mse);
}

TEST(ResidualTrainer, TimeBudgetCoversEveryPhase) {
  auto x = testing::clustered_data(1500, 16, 8, 24, 8);
  TrainOptions o = quick(50);
  o.time_budget_seconds = 1e-3;  // spent by the residual k-means start
  auto r = train_rqvae(residual_config(16, 2, 16, Metric::kCosine), o, x.rows, x.data.data());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->report.stop_reason, "time_budget");
  EXPECT_EQ(r->report.steps, 0);
  // The MLP schedule's decoder refinement is inside the budget too.
  RqVaeConfig mlp = residual_config(16, 2, 16, Metric::kCosine);
  mlp.architecture = RqVaeArchitecture::kMlp;
  mlp.latent_dim = 8;
  o.warmup_epochs = 1;
  auto m = train_rqvae(mlp, o, x.rows, x.data.data());
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->report.stop_reason, "time_budget");
  EXPECT_EQ(m->report.decoder_refine_epochs, 0);
}

TEST(ResidualTrainer, SavesAndLoadsWithTheSameSids) {
  auto x = testing::clustered_data(1000, 16, 8, 25, 8);
  auto r = train_rqvae(residual_config(16, 3, 8, Metric::kL2), quick(2), x.rows, x.data.data());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto bytes = r->model->to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  auto loaded = RqVae::from_bytes(*bytes);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->config().architecture, RqVaeArchitecture::kResidual);
  EXPECT_EQ((*loaded)->config().beam_size, 5);
  EXPECT_EQ(codes_of(*r->model, x), codes_of(**loaded, x));
  EXPECT_EQ((*loaded)->content_hash(), r->model->content_hash());
}

TEST(ResidualTrainer, AZeroEncoderCorrectionIsSkippedAndATrainedOneApplied) {
  auto x = testing::clustered_data(1000, 16, 8, 26, 8);
  const RqVaeConfig config = residual_config(16, 2, 16, Metric::kCosine);
  const auto latents = [&](const Quantizer& q) {
    std::vector<float> z(x.rows * 16);
    EXPECT_TRUE(q.encode_latent(x.rows, x.data.data(), z.data()).is_ok());
    return z;
  };
  // Default training leaves E at zero: the latents are the unit inputs themselves.
  auto plain = train_rqvae(config, quick(2), x.rows, x.data.data());
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  const auto z = latents(*plain->model);
  for (std::size_t i = 0; i < 20; ++i) {
    double norm = 0;
    for (std::size_t j = 0; j < 16; ++j) norm += x.data[i * 16 + j] * x.data[i * 16 + j];
    for (std::size_t j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(z[i * 16 + j], static_cast<float>(x.data[i * 16 + j] / std::sqrt(norm)));
    }
  }
  // A trained E is applied, in the model that trained it (whose zero check ran before training)
  // as in the same model loaded afresh.
  TrainOptions o = quick(2);
  o.train_encoder = true;
  auto trained = train_rqvae(config, o, x.rows, x.data.data());
  ASSERT_TRUE(trained.is_ok()) << trained.status().to_string();
  auto loaded = RqVae::from_bytes(*trained->model->to_bytes());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const auto zt = latents(*trained->model);
  EXPECT_EQ(zt, latents(**loaded));
  EXPECT_NE(zt, latents(*plain->model));
  EXPECT_EQ(codes_of(*trained->model, x), codes_of(**loaded, x));
}

TEST(ResidualTrainer, RejectsConfigsItCannotStartFrom) {
  RqVaeConfig c = residual_config(16, 2, 12, Metric::kCosine);
  EXPECT_NE(c.validate().message().find("power of two"), std::string::npos);
  c.codebook_size = 16;
  c.latent_dim = 8;
  EXPECT_NE(c.validate().message().find("latent_dim"), std::string::npos);
  c.latent_dim = 0;
  c.beam_size = 0;
  EXPECT_NE(c.validate().message().find("beam_size"), std::string::npos);
}

}  // namespace
}  // namespace semid
