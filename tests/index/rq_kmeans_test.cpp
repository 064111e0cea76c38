#include "index/rq_kmeans.h"

#include <gtest/gtest.h>

#include "index/trainer.h"
#include "tests/index/model_test_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

TEST(RqKMeans, RejectsNonPowerOfTwoAndTooFewItems) {
  RqKMeansConfig c{.dim = 8, .levels = 2, .codebook_size = 100};
  EXPECT_NE(c.validate().message().find("power of two"), std::string::npos);
  c.codebook_size = 64;
  auto x = testing::clustered_data(10, 8, 2, 1);
  auto r = RqKMeans::train(c, {}, x.rows, x.data.data());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("too few"), std::string::npos);
}

TEST(RqKMeans, TrainsSavesLoadsAndEncodesIdentically) {
  testing::TempDir dir;
  auto x = testing::clustered_data(2000, 16, 16, 2, 16);
  RqKMeansConfig c{.dim = 16, .levels = 2, .codebook_size = 256, .metric = Metric::kL2};
  auto model = RqKMeans::train(c, {}, x.rows, x.data.data());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto health = evaluate_health(**model, x.rows, x.data.data());
  ASSERT_TRUE(health.is_ok());
  EXPECT_GE(health->first.levels[0].used_fraction, 0.9);
  EXPECT_GT(health->second.mean_cosine, 0.99);

  ASSERT_TRUE((*model)->save(dir.file("rq.safetensors")).is_ok());
  auto loaded = load_quantizer(dir.file("rq.safetensors"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->kind(), "rqkmeans");
  EXPECT_EQ((*loaded)->content_hash(), (*model)->content_hash());
  std::vector<std::int32_t> a(x.rows * 2), b(x.rows * 2);
  ASSERT_TRUE((*model)->encode(x.rows, x.data.data(), a.data()).is_ok());
  ASSERT_TRUE((*loaded)->encode(x.rows, x.data.data(), b.data()).is_ok());
  EXPECT_EQ(a, b);
  std::vector<std::int32_t> bad = {0, 256};
  std::vector<float> out(16);
  EXPECT_EQ((*model)->decode(1, bad.data(), out.data()).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace semid
