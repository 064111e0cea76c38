// Helpers shared by the storage tests: tiny models, deterministic items, and a full dump of a
// collection through its public API (to compare states before and after restarts, crashes, bad
// input).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "index/rq_kmeans.h"
#include "storage/collection.h"
#include "tests/index/model_test_util.h"
#include "tests/plugin/plugin_test_util.h"  // random_model: an untrained RQ-VAE

namespace semid::testing {

// A residual k-means model trained in milliseconds on clustered data. Small `codebook_size` makes
// collisions common, which is what suffix tests want.
inline std::shared_ptr<const RqKMeans> kmeans_model(int dim, int levels, int codebook_size,
                                                    std::uint64_t seed = 1,
                                                    Metric metric = Metric::kCosine) {
  const FloatMatrix data =
      clustered_data(static_cast<std::size_t>(std::max(400, 16 * codebook_size)),
                     static_cast<std::size_t>(dim), codebook_size, seed);
  RqKMeansConfig config{.dim = dim,
                        .levels = levels,
                        .codebook_size = codebook_size,
                        .beam_size = 1,
                        .metric = metric};
  RqKMeansTrainOptions options{.iterations = 8, .seed = seed, .threads = 1};
  auto model = RqKMeans::train(config, options, data.rows, data.data.data());
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  return std::shared_ptr<const RqKMeans>(std::move(model).value());
}

inline std::vector<std::uint64_t> id_range(std::uint64_t first, std::size_t n) {
  std::vector<std::uint64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = first + i;
  return ids;
}

// One stored item, comparable bit for bit.
struct Row {
  std::uint64_t id;
  std::vector<std::int32_t> sid;
  std::uint16_t suffix;
  std::vector<std::uint32_t> vector_bits;
  std::string payload;
  bool operator==(const Row&) const = default;
};

inline std::vector<std::uint32_t> bits_of(std::span<const float> v) {
  std::vector<std::uint32_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(float));
  return bits;
}

// Every item, sorted by id, read through prefix_scan (the sids family) and get_many (the items
// family); fails the test when the two disagree.
inline std::vector<Row> dump(const storage::Collection& c) {
  std::vector<storage::ScanEntry> entries;
  std::string cursor;
  do {
    auto page = c.prefix_scan({}, cursor, 97);
    EXPECT_TRUE(page.is_ok()) << page.status().to_string();
    if (!page.is_ok()) return {};
    entries.insert(entries.end(), page->items.begin(), page->items.end());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  std::vector<std::uint64_t> ids;
  for (const auto& e : entries) ids.push_back(e.id);
  auto items = c.get_many(ids);
  EXPECT_TRUE(items.is_ok()) << items.status().to_string();
  std::vector<Row> rows;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& item = (*items)[i];
    EXPECT_TRUE(item.has_value()) << "sids lists item " << entries[i].id << " without a record";
    if (!item) continue;
    EXPECT_EQ(item->sid, entries[i].sid);
    EXPECT_EQ(item->collision_suffix, entries[i].collision_suffix);
    rows.push_back(
        {item->id, item->sid, item->collision_suffix, bits_of(item->vector), item->payload});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.id < b.id; });
  return rows;
}

}  // namespace semid::testing
