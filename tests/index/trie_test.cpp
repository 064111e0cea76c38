#include "index/trie.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

namespace semid {
namespace {

using Sid = std::vector<std::int32_t>;
// The naive reference: a sorted set of (SID, id), which is exactly trie order.
using Reference = std::set<std::pair<Sid, std::uint64_t>>;

bool under(const Sid& sid, const Sid& prefix) {
  return std::equal(prefix.begin(), prefix.end(), sid.begin());
}

std::vector<std::pair<Sid, std::uint64_t>> reference_items(const Reference& ref,
                                                           const Sid& prefix) {
  std::vector<std::pair<Sid, std::uint64_t>> out;
  for (const auto& entry : ref) {
    if (under(entry.first, prefix)) out.push_back(entry);
  }
  return out;
}

std::vector<SidTrie::Child> reference_children(const Reference& ref, const Sid& prefix) {
  std::map<std::int32_t, std::uint64_t> counts;
  for (const auto& [sid, id] : ref) {
    if (prefix.size() < sid.size() && under(sid, prefix)) ++counts[sid[prefix.size()]];
  }
  std::vector<SidTrie::Child> out;
  for (const auto& [code, count] : counts) out.push_back({code, count});
  return out;
}

int reference_shared(const Reference& ref, const Sid& sid) {
  int best = 0;
  for (const auto& entry : ref) {
    int l = 0;
    while (l < static_cast<int>(sid.size()) &&
           entry.first[static_cast<std::size_t>(l)] == sid[static_cast<std::size_t>(l)])
      ++l;
    best = std::max(best, l);
  }
  return best;
}

Sid random_sid(std::mt19937_64& rng, int levels, int spread) {
  Sid sid(static_cast<std::size_t>(levels));
  for (auto& c : sid) c = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(spread));
  return sid;
}

// Walks the whole listing under `prefix` page by page.
std::vector<std::pair<Sid, std::uint64_t>> list_all(const SidTrie& trie, const Sid& prefix,
                                                    std::size_t limit) {
  std::vector<std::pair<Sid, std::uint64_t>> out;
  std::string cursor;
  const auto L = static_cast<std::size_t>(trie.levels());
  do {
    auto page = trie.items(prefix, cursor, limit);
    EXPECT_TRUE(page.is_ok()) << page.status().to_string();
    if (!page.is_ok()) break;
    EXPECT_LE(page->item_ids.size(), limit);
    for (std::size_t r = 0; r < page->item_ids.size(); ++r) {
      out.emplace_back(Sid(page->codes.begin() + static_cast<std::ptrdiff_t>(r * L),
                           page->codes.begin() + static_cast<std::ptrdiff_t>((r + 1) * L)),
                       page->item_ids[r]);
    }
    cursor = page->next_cursor;
  } while (!cursor.empty());
  return out;
}

TEST(SidTrie, MatchesANaiveReferenceUnderRandomInsertsAndErases) {
  for (int levels : {1, 3}) {
    for (int codebook_size : {4, 300}) {
      auto trie = SidTrie::create(levels, codebook_size);
      ASSERT_TRUE(trie.is_ok());
      Reference ref;
      std::mt19937_64 rng(static_cast<std::uint64_t>(levels * 1000 + codebook_size));
      const int spread = std::min(codebook_size, 5);  // dense enough for shared prefixes
      for (int step = 0; step < 1500; ++step) {
        const Sid sid = random_sid(rng, levels, spread);
        const std::uint64_t id = rng() % 40;
        if (rng() % 3 != 0) {
          const Status s = trie->insert(sid, id);
          const bool fresh = ref.insert({sid, id}).second;
          EXPECT_EQ(s.code(), fresh ? Status::Code::kOk : Status::Code::kAlreadyExists);
        } else {
          const Status s = trie->erase(sid, id);
          const bool present = ref.erase({sid, id}) > 0;
          EXPECT_EQ(s.code(), present ? Status::Code::kOk : Status::Code::kNotFound);
        }
        if (step % 50 != 0) continue;
        ASSERT_EQ(trie->size(), ref.size());
        for (int probe = 0; probe < 10; ++probe) {
          Sid prefix = random_sid(rng, levels, spread);
          prefix.resize(rng() % static_cast<std::uint64_t>(levels + 1));
          const auto expected = reference_items(ref, prefix);
          EXPECT_EQ(*trie->count(prefix), expected.size());
          EXPECT_EQ(*trie->children(prefix), reference_children(ref, prefix));
          std::unique_ptr<bool[]> marked(new bool[static_cast<std::size_t>(codebook_size)]());
          ASSERT_TRUE(trie->mark_next_codes(prefix, marked.get()).is_ok());
          std::vector<bool> expected_marks(static_cast<std::size_t>(codebook_size), false);
          for (const auto& child : reference_children(ref, prefix))
            expected_marks[static_cast<std::size_t>(child.code)] = true;
          EXPECT_EQ(std::vector<bool>(marked.get(), marked.get() + codebook_size), expected_marks);
          EXPECT_EQ(list_all(*trie, prefix, 1 + rng() % 7), expected);
          std::vector<std::uint64_t> ids;
          ASSERT_TRUE(trie->append_items(prefix, &ids).is_ok());
          ASSERT_EQ(ids.size(), expected.size());
          for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], expected[i].second);
          const Sid probe_sid = random_sid(rng, levels, spread);
          EXPECT_EQ(*trie->longest_shared_prefix(probe_sid), reference_shared(ref, probe_sid));
        }
      }
    }
  }
}

TEST(SidTrie, CursorResumesAfterConcurrentEdits) {
  auto trie = SidTrie::create(2, 8);
  ASSERT_TRUE(trie.is_ok());
  for (std::uint64_t id = 0; id < 10; ++id) {
    ASSERT_TRUE(trie->insert(Sid{1, static_cast<std::int32_t>(id % 3)}, id).is_ok());
  }
  auto first = trie->items(Sid{1}, "", 4);
  ASSERT_TRUE(first.is_ok());
  // Order: code 0: ids 0,3,6,9; code 1: 1,4,7; code 2: 2,5,8.
  EXPECT_EQ(first->item_ids, (std::vector<std::uint64_t>{0, 3, 6, 9}));
  ASSERT_FALSE(first->next_cursor.empty());
  ASSERT_TRUE(trie->erase(Sid{1, 1}, 1).is_ok());
  ASSERT_TRUE(trie->insert(Sid{1, 0}, 2).is_ok());    // before the cursor: not listed
  ASSERT_TRUE(trie->insert(Sid{1, 0}, 100).is_ok());  // after it: listed
  auto second = trie->items(Sid{1}, first->next_cursor, 100);
  ASSERT_TRUE(second.is_ok());
  EXPECT_EQ(second->item_ids, (std::vector<std::uint64_t>{100, 4, 7, 2, 5, 8}));
  EXPECT_TRUE(second->next_cursor.empty());
}

TEST(SidTrie, ErasingFreesEmptyNodesAndReusesThem) {
  auto trie = SidTrie::create(3, 256);
  ASSERT_TRUE(trie.is_ok());
  std::mt19937_64 rng(1);
  std::vector<Sid> sids;
  for (int i = 0; i < 500; ++i) {
    sids.push_back(random_sid(rng, 3, 256));
    ASSERT_TRUE(trie->insert(sids.back(), static_cast<std::uint64_t>(i)).is_ok());
  }
  const std::size_t full = trie->memory_bytes();
  for (int i = 0; i < 500; ++i)
    ASSERT_TRUE(
        trie->erase(sids[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i)).is_ok());
  EXPECT_EQ(trie->size(), 0u);
  EXPECT_TRUE(trie->children({})->empty());
  EXPECT_EQ(*trie->longest_shared_prefix(sids[0]), 0);
  for (int i = 0; i < 500; ++i)
    ASSERT_TRUE(
        trie->insert(sids[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i)).is_ok());
  EXPECT_LE(trie->memory_bytes(), full * 2);  // freed nodes were reused, not leaked
  EXPECT_EQ(*trie->count({}), 500u);
}

TEST(SidTrie, BadPrefixesAreErrorsNotEmptyAnswers) {
  auto trie = SidTrie::create(2, 16);
  ASSERT_TRUE(trie.is_ok());
  ASSERT_TRUE(trie->insert(Sid{1, 2}, 7).is_ok());
  EXPECT_EQ(trie->count(Sid{1, 2, 3}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->children(Sid{16}).status().code(), Status::Code::kInvalidArgument);
  bool mask[16] = {};
  EXPECT_EQ(trie->mark_next_codes(Sid{16}, mask).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->items(Sid{-1}, "", 5).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->items(Sid{1}, "", 0).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->items(Sid{1}, "garbage", 5).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->longest_shared_prefix(Sid{1, 2, 0}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->insert(Sid{1}, 1).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->insert(Sid{1, 99}, 1).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(trie->erase(Sid{1, 3}, 7).code(), Status::Code::kNotFound);
  // A cursor from another prefix.
  auto page = trie->items(Sid{1}, "", 1);
  ASSERT_TRUE(page.is_ok());
  EXPECT_EQ(trie->items(Sid{2}, *SidKeyCodec::create(2, 16)->encode_key(Sid{1, 2}, 0, 7), 1)
                .status()
                .code(),
            Status::Code::kInvalidArgument);
  // A full SID has no children; an unpopulated prefix has none either (but is valid).
  EXPECT_TRUE(trie->children(Sid{1, 2})->empty());
  EXPECT_TRUE(trie->children(Sid{5})->empty());
  EXPECT_EQ(*trie->count(Sid{5}), 0u);
}

}  // namespace
}  // namespace semid
