#include "index/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "index/file_util.h"
#include "index/vecs_io.h"
#include "tests/index/model_test_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

RqVaeConfig config_for(int dim, int levels, int codebook_size) {
  RqVaeConfig c;
  c.dim = dim;
  c.hidden = {64, 32};
  c.latent_dim = 8;
  c.architecture = RqVaeArchitecture::kMlp;
  c.activation = Activation::kReLU;
  c.beam_size = 1;
  c.levels = levels;
  c.codebook_size = codebook_size;
  return c;
}

TrainOptions quick_options(int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.warmup_epochs = 3;
  o.batch_size = 256;
  o.lr_warmup_steps = 20;
  return o;
}

TEST(TrainOptions, ValidatesEveryRange) {
  TrainOptions o;
  EXPECT_TRUE(o.validate().is_ok());
  o.batch_size = 0;
  EXPECT_NE(o.validate().message().find("batch_size"), std::string::npos);
  o = TrainOptions{};
  o.validation_fraction = 0.7;
  EXPECT_NE(o.validate().message().find("validation_fraction"), std::string::npos);
  o = TrainOptions{};
  o.ema_decay = 1.0;
  EXPECT_NE(o.validate().message().find("ema_decay"), std::string::npos);
  EXPECT_FALSE(parse_optimizer("sgd").is_ok());
  EXPECT_EQ(*parse_optimizer("adagrad"), OptimizerKind::kAdagrad);
}

TEST(Trainer, UsesEveryCodeOnClusteredData) {
  auto x = testing::clustered_data(3000, 32, 16, 11, 16);
  auto result = train_rqvae(config_for(32, 2, 16), quick_options(30), x.rows, x.data.data());
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  const auto& report = result->report;
  ASSERT_EQ(report.codes.levels.size(), 2u);
  for (const auto& level : report.codes.levels) EXPECT_GE(level.used_fraction, 0.9);
  EXPECT_GT(report.reconstruction.mean_cosine, 0.8);
  EXPECT_EQ(report.history.size(), static_cast<std::size_t>(report.epochs_run));
  EXPECT_TRUE(report.history.front().warmup);
  EXPECT_FALSE(report.history.back().warmup);
}

// Without the k-means start the codebooks begin as tiny random placeholders: every latent is
// nearest to a handful of them (a collapsed start). Dead-code restarts must bring the levels back
// to (nearly) every code, where training without them stays collapsed.
TEST(Trainer, ACollapsedStartRecoversThroughDeadCodeRestarts) {
  auto x = testing::clustered_data(3000, 32, 16, 14, 16);
  TrainOptions o = quick_options(30);
  o.kmeans_init = false;
  o.dead_code_steps = 0;
  auto collapsed = train_rqvae(config_for(32, 2, 16), o, x.rows, x.data.data());
  ASSERT_TRUE(collapsed.is_ok()) << collapsed.status().to_string();
  o.dead_code_steps = 20;
  auto recovered = train_rqvae(config_for(32, 2, 16), o, x.rows, x.data.data());
  ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
  std::int64_t restarts = 0;
  for (const auto& p : recovered->report.history) restarts += p.dead_codes_restarted;
  EXPECT_GT(restarts, 0);
  const auto& first_collapsed = collapsed->report.codes.levels[0];
  const auto& first_recovered = recovered->report.codes.levels[0];
  EXPECT_LT(first_collapsed.used_fraction, 0.9);
  for (const auto& level : recovered->report.codes.levels) EXPECT_GE(level.used_fraction, 0.9);
  EXPECT_GT(first_recovered.perplexity, first_collapsed.perplexity);
}

TEST(Trainer, EmaCodebooksAlsoUseEveryCode) {
  auto x = testing::clustered_data(3000, 32, 16, 12, 16);
  TrainOptions o = quick_options(30);
  o.codebook_update = CodebookUpdate::kEma;
  auto result = train_rqvae(config_for(32, 2, 16), o, x.rows, x.data.data());
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  for (const auto& level : result->report.codes.levels) EXPECT_GE(level.used_fraction, 0.9);
}

TEST(Trainer, SharedCosineCodebookTrainsAndReportsEpochHealth) {
  auto x = testing::clustered_data(2000, 32, 16, 13, 16);
  RqVaeConfig c = config_for(32, 2, 32);
  c.shared_codebook = true;
  c.codebook_distance = CodebookDistance::kCosine;
  auto result = train_rqvae(c, quick_options(12), x.rows, x.data.data());
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  const auto& last = result->report.history.back();
  ASSERT_EQ(last.codes.levels.size(), 2u);
  EXPECT_GT(last.codes.items, 0u);
  EXPECT_GT(last.validation_reconstruction.mean_cosine, 0.0);
  EXPECT_GE(result->report.codes.levels[0].used_fraction, 0.5);
  auto json = result->report.to_json();
  EXPECT_TRUE(json["history"].back().contains("codes"));
}

TEST(Trainer, SameSeedGivesIdenticalModelFiles) {
  auto x = testing::clustered_data(1000, 16, 32, 5);
  auto a = train_rqvae(config_for(16, 2, 16), quick_options(8), x.rows, x.data.data());
  auto b = train_rqvae(config_for(16, 2, 16), quick_options(8), x.rows, x.data.data());
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(*a->model->to_bytes(), *b->model->to_bytes());
  EXPECT_EQ(a->model->content_hash(), b->model->content_hash());
  TrainOptions other = quick_options(8);
  other.seed = 43;
  auto c = train_rqvae(config_for(16, 2, 16), other, x.rows, x.data.data());
  ASSERT_TRUE(c.is_ok());
  EXPECT_NE(a->model->content_hash(), c->model->content_hash());
}

TEST(Trainer, StopsOnStepBudgetAndCallback) {
  auto x = testing::clustered_data(1000, 16, 32, 5);
  TrainOptions o = quick_options(50);
  o.max_steps = 20;
  auto r = train_rqvae(config_for(16, 2, 16), o, x.rows, x.data.data());
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->report.stop_reason, "max_steps");
  EXPECT_EQ(r->report.steps, 20);
  int calls = 0;
  auto s = train_rqvae(config_for(16, 2, 16), quick_options(50), x.rows, x.data.data(),
                       [&](const TrainProgress&) { return ++calls < 5; });
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->report.stop_reason, "callback");
  EXPECT_EQ(calls, 5);
}

TEST(Trainer, RejectsTooFewItemsAndNonFiniteData) {
  auto x = testing::clustered_data(100, 16, 4, 5);
  auto r = train_rqvae(config_for(16, 2, 256), quick_options(2), x.rows, x.data.data());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("too few training items"), std::string::npos);
  x.data[17] = std::numeric_limits<float>::infinity();
  r = train_rqvae(config_for(16, 2, 8), quick_options(2), x.rows, x.data.data());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("vector 1"), std::string::npos);
}

// The PyTorch peer's first level collapsed to 11 of 256 codes on this data set: k-means ran on
// an untrained encoder's outputs. A short training run here must already use >= 90% per level.
TEST(Trainer, FirstLevelDoesNotCollapseOnMovieLens) {
  const auto path =
      testing::datasets_dir() / "movielens-use512" / "mllatestsmall_use512_base.fvecs";
  SEMID_REQUIRE_DATASET(path);
  auto x = read_float_vectors(path.string());
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  RqVaeConfig config;  // the default: residual architecture, started at residual k-means
  config.dim = 512;
  TrainOptions o;
  o.epochs = 2;
  auto result = train_rqvae(config, o, x->rows, x->data.data());
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  for (const auto& level : result->report.codes.levels) EXPECT_GE(level.used_fraction, 0.9);
  EXPECT_LE(result->report.codes.collision_rate, 0.10);
}

}  // namespace
}  // namespace semid
