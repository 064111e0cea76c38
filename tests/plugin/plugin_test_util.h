// Helpers shared by the plugin tests: small models, random SIDs and a brute-force reference.
#pragma once

#include <faiss/utils/distances.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "index/rqvae.h"
#include "index/trainer.h"
#include "index/vecs_io.h"
#include "plugin/IndexRQVAE.h"
#include "tests/index/model_test_util.h"

namespace semid::testing {

using idx_t = faiss::Index::idx_t;

// An untrained RQ-VAE with random weights: instant, and all that tests of search mechanics need
// (they compare modes with each other and with brute force over the same reconstructions).
inline std::shared_ptr<const RqVae> random_model(int dim, int levels, int codebook_size,
                                                 Metric metric = Metric::kCosine,
                                                 std::uint64_t seed = 1) {
  RqVaeConfig config;
  config.dim = dim;
  config.hidden = {16};
  config.latent_dim = 8;
  config.architecture = RqVaeArchitecture::kMlp;
  config.activation = Activation::kReLU;
  config.beam_size = 1;
  config.levels = levels;
  config.codebook_size = codebook_size;
  config.metric = metric;
  auto model = RqVae::create(config, seed);
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  return std::move(model).value();
}

// Base rows and query rows.
struct BaseAndQueries {
  FloatMatrix base;
  FloatMatrix queries;
};

// 2000 + 200 rows of clustered vectors (model_test_util.h), for training tests.
inline const BaseAndQueries& clustered_set() {
  static const BaseAndQueries set = [] {
    FloatMatrix all = clustered_data(2200, 32, 16, 7, 8, 0.1f);
    BaseAndQueries s{FloatMatrix(2000, 32), FloatMatrix(200, 32)};
    std::copy(all.data.begin(), all.data.begin() + 2000 * 32, s.base.data.begin());
    std::copy(all.data.begin() + 2000 * 32, all.data.end(), s.queries.data.begin());
    return s;
  }();
  return set;
}

// Data a small RQ-VAE can learn well: 3000 + 200 points on a smooth 4-d manifold in 32-d
// (x = A tanh(B u), u ~ N(0, I)), so that neighbour recall measures the search, not the model.
inline const BaseAndQueries& manifold_set() {
  static const BaseAndQueries set = [] {
    std::mt19937_64 rng(21);
    std::normal_distribution<float> normal;
    std::vector<float> a(32 * 16), b(16 * 4);
    for (auto& v : a) v = normal(rng);
    for (auto& v : b) v = normal(rng) * 0.7f;
    FloatMatrix all(3200, 32);
    std::vector<float> u(4), h(16);
    for (std::size_t i = 0; i < all.rows; ++i) {
      for (auto& v : u) v = normal(rng);
      for (std::size_t j = 0; j < 16; ++j) {
        float sum = 0;
        for (std::size_t t = 0; t < 4; ++t) sum += b[j * 4 + t] * u[t];
        h[j] = std::tanh(sum);
      }
      for (std::size_t r = 0; r < 32; ++r) {
        float sum = 0;
        for (std::size_t j = 0; j < 16; ++j) sum += a[r * 16 + j] * h[j];
        all.row(i)[r] = sum;
      }
    }
    BaseAndQueries s{FloatMatrix(3000, 32), FloatMatrix(200, 32)};
    std::copy(all.data.begin(), all.data.begin() + 3000 * 32, s.base.data.begin());
    std::copy(all.data.begin() + 3000 * 32, all.data.end(), s.queries.data.begin());
    return s;
  }();
  return set;
}

inline RqVaeConfig tiny_config() {
  RqVaeConfig config;
  config.dim = 32;
  config.hidden = {32};
  config.latent_dim = 8;
  config.architecture = RqVaeArchitecture::kMlp;
  config.activation = Activation::kReLU;
  config.beam_size = 1;
  config.levels = 3;
  config.codebook_size = 16;
  return config;
}

inline TrainOptions tiny_options() {
  TrainOptions o;
  o.epochs = 12;
  o.warmup_epochs = 3;
  o.batch_size = 256;
  o.lr_warmup_steps = 20;
  o.learning_rate = 3e-3;
  return o;
}

inline std::vector<float> random_vectors(std::size_t n, std::size_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * d);
  for (auto& v : x) v = normal(rng);
  return x;
}

// n packed SIDs with codes in [0, spread) per level.
inline std::vector<std::uint8_t> random_codes(const SidKeyCodec& codec, std::size_t n, int spread,
                                              std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> out(n * codec.sid_bytes());
  std::vector<std::int32_t> sid(static_cast<std::size_t>(codec.levels()));
  for (std::size_t i = 0; i < n; ++i) {
    for (auto& c : sid) c = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(spread));
    codec.pack(sid.data(), out.data() + i * codec.sid_bytes());
  }
  return out;
}

// An IndexRQVAE over a random model holding n items with random SIDs (positional labels).
inline std::unique_ptr<IndexRQVAE> random_index(std::size_t n, int levels = 2,
                                                int codebook_size = 16,
                                                Metric metric = Metric::kCosine, int dim = 12) {
  auto index = std::make_unique<IndexRQVAE>(random_model(dim, levels, codebook_size, metric));
  const auto codes = random_codes(index->codec(), n, codebook_size, 5);
  index->add_codes(static_cast<idx_t>(n), codes.data(), nullptr);
  return index;
}

inline bool higher_is_better(const faiss::Index& index) {
  return index.metric_type == faiss::METRIC_INNER_PRODUCT;
}

// The exact metric between a query and every item's reconstruction: what exhaustive search ranks
// by (cosine for inner-product indexes, squared L2 otherwise). Result: nq * ntotal.
inline std::vector<float> exact_scores(const IndexRQVAE& index, std::size_t nq, const float* x) {
  const auto d = static_cast<std::size_t>(index.d);
  const auto n = static_cast<std::size_t>(index.ntotal);
  std::vector<float> recon(n * d);
  index.reconstruct_n(0, index.ntotal, recon.data());
  std::vector<float> queries(x, x + nq * d);
  const bool ip = higher_is_better(index);
  if (ip) {
    faiss::fvec_renorm_L2(d, n, recon.data());
    faiss::fvec_renorm_L2(d, nq, queries.data());
  }
  std::vector<float> scores(nq * n);
  for (std::size_t q = 0; q < nq; ++q) {
    for (std::size_t i = 0; i < n; ++i) {
      scores[q * n + i] =
          ip ? faiss::fvec_inner_product(queries.data() + q * d, recon.data() + i * d, d)
             : faiss::fvec_L2sqr(queries.data() + q * d, recon.data() + i * d, d);
    }
  }
  return scores;
}

// The label of the item at `position`.
inline idx_t label_at(const IndexRQVAE& index, std::size_t position) {
  return index.has_ids() ? index.ids()[position] : static_cast<idx_t>(position);
}

// Checks that (labels, distances) (nq * k) is a correct top-k under `scores` restricted to the
// positions `allowed` admits: reported distances match the exact ones of the reported labels, are
// sorted, and equal the true top-k distances (so ties may be broken either way).
template <class Allowed>
void expect_exact_topk(const IndexRQVAE& index, const std::vector<float>& scores, std::size_t nq,
                       idx_t k, const std::vector<idx_t>& labels,
                       const std::vector<float>& distances, const Allowed& allowed) {
  const auto n = static_cast<std::size_t>(index.ntotal);
  const bool ip = higher_is_better(index);
  for (std::size_t q = 0; q < nq; ++q) {
    std::vector<float> truth;
    for (std::size_t i = 0; i < n; ++i) {
      if (allowed(i)) truth.push_back(scores[q * n + i]);
    }
    std::sort(truth.begin(), truth.end(), [ip](float a, float b) { return ip ? a > b : a < b; });
    for (std::size_t r = 0; r < static_cast<std::size_t>(k); ++r) {
      const idx_t label = labels[q * static_cast<std::size_t>(k) + r];
      const float distance = distances[q * static_cast<std::size_t>(k) + r];
      if (r >= truth.size()) {
        EXPECT_EQ(label, -1) << "query " << q << " rank " << r;
        continue;
      }
      ASSERT_GE(label, 0) << "query " << q << " rank " << r;
      EXPECT_NEAR(distance, truth[r], 1e-4) << "query " << q << " rank " << r;
      std::size_t position = 0;
      while (position < n && label_at(index, position) != label) ++position;
      ASSERT_LT(position, n);
      EXPECT_TRUE(allowed(position)) << "label " << label;
      EXPECT_NEAR(scores[q * n + position], distance, 1e-4);
    }
  }
}

// Recall of `found` against `truth` (both nq * k labels): the share of true labels found.
inline double overlap(const std::vector<idx_t>& found, const std::vector<idx_t>& truth,
                      std::size_t nq, std::size_t k) {
  std::size_t hits = 0;
  for (std::size_t q = 0; q < nq; ++q) {
    const auto begin = found.begin() + static_cast<std::ptrdiff_t>(q * k);
    for (std::size_t r = 0; r < k; ++r) {
      hits += std::find(begin, begin + static_cast<std::ptrdiff_t>(k), truth[q * k + r]) !=
              begin + static_cast<std::ptrdiff_t>(k);
    }
  }
  return static_cast<double>(hits) / static_cast<double>(nq * k);
}

// One search call's outputs: nq * k distances and labels, row-major.
struct Results {
  std::vector<float> distances;
  std::vector<idx_t> labels;
  bool operator==(const Results&) const = default;
};

// index.search over queries (nq * d floats) with optional parameters.
inline Results search(const faiss::Index& index, const std::vector<float>& queries, idx_t k,
                      const faiss::SearchParameters* params = nullptr) {
  const idx_t nq = static_cast<idx_t>(queries.size()) / index.d;
  Results r{std::vector<float>(static_cast<std::size_t>(nq * k)),
            std::vector<idx_t>(static_cast<std::size_t>(nq * k))};
  index.search(nq, queries.data(), k, r.distances.data(), r.labels.data(), params);
  return r;
}

}  // namespace semid::testing
