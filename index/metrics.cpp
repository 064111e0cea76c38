#include "index/metrics.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace semid {

nlohmann::json CodeHealth::to_json() const {
  nlohmann::json per_level = nlohmann::json::array();
  for (const auto& u : levels) {
    per_level.push_back({{"used_codes", u.used_codes},
                         {"used_fraction", u.used_fraction},
                         {"perplexity", u.perplexity},
                         {"entropy_bits", u.entropy_bits},
                         {"top_code_share", u.top_code_share}});
  }
  return {{"items", items},
          {"levels", per_level},
          {"unique_sids", unique_sids},
          {"collision_rate", collision_rate},
          {"max_collision_group", max_collision_group}};
}

LevelUsage level_usage(std::span<const std::uint64_t> counts, std::uint64_t n) {
  LevelUsage u;
  double entropy = 0;
  std::uint64_t top = 0;
  for (std::uint64_t count : counts) {
    if (count == 0) continue;
    ++u.used_codes;
    top = std::max(top, count);
    const double p = static_cast<double>(count) / static_cast<double>(n);
    entropy -= p * std::log(p);
  }
  u.used_fraction = counts.empty() ? 0 : static_cast<double>(u.used_codes) / counts.size();
  u.perplexity = n > 0 ? std::exp(entropy) : 0;
  u.entropy_bits = entropy / std::log(2.0);
  u.top_code_share = n > 0 ? static_cast<double>(top) / static_cast<double>(n) : 0;
  return u;
}

CodeHealth code_health(std::size_t n, int levels, int codebook_size, const std::int32_t* codes) {
  CodeHealth h;
  h.items = n;
  const auto L = static_cast<std::size_t>(levels);
  for (std::size_t l = 0; l < L; ++l) {
    std::vector<std::uint64_t> counts(static_cast<std::size_t>(codebook_size), 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::int32_t c = codes[i * L + l];
      if (c >= 0 && c < codebook_size) ++counts[static_cast<std::size_t>(c)];
    }
    h.levels.push_back(level_usage(counts, n));
  }
  // Group items by their full tuple; 64-bit mixing of the codes keys the map, and equal keys are
  // confirmed by comparing the tuples, so a hash clash cannot merge distinct SIDs.
  std::unordered_map<std::uint64_t, std::vector<std::size_t>> groups;
  groups.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t key = 1469598103934665603ull;
    for (std::size_t l = 0; l < L; ++l) {
      key ^= static_cast<std::uint32_t>(codes[i * L + l]);
      key *= 1099511628211ull;
    }
    groups[key].push_back(i);
  }
  std::size_t colliding = 0;
  for (const auto& [key, members] : groups) {
    // Split members into exact-tuple classes (almost always one class).
    std::vector<std::vector<std::size_t>> classes;
    for (std::size_t i : members) {
      auto same = [&](const std::vector<std::size_t>& cls) {
        return std::equal(codes + i * L, codes + (i + 1) * L, codes + cls.front() * L);
      };
      auto it = std::find_if(classes.begin(), classes.end(), same);
      if (it == classes.end())
        classes.push_back({i});
      else
        it->push_back(i);
    }
    for (const auto& cls : classes) {
      ++h.unique_sids;
      h.max_collision_group = std::max(h.max_collision_group, cls.size());
      if (cls.size() > 1) colliding += cls.size();
    }
  }
  h.collision_rate = n > 0 ? static_cast<double>(colliding) / static_cast<double>(n) : 0;
  return h;
}

nlohmann::json ReconstructionQuality::to_json() const {
  return {{"mse", mse}, {"mae", mae}, {"mean_cosine", mean_cosine}};
}

ReconstructionQuality reconstruction_quality(std::size_t n, std::size_t d, const float* x,
                                             const float* y) {
  ReconstructionQuality q;
  if (n == 0 || d == 0) return q;
  double se = 0, ae = 0, cos_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double dot = 0, xx = 0, yy = 0;
    for (std::size_t j = 0; j < d; ++j) {
      const double a = x[i * d + j], b = y[i * d + j];
      se += (a - b) * (a - b);
      ae += std::abs(a - b);
      dot += a * b;
      xx += a * a;
      yy += b * b;
    }
    cos_sum += (xx > 0 && yy > 0) ? dot / std::sqrt(xx * yy) : 0.0;
  }
  const double total = static_cast<double>(n) * static_cast<double>(d);
  q.mse = se / total;
  q.mae = ae / total;
  q.mean_cosine = cos_sum / static_cast<double>(n);
  return q;
}

double recall_at_k(const Int32Matrix& results, const Int32Matrix& ground_truth, int k) {
  const auto kk = static_cast<std::size_t>(k);
  if (results.rows == 0 || k <= 0) return 0;
  std::size_t hits = 0;
  for (std::size_t i = 0; i < results.rows; ++i) {
    std::unordered_set<std::int32_t> truth(ground_truth.row(i), ground_truth.row(i) + kk);
    for (std::size_t j = 0; j < kk; ++j) {
      const std::int32_t id = results.row(i)[j];
      if (id >= 0 && truth.count(id) > 0) ++hits;
    }
  }
  return static_cast<double>(hits) / static_cast<double>(results.rows * kk);
}

}  // namespace semid
