// Micro-benchmarks of the pieces search is built from: the lookup-table scan of IndexRQVAE's
// cosine mode, the trie operations and the SID key codec. Synthetic SIDs on an untrained model:
// speed does not depend on training.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <memory>
#include <random>
#include <vector>

#include "index/rqvae.h"
#include "index/sid.h"
#include "index/trie.h"
#include "plugin/IndexRQVAE.h"

namespace {

using idx_t = faiss::Index::idx_t;

std::vector<std::int32_t> random_sids(std::size_t n, int levels, int codebook_size,
                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> sids(n * static_cast<std::size_t>(levels));
  for (auto& c : sids)
    c = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(codebook_size));
  return sids;
}

// An index of n random 3x256 SIDs over a random 100-d model (GloVe's shape).
std::unique_ptr<semid::IndexRQVAE> make_index(std::size_t n) {
  semid::RqVaeConfig config;
  config.dim = 100;
  config.hidden = {256, 128};
  auto model = semid::RqVae::create(config, 1);
  auto index = std::make_unique<semid::IndexRQVAE>(std::move(model).value());
  const auto sids = random_sids(n, 3, 256, 2);
  std::vector<std::uint8_t> codes(n * index->code_size);
  for (std::size_t i = 0; i < n; ++i)
    index->codec().pack(sids.data() + i * 3, codes.data() + i * 3);
  index->add_codes(static_cast<idx_t>(n), codes.data(), nullptr);
  return index;
}

std::vector<float> random_queries(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * 100);
  for (auto& v : x) v = normal(rng);
  return x;
}

// One batch of 256 queries per iteration, k = 10, default shortlist; items/s counts scanned codes.
void BM_CosineModeSearch(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  omp_set_num_threads(static_cast<int>(state.range(1)));
  auto index = make_index(n);
  semid::SearchParametersRQVAE params;
  params.beam = static_cast<int>(state.range(2));
  const auto queries = random_queries(256, 3);
  std::vector<float> distances(256 * 10);
  std::vector<idx_t> labels(256 * 10);
  for (auto _ : state) {
    index->search(256, queries.data(), 10, distances.data(), labels.data(), &params);
    benchmark::DoNotOptimize(labels.data());
  }
  state.counters["queries/s"] = benchmark::Counter(256.0 * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CosineModeSearch)
    ->ArgNames({"items", "threads", "beam"})
    ->Args({100000, 1, 0})
    ->Args({100000, 2, 0})
    ->Args({1000000, 1, 0})
    ->Args({1000000, 1, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_TrieInsert(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto sids = random_sids(n, 3, 256, 4);
  for (auto _ : state) {
    auto trie = semid::SidTrie::create(3, 256);
    for (std::size_t i = 0; i < n; ++i) {
      benchmark::DoNotOptimize(trie->insert({sids.data() + i * 3, 3}, i));
    }
    state.counters["bytes/item"] =
        static_cast<double>(trie->memory_bytes()) / static_cast<double>(n);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_TrieInsert)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_TrieQueries(benchmark::State& state) {
  const std::size_t n = 300000;
  const auto sids = random_sids(n, 3, 256, 5);
  auto trie = semid::SidTrie::create(3, 256);
  for (std::size_t i = 0; i < n; ++i) (void)trie->insert({sids.data() + i * 3, 3}, i);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::int32_t* sid = sids.data() + (i++ % n) * 3;
    benchmark::DoNotOptimize(trie->children({sid, 1}));
    benchmark::DoNotOptimize(trie->count({sid, 2}));
    benchmark::DoNotOptimize(trie->items({sid, 1}, "", 20));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_TrieQueries);

void BM_SidKeyRoundTrip(benchmark::State& state) {
  auto codec = semid::SidKeyCodec::create(3, 256);
  const auto sids = random_sids(1024, 3, 256, 6);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::int32_t* sid = sids.data() + (i % 1024) * 3;
    auto key = codec->encode_key({sid, 3}, 0, i++);
    benchmark::DoNotOptimize(codec->decode_key(*key));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SidKeyRoundTrip);

}  // namespace

BENCHMARK_MAIN();
