// Health metrics of a semantic-ID model: how well it reconstructs, and how well it uses its codes.
// Plain C++ (no LibTorch): they run on codes and vectors from any Quantizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "index/vecs_io.h"

namespace semid {

// Usage of one level's K codes over a set of items.
struct LevelUsage {
  int used_codes = 0;         // codes chosen by at least one item
  double used_fraction = 0;   // used_codes / K
  double perplexity = 0;      // exp(entropy in nats); K for perfectly uniform usage
  double entropy_bits = 0;    // usage entropy in bits; log2(K) at most
  double top_code_share = 0;  // share of items on the most popular code (hourglass diagnostic)
};

struct CodeHealth {
  std::size_t items = 0;
  std::vector<LevelUsage> levels;
  std::size_t unique_sids = 0;          // distinct full L-code tuples
  double collision_rate = 0;            // share of items whose full SID another item shares
  std::size_t max_collision_group = 0;  // most items on one SID (1 when there is no collision)
  nlohmann::json to_json() const;
};

// The usage figures of one level from its per-code item counts (counts.size() = K) over n items.
LevelUsage level_usage(std::span<const std::uint64_t> counts, std::uint64_t n);

// codes: n * levels values in [0, codebook_size) (codes[i * levels + l]).
CodeHealth code_health(std::size_t n, int levels, int codebook_size, const std::int32_t* codes);

struct ReconstructionQuality {
  double mse = 0;          // mean over all n * d elements of (x - y)^2
  double mae = 0;          // mean over all elements of |x - y|
  double mean_cosine = 0;  // mean over rows of cos(x_i, y_i)
  nlohmann::json to_json() const;
};

// x, y: n * d row-major. x is compared as given (pass normalised inputs for a cosine model).
ReconstructionQuality reconstruction_quality(std::size_t n, std::size_t d, const float* x,
                                             const float* y);

// Recall@k as ann-benchmarks and the texmex sets define it: the share of each query's true
// top-k (ground_truth's first k columns) found among its first k results, averaged over queries.
// Negative ids in results (padding) never match. Requires k <= both matrices' cols and equal rows.
double recall_at_k(const Int32Matrix& results, const Int32Matrix& ground_truth, int k);

}  // namespace semid
