#include "index/relocate.h"

#include <faiss/utils/distances.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace semid {
namespace {

// Minimum-cost assignment of each of `rows` rows to a distinct column (rows <= cols); cost is
// rows x cols, row-major. Returns the column of each row. The Hungarian method with potentials,
// O(rows^2 cols).
std::vector<int> assign_min_cost(int rows, int cols, const std::vector<double>& cost) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(rows + 1, 0), v(cols + 1, 0), min_to(cols + 1);
  std::vector<int> row_of(cols + 1, 0), via(cols + 1, 0);  // 1-based rows; column 0 is a sentinel
  std::vector<char> visited(cols + 1);
  for (int r = 1; r <= rows; ++r) {
    row_of[0] = r;
    int col = 0;
    std::fill(min_to.begin(), min_to.end(), inf);
    std::fill(visited.begin(), visited.end(), 0);
    do {
      visited[col] = 1;
      const int row = row_of[col];
      double delta = inf;
      int next = 0;
      for (int c = 1; c <= cols; ++c) {
        if (visited[c]) continue;
        const double reduced =
            cost[static_cast<std::size_t>(row - 1) * cols + (c - 1)] - u[row] - v[c];
        if (reduced < min_to[c]) {
          min_to[c] = reduced;
          via[c] = col;
        }
        if (min_to[c] < delta) {
          delta = min_to[c];
          next = c;
        }
      }
      for (int c = 0; c <= cols; ++c) {
        if (visited[c]) {
          u[row_of[c]] += delta;
          v[c] -= delta;
        } else {
          min_to[c] -= delta;
        }
      }
      col = next;
    } while (row_of[col] != 0);
    do {
      const int prev = via[col];
      row_of[col] = row_of[prev];
      col = prev;
    } while (col != 0);
  }
  std::vector<int> col_of(rows, -1);
  for (int c = 1; c <= cols; ++c) {
    if (row_of[c] != 0) col_of[row_of[c] - 1] = c - 1;
  }
  return col_of;
}

std::string key_of(const std::int32_t* codes, std::size_t count) {
  return {reinterpret_cast<const char*>(codes), count * sizeof(std::int32_t)};
}

}  // namespace

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

Result<std::vector<std::optional<int>>> SidRelocator::place_batch(std::size_t n, std::int32_t* sids,
                                                                  const LatentsOf& latents_of,
                                                                  const Taken& taken) const {
  const auto L = static_cast<std::size_t>(levels_);
  const auto K = static_cast<std::size_t>(codebook_size_);
  const int last = levels_ - 1;
  std::vector<std::optional<int>> result(n, levels_);
  // The batch's items by prefix of L - 1 codes, in batch order.
  std::unordered_map<std::string, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < n; ++i) groups[key_of(sids + i * L, L - 1)].push_back(i);
  std::unordered_set<std::string> claimed;  // SIDs this batch holds so far
  // A group needs solving when two members share a SID or one's SID is taken; the others keep
  // their SIDs.
  std::vector<const std::vector<std::size_t>*> conflicted;
  std::vector<std::size_t> need;  // members of conflicted groups: their latents are needed
  for (const auto& [prefix, members] : groups) {
    bool conflict = false;
    std::unordered_set<std::int32_t> seen;
    for (std::size_t i : members) {
      const std::int32_t* sid = sids + i * L;
      if (!seen.insert(sid[last]).second || taken({sid, L})) {
        conflict = true;
        break;
      }
    }
    if (conflict) {
      conflicted.push_back(&members);
      need.insert(need.end(), members.begin(), members.end());
    } else {
      for (std::size_t i : members) claimed.insert(key_of(sids + i * L, L));
    }
  }
  if (need.empty()) return result;
  std::sort(need.begin(), need.end());
  std::vector<float> latents(need.size() * latent_dim_);
  SEMID_RETURN_IF_ERROR(latents_of(need, latents.data()));
  const auto latent_of = [&](std::size_t i) {
    const auto at = std::lower_bound(need.begin(), need.end(), i) - need.begin();
    return latents.data() + static_cast<std::size_t>(at) * latent_dim_;
  };

  std::vector<std::size_t> leftover;  // items no free last code of their prefix could take
  std::vector<float> score(K);
  std::vector<std::int32_t> trial(L);
  for (const std::vector<std::size_t>* group : conflicted) {
    const std::vector<std::size_t>& members = *group;
    std::copy(sids + members.front() * L, sids + members.front() * L + L, trial.begin());
    std::vector<std::int32_t> free_codes;
    for (std::size_t c = 0; c < K; ++c) {
      trial[last] = static_cast<std::int32_t>(c);
      if (!taken(trial)) free_codes.push_back(static_cast<std::int32_t>(c));
    }
    const std::size_t m = members.size();
    const std::size_t f = free_codes.size();
    std::vector<double> cost(m * f);
    for (std::size_t r = 0; r < m; ++r) {
      const std::size_t i = members[r];
      scores(latent_of(i), sids + i * L, last, score.data());
      for (std::size_t c = 0; c < f; ++c) cost[r * f + c] = score[free_codes[c]];
    }
    std::vector<int> code_of(m, -1);  // index into free_codes, -1: left over
    if (m <= f) {
      code_of = assign_min_cost(static_cast<int>(m), static_cast<int>(f), cost);
    } else if (f > 0) {
      // More items than free codes: give each free code an item (the transposed problem).
      std::vector<double> transposed(f * m);
      for (std::size_t r = 0; r < m; ++r) {
        for (std::size_t c = 0; c < f; ++c) transposed[c * m + r] = cost[r * f + c];
      }
      const std::vector<int> item_of =
          assign_min_cost(static_cast<int>(f), static_cast<int>(m), transposed);
      for (std::size_t c = 0; c < f; ++c) {
        code_of[static_cast<std::size_t>(item_of[c])] = static_cast<int>(c);
      }
    }
    for (std::size_t r = 0; r < m; ++r) {
      const std::size_t i = members[r];
      std::int32_t* sid = sids + i * L;
      if (code_of[r] < 0) {
        leftover.push_back(i);
        continue;
      }
      const std::int32_t code = free_codes[static_cast<std::size_t>(code_of[r])];
      if (code != sid[last]) result[i] = last;
      sid[last] = code;
      claimed.insert(key_of(sid, L));
    }
  }
  // Whoever a full prefix could not hold looks a level up, avoiding the batch's SIDs as well.
  std::sort(leftover.begin(), leftover.end());
  const Taken taken_or_claimed = [&](std::span<const std::int32_t> sid) {
    return claimed.count(key_of(sid.data(), sid.size())) > 0 || taken(sid);
  };
  for (std::size_t i : leftover) {
    std::int32_t* sid = sids + i * L;
    result[i] = place(latent_of(i), sid, taken_or_claimed);
    claimed.insert(key_of(sid, L));
  }
  return result;
}

std::vector<std::optional<int>> SidRelocator::place_batch(std::size_t n, const float* latents,
                                                          std::int32_t* sids,
                                                          const Taken& taken) const {
  const LatentsOf copy_rows = [&](std::span<const std::size_t> items, float* out) {
    for (std::size_t r = 0; r < items.size(); ++r) {
      std::copy_n(latents + items[r] * latent_dim_, latent_dim_, out + r * latent_dim_);
    }
    return Status::ok();
  };
  return std::move(place_batch(n, sids, copy_rows, taken)).value();
}

}  // namespace semid
