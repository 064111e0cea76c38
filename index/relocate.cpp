#include "index/relocate.h"

#include <faiss/utils/distances.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace semid {

SidRelocator::SidRelocator(const Quantizer& model, int siblings)
    : levels_(model.levels()),
      codebook_size_(model.codebook_size()),
      latent_dim_(static_cast<std::size_t>(model.latent_dim())),
      cosine_(model.cosine_codewords()),
      siblings_(siblings) {
  if (siblings < 1) throw std::invalid_argument("SidRelocator: siblings must be >= 1");
  const auto K = static_cast<std::size_t>(codebook_size_);
  for (int l = 0; l < levels_; ++l) {
    books_.push_back(model.codebook(l));
    std::vector<float> norms(K);
    faiss::fvec_norms_L2sqr(norms.data(), books_.back().data(), latent_dim_, K);
    norms_.push_back(std::move(norms));
  }
}

void SidRelocator::scores(const float* latent, const std::int32_t* sid, int level,
                          float* score) const {
  const std::size_t d = latent_dim_;
  const auto K = static_cast<std::size_t>(codebook_size_);
  std::vector<float> residual(latent, latent + d);
  for (int l = 0; l < level; ++l) {
    const float* word = books_[l].data() + static_cast<std::size_t>(sid[l]) * d;
    for (std::size_t j = 0; j < d; ++j) residual[j] -= word[j];
  }
  // Smaller is nearer: ||e||^2 - 2 <r, e> (L2, ||r||^2 dropped) or -<r, e> / ||e|| (cosine).
  faiss::fvec_inner_products_ny(score, residual.data(), books_[level].data(), d, K);
  const std::vector<float>& norms = norms_[level];
  for (std::size_t c = 0; c < K; ++c) {
    score[c] =
        cosine_ ? -score[c] / std::max(std::sqrt(norms[c]), 1e-12f) : norms[c] - 2.0f * score[c];
  }
}

void SidRelocator::rank(const float* latent, const std::int32_t* sid, int level,
                        std::int32_t* order) const {
  const auto K = static_cast<std::size_t>(codebook_size_);
  std::vector<float> score(K);
  scores(latent, sid, level, score.data());
  std::iota(order, order + K, 0);
  std::stable_sort(order, order + K,
                   [&](std::int32_t a, std::int32_t b) { return score[a] < score[b]; });
}

std::optional<int> SidRelocator::place(const float* latent, std::int32_t* sid,
                                       const Taken& taken) const {
  const auto L = static_cast<std::size_t>(levels_);
  const auto K = static_cast<std::size_t>(codebook_size_);
  if (!taken({sid, L})) return levels_;
  std::vector<std::int32_t> trial(sid, sid + L);
  std::vector<std::int32_t> order(K);
  const int last = levels_ - 1;
  // The free last code under `trial`'s prefix nearest to the item, if any.
  const auto free_last = [&]() {
    rank(latent, trial.data(), last, order.data());
    for (std::int32_t code : order) {
      trial[last] = code;
      if (!taken(trial)) return true;
    }
    return false;
  };
  if (free_last()) {
    std::copy(trial.begin(), trial.end(), sid);
    return last;
  }
  std::vector<std::int32_t> upper(K);
  std::vector<float> score(K);
  for (int up = last - 1; up >= 0; --up) {
    std::copy(sid, sid + L, trial.begin());
    rank(latent, trial.data(), up, upper.data());
    int tried = 0;
    for (std::int32_t code : upper) {
      if (code == sid[up]) continue;
      if (++tried > siblings_) break;
      trial[up] = code;
      // Below the new prefix, the item's own greedy path down to the last level (the nearest
      // code is the first of the ranking: no sort needed).
      for (int l = up + 1; l < last; ++l) {
        scores(latent, trial.data(), l, score.data());
        trial[l] =
            static_cast<std::int32_t>(std::min_element(score.begin(), score.end()) - score.begin());
      }
      if (free_last()) {
        std::copy(trial.begin(), trial.end(), sid);
        return up;
      }
    }
  }
  return std::nullopt;
}

}  // namespace semid
