#include "storage/collection.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "index/relocate.h"
#include "storage/record.h"
#include "tests/storage/storage_test_util.h"
#include "tests/test_util.h"

namespace semid::storage {
namespace {

using testing::dump;
using testing::id_range;
using testing::random_vectors;
using testing::Row;

constexpr int kDim = 8;

class CollectionTest : public ::testing::Test {
 protected:
  // dim 8, 2 levels of 4 codes: 16 SIDs, so collisions are everywhere.
  std::shared_ptr<const RqKMeans> model_ = testing::kmeans_model(kDim, 2, 4);
  testing::TempDir tmp_;
  std::string dir_ = tmp_.file("c");

  std::unique_ptr<Collection> create(const StoreOptions& options = {}) {
    auto c = Collection::create(dir_, model_, options);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(c).value();
  }
  std::unique_ptr<Collection> reopen(std::unique_ptr<Collection> c) {
    EXPECT_TRUE(c->close().is_ok());
    c.reset();
    auto opened = Collection::open(dir_);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    return std::move(opened).value();
  }
  std::vector<std::int32_t> encode(std::span<const float> x) const {
    std::vector<std::int32_t> codes(x.size() / kDim * 2);
    EXPECT_TRUE(model_->encode(x.size() / kDim, x.data(), codes.data()).is_ok());
    return codes;
  }
};

std::vector<std::string> payloads_for(const std::vector<std::uint64_t>& ids) {
  std::vector<std::string> out;
  for (std::uint64_t id : ids)
    out.push_back(id % 3 == 0 ? "" : R"({"id":)" + std::to_string(id) + "}");
  return out;
}

TEST_F(CollectionTest, FlushRetiresTheWriteAheadLog) {
  const auto wal_bytes = [&] {
    std::uintmax_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.path().extension() == ".log") total += e.file_size();
    }
    return total;
  };
  auto c = create();
  const auto ids = id_range(0, 600);
  ASSERT_TRUE(c->upsert(ids, random_vectors(600, kDim, 3)).is_ok());
  EXPECT_GT(wal_bytes(), 600u * kDim * sizeof(float));
  ASSERT_TRUE(c->flush().is_ok());
  EXPECT_LT(wal_bytes(), 4096u);
  ASSERT_TRUE(c->close().is_ok());
  c.reset();
  auto reopened = Collection::open(dir_);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_EQ((*reopened)->size(), 600u);
  ASSERT_TRUE((*reopened)->close().is_ok());
  EXPECT_EQ((*reopened)->flush().code(), Status::Code::kFailedPrecondition);
}

TEST_F(CollectionTest, StoresItemsAndReopensThemBitForBit) {
  auto c = create();
  const auto ids = id_range(100, 50);
  const auto x = random_vectors(50, kDim, 1);
  const auto payloads = payloads_for(ids);
  ASSERT_TRUE(c->upsert(ids, x, payloads).is_ok());
  EXPECT_EQ(c->size(), 50u);
  const auto codes = encode(x);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto item = c->get(ids[i]);
    ASSERT_TRUE(item.is_ok()) << item.status().to_string();
    EXPECT_EQ(item->sid,
              std::vector<std::int32_t>(codes.begin() + 2 * i, codes.begin() + 2 * i + 2));
    EXPECT_EQ(item->vector, std::vector<float>(x.begin() + i * kDim, x.begin() + (i + 1) * kDim));
    EXPECT_EQ(item->payload, payloads[i]);
  }
  EXPECT_EQ(c->get(7).status().code(), Status::Code::kNotFound);
  const auto before = dump(*c);
  ASSERT_EQ(before.size(), 50u);
  c = reopen(std::move(c));
  EXPECT_EQ(dump(*c), before);
  EXPECT_EQ(c->model()->content_hash(), model_->content_hash());
  EXPECT_TRUE(c->verify().is_ok());
}

TEST_F(CollectionTest, CreateAndOpenCheckTheDirectory) {
  auto c = create();
  c.reset();
  auto again = Collection::create(dir_, model_);
  EXPECT_EQ(again.status().code(), Status::Code::kAlreadyExists);
  auto missing = Collection::open(tmp_.file("nothing"));
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  StoreOptions bad;
  bad.max_batch_items = 0;
  EXPECT_EQ(Collection::open(dir_, bad).status().code(), Status::Code::kInvalidArgument);
  auto first = Collection::open(dir_);
  ASSERT_TRUE(first.is_ok());
  auto second = Collection::open(dir_);  // RocksDB's lock: one opener at a time
  EXPECT_EQ(second.status().code(), Status::Code::kBusy) << second.status().to_string();
}

TEST_F(CollectionTest, SuffixesFollowTigerSmallestFree) {
  auto c = create();
  const auto v = random_vectors(1, kDim, 5);
  // A vector with another SID than v.
  std::vector<float> w;
  for (std::uint64_t seed = 6; w.empty(); ++seed) {
    auto candidate = random_vectors(1, kDim, seed);
    if (encode(candidate) != encode(v)) w = candidate;
  }
  const auto sid_v = encode(v), sid_w = encode(w);
  const auto suffix = [&](std::uint64_t id) { return c->get(id)->collision_suffix; };
  const auto sid = [&](std::uint64_t id) { return c->get(id)->sid; };
  auto repeat = [](const std::vector<float>& row, std::size_t n) {
    std::vector<float> out;
    for (std::size_t i = 0; i < n; ++i) out.insert(out.end(), row.begin(), row.end());
    return out;
  };

  // Three items on one SID: suffixes 0, 1, 2 in batch order.
  const std::vector<std::uint64_t> first = {12, 10, 11};
  ASSERT_TRUE(c->upsert(first, repeat(v, 3)).is_ok());
  EXPECT_EQ(suffix(12), 0);
  EXPECT_EQ(suffix(10), 1);
  EXPECT_EQ(suffix(11), 2);
  EXPECT_EQ(sid(12), sid_v);

  // A removed item's suffix is the smallest free one: the next item takes it.
  const std::uint64_t ten = 10;
  ASSERT_TRUE(c->remove({&ten, 1}).is_ok());
  const std::uint64_t thirteen = 13;
  ASSERT_TRUE(c->upsert({&thirteen, 1}, v).is_ok());
  EXPECT_EQ(suffix(13), 1);

  // Re-upserting onto the same SID keeps the suffix.
  const std::uint64_t eleven = 11;
  ASSERT_TRUE(c->upsert({&eleven, 1}, v).is_ok());
  EXPECT_EQ(suffix(11), 2);

  // In one batch: 12 leaves v's group (freeing 0) and 14 joins it, taking 0; 12 opens w's group.
  const std::vector<std::uint64_t> batch = {14, 12};
  std::vector<float> x = v;
  x.insert(x.end(), w.begin(), w.end());
  ASSERT_TRUE(c->upsert(batch, x).is_ok());
  EXPECT_EQ(suffix(14), 0);
  EXPECT_EQ(sid(12), sid_w);
  EXPECT_EQ(suffix(12), 0);
  EXPECT_EQ(suffix(13), 1);
  EXPECT_EQ(suffix(11), 2);

  // resolve() finds each item by SID + suffix.
  for (std::uint64_t id : {11, 12, 13, 14}) {
    auto item = c->get(id);
    std::vector<std::int32_t> full = item->sid;
    full.push_back(item->collision_suffix);
    auto resolved = c->resolve(full);
    ASSERT_TRUE(resolved.is_ok()) << resolved.status().to_string();
    EXPECT_EQ(resolved->id, id);
  }
  std::vector<std::int32_t> free_place = sid_v;
  free_place.push_back(3);
  EXPECT_EQ(c->resolve(free_place).status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(c->verify().is_ok());
}

TEST_F(CollectionTest, RandomChurnKeepsSuffixesUniqueAndDense) {
  auto c = create();
  std::mt19937_64 rng(3);
  for (int round = 0; round < 40; ++round) {
    std::set<std::uint64_t> chosen;
    while (chosen.size() < 12) chosen.insert(rng() % 60);
    std::vector<std::uint64_t> ids(chosen.begin(), chosen.end());
    if (round % 3 == 2) {
      std::vector<std::uint64_t> present;
      for (std::uint64_t id : ids) {
        if (c->get(id).is_ok()) present.push_back(id);
      }
      ASSERT_TRUE(c->remove(present).is_ok());
    } else {
      ASSERT_TRUE(c->upsert(ids, random_vectors(ids.size(), kDim, 1000 + round)).is_ok());
    }
  }
  std::map<std::vector<std::int32_t>, std::set<std::uint16_t>> groups;
  const auto rows = dump(*c);
  for (const Row& row : rows) EXPECT_TRUE(groups[row.sid].insert(row.suffix).second);
  EXPECT_EQ(c->size(), rows.size());
  EXPECT_TRUE(c->verify().is_ok());
}

TEST_F(CollectionTest, BadInputIsRejectedAndNothingIsWritten) {
  StoreOptions options;
  options.max_batch_items = 16;
  options.max_payload_bytes = 64;
  auto c = create(options);
  const auto ids = id_range(0, 10);
  ASSERT_TRUE(c->upsert(ids, random_vectors(10, kDim, 1), payloads_for(ids)).is_ok());
  const auto before = dump(*c);

  const auto expect_rejected = [&](const Status& status, Status::Code code,
                                   const std::string& words) {
    EXPECT_EQ(status.code(), code) << status.to_string();
    EXPECT_NE(status.message().find(words), std::string::npos) << status.to_string();
  };
  const std::vector<std::uint64_t> two = {3, 20};
  auto x2 = random_vectors(2, kDim, 9);
  using C = Status::Code;
  // Wrong dimension.
  expect_rejected(c->upsert(two, std::span<const float>(x2).first(2 * kDim - 1)),
                  C::kInvalidArgument, "dimension 8");
  // NaN and Inf, named by row.
  auto nan = x2;
  nan[kDim + 3] = std::numeric_limits<float>::quiet_NaN();
  expect_rejected(c->upsert(two, nan), C::kInvalidArgument, "id 20 (row 1) has nan at dimension 3");
  auto inf = x2;
  inf[0] = std::numeric_limits<float>::infinity();
  expect_rejected(c->upsert(two, inf), C::kInvalidArgument, "id 3 (row 0) has inf at dimension 0");
  // Duplicate ids in one batch.
  const std::vector<std::uint64_t> twice = {20, 20};
  expect_rejected(c->upsert(twice, x2), C::kInvalidArgument, "id 20 appears more than once");
  // Ids FAISS cannot label.
  const std::vector<std::uint64_t> huge = {3, std::uint64_t{1} << 63};
  expect_rejected(c->upsert(huge, x2), C::kInvalidArgument, "exceeds 2^63 - 1");
  // Payloads: not JSON, too long, wrong count.
  const std::vector<std::string> not_json = {R"({"a":1})", "{not json"};
  expect_rejected(c->upsert(two, x2, not_json), C::kInvalidArgument,
                  "payload of id 20 (row 1) is not JSON");
  const std::vector<std::string> long_payload = {"\"" + std::string(80, 'x') + "\"", ""};
  expect_rejected(c->upsert(two, x2, long_payload), C::kInvalidArgument, "max_payload_bytes");
  const std::vector<std::string> one_payload = {"1"};
  expect_rejected(c->upsert(two, x2, one_payload), C::kInvalidArgument, "1 payloads for 2 ids");
  // Batches beyond max_batch_items.
  const auto many = id_range(100, 17);
  expect_rejected(c->upsert(many, random_vectors(17, kDim, 2)), C::kInvalidArgument,
                  "max_batch_items");
  // Remove: unknown ids (even beside known ones) and duplicates.
  const std::vector<std::uint64_t> unknown = {1, 2, 999};
  expect_rejected(c->remove(unknown), C::kNotFound, "item 999 (row 2) does not exist");
  const std::vector<std::uint64_t> dup = {1, 1};
  expect_rejected(c->remove(dup), C::kInvalidArgument, "appears more than once");
  // Prefixes longer than L, codes >= K or negative, everywhere a prefix is taken.
  const std::vector<std::int32_t> too_long = {0, 0, 0}, big_code = {4}, negative = {-1};
  expect_rejected(c->prefix_scan(too_long, "", 10).status(), C::kInvalidArgument,
                  "longer than the 2 levels");
  expect_rejected(c->prefix_scan(big_code, "", 10).status(), C::kInvalidArgument,
                  "code 4 at level 0");
  expect_rejected(c->count(negative).status(), C::kInvalidArgument, "code -1");
  expect_rejected(c->next_tokens({{0}, {1, 9}}).status(), C::kInvalidArgument, "prefix 1");
  SearchOptions bad_prefix;
  bad_prefix.prefix = {0, 7};
  expect_rejected(c->search(1, std::span<const float>(x2).first(kDim), 3, bad_prefix).status(),
                  C::kInvalidArgument, "code 7 at level 1");
  // Scans: limits and cursors.
  expect_rejected(c->prefix_scan({}, "", 0).status(), C::kInvalidArgument, "limit = 0");
  expect_rejected(c->prefix_scan({}, "zz", 5).status(), C::kInvalidArgument, "is not a cursor");
  auto page = c->prefix_scan({}, "", 1);
  ASSERT_TRUE(page.is_ok());
  std::vector<std::int32_t> other = {page->items[0].sid[0] == 0 ? 1 : 0};
  expect_rejected(c->prefix_scan(other, page->next_cursor, 5).status(), C::kInvalidArgument,
                  "is not a cursor of prefix");
  // Search: sizes, k, NaN, options the mode does not take.
  expect_rejected(c->search(2, std::span<const float>(x2).first(kDim), 3).status(),
                  C::kInvalidArgument, "floats for 2 queries");
  expect_rejected(c->search(1, std::span<const float>(x2).first(kDim), 0).status(),
                  C::kInvalidArgument, "k = 0");
  expect_rejected(c->search(1, std::span<const float>(nan).subspan(kDim), 3).status(),
                  C::kInvalidArgument, "dimension 3");
  SearchOptions beam_in_prefix_mode;
  beam_in_prefix_mode.mode = SearchMode::kPrefix;
  beam_in_prefix_mode.beam = 2;
  expect_rejected(
      c->search(1, std::span<const float>(x2).first(kDim), 3, beam_in_prefix_mode).status(),
      C::kInvalidArgument, "beam");
  // Resolve: wrong length, suffix out of range.
  const std::vector<std::int32_t> short_sid = {0, 0}, big_suffix = {0, 0, 70000};
  expect_rejected(c->resolve(short_sid).status(), C::kInvalidArgument, "got 2 values");
  expect_rejected(c->resolve(big_suffix).status(), C::kInvalidArgument, "suffix 70000");
  // Reencode with another dimension.
  expect_rejected(c->reencode(testing::kmeans_model(kDim + 1, 2, 4)), C::kInvalidArgument,
                  "dimension 9");

  EXPECT_EQ(dump(*c), before);
  EXPECT_TRUE(c->verify().is_ok());
  c = reopen(std::move(c));
  EXPECT_EQ(dump(*c), before);
}

TEST_F(CollectionTest, RemoveDeletesEverywhere) {
  auto c = create();
  const auto ids = id_range(0, 30);
  const auto x = random_vectors(30, kDim, 4);
  ASSERT_TRUE(c->upsert(ids, x).is_ok());
  const std::vector<std::uint64_t> gone = {0, 7, 29};
  ASSERT_TRUE(c->remove(gone).is_ok());
  EXPECT_EQ(c->size(), 27u);
  for (std::uint64_t id : gone) EXPECT_EQ(c->get(id).status().code(), Status::Code::kNotFound);
  auto hits = c->search(30, x, 30);
  ASSERT_TRUE(hits.is_ok());
  for (const auto& list : *hits) {
    EXPECT_EQ(list.size(), 27u);
    for (const auto& hit : list) EXPECT_FALSE(hit.id == 0 || hit.id == 7 || hit.id == 29);
  }
  EXPECT_EQ(*c->count({}), 27u);
  EXPECT_TRUE(c->verify().is_ok());
  c = reopen(std::move(c));
  EXPECT_EQ(c->size(), 27u);
}

// The state a restart must reproduce: search results of every mode, trie, counts, items.
struct Observed {
  std::vector<std::vector<SearchHit>> cosine, prefix, exhaustive, beam, filtered, reranked;
  std::vector<std::vector<SidTrie::Child>> tokens;
  std::vector<std::uint64_t> counts;
  std::vector<Row> rows;
};

bool same_hits(const std::vector<std::vector<SearchHit>>& a,
               const std::vector<std::vector<SearchHit>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t q = 0; q < a.size(); ++q) {
    if (a[q].size() != b[q].size()) return false;
    for (std::size_t r = 0; r < a[q].size(); ++r) {
      if (a[q][r].id != b[q][r].id || a[q][r].distance != b[q][r].distance) return false;
    }
  }
  return true;
}

Observed observe(const Collection& c, const std::vector<float>& queries, std::size_t nq) {
  Observed o;
  const auto run = [&](const SearchOptions& options) {
    auto hits = c.search(nq, queries, 10, options);
    EXPECT_TRUE(hits.is_ok()) << hits.status().to_string();
    return hits.is_ok() ? *hits : std::vector<std::vector<SearchHit>>{};
  };
  o.cosine = run({});
  SearchOptions p;
  p.mode = SearchMode::kPrefix;
  o.prefix = run(p);
  SearchOptions e;
  e.mode = SearchMode::kExhaustive;
  o.exhaustive = run(e);
  SearchOptions b;
  b.beam = 4;
  o.beam = run(b);
  SearchOptions f;
  f.prefix = {1};
  f.allowed_ids = id_range(0, 300);
  o.filtered = run(f);
  SearchOptions r;
  r.rerank = 40;
  o.reranked = run(r);
  std::vector<std::vector<std::int32_t>> prefixes = {{}};
  for (int a = 0; a < c.codebook_size(); ++a) {
    prefixes.push_back({a});
    for (int b2 = 0; b2 < c.codebook_size(); ++b2) prefixes.push_back({a, b2});
  }
  auto tokens = c.next_tokens(prefixes);
  EXPECT_TRUE(tokens.is_ok());
  o.tokens = *tokens;
  for (const auto& prefix : prefixes) o.counts.push_back(*c.count(prefix));
  o.rows = dump(c);
  return o;
}

TEST(CollectionRestart, ReproducesSearchResultsTrieAndCounts) {
  testing::TempDir tmp;
  const std::string dir = tmp.file("c");
  const auto model = testing::kmeans_model(16, 3, 8);
  auto created = Collection::create(dir, model);
  ASSERT_TRUE(created.is_ok());
  auto c = std::move(created).value();
  // A history with re-upserts (moves) and removes, so the index order is not the id order.
  std::mt19937_64 rng(11);
  for (int round = 0; round < 12; ++round) {
    std::set<std::uint64_t> chosen;
    while (chosen.size() < 80) chosen.insert(rng() % 500);
    std::vector<std::uint64_t> ids(chosen.rbegin(), chosen.rend());
    ASSERT_TRUE(c->upsert(ids, random_vectors(ids.size(), 16, 50 + round)).is_ok());
    if (round % 4 == 3) {
      std::vector<std::uint64_t> gone(ids.begin(), ids.begin() + 20);
      ASSERT_TRUE(c->remove(gone).is_ok());
    }
  }
  const auto queries = random_vectors(25, 16, 99);
  const Observed before = observe(*c, queries, 25);
  ASSERT_GT(before.rows.size(), 300u);
  ASSERT_TRUE(c->close().is_ok());
  c.reset();
  auto reopened = Collection::open(dir);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  // As `semid serve` does after start-up: the reconstruction cache filled in small steps, which
  // end at the collection's size and change no answer.
  std::size_t position = 0, steps = 0;
  for (;; ++steps) {
    auto next = (*reopened)->prefetch_reconstructions(position, 64);
    ASSERT_TRUE(next.is_ok()) << next.status().to_string();
    if (*next == position) break;
    EXPECT_LE(*next, position + 64);
    position = *next;
  }
  EXPECT_EQ(position, (*reopened)->size());
  EXPECT_EQ(steps, ((*reopened)->size() + 63) / 64);
  const Observed after = observe(**reopened, queries, 25);
  EXPECT_TRUE(same_hits(before.cosine, after.cosine));
  EXPECT_TRUE(same_hits(before.prefix, after.prefix));
  EXPECT_TRUE(same_hits(before.exhaustive, after.exhaustive));
  EXPECT_TRUE(same_hits(before.beam, after.beam));
  EXPECT_TRUE(same_hits(before.filtered, after.filtered));
  EXPECT_TRUE(same_hits(before.reranked, after.reranked));
  EXPECT_EQ(before.tokens, after.tokens);
  EXPECT_EQ(before.counts, after.counts);
  EXPECT_EQ(before.rows, after.rows);
}

TEST(CollectionSearch, MatchesAnIndexBuiltDirectly) {
  testing::TempDir tmp;
  const auto model = testing::kmeans_model(16, 3, 8);
  auto c = std::move(Collection::create(tmp.file("c"), model)).value();
  const auto ids = id_range(1000, 600);
  const auto x = random_vectors(600, 16, 21);
  ASSERT_TRUE(c->upsert(ids, x).is_ok());
  IndexRQVAE index(model);
  std::vector<faiss::Index::idx_t> labels(ids.begin(), ids.end());
  index.add_with_ids(600, x.data(), labels.data());
  const auto queries = random_vectors(20, 16, 22);
  for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
    SearchOptions options;
    options.mode = mode;
    options.prefix = {2};
    SearchParametersRQVAE params;
    params.mode = mode;
    params.prefix = {2};
    const std::size_t k = 7;
    auto hits = c->search(20, queries, k, options);
    ASSERT_TRUE(hits.is_ok()) << hits.status().to_string();
    std::vector<float> distances(20 * k);
    std::vector<faiss::Index::idx_t> found(20 * k);
    index.search(20, queries.data(), k, distances.data(), found.data(), &params);
    for (std::size_t q = 0; q < 20; ++q) {
      std::size_t r = 0;
      for (; r < k && found[q * k + r] >= 0; ++r) {
        ASSERT_LT(r, (*hits)[q].size());
        EXPECT_EQ((*hits)[q][r].id, static_cast<std::uint64_t>(found[q * k + r]));
        EXPECT_EQ((*hits)[q][r].distance, distances[q * k + r]);
      }
      EXPECT_EQ((*hits)[q].size(), r);
      for (const auto& hit : (*hits)[q]) EXPECT_EQ(c->get(hit.id)->sid[0], 2);
    }
  }
}

TEST(CollectionSearch, RerankScoresOriginalVectors) {
  testing::TempDir tmp;
  const auto model = testing::kmeans_model(16, 2, 8);
  auto c = std::move(Collection::create(tmp.file("c"), model)).value();
  const auto x = random_vectors(300, 16, 5);
  ASSERT_TRUE(c->upsert(id_range(0, 300), x).is_ok());
  SearchOptions options;
  options.rerank = 300;  // every item: the exact top-k over the original vectors
  const auto queries = random_vectors(5, 16, 6);
  auto hits = c->search(5, queries, 5, options);
  ASSERT_TRUE(hits.is_ok());
  for (std::size_t q = 0; q < 5; ++q) {
    std::vector<std::pair<float, std::uint64_t>> exact;
    const float* query = queries.data() + q * 16;
    for (std::uint64_t i = 0; i < 300; ++i) {
      const float* v = x.data() + i * 16;
      double dot = 0, nq = 0, nv = 0;
      for (int j = 0; j < 16; ++j)
        dot += query[j] * v[j], nq += query[j] * query[j], nv += v[j] * v[j];
      exact.push_back({static_cast<float>(dot / std::sqrt(nq * nv)), i});
    }
    std::sort(exact.begin(), exact.end(), [](auto& a, auto& b) { return a.first > b.first; });
    ASSERT_EQ((*hits)[q].size(), 5u);
    for (std::size_t r = 0; r < 5; ++r) {
      EXPECT_EQ((*hits)[q][r].id, exact[r].second);
      EXPECT_NEAR((*hits)[q][r].distance, exact[r].first, 1e-5);
    }
  }
}

TEST_F(CollectionTest, PrefixScanListsExactlyThePrefixInKeyOrder) {
  auto c = create();
  ASSERT_TRUE(c->upsert(id_range(0, 200), random_vectors(200, kDim, 8)).is_ok());
  const auto rows = dump(*c);
  std::vector<Row> ordered = rows;
  std::sort(ordered.begin(), ordered.end(), [](const Row& a, const Row& b) {
    return std::tie(a.sid, a.suffix, a.id) < std::tie(b.sid, b.suffix, b.id);
  });
  for (const std::vector<std::int32_t>& prefix :
       std::vector<std::vector<std::int32_t>>{{}, {0}, {1}, {3}, {2, 1}, {3, 3}}) {
    std::vector<std::uint64_t> expected;
    for (const Row& row : ordered) {
      if (std::equal(prefix.begin(), prefix.end(), row.sid.begin())) expected.push_back(row.id);
    }
    for (std::size_t limit : {1u, 7u, 1000u}) {
      std::vector<std::uint64_t> listed;
      std::string cursor;
      std::size_t pages = 0;
      do {
        auto page = c->prefix_scan(prefix, cursor, limit);
        ASSERT_TRUE(page.is_ok()) << page.status().to_string();
        EXPECT_LE(page->items.size(), limit);
        for (const auto& e : page->items) listed.push_back(e.id);
        cursor = page->next_cursor;
        ++pages;
      } while (!cursor.empty());
      EXPECT_EQ(listed, expected) << "prefix size " << prefix.size() << " limit " << limit;
      EXPECT_EQ(pages, std::max<std::size_t>(1, (expected.size() + limit - 1) / limit));
    }
    auto count = c->count(prefix);
    ASSERT_TRUE(count.is_ok());
    EXPECT_EQ(*count, expected.size());
  }
}

TEST_F(CollectionTest, NextTokensCountTheItemsUnderEachCode) {
  auto c = create();
  ASSERT_TRUE(c->upsert(id_range(0, 150), random_vectors(150, kDim, 12)).is_ok());
  const auto rows = dump(*c);
  auto tokens = c->next_tokens({{}, {1}, {2, 2}});
  ASSERT_TRUE(tokens.is_ok());
  std::map<std::int32_t, std::uint64_t> root, under_one;
  for (const Row& row : rows) {
    ++root[row.sid[0]];
    if (row.sid[0] == 1) ++under_one[row.sid[1]];
  }
  std::vector<SidTrie::Child> expected_root, expected_one;
  for (auto [code, count] : root) expected_root.push_back({code, count});
  for (auto [code, count] : under_one) expected_one.push_back({code, count});
  EXPECT_EQ((*tokens)[0], expected_root);
  EXPECT_EQ((*tokens)[1], expected_one);
  EXPECT_TRUE((*tokens)[2].empty());  // a full SID has no next token
}

TEST_F(CollectionTest, OpeningWithAnotherModelIsRefused) {
  auto c = create();
  ASSERT_TRUE(c->upsert(id_range(0, 5), random_vectors(5, kDim, 1)).is_ok());
  c.reset();
  const auto other = testing::kmeans_model(kDim, 2, 4, /*seed=*/2);
  ASSERT_NE(other->content_hash(), model_->content_hash());
  auto refused = Collection::open(dir_, {}, other);
  EXPECT_EQ(refused.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(model_->content_hash()), std::string::npos);
  EXPECT_NE(refused.status().message().find(other->content_hash()), std::string::npos);
  EXPECT_NE(refused.status().message().find("re-encode"), std::string::npos);
  auto same = Collection::open(dir_, {}, model_);
  ASSERT_TRUE(same.is_ok()) << same.status().to_string();
  EXPECT_EQ((*same)->size(), 5u);
}

TEST_F(CollectionTest, ReencodeRebuildsEverySidFromStoredVectors) {
  auto c = create();
  const auto ids = id_range(0, 120);
  const auto x = random_vectors(120, kDim, 31);
  ASSERT_TRUE(c->upsert(ids, x, payloads_for(ids)).is_ok());
  const std::vector<std::uint64_t> gone = {5, 6, 50};
  ASSERT_TRUE(c->remove(gone).is_ok());
  const auto before = dump(*c);
  // Another shape: 3 levels of 8 codes, an RQ-VAE.
  const auto next = testing::random_model(kDim, 3, 8, Metric::kCosine, 4);
  ASSERT_TRUE(c->reencode(next).is_ok());
  EXPECT_EQ(c->levels(), 3);
  EXPECT_EQ(c->codebook_size(), 8);
  const auto after = dump(*c);
  ASSERT_EQ(after.size(), before.size());
  // SIDs are the new model's codes; suffixes count 0, 1, ... per SID in insertion (= id) order.
  std::map<std::vector<std::int32_t>, std::uint16_t> next_suffix;
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].vector_bits, before[i].vector_bits);
    EXPECT_EQ(after[i].payload, before[i].payload);
    std::vector<std::int32_t> codes(3);
    const auto item = c->get(after[i].id);
    ASSERT_TRUE(next->encode(1, item->vector.data(), codes.data()).is_ok());
    EXPECT_EQ(after[i].sid, codes);
    EXPECT_EQ(after[i].suffix, next_suffix[codes]++);
  }
  EXPECT_TRUE(c->verify().is_ok());
  c.reset();
  EXPECT_EQ(Collection::open(dir_, {}, model_).status().code(), Status::Code::kFailedPrecondition);
  auto reopened = Collection::open(dir_, {}, next);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_EQ(dump(**reopened), after);
}

TEST_F(CollectionTest, RelocateKeepsSidsUniqueWithoutSuffixes) {
  auto created = Collection::create(dir_, model_, {}, CollisionPolicy::kRelocate);
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  auto c = std::move(created).value();
  EXPECT_EQ(c->collision_policy(), CollisionPolicy::kRelocate);
  // 12 items on 16 SIDs (2 levels x 4 codes): many share a model SID, none a stored one.
  const auto ids = id_range(0, 12);
  const auto x = random_vectors(12, kDim, 21);
  ASSERT_TRUE(c->upsert(ids, x).is_ok());
  const auto codes = encode(x);
  std::set<std::vector<std::int32_t>> sids;
  std::size_t relocated = 0;
  std::map<std::uint64_t, std::vector<std::int32_t>> placed;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto item = c->get(ids[i]);
    ASSERT_TRUE(item.is_ok());
    EXPECT_EQ(item->collision_suffix, 0);
    EXPECT_EQ(item->natural_sid,
              std::vector<std::int32_t>(codes.begin() + 2 * i, codes.begin() + 2 * i + 2));
    EXPECT_TRUE(sids.insert(item->sid).second) << "id " << ids[i];
    relocated += item->sid != item->natural_sid;
    placed[ids[i]] = item->sid;
  }
  EXPECT_GT(relocated, 0u);
  EXPECT_EQ(c->stats()->relocated_items, relocated);
  EXPECT_EQ(c->stats()->collision_groups, 0u);

  // Newcomers never move placed items; re-upserting a relocated item keeps its place.
  ASSERT_TRUE(c->upsert(id_range(100, 2), random_vectors(2, kDim, 22)).is_ok());
  for (const auto& [id, sid] : placed) EXPECT_EQ(c->get(id)->sid, sid) << "id " << id;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (c->get(ids[i])->sid == c->get(ids[i])->natural_sid) continue;
    ASSERT_TRUE(c->upsert({&ids[i], 1}, {x.data() + i * kDim, kDim}).is_ok());
    EXPECT_EQ(c->get(ids[i])->sid, placed[ids[i]]);
    break;
  }

  // Past capacity (16 SIDs) the suffix takes over; (SID, suffix) stays unique.
  ASSERT_TRUE(c->upsert(id_range(200, 20), random_vectors(20, kDim, 23)).is_ok());
  std::set<std::pair<std::vector<std::int32_t>, std::uint16_t>> places;
  std::set<std::vector<std::int32_t>> full;
  for (const Row& row : dump(*c)) {
    EXPECT_TRUE(places.insert({row.sid, row.suffix}).second);
    full.insert(row.sid);
  }
  EXPECT_EQ(full.size(), 16u);
  EXPECT_TRUE(c->verify().is_ok());

  const auto before = dump(*c);
  const std::size_t moved = c->stats()->relocated_items;
  c = reopen(std::move(c));
  EXPECT_EQ(c->collision_policy(), CollisionPolicy::kRelocate);
  EXPECT_EQ(dump(*c), before);
  EXPECT_EQ(c->stats()->relocated_items, moved);
  EXPECT_EQ(c->stats()->to_json()["collision_policy"], "relocate");

  // Reencode places everything afresh under the same policy: unique while capacity allows.
  const auto next = testing::random_model(kDim, 3, 8, Metric::kCosine, 4);  // 512 SIDs
  ASSERT_TRUE(c->reencode(next).is_ok());
  std::set<std::vector<std::int32_t>> after;
  for (const Row& row : dump(*c)) {
    EXPECT_EQ(row.suffix, 0);
    EXPECT_TRUE(after.insert(row.sid).second);
  }
  EXPECT_TRUE(c->verify().is_ok());
}

TEST_F(CollectionTest, RelocateSettlesABatchJointlyAsSidRelocatorPlacesIt) {
  // A model with room to spare (3 levels x 8 codes = 512 SIDs) for 60 items: the batch's own
  // collisions are settled by one minimum-cost assignment, not in batch order, so the stored
  // SIDs are exactly what SidRelocator::place_batch gives on an empty store.
  const auto model = testing::random_model(kDim, 3, 8, Metric::kCosine, 4);
  auto created = Collection::create(dir_, model, {}, CollisionPolicy::kRelocate);
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  auto c = std::move(created).value();
  const std::size_t n = 60;
  const auto ids = id_range(0, n);
  const auto x = random_vectors(n, kDim, 31);
  ASSERT_TRUE(c->upsert(ids, x).is_ok());

  std::vector<std::int32_t> expected(n * 3);
  ASSERT_TRUE(model->encode(n, x.data(), expected.data()).is_ok());
  std::vector<float> latents(n * static_cast<std::size_t>(model->latent_dim()));
  ASSERT_TRUE(model->encode_latent(n, x.data(), latents.data()).is_ok());
  const SidRelocator relocator(*model);
  relocator.place_batch(n, latents.data(), expected.data(),
                        [](std::span<const std::int32_t>) { return false; });
  std::size_t moved = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto item = c->get(ids[i]);
    ASSERT_TRUE(item.is_ok());
    EXPECT_EQ(item->sid,
              std::vector<std::int32_t>(expected.begin() + 3 * i, expected.begin() + 3 * i + 3))
        << "id " << ids[i];
    EXPECT_EQ(item->collision_suffix, 0);
    moved += item->sid != item->natural_sid;
  }
  EXPECT_GT(moved, 0u) << "the test data must collide to test anything";
  EXPECT_EQ(c->stats()->collision_groups, 0u);
  EXPECT_TRUE(c->verify().is_ok());
}

TEST_F(CollectionTest, SuffixIsTheDefaultPolicyAndBadNamesAreRefused) {
  auto c = create();
  EXPECT_EQ(c->collision_policy(), CollisionPolicy::kSuffix);
  EXPECT_EQ(c->stats()->relocated_items, 0u);
  auto bad = parse_collision_policy("nearest");
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'suffix' or 'relocate'"), std::string::npos);
}

TEST_F(CollectionTest, SnapshotRestoresThePastState) {
  auto c = create();
  ASSERT_TRUE(c->upsert(id_range(0, 40), random_vectors(40, kDim, 1)).is_ok());
  const auto at_snapshot = dump(*c);
  const std::string snapshot = tmp_.file("snapshots/s1");
  ASSERT_TRUE(c->create_snapshot(snapshot).is_ok());
  EXPECT_EQ(c->create_snapshot(snapshot).code(), Status::Code::kAlreadyExists);
  ASSERT_TRUE(c->upsert(id_range(30, 40), random_vectors(40, kDim, 2)).is_ok());
  const std::vector<std::uint64_t> gone = {1, 2, 3};
  ASSERT_TRUE(c->remove(gone).is_ok());
  ASSERT_NE(dump(*c), at_snapshot);

  const std::string restored_dir = tmp_.file("restored");
  ASSERT_TRUE(Collection::restore_snapshot(snapshot, restored_dir).is_ok());
  EXPECT_EQ(Collection::restore_snapshot(snapshot, restored_dir).code(),
            Status::Code::kAlreadyExists);
  EXPECT_EQ(Collection::restore_snapshot(tmp_.file("none"), tmp_.file("x")).code(),
            Status::Code::kNotFound);
  auto restored = Collection::open(restored_dir);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  EXPECT_EQ(dump(**restored), at_snapshot);
  EXPECT_TRUE((*restored)->verify().is_ok());
  // The restored copy is independent: writing it leaves the original alone.
  ASSERT_TRUE((*restored)->remove(gone).is_ok());
  EXPECT_EQ(c->size(), 67u);
}

TEST_F(CollectionTest, ClosedCollectionRefusesEverything) {
  auto c = create();
  ASSERT_TRUE(c->close().is_ok());
  EXPECT_EQ(c->upsert(id_range(0, 1), random_vectors(1, kDim, 1)).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(c->get(0).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(c->search(1, random_vectors(1, kDim, 1), 1).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(c->prefetch_reconstructions(0, 10).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(c->close().is_ok());
}

TEST_F(CollectionTest, StatsDescribeCodesAndCollisions) {
  auto c = create();
  ASSERT_TRUE(c->upsert(id_range(0, 100), random_vectors(100, kDim, 14)).is_ok());
  auto stats = c->stats();
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->items, 100u);
  EXPECT_EQ(stats->levels, 2);
  EXPECT_EQ(stats->model_hash, model_->content_hash());
  EXPECT_GT(stats->disk_bytes, 0u);
  ASSERT_EQ(stats->codes.levels.size(), 2u);
  std::map<std::vector<std::int32_t>, int> groups;
  std::uint16_t max_suffix = 0;
  for (const Row& row : dump(*c)) {
    ++groups[row.sid];
    max_suffix = std::max(max_suffix, row.suffix);
  }
  std::size_t colliding = 0;
  for (auto& [sid, size] : groups) colliding += size > 1;
  EXPECT_EQ(stats->codes.unique_sids, groups.size());
  EXPECT_EQ(stats->collision_groups, colliding);
  EXPECT_EQ(stats->max_collision_suffix, max_suffix);
  const auto json = stats->to_json();
  EXPECT_EQ(json["items"], 100);
  EXPECT_TRUE(json["codes"].contains("levels"));
}

TEST_F(CollectionTest, ReadersNeverSeeHalfABatch) {
  auto c = create();
  // Every batch rewrites items 0..23 with one tag; a reader must see one tag across all of them.
  const auto ids = id_range(0, 24);
  const auto batch_payloads = [&](int tag) {
    return std::vector<std::string>(ids.size(), R"({"tag":)" + std::to_string(tag) + "}");
  };
  ASSERT_TRUE(c->upsert(ids, random_vectors(24, kDim, 0), batch_payloads(0)).is_ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, torn{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        auto items = c->get_many(ids);
        if (!items.is_ok()) {
          ++torn;
          continue;
        }
        std::set<std::string> tags;
        for (const auto& item : *items) tags.insert(item ? item->payload : "missing");
        torn += tags.size() != 1;
        torn += !c->verify().is_ok();
        ++reads;
      }
    });
  }
  for (int tag = 1; tag <= 60; ++tag) {
    ASSERT_TRUE(c->upsert(ids, random_vectors(24, kDim, tag), batch_payloads(tag)).is_ok());
  }
  while (reads < 20) std::this_thread::yield();
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn, 0);
  EXPECT_GE(reads, 20);
}

// ---- disagreement on disk is found at open
// -------------------------------------------------------

class RawDatabase {
 public:
  explicit RawDatabase(const std::string& dir) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const char* name : {"default", "items", "sids", "meta"})
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    rocksdb::DBOptions options;
    EXPECT_TRUE(rocksdb::DB::Open(options, dir, families, &handles_, &db_).ok());
  }
  ~RawDatabase() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }
  rocksdb::DB* db() { return db_; }
  rocksdb::ColumnFamilyHandle* items() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* sids() { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[3]; }
  std::string first_key(rocksdb::ColumnFamilyHandle* family) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, family));
    it->SeekToFirst();
    return it->key().ToString();
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

TEST_F(CollectionTest, OpenFindsEveryKindOfDisagreement) {
  {
    auto c = create();
    ASSERT_TRUE(c->upsert(id_range(0, 20), random_vectors(20, kDim, 3)).is_ok());
  }
  const std::string pristine = tmp_.file("pristine");
  std::filesystem::copy(dir_, pristine, std::filesystem::copy_options::recursive);
  const auto damage_and_open = [&](const std::function<void(RawDatabase&)>& damage) {
    std::filesystem::remove_all(dir_);
    std::filesystem::copy(pristine, dir_, std::filesystem::copy_options::recursive);
    {
      RawDatabase raw(dir_);
      damage(raw);
    }
    return Collection::open(dir_).status();
  };
  using C = Status::Code;
  Status s = damage_and_open(
      [](RawDatabase& raw) { raw.db()->Delete({}, raw.sids(), raw.first_key(raw.sids())); });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("has no sids key"), std::string::npos) << s.to_string();
  s = damage_and_open([](RawDatabase& raw) {
    std::string key = raw.first_key(raw.sids());
    key[key.size() - 9] ^= 1;  // another suffix
    raw.db()->Put({}, raw.sids(), key, "");
  });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  s = damage_and_open([](RawDatabase& raw) {
    const std::string key = raw.first_key(raw.items());
    std::string value;
    raw.db()->Get({}, raw.items(), key, &value);
    value[30] ^= 4;
    raw.db()->Put({}, raw.items(), key, value);
  });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.to_string();
  s = damage_and_open(
      [](RawDatabase& raw) { raw.db()->Delete({}, raw.items(), raw.first_key(raw.items())); });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  s = damage_and_open(
      [](RawDatabase& raw) { raw.db()->Put({}, raw.meta(), "counters", "garbage"); });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  s = damage_and_open([](RawDatabase& raw) {
    std::string model;
    raw.db()->Get({}, raw.meta(), "model", &model);
    model[model.size() / 2] ^= 1;
    raw.db()->Put({}, raw.meta(), "model", model);
  });
  EXPECT_EQ(s.code(), C::kCorruption) << s.to_string();
  // The pristine copy opens.
  std::filesystem::remove_all(dir_);
  std::filesystem::copy(pristine, dir_, std::filesystem::copy_options::recursive);
  EXPECT_TRUE(Collection::open(dir_).is_ok());
}

}  // namespace
}  // namespace semid::storage
