#include "index/code_counts.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace semid {
namespace {

void expect_same(const CodeHealth& a, const CodeHealth& b) {
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.unique_sids, b.unique_sids);
  EXPECT_EQ(a.max_collision_group, b.max_collision_group);
  EXPECT_DOUBLE_EQ(a.collision_rate, b.collision_rate);
  ASSERT_EQ(a.levels.size(), b.levels.size());
  for (std::size_t l = 0; l < a.levels.size(); ++l) {
    EXPECT_EQ(a.levels[l].used_codes, b.levels[l].used_codes) << l;
    EXPECT_NEAR(a.levels[l].perplexity, b.levels[l].perplexity, 1e-9) << l;
    EXPECT_NEAR(a.levels[l].entropy_bits, b.levels[l].entropy_bits, 1e-9) << l;
    EXPECT_DOUBLE_EQ(a.levels[l].top_code_share, b.levels[l].top_code_share) << l;
  }
}

TEST(CodeCounts, FollowAddsAndRemovesLikeCodeHealthFromScratch) {
  // 2 x 4 codes: 16 SIDs for up to 60 items, so groups grow, shrink and vanish.
  const int L = 2, K = 4;
  CodeCounts counts(L, K);
  std::map<int, std::vector<std::int32_t>> items;  // id -> SID
  std::map<std::vector<std::int32_t>, std::uint64_t> groups;
  std::mt19937 rng(3);
  for (int step = 0; step < 2000; ++step) {
    const int id = static_cast<int>(rng() % 60);
    if (auto it = items.find(id); it != items.end()) {
      counts.remove(it->second, groups[it->second]--);
      items.erase(it);
    } else {
      std::vector<std::int32_t> sid = {static_cast<std::int32_t>(rng() % K),
                                       static_cast<std::int32_t>(rng() % 2)};
      counts.add(sid, groups[sid]++);
      items[id] = sid;
    }
    if (step % 97 != 0) continue;
    std::vector<std::int32_t> flat;
    for (const auto& [i, sid] : items) flat.insert(flat.end(), sid.begin(), sid.end());
    expect_same(counts.health(), code_health(items.size(), L, K, flat.data()));
    std::uint64_t colliding_groups = 0;
    for (const auto& [sid, size] : groups) colliding_groups += size > 1;
    EXPECT_EQ(counts.collision_groups(), colliding_groups);
  }
  EXPECT_EQ(counts.items(), items.size());
}

TEST(CodeCounts, EmptyHasNoItemsAndNoGroups) {
  const CodeHealth h = CodeCounts(3, 8).health();
  EXPECT_EQ(h.items, 0u);
  EXPECT_EQ(h.unique_sids, 0u);
  EXPECT_EQ(h.max_collision_group, 0u);
  EXPECT_EQ(h.collision_rate, 0);
  ASSERT_EQ(h.levels.size(), 3u);
  EXPECT_EQ(h.levels[0].used_codes, 0);
}

}  // namespace
}  // namespace semid
