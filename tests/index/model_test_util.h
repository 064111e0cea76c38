// Synthetic data for model tests with the structure residual quantisers are built for: every item
// is one of `coarse` centres plus one of `fine` smaller offsets plus a little noise, so a 2-level
// quantiser with coarse and fine codes can reconstruct it almost exactly.
#pragma once

#include <random>

#include "index/vecs_io.h"

namespace semid::testing {

inline FloatMatrix clustered_data(std::size_t n, std::size_t d, int coarse, std::uint64_t seed,
                                  int fine = 8, float noise = 0.05f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  FloatMatrix centers(static_cast<std::size_t>(coarse), d),
      offsets(static_cast<std::size_t>(fine), d);
  for (auto& v : centers.data) v = normal(rng);
  for (auto& v : offsets.data) v = 0.3f * normal(rng);
  FloatMatrix x(n, d);
  std::uniform_int_distribution<int> pick_coarse(0, coarse - 1), pick_fine(0, fine - 1);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::size_t>(pick_coarse(rng));
    const auto f = static_cast<std::size_t>(pick_fine(rng));
    for (std::size_t j = 0; j < d; ++j) {
      x.row(i)[j] = centers.row(c)[j] + offsets.row(f)[j] + noise * normal(rng);
    }
  }
  return x;
}

}  // namespace semid::testing
