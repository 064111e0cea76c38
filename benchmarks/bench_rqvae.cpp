// RQ-VAE speed with 1 and 2 LibTorch threads: batched encode, decode, and training epochs.
// On a 2-core VM the design notes measured LibTorch 1.13 running 5-15x slower with 2 intra-op
// threads than with 1; this program re-measures it here (the Arg is the thread count).
#include <benchmark/benchmark.h>

#include <random>

#include "index/rqvae.h"
#include "index/trainer.h"

namespace {

constexpr int kDim = 512;

std::vector<float> random_vectors(std::size_t n) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * kDim);
  for (auto& v : x) v = normal(rng);
  return x;
}

const semid::RqVae& model() {
  static auto m = [] {
    semid::RqVaeConfig c;
    c.dim = kDim;
    return std::move(semid::RqVae::create(c, 1)).value();
  }();
  return *m;
}

void BM_Encode(benchmark::State& state) {
  semid::RqVae::set_threads(static_cast<int>(state.range(0)));
  const std::size_t batch = static_cast<std::size_t>(state.range(1));
  auto x = random_vectors(batch);
  std::vector<std::int32_t> codes(batch * 3);
  for (auto _ : state) {
    auto s = model().encode(batch, x.data(), codes.data());
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_Encode)
    ->ArgNames({"threads", "batch"})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({1, 1024})
    ->Args({2, 1024});

void BM_Decode(benchmark::State& state) {
  semid::RqVae::set_threads(static_cast<int>(state.range(0)));
  const std::size_t batch = 1024;
  std::vector<std::int32_t> codes(batch * 3);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::int32_t>(i % 256);
  std::vector<float> out(batch * kDim);
  for (auto _ : state) {
    auto s = model().decode(batch, codes.data(), out.data());
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_Decode)->ArgName("threads")->Arg(1)->Arg(2);

// Two epochs (one warm-up, one quantised) over 4,096 vectors with the default architecture.
void BM_TrainEpochs(benchmark::State& state) {
  const std::size_t n = 4096;
  auto x = random_vectors(n);
  semid::RqVaeConfig c;
  c.dim = kDim;
  semid::TrainOptions o;
  o.epochs = 2;
  o.warmup_epochs = 1;
  o.threads = static_cast<int>(state.range(0));
  o.kmeans_iterations = 5;
  for (auto _ : state) {
    auto r = semid::train_rqvae(c, o, n, x.data());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n) * 2);
}
BENCHMARK(BM_TrainEpochs)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
