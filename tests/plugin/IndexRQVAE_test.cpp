#include "plugin/IndexRQVAE.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexShards.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <random>
#include <set>

#include "index/rq_kmeans.h"
#include "tests/plugin/plugin_test_util.h"

namespace semid {
namespace {

using testing::idx_t;
using testing::Results;
using testing::search;

SearchParametersRQVAE params_for(SearchMode mode) {
  SearchParametersRQVAE p;
  p.mode = mode;
  return p;
}

std::vector<std::int32_t> sid_at(const IndexRQVAE& index, std::size_t position) {
  std::vector<std::int32_t> sid(static_cast<std::size_t>(index.levels()));
  index.codec().unpack(index.codes.data() + position * index.code_size, sid.data());
  return sid;
}

TEST(IndexRQVAE, CodesArePackedSidsOfOneOrTwoBytesPerLevel) {
  auto small = IndexRQVAE(testing::random_model(12, 3, 256));
  EXPECT_EQ(small.sa_code_size(), 3u);
  auto large = IndexRQVAE(testing::random_model(12, 3, 300));
  EXPECT_EQ(large.sa_code_size(), 6u);
  for (IndexRQVAE* index : {&small, &large}) {
    const auto x = testing::random_vectors(50, 12, 3);
    std::vector<std::uint8_t> bytes(50 * index->code_size);
    index->sa_encode(50, x.data(), bytes.data());
    std::vector<std::int32_t> sids(50 * 3);
    ASSERT_TRUE(index->model()->encode(50, x.data(), sids.data()).is_ok());
    for (std::size_t i = 0; i < 50; ++i) {
      std::vector<std::int32_t> unpacked(3);
      index->codec().unpack(bytes.data() + i * index->code_size, unpacked.data());
      EXPECT_EQ(unpacked,
                std::vector<std::int32_t>(sids.begin() + static_cast<std::ptrdiff_t>(i * 3),
                                          sids.begin() + static_cast<std::ptrdiff_t>(i * 3 + 3)));
    }
    std::vector<float> decoded(50 * 12), expected(50 * 12);
    index->sa_decode(50, bytes.data(), decoded.data());
    ASSERT_TRUE(index->model()->decode(50, sids.data(), expected.data()).is_ok());
    EXPECT_EQ(decoded, expected);
  }
}

TEST(IndexRQVAE, ExhaustiveModeEqualsBruteForceOverReconstructions) {
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto index = testing::random_index(600, 2, 16, metric);
    EXPECT_EQ(index->metric_type,
              metric == Metric::kCosine ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
    const auto queries = testing::random_vectors(15, 12, 4);
    const auto exhaustive = params_for(SearchMode::kExhaustive);
    const Results r = search(*index, queries, 20, &exhaustive);
    testing::expect_exact_topk(*index, testing::exact_scores(*index, 15, queries.data()), 15, 20,
                               r.labels, r.distances, [](std::size_t) { return true; });
  }
}

TEST(IndexRQVAE, CosineModeWithAFullShortlistEqualsExhaustive) {
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto index = testing::random_index(500, 3, 8, metric);
    const auto queries = testing::random_vectors(10, 12, 6);
    SearchParametersRQVAE full;
    full.shortlist = index->ntotal;
    const Results r = search(*index, queries, 10, &full);
    testing::expect_exact_topk(*index, testing::exact_scores(*index, 10, queries.data()), 10, 10,
                               r.labels, r.distances, [](std::size_t) { return true; });
  }
}

TEST(IndexRQVAE, TheReconstructionCacheAndRunSkippingChangeNoResult) {
  // Items filed one batch at a time (sorted insertion into runs), some removed, then searched
  // with the cache off, cold and warm: the same answers, equal to a full shortlist's.
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto model = testing::random_model(12, 3, 8, metric);
    IndexRQVAE index(model);
    const auto x = testing::random_vectors(1200, 12, 21);
    for (idx_t begin = 0; begin < 1200; begin += 100) {
      std::vector<idx_t> ids(100);
      for (idx_t i = 0; i < 100; ++i) ids[static_cast<std::size_t>(i)] = 5000 + begin + i;
      index.add_with_ids(100, x.data() + begin * 12, ids.data());
    }
    std::vector<idx_t> gone;
    for (idx_t id = 5000; id < 6200; id += 7) gone.push_back(id);
    faiss::IDSelectorBatch sel(gone.size(), gone.data());
    EXPECT_EQ(index.remove_ids(sel), gone.size());
    const auto queries = testing::random_vectors(40, 12, 22);
    SearchParametersRQVAE full;
    full.shortlist = index.ntotal;
    const Results exact = search(index, queries, 5, &full);
    index.set_reconstruction_cache_bytes(0);
    SearchParametersRQVAE shortlisted;
    shortlisted.shortlist = 40;
    const Results uncached = search(index, queries, 5, &shortlisted);
    index.set_reconstruction_cache_bytes(IndexRQVAE::kDefaultReconstructionCacheBytes);
    const Results cold = search(index, queries, 5, &shortlisted);
    const Results warm = search(index, queries, 5, &shortlisted);
    EXPECT_EQ(cold, uncached);
    EXPECT_EQ(warm, uncached);
    EXPECT_GT(index.reconstruction_cache_hits(), 0u);
    // With every item shortlisted, skipped runs could only have lost results.
    index.set_reconstruction_cache_bytes(0);
    testing::expect_exact_topk(index, testing::exact_scores(index, 40, queries.data()), 40, 5,
                               exact.labels, exact.distances, [](std::size_t) { return true; });
  }
}

TEST(IndexRQVAE, PrefetchedReconstructionsServeTheFirstSearchesWithTheSameResults) {
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto model = testing::random_model(12, 3, 16, metric);
    IndexRQVAE index(model);
    const auto x = testing::random_vectors(1500, 12, 31);
    index.add(1500, x.data());
    const auto queries = testing::random_vectors(30, 12, 32);
    SearchParametersRQVAE shortlisted;
    shortlisted.shortlist = 50;
    index.set_reconstruction_cache_bytes(0);
    EXPECT_EQ(index.prefetch_limit(), 0);
    EXPECT_EQ(index.prefetch_reconstructions(0, index.ntotal), 0u);  // no cache: nothing to do
    const Results uncached = search(index, queries, 5, &shortlisted);
    index.set_reconstruction_cache_bytes(IndexRQVAE::kDefaultReconstructionCacheBytes);
    EXPECT_EQ(index.prefetch_limit(), index.ntotal);
    std::size_t decoded = 0;
    for (idx_t begin = 0; begin < index.ntotal; begin += 400) {
      decoded += index.prefetch_reconstructions(begin, 400);
    }
    std::set<std::string> distinct;
    for (idx_t i = 0; i < index.ntotal; ++i) {
      distinct.emplace(reinterpret_cast<const char*>(index.codes.data() + i * index.code_size),
                       index.code_size);
    }
    EXPECT_EQ(decoded, distinct.size());  // each distinct SID once
    EXPECT_EQ(index.prefetch_reconstructions(index.ntotal, 10), 0u);
    const Results warm = search(index, queries, 5, &shortlisted);
    EXPECT_EQ(warm, uncached);
    // Four ways per bucket keep nearly every SID: the first searches barely miss.
    EXPECT_GT(index.reconstruction_cache_hits(), 0u);
    EXPECT_LT(index.reconstruction_cache_misses() * 50, index.reconstruction_cache_hits());
    // What is cached is not decoded again.
    EXPECT_LT(index.prefetch_reconstructions(0, index.ntotal), decoded / 20);
  }
}

TEST(IndexRQVAE, CosineModeRecallIsCloseToExhaustiveOnATrainedModel) {
  const auto& set = testing::manifold_set();
  const auto d = static_cast<int>(set.base.cols);
  RqVaeConfig config;
  config.dim = d;
  config.hidden = {32};
  config.latent_dim = 8;
  config.architecture = RqVaeArchitecture::kMlp;
  config.activation = Activation::kReLU;
  config.beam_size = 1;
  config.levels = 3;
  config.codebook_size = 32;
  TrainOptions options = testing::tiny_options();
  auto trained = train_rqvae(config, options, set.base.rows, set.base.data.data());
  ASSERT_TRUE(trained.is_ok()) << trained.status().to_string();
  IndexRQVAE index(std::shared_ptr<const Quantizer>(std::move(trained->model)));
  index.add(static_cast<idx_t>(set.base.rows), set.base.data.data());
  // Ground truth: the exact cosine neighbours of the original vectors.
  std::vector<float> base = set.base.data, queries = set.queries.data;
  faiss::fvec_renorm_L2(set.base.cols, set.base.rows, base.data());
  faiss::fvec_renorm_L2(set.base.cols, set.queries.rows, queries.data());
  faiss::IndexFlatIP flat(d);
  flat.add(static_cast<idx_t>(set.base.rows), base.data());
  const Results truth = search(flat, queries, 10);
  const auto exhaustive = params_for(SearchMode::kExhaustive);
  const double exhaustive_recall = testing::overlap(
      search(index, set.queries.data, 10, &exhaustive).labels, truth.labels, set.queries.rows, 10);
  const double cosine_recall = testing::overlap(search(index, set.queries.data, 10).labels,
                                                truth.labels, set.queries.rows, 10);
  EXPECT_GT(exhaustive_recall, 0.5);
  EXPECT_GE(cosine_recall, exhaustive_recall - 0.02) << "exhaustive " << exhaustive_recall;
}

TEST(IndexRQVAE, BeamSearchScansOnlyTheBestSids) {
  auto index = testing::random_index(800, 3, 8);
  const auto queries = testing::random_vectors(10, 12, 8);
  SearchParametersRQVAE wide;
  wide.beam = 1000;  // more than the populated SIDs: every item is a candidate
  wide.shortlist = index->ntotal;
  const Results all = search(*index, queries, 10, &wide);
  testing::expect_exact_topk(*index, testing::exact_scores(*index, 10, queries.data()), 10, 10,
                             all.labels, all.distances, [](std::size_t) { return true; });
  SearchParametersRQVAE narrow;
  narrow.beam = 1;
  const Results one = search(*index, queries, 10, &narrow);
  for (std::size_t q = 0; q < 10; ++q) {
    std::set<std::vector<std::int32_t>> sids;
    for (std::size_t r = 0; r < 10; ++r) {
      const idx_t label = one.labels[q * 10 + r];
      if (label >= 0) sids.insert(sid_at(*index, static_cast<std::size_t>(label)));
    }
    EXPECT_EQ(sids.size(), 1u) << "query " << q;
  }
}

TEST(IndexRQVAE, PrefixModeRanksBySharedLengthThenSimilarity) {
  auto index = testing::random_index(700, 3, 4);
  const auto queries = testing::random_vectors(12, 12, 9);
  std::vector<std::int32_t> query_sids(12 * 3);
  ASSERT_TRUE(index->model()->encode(12, queries.data(), query_sids.data()).is_ok());
  const auto scores = testing::exact_scores(*index, 12, queries.data());
  for (int min_prefix : {0, 2}) {
    SearchParametersRQVAE p = params_for(SearchMode::kPrefix);
    p.shortlist = index->ntotal;
    p.min_prefix = min_prefix;
    const idx_t k = 300;
    const Results r = search(*index, queries, k, &p);
    for (std::size_t q = 0; q < 12; ++q) {
      // Reference: (shared length desc, cosine desc) over items sharing >= min_prefix codes.
      std::vector<std::pair<int, float>> expected;
      for (std::size_t i = 0; i < 700; ++i) {
        const auto sid = sid_at(*index, i);
        int shared = 0;
        while (shared < 3 && sid[static_cast<std::size_t>(shared)] ==
                                 query_sids[q * 3 + static_cast<std::size_t>(shared)])
          ++shared;
        if (shared >= min_prefix) expected.emplace_back(shared, scores[q * 700 + i]);
      }
      std::sort(expected.begin(), expected.end(), [](auto a, auto b) {
        return a.first != b.first ? a.first > b.first : a.second > b.second;
      });
      // The deepest groups fill k; a group is scanned only while fewer than k were found.
      std::size_t expected_count = 0;
      while (expected_count < expected.size() &&
             (expected_count < static_cast<std::size_t>(k) ||
              expected[expected_count].first == expected[expected_count - 1].first)) {
        ++expected_count;
      }
      expected_count = std::min<std::size_t>(expected_count, static_cast<std::size_t>(k));
      for (std::size_t rank = 0; rank < static_cast<std::size_t>(k); ++rank) {
        const idx_t label = r.labels[q * static_cast<std::size_t>(k) + rank];
        if (rank >= expected_count) {
          EXPECT_EQ(label, -1);
          continue;
        }
        ASSERT_GE(label, 0) << "query " << q << " rank " << rank;
        EXPECT_NEAR(r.distances[q * static_cast<std::size_t>(k) + rank], expected[rank].second,
                    1e-4);
        const auto sid = sid_at(*index, static_cast<std::size_t>(label));
        int shared = 0;
        while (shared < 3 && sid[static_cast<std::size_t>(shared)] ==
                                 query_sids[q * 3 + static_cast<std::size_t>(shared)])
          ++shared;
        EXPECT_EQ(shared, expected[rank].first) << "query " << q << " rank " << rank;
      }
    }
  }
}

TEST(IndexRQVAE, IdSelectorIsHonouredInEveryMode) {
  auto index = testing::random_index(600, 3, 8);
  const auto queries = testing::random_vectors(8, 12, 10);
  const auto scores = testing::exact_scores(*index, 8, queries.data());
  faiss::IDSelectorRange range(100, 250);
  const std::vector<idx_t> picked = {3, 77, 140, 141, 599};
  faiss::IDSelectorBatch batch(picked.size(), picked.data());
  for (const faiss::IDSelector* sel : {static_cast<const faiss::IDSelector*>(&range),
                                       static_cast<const faiss::IDSelector*>(&batch)}) {
    for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
      SearchParametersRQVAE p = params_for(mode);
      p.sel = const_cast<faiss::IDSelector*>(sel);
      const Results r = search(*index, queries, 10, &p);
      std::size_t found = 0;
      for (idx_t label : r.labels) {
        if (label < 0) continue;
        ++found;
        EXPECT_TRUE(sel->is_member(label))
            << "mode " << static_cast<int>(mode) << " label " << label;
      }
      EXPECT_GT(found, 0u);
      if (mode == SearchMode::kExhaustive) {
        testing::expect_exact_topk(
            *index, scores, 8, 10, r.labels, r.distances,
            [sel](std::size_t i) { return sel->is_member(static_cast<idx_t>(i)); });
      }
    }
    // A plain faiss::SearchParameters carries the selector too.
    faiss::SearchParameters plain;
    plain.sel = const_cast<faiss::IDSelector*>(sel);
    for (idx_t label : search(*index, queries, 10, &plain).labels) {
      if (label >= 0) {
        EXPECT_TRUE(sel->is_member(label));
      }
    }
  }
}

TEST(IndexRQVAE, PrefixFilterRestrictsEveryMode) {
  auto index = testing::random_index(600, 3, 8);
  const auto queries = testing::random_vectors(8, 12, 11);
  const auto scores = testing::exact_scores(*index, 8, queries.data());
  for (const std::vector<std::int32_t>& prefix :
       {std::vector<std::int32_t>{5}, std::vector<std::int32_t>{2, 3}}) {
    const auto under = [&](std::size_t i) {
      const auto sid = sid_at(*index, i);
      return std::equal(prefix.begin(), prefix.end(), sid.begin());
    };
    for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
      SearchParametersRQVAE p = params_for(mode);
      p.prefix = prefix;
      if (mode == SearchMode::kCosine) p.shortlist = index->ntotal;
      const Results r = search(*index, queries, 5, &p);
      for (idx_t label : r.labels) {
        if (label >= 0) {
          EXPECT_TRUE(under(static_cast<std::size_t>(label)));
        }
      }
      if (mode != SearchMode::kPrefix) {
        testing::expect_exact_topk(*index, scores, 8, 5, r.labels, r.distances, under);
      }
    }
    SearchParametersRQVAE beam;
    beam.prefix = prefix;
    beam.beam = 4;
    for (idx_t label : search(*index, queries, 5, &beam).labels) {
      if (label >= 0) {
        EXPECT_TRUE(under(static_cast<std::size_t>(label)));
      }
    }
  }
}

TEST(IndexRQVAE, RemoveIdsThenSearch) {
  // Positional labels shift down, as in FAISS's flat indexes.
  auto index = testing::random_index(300, 2, 8);
  std::vector<float> kept_recon(200 * 12);
  index->reconstruct_n(100, 200, kept_recon.data());
  faiss::IDSelectorRange first(0, 100);
  EXPECT_EQ(index->remove_ids(first), 100u);
  EXPECT_EQ(index->ntotal, 200);
  EXPECT_EQ(*index->trie().count({}), 200u);
  std::vector<float> recon(200 * 12);
  index->reconstruct_n(0, 200, recon.data());
  EXPECT_EQ(recon, kept_recon);
  const auto queries = testing::random_vectors(5, 12, 12);
  const auto exhaustive = params_for(SearchMode::kExhaustive);
  const Results r = search(*index, queries, 10, &exhaustive);
  testing::expect_exact_topk(*index, testing::exact_scores(*index, 5, queries.data()), 5, 10,
                             r.labels, r.distances, [](std::size_t) { return true; });

  // Caller ids stay as they are.
  IndexRQVAE with_ids(testing::random_model(12, 2, 8));
  const auto codes = testing::random_codes(with_ids.codec(), 50, 8, 3);
  std::vector<idx_t> ids(50);
  for (std::size_t i = 0; i < 50; ++i) ids[i] = 1000 + static_cast<idx_t>(i) * 10;
  with_ids.add_codes(50, codes.data(), ids.data());
  const std::vector<idx_t> doomed = {1000, 1250, 1490};
  faiss::IDSelectorBatch batch(doomed.size(), doomed.data());
  EXPECT_EQ(with_ids.remove_ids(batch), 3u);
  EXPECT_EQ(with_ids.ntotal, 47);
  for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
    const auto p = params_for(mode);
    for (idx_t label : search(with_ids, queries, 50, &p).labels) {
      if (label < 0) continue;
      EXPECT_EQ(std::count(doomed.begin(), doomed.end(), label), 0);
      EXPECT_EQ((label - 1000) % 10, 0);
    }
  }
}

// 400 items on 2x8 SIDs (64 SIDs: most items share theirs, so equal scores are everywhere).
struct TiedItems {
  std::vector<std::uint8_t> codes;
  std::vector<idx_t> ids;
};

TiedItems tied_items(const SidKeyCodec& codec) {
  TiedItems t;
  t.codes = testing::random_codes(codec, 400, 8, 21);
  for (std::size_t i = 0; i < 400; ++i) t.ids.push_back(5000 + static_cast<idx_t>(i) * 3);
  return t;
}

TEST(IndexRQVAE, RemovingACallerIdMovesOnlyTheLastItem) {
  IndexRQVAE index(testing::random_model(12, 2, 8));
  const TiedItems t = tied_items(index.codec());
  index.add_codes(400, t.codes.data(), t.ids.data());
  const std::vector<idx_t> before = index.ids();
  const idx_t doomed = t.ids[17];
  EXPECT_EQ(index.remove_labels(1, &doomed), 1u);
  ASSERT_EQ(index.ntotal, 399);
  for (std::size_t p = 0; p < 399; ++p) {
    EXPECT_EQ(index.ids()[p], p == 17 ? before[399] : before[p]) << p;
  }
  EXPECT_EQ(sid_at(index, 17), [&] {
    std::vector<std::int32_t> sid(2);
    index.codec().unpack(t.codes.data() + 399 * index.code_size, sid.data());
    return sid;
  }());
  EXPECT_EQ(*index.trie().count({}), 399u);
  EXPECT_EQ(index.remove_labels(1, &doomed), 0u);  // gone already
  std::vector<float> recon(12);
  EXPECT_THROW(index.reconstruct(doomed, recon.data()), faiss::FaissException);
}

TEST(IndexRQVAE, RemovalsAndReAddsAnswerLikeAFreshBuild) {
  const auto model = testing::random_model(12, 2, 8);
  IndexRQVAE live(model);
  const TiedItems t = tied_items(live.codec());
  live.add_codes(400, t.codes.data(), t.ids.data());
  // Remove a third (by label list, by batch selector and by range selector), re-add some of them.
  std::mt19937_64 rng(5);
  std::set<std::size_t> gone;
  while (gone.size() < 130) gone.insert(rng() % 400);
  std::vector<idx_t> listed;
  for (std::size_t r : gone) listed.push_back(t.ids[r]);
  std::shuffle(listed.begin(), listed.end(), rng);
  EXPECT_EQ(live.remove_labels(60, listed.data()), 60u);
  faiss::IDSelectorBatch batch(70, listed.data() + 60);
  EXPECT_EQ(live.remove_ids(batch), 70u);
  std::vector<std::size_t> back(gone.begin(), gone.end());
  back.resize(40);
  for (std::size_t r : back) {
    live.add_codes(1, t.codes.data() + r * live.code_size, &t.ids[r]);
    gone.erase(r);
  }
  // The same items, added in reverse order of id.
  IndexRQVAE fresh(model);
  for (std::size_t r = 400; r-- > 0;) {
    if (!gone.contains(r)) fresh.add_codes(1, t.codes.data() + r * fresh.code_size, &t.ids[r]);
  }
  ASSERT_EQ(live.ntotal, fresh.ntotal);
  ASSERT_NE(live.ids(), fresh.ids());

  const auto queries = testing::random_vectors(30, 12, 31);
  std::vector<SearchParametersRQVAE> all;
  for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
    all.push_back(params_for(mode));
  }
  all.push_back(params_for(SearchMode::kCosine));
  all.back().beam = 3;
  all.push_back(params_for(SearchMode::kCosine));
  all.back().prefix = {4};
  all.push_back(params_for(SearchMode::kCosine));
  all.back().shortlist = 12;
  faiss::IDSelectorRange some(5000, 5600);
  all.push_back(params_for(SearchMode::kPrefix));
  all.back().sel = &some;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Results a = search(live, queries, 10, &all[i]);
    const Results b = search(fresh, queries, 10, &all[i]);
    EXPECT_EQ(a.labels, b.labels) << "parameter set " << i;
    EXPECT_EQ(a.distances, b.distances) << "parameter set " << i;
  }
  for (std::int32_t c = 0; c < 8; ++c) {
    const std::vector<std::int32_t> prefix = {c};
    EXPECT_EQ(*live.trie().count(prefix), *fresh.trie().count(prefix)) << c;
  }
  std::vector<float> x(12), y(12);
  for (std::size_t r = 0; r < 400; r += 7) {
    if (gone.contains(r)) continue;
    live.reconstruct(t.ids[r], x.data());
    fresh.reconstruct(t.ids[r], y.data());
    EXPECT_EQ(x, y) << t.ids[r];
  }
}

TEST(IndexRQVAE, RepeatedCallerIdsAreRemovedTogether) {
  IndexRQVAE index(testing::random_model(12, 2, 8));
  const auto codes = testing::random_codes(index.codec(), 6, 8, 4);
  const std::vector<idx_t> ids = {1, 2, 3, 2, 5, 2};
  index.add_codes(6, codes.data(), ids.data());
  const idx_t two = 2;
  EXPECT_EQ(index.remove_labels(1, &two), 3u);
  EXPECT_EQ(index.ids(), (std::vector<idx_t>{1, 3, 5}));
  EXPECT_EQ(*index.trie().count({}), 3u);
  const idx_t five = 5;
  EXPECT_EQ(index.remove_labels(1, &five), 1u);  // distinct again: the hashed path
  EXPECT_EQ(index.ids(), (std::vector<idx_t>{1, 3}));
}

TEST(IndexRQVAE, CallerIdsAreTheLabels) {
  IndexRQVAE index(testing::random_model(12, 2, 8));
  const auto x = testing::random_vectors(40, 12, 13);
  std::vector<idx_t> ids(40);
  for (std::size_t i = 0; i < 40; ++i) ids[i] = 7000 - static_cast<idx_t>(i);
  index.add_with_ids(40, x.data(), ids.data());
  EXPECT_TRUE(index.has_ids());
  const auto exhaustive = params_for(SearchMode::kExhaustive);
  const Results r = search(index, x, 5, &exhaustive);
  for (idx_t label : r.labels) EXPECT_TRUE(label > 7000 - 40 && label <= 7000) << label;
  std::vector<float> by_id(12), by_position(12);
  index.reconstruct(6990, by_id.data());
  index.reconstruct_n(10, 1, by_position.data());
  EXPECT_EQ(by_id, by_position);
  EXPECT_THROW(index.reconstruct(1, by_id.data()), faiss::FaissException);
  EXPECT_THROW(index.add(1, x.data()), faiss::FaissException);  // positional into caller ids
  index.reset();
  EXPECT_FALSE(index.has_ids());
  index.add(1, x.data());
  EXPECT_THROW(index.add_with_ids(1, x.data(), ids.data()), faiss::FaissException);
}

TEST(IndexRQVAE, FollowsFaissResultConventions) {
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto index = testing::random_index(5, 2, 8, metric);
    const float missing = metric == Metric::kCosine ? -FLT_MAX : FLT_MAX;
    const auto queries = testing::random_vectors(3, 12, 14);
    for (SearchMode mode : {SearchMode::kCosine, SearchMode::kPrefix, SearchMode::kExhaustive}) {
      const auto p = params_for(mode);
      const Results r = search(*index, queries, 8, &p);  // k > ntotal
      for (std::size_t q = 0; q < 3; ++q) {
        std::size_t found = 0;
        for (std::size_t rank = 0; rank < 8; ++rank) {
          const idx_t label = r.labels[q * 8 + rank];
          if (label < 0) {
            EXPECT_EQ(r.distances[q * 8 + rank], missing);
            continue;
          }
          EXPECT_EQ(rank, found) << "padding comes last";
          ++found;
        }
        EXPECT_EQ(found, mode == SearchMode::kPrefix ? found : 5u);
      }
    }
    // n = 0 writes nothing; k = 0 and negative n throw.
    float distance = 1.5f;
    idx_t label = 42;
    index->search(0, queries.data(), 3, &distance, &label);
    EXPECT_EQ(label, 42);
    EXPECT_THROW(index->search(1, queries.data(), 0, &distance, &label), faiss::FaissException);
    // An empty trained index pads everything.
    IndexRQVAE empty(index->model());
    const Results none = search(empty, queries, 2);
    for (idx_t l : none.labels) EXPECT_EQ(l, -1);
  }
  // Untrained: search, add and encode throw with a message.
  RqVaeConfig config = testing::tiny_config();
  IndexRQVAE untrained(32, config);
  EXPECT_FALSE(untrained.is_trained);
  const auto x = testing::random_vectors(2, 32, 1);
  std::vector<float> d(2);
  std::vector<idx_t> l(2);
  try {
    untrained.search(1, x.data(), 2, d.data(), l.data());
    FAIL() << "no exception";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find("not trained"), std::string::npos);
  }
  EXPECT_THROW(untrained.add(1, x.data()), faiss::FaissException);
  EXPECT_THROW(IndexRQVAE(32, config, faiss::METRIC_L1), faiss::FaissException);
}

TEST(IndexRQVAE, RejectsParametersItCannotHonour) {
  auto index = testing::random_index(50, 2, 8);
  const auto queries = testing::random_vectors(1, 12, 15);
  struct OtherParameters : faiss::SearchParameters {};
  OtherParameters other;
  EXPECT_THROW(search(*index, queries, 3, &other), faiss::FaissException);
  auto expect_rejected = [&](SearchParametersRQVAE p) {
    EXPECT_THROW(search(*index, queries, 3, &p), faiss::FaissException);
  };
  SearchParametersRQVAE p;
  p.prefix = {1, 2, 3};  // longer than L
  expect_rejected(p);
  p.prefix = {8};  // code >= K
  expect_rejected(p);
  p = params_for(SearchMode::kExhaustive);
  p.beam = 2;
  expect_rejected(p);
  p = params_for(SearchMode::kExhaustive);
  p.shortlist = 10;
  expect_rejected(p);
  p = params_for(SearchMode::kCosine);
  p.min_prefix = 1;
  expect_rejected(p);
  p = params_for(SearchMode::kPrefix);
  p.min_prefix = 3;
  expect_rejected(p);
  p = SearchParametersRQVAE{};
  p.shortlist = -1;
  expect_rejected(p);
  std::vector<std::uint8_t> bad = {0, 9};
  EXPECT_THROW(index->add_codes(1, bad.data(), nullptr), faiss::FaissException);
}

TEST(IndexRQVAE, RangeSearchEqualsBruteForce) {
  for (Metric metric : {Metric::kCosine, Metric::kL2}) {
    auto index = testing::random_index(400, 2, 8, metric);
    const auto queries = testing::random_vectors(6, 12, 16);
    const auto scores = testing::exact_scores(*index, 6, queries.data());
    std::vector<float> sorted(scores);
    std::sort(sorted.begin(), sorted.end());
    const float radius = sorted[sorted.size() / 2];
    faiss::RangeSearchResult result(6);
    index->range_search(6, queries.data(), radius, &result);
    for (std::size_t q = 0; q < 6; ++q) {
      std::set<idx_t> expected, got;
      for (std::size_t i = 0; i < 400; ++i) {
        const float s = scores[q * 400 + i];
        if (metric == Metric::kCosine ? s > radius : s < radius)
          expected.insert(static_cast<idx_t>(i));
      }
      for (std::size_t j = result.lims[q]; j < result.lims[q + 1]; ++j) {
        got.insert(result.labels[j]);
        EXPECT_NEAR(result.distances[j],
                    scores[q * 400 + static_cast<std::size_t>(result.labels[j])], 1e-4);
      }
      EXPECT_EQ(got, expected);
    }
    // The selector and the prefix filter restrict range search too.
    faiss::IDSelectorRange range(50, 150);
    SearchParametersRQVAE filtered;
    filtered.sel = &range;
    filtered.prefix = sid_at(*index, 60);
    filtered.prefix.resize(1);
    faiss::RangeSearchResult restricted(6);
    index->range_search(6, queries.data(), radius, &restricted, &filtered);
    EXPECT_GT(restricted.lims[6], 0u);
    for (std::size_t j = 0; j < restricted.lims[6]; ++j) {
      const idx_t label = restricted.labels[j];
      EXPECT_TRUE(label >= 50 && label < 150);
      EXPECT_EQ(sid_at(*index, static_cast<std::size_t>(label))[0], filtered.prefix[0]);
    }
    SearchParametersRQVAE prefix_mode = params_for(SearchMode::kPrefix);
    faiss::RangeSearchResult unused(1);
    EXPECT_THROW(index->range_search(1, queries.data(), radius, &unused, &prefix_mode),
                 faiss::FaissException);
  }
}

TEST(IndexRQVAE, MergeFromAppendsTheOtherIndex) {
  auto model = testing::random_model(12, 2, 8);
  IndexRQVAE a(model), b(model), whole(model);
  const auto x = testing::random_vectors(60, 12, 17);
  a.add(30, x.data());
  b.add(30, x.data() + 30 * 12);
  whole.add(60, x.data());
  a.merge_from(b);
  EXPECT_EQ(a.ntotal, 60);
  EXPECT_EQ(b.ntotal, 0);
  EXPECT_EQ(a.codes, whole.codes);
  const auto queries = testing::random_vectors(4, 12, 18);
  const Results ra = search(a, queries, 10), rw = search(whole, queries, 10);
  EXPECT_EQ(ra.labels, rw.labels);
  EXPECT_EQ(ra.distances, rw.distances);
  IndexRQVAE stranger(testing::random_model(12, 2, 8, Metric::kCosine, 99));
  EXPECT_THROW(a.merge_from(stranger), faiss::FaissException);
  std::vector<idx_t> ids = {5};
  IndexRQVAE with_ids(model);
  with_ids.add_with_ids(1, x.data(), ids.data());
  EXPECT_THROW(a.merge_from(with_ids), faiss::FaissException);
}

TEST(IndexRQVAE, TrainFitsTheConfiguredModel) {
  const auto& set = testing::clustered_set();
  IndexRQVAE index(32, testing::tiny_config(), faiss::METRIC_INNER_PRODUCT);
  index.train_options = testing::tiny_options();
  index.train_options.epochs = 5;
  index.train(static_cast<idx_t>(set.base.rows), set.base.data.data());
  ASSERT_TRUE(index.is_trained);
  EXPECT_EQ(index.model()->kind(), "rqvae");
  EXPECT_EQ(index.config().latent_dim, 8);
  index.add(100, set.base.data.data());
  EXPECT_THROW(index.train(static_cast<idx_t>(set.base.rows), set.base.data.data()),
               faiss::FaissException);
}

TEST(IndexRQVAE, RqKMeansModelsScanTheInputSpace) {
  const auto& set = testing::clustered_set();
  RqKMeansConfig config;
  config.dim = 32;
  config.levels = 2;
  config.codebook_size = 16;
  config.metric = Metric::kL2;
  auto model = RqKMeans::train(config, {.iterations = 5}, set.base.rows, set.base.data.data());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  IndexRQVAE index(std::shared_ptr<const Quantizer>(std::move(model).value()));
  EXPECT_EQ(index.metric_type, faiss::METRIC_L2);
  index.add(500, set.base.data.data());
  // With the codebooks in the input space, the L2 lookup-table score ranks exactly: a shortlist of
  // k already gives exhaustive mode's answer.
  SearchParametersRQVAE tight;
  tight.shortlist = 10;
  const auto queries =
      std::vector<float>(set.queries.data.begin(), set.queries.data.begin() + 20 * 32);
  const Results fast = search(index, queries, 10, &tight);
  testing::expect_exact_topk(index, testing::exact_scores(index, 20, queries.data()), 20, 10,
                             fast.labels, fast.distances, [](std::size_t) { return true; });
  EXPECT_THROW(index.train(10, queries.data()), faiss::FaissException);
}

// ---- FAISS wrappers ----------------------------------------------------------------------------

TEST(IndexRQVAEInWrappers, IndexIDMapAndIDMap2TranslateLabels) {
  auto model = testing::random_model(12, 2, 8);
  const auto x = testing::random_vectors(80, 12, 20);
  std::vector<idx_t> ids(80);
  for (std::size_t i = 0; i < 80; ++i) ids[i] = 100 + 3 * static_cast<idx_t>(i);
  IndexRQVAE plain(model);
  plain.add_with_ids(80, x.data(), ids.data());
  const auto queries = testing::random_vectors(5, 12, 21);
  const Results expected = search(plain, queries, 10);

  IndexRQVAE inner1(model), inner2(model);
  faiss::IndexIDMap map(&inner1);
  faiss::IndexIDMap2 map2(&inner2);
  for (faiss::IndexIDMap* wrapper : {&map, static_cast<faiss::IndexIDMap*>(&map2)}) {
    wrapper->add_with_ids(80, x.data(), ids.data());
    const Results r = search(*wrapper, queries, 10);
    EXPECT_EQ(r.labels, expected.labels);
    EXPECT_EQ(r.distances, expected.distances);
    const std::vector<idx_t> doomed = {100, 103};
    faiss::IDSelectorBatch batch(doomed.size(), doomed.data());
    EXPECT_EQ(wrapper->remove_ids(batch), 2u);
    EXPECT_EQ(wrapper->ntotal, 78);
    for (idx_t label : search(*wrapper, queries, 10).labels) {
      EXPECT_TRUE(label != 100 && label != 103);
    }
  }
  std::vector<float> via_map(12), direct(12);
  map2.reconstruct(106, via_map.data());
  plain.reconstruct(106, direct.data());
  EXPECT_EQ(via_map, direct);
}

TEST(IndexRQVAEInWrappers, IndexShardsMergeShardResults) {
  auto model = testing::random_model(12, 2, 8);
  const auto x = testing::random_vectors(100, 12, 22);
  const auto queries = testing::random_vectors(5, 12, 23);
  IndexRQVAE whole(model);
  whole.add(100, x.data());
  for (bool threaded : {false, true}) {
    // 50 items per shard: the default shortlist (64) covers a whole shard, so shards rank exactly.
    IndexRQVAE s0(model), s1(model);
    faiss::IndexShards shards(12, threaded, /*successive_ids=*/true);
    shards.add_shard(&s0);
    shards.add_shard(&s1);
    shards.add(100, x.data());
    EXPECT_EQ(s0.ntotal, 50);
    const Results r = search(shards, queries, 10);
    testing::expect_exact_topk(whole, testing::exact_scores(whole, 5, queries.data()), 5, 10,
                               r.labels, r.distances, [](std::size_t) { return true; });
  }
}

TEST(IndexRQVAEInWrappers, IndexRefineFlatReranksWithTheOriginalVectors) {
  auto x = testing::random_vectors(200, 12, 24);
  faiss::fvec_renorm_L2(12, 200, x.data());
  IndexRQVAE base(testing::random_model(12, 2, 8));
  faiss::IndexRefineFlat refine(&base);
  refine.k_factor = 20;  // 10 * 20 = every item: the refinement is exact
  refine.add(200, x.data());
  faiss::IndexFlatIP flat(12);
  flat.add(200, x.data());
  auto queries = testing::random_vectors(5, 12, 25);
  faiss::fvec_renorm_L2(12, 5, queries.data());
  SearchParametersRQVAE full;
  full.shortlist = 200;
  const Results r = search(refine, queries, 10);
  const Results exact = search(flat, queries, 10);
  EXPECT_EQ(r.labels, exact.labels);
  for (std::size_t i = 0; i < r.distances.size(); ++i)
    EXPECT_NEAR(r.distances[i], exact.distances[i], 1e-5);
}

TEST(IndexRQVAEInWrappers, IndexPreTransformRotatesFirst) {
  auto model = testing::random_model(12, 2, 8);
  auto* rotation = new faiss::RandomRotationMatrix(12, 12);
  rotation->init(5);
  IndexRQVAE inner(model);
  faiss::IndexPreTransform pre(rotation, &inner);
  pre.own_fields = false;
  const auto x = testing::random_vectors(100, 12, 26);
  pre.add(100, x.data());
  const auto queries = testing::random_vectors(4, 12, 27);
  std::vector<float> rotated_x(x.size()), rotated_q(queries.size());
  rotation->apply_noalloc(100, x.data(), rotated_x.data());
  rotation->apply_noalloc(4, queries.data(), rotated_q.data());
  IndexRQVAE direct(model);
  direct.add(100, rotated_x.data());
  const auto exhaustive = params_for(SearchMode::kExhaustive);
  const Results via = search(pre, queries, 10, &exhaustive);
  const Results expected = search(direct, rotated_q, 10, &exhaustive);
  EXPECT_EQ(via.labels, expected.labels);
  EXPECT_EQ(via.distances, expected.distances);
  delete rotation;
}

}  // namespace
}  // namespace semid
