#include "index/relocate.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <vector>

#include "index/rq_kmeans.h"
#include "tests/index/model_test_util.h"

namespace semid {
namespace {

using testing::clustered_data;

constexpr int kDim = 8;

std::unique_ptr<RqKMeans> model(int levels, int codebook_size) {
  const auto data = clustered_data(800, kDim, codebook_size, 4);
  RqKMeansConfig config{
      .dim = kDim, .levels = levels, .codebook_size = codebook_size, .beam_size = 1};
  RqKMeansTrainOptions options{.iterations = 8, .seed = 1, .threads = 1};
  auto trained = RqKMeans::train(config, options, data.rows, data.data.data());
  EXPECT_TRUE(trained.is_ok()) << trained.status().to_string();
  return std::move(trained).value();
}

std::vector<float> latent_of(const Quantizer& m, const std::vector<float>& x) {
  std::vector<float> z(static_cast<std::size_t>(m.latent_dim()));
  EXPECT_TRUE(m.encode_latent(1, x.data(), z.data()).is_ok());
  return z;
}

std::vector<std::int32_t> sid_of(const Quantizer& m, const std::vector<float>& x) {
  std::vector<std::int32_t> sid(static_cast<std::size_t>(m.levels()));
  EXPECT_TRUE(m.encode(1, x.data(), sid.data()).is_ok());
  return sid;
}

float l2(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (std::size_t j = 0; j < a.size(); ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

TEST(SidRelocator, RankStartsWithTheModelsOwnCode) {
  auto m = model(2, 8);
  const SidRelocator relocator(*m);
  const auto data = clustered_data(50, kDim, 8, 9);
  for (std::size_t i = 0; i < data.rows; ++i) {
    std::vector<float> x(data.data.begin() + i * kDim, data.data.begin() + (i + 1) * kDim);
    const auto sid = sid_of(*m, x);
    const auto z = latent_of(*m, x);
    std::vector<std::int32_t> order(8);
    for (int level = 0; level < 2; ++level) {
      relocator.rank(z.data(), sid.data(), level, order.data());
      EXPECT_EQ(order[0], sid[level]) << "row " << i << " level " << level;
      EXPECT_EQ(std::set<std::int32_t>(order.begin(), order.end()).size(), 8u);
    }
  }
}

TEST(SidRelocator, AFreeSidIsKept) {
  auto m = model(2, 8);
  const SidRelocator relocator(*m);
  const std::vector<float> x = clustered_data(1, kDim, 8, 5).data;
  auto sid = sid_of(*m, x);
  const auto own = sid;
  const auto level = relocator.place(latent_of(*m, x).data(), sid.data(),
                                     [](std::span<const std::int32_t>) { return false; });
  ASSERT_TRUE(level.has_value());
  EXPECT_EQ(*level, 2);
  EXPECT_EQ(sid, own);
}

TEST(SidRelocator, ATakenSidMovesToTheNearestFreeLastCode) {
  auto m = model(2, 8);
  const SidRelocator relocator(*m);
  const std::vector<float> x = clustered_data(1, kDim, 8, 5).data;
  const auto own = sid_of(*m, x);
  const auto z = latent_of(*m, x);
  // The own SID and the next-best last code are taken.
  std::vector<std::int32_t> order(8);
  relocator.rank(z.data(), own.data(), 1, order.data());
  std::set<std::vector<std::int32_t>> taken = {own, {own[0], order[1]}};
  auto sid = own;
  const auto level = relocator.place(z.data(), sid.data(), [&](std::span<const std::int32_t> s) {
    return taken.contains({s.begin(), s.end()});
  });
  ASSERT_TRUE(level.has_value());
  EXPECT_EQ(*level, 1);
  EXPECT_EQ(sid, (std::vector<std::int32_t>{own[0], order[2]}));
  // Nearest among the free ones: no free last code leaves a smaller residual.
  const auto book = m->codebook(1), first = m->codebook(0);
  std::vector<float> residual(kDim);
  for (int j = 0; j < kDim; ++j) residual[j] = z[j] - first[own[0] * kDim + j];
  const auto word = [&](int c) {
    return std::vector<float>(book.begin() + c * kDim, book.begin() + (c + 1) * kDim);
  };
  for (int c = 0; c < 8; ++c) {
    if (taken.contains({own[0], c})) continue;
    EXPECT_LE(l2(residual, word(sid[1])), l2(residual, word(c)) + 1e-6f) << "code " << c;
  }
}

TEST(SidRelocator, AFullLastLevelCellMovesUpALevel) {
  auto m = model(3, 4);
  const SidRelocator relocator(*m, /*siblings=*/2);
  const std::vector<float> x = clustered_data(1, kDim, 4, 7).data;
  const auto own = sid_of(*m, x);
  const auto z = latent_of(*m, x);
  // Every SID under the own (c1, c2) prefix is taken.
  const auto taken = [&](std::span<const std::int32_t> s) {
    return s[0] == own[0] && s[1] == own[1];
  };
  auto sid = own;
  const auto level = relocator.place(z.data(), sid.data(), taken);
  ASSERT_TRUE(level.has_value());
  EXPECT_EQ(*level, 1);
  EXPECT_EQ(sid[0], own[0]);
  EXPECT_NE(sid[1], own[1]);
  // The nearest sibling at level 2 comes first.
  std::vector<std::int32_t> order(4);
  relocator.rank(z.data(), own.data(), 1, order.data());
  EXPECT_EQ(sid[1], order[1]);
}

TEST(SidRelocator, NothingFreeNearbyReturnsNulloptAndLeavesTheSid) {
  auto m = model(2, 4);
  const SidRelocator relocator(*m);
  const std::vector<float> x = clustered_data(1, kDim, 4, 3).data;
  auto sid = sid_of(*m, x);
  const auto own = sid;
  const auto level = relocator.place(latent_of(*m, x).data(), sid.data(),
                                     [](std::span<const std::int32_t>) { return true; });
  EXPECT_FALSE(level.has_value());
  EXPECT_EQ(sid, own);
}

TEST(SidRelocator, PlacingACatalogueGivesUniqueSidsWhileCapacityAllows) {
  auto m = model(2, 8);  // 64 SIDs
  const SidRelocator relocator(*m);
  const auto data = clustered_data(60, kDim, 8, 11);
  std::set<std::vector<std::int32_t>> taken;
  std::size_t moved = 0;
  for (std::size_t i = 0; i < data.rows; ++i) {
    std::vector<float> x(data.data.begin() + i * kDim, data.data.begin() + (i + 1) * kDim);
    auto sid = sid_of(*m, x);
    const auto level =
        relocator.place(latent_of(*m, x).data(), sid.data(), [&](std::span<const std::int32_t> s) {
          return taken.contains({s.begin(), s.end()});
        });
    ASSERT_TRUE(level.has_value()) << "row " << i;
    moved += *level < 2;
    EXPECT_TRUE(taken.insert(sid).second);
  }
  EXPECT_GT(moved, 0u);
  EXPECT_EQ(taken.size(), data.rows);
}

TEST(SidRelocator, PlacingABatchJointlyGivesUniqueSidsAndAvoidsTakenOnes) {
  auto m = model(2, 8);  // 64 SIDs
  const SidRelocator relocator(*m);
  const auto data = clustered_data(60, kDim, 8, 11);
  const std::size_t n = data.rows;
  std::vector<std::int32_t> sids(n * 2);
  std::vector<float> latents(n * static_cast<std::size_t>(m->latent_dim()));
  ASSERT_TRUE(m->encode(n, data.data.data(), sids.data()).is_ok());
  ASSERT_TRUE(m->encode_latent(n, data.data.data(), latents.data()).is_ok());
  const std::vector<std::int32_t> natural = sids;
  // Two SIDs are held by items placed before the batch.
  const std::set<std::vector<std::int32_t>> before = {{sids[0], sids[1]}, {sids[2], sids[3]}};
  const auto levels =
      relocator.place_batch(n, latents.data(), sids.data(), [&](std::span<const std::int32_t> s) {
        return before.contains({s.begin(), s.end()});
      });
  ASSERT_EQ(levels.size(), n);
  std::set<std::vector<std::int32_t>> placed = before;
  std::size_t moved = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(levels[i].has_value()) << "row " << i;  // 62 items, 62 free SIDs
    const std::vector<std::int32_t> sid(sids.begin() + i * 2, sids.begin() + i * 2 + 2);
    EXPECT_TRUE(placed.insert(sid).second) << "row " << i << " shares a SID";
    const bool kept = sid[0] == natural[i * 2] && sid[1] == natural[i * 2 + 1];
    EXPECT_EQ(*levels[i] == 2, kept) << "row " << i;
    moved += !kept;
  }
  EXPECT_GT(moved, 0u);
  // Items alone under their prefix, on a SID nobody held, keep it.
  std::map<std::int32_t, int> per_prefix;
  for (std::size_t i = 0; i < n; ++i) ++per_prefix[natural[i * 2]];
  for (std::size_t i = 0; i < n; ++i) {
    const std::vector<std::int32_t> own(natural.begin() + i * 2, natural.begin() + i * 2 + 2);
    if (per_prefix[own[0]] == 1 && !before.contains(own)) {
      EXPECT_EQ(*levels[i], 2) << i;
    }
  }
}

}  // namespace
}  // namespace semid
