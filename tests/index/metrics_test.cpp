#include "index/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace semid {
namespace {

TEST(CodeHealth, CountsUsageCollisionsAndGroups) {
  // 5 items, L = 2, K = 4. Items 0, 1 and 3 share (1, 2); item 2 is (0, 3); item 4 is (1, 0).
  const std::vector<std::int32_t> codes = {1, 2, 1, 2, 0, 3, 1, 2, 1, 0};
  CodeHealth h = code_health(5, 2, 4, codes.data());
  ASSERT_EQ(h.levels.size(), 2u);
  EXPECT_EQ(h.levels[0].used_codes, 2);
  EXPECT_DOUBLE_EQ(h.levels[0].used_fraction, 0.5);
  EXPECT_DOUBLE_EQ(h.levels[0].top_code_share, 0.8);
  EXPECT_EQ(h.levels[1].used_codes, 3);
  EXPECT_DOUBLE_EQ(h.levels[1].top_code_share, 0.6);
  // Level 0 entropy: p = {0.2, 0.8}.
  const double entropy = -(0.2 * std::log(0.2) + 0.8 * std::log(0.8));
  EXPECT_NEAR(h.levels[0].perplexity, std::exp(entropy), 1e-12);
  EXPECT_NEAR(h.levels[0].entropy_bits, entropy / std::log(2.0), 1e-12);
  EXPECT_EQ(h.unique_sids, 3u);
  EXPECT_EQ(h.max_collision_group, 3u);
  EXPECT_DOUBLE_EQ(h.collision_rate, 3.0 / 5.0);
}

TEST(CodeHealth, UniformUsageHasPerplexityK) {
  std::vector<std::int32_t> codes;
  for (int i = 0; i < 8; ++i) codes.push_back(i);
  CodeHealth h = code_health(8, 1, 8, codes.data());
  EXPECT_NEAR(h.levels[0].perplexity, 8.0, 1e-9);
  EXPECT_NEAR(h.levels[0].entropy_bits, 3.0, 1e-9);
  EXPECT_DOUBLE_EQ(h.collision_rate, 0.0);
  EXPECT_EQ(h.max_collision_group, 1u);
}

TEST(ReconstructionQuality, KnownValues) {
  const std::vector<float> x = {1, 0, 0, 1};
  const std::vector<float> y = {1, 0, 1, 0};  // row 0 exact, row 1 orthogonal
  auto q = reconstruction_quality(2, 2, x.data(), y.data());
  EXPECT_DOUBLE_EQ(q.mse, 0.5);
  EXPECT_DOUBLE_EQ(q.mae, 0.5);
  EXPECT_DOUBLE_EQ(q.mean_cosine, 0.5);
}

}  // namespace
}  // namespace semid

namespace semid {
namespace {

TEST(RecallAtK, CountsHitsAmongTheFirstKAndIgnoresPadding) {
  Int32Matrix results(2, 3), truth(2, 4);
  results.data = {5, 1, 9, /**/ 2, -1, 7};
  truth.data = {1, 5, 3, 9, /**/ 7, 8, 2, 0};
  // k = 2: query 0 finds both of {1, 5}; query 1's {2, padding} holds none of {7, 8}.
  EXPECT_DOUBLE_EQ(recall_at_k(results, truth, 2), (2.0 + 0.0) / 4.0);
  // k = 3: query 0 finds 5 and 1 (9 is only 4th in truth); query 1 finds 7 and 2.
  EXPECT_DOUBLE_EQ(recall_at_k(results, truth, 3), (2.0 + 2.0) / 6.0);
}

}  // namespace
}  // namespace semid
