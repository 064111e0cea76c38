// ReconstructionCache: decoded reconstructions by packed SID, what the shortlist rerank compares
// queries with. A reconstruction depends only on the SID and the model, so an entry never goes
// stale when items are added, moved, changed or removed; items sharing a SID share one entry.
//
// Set-associative with two choices: a SID hashes to two buckets of kWays slots and lives in one
// of them; a newcomer takes a free slot of the emptier bucket, else replaces one the hash picks.
// Two choices of four ways keep a table about 90% full before entries push each other out (one
// bucket per key loses ~15% of them at that load, a direct-mapped table ~40%), and the bucket
// count need not be a power of two, so the whole byte budget is used. Buckets live in shards, each
// behind its own mutex, so searches on many threads share the cache (const methods are
// thread-safe; resize and clear are not, and run where the index is changed, never during a
// search). Memory is allocated uninitialised and sized to the index (at most `capacity_bytes`),
// so a small index commits only the pages its entries touch.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace semid::impl {

class ReconstructionCache {
 public:
  static constexpr std::size_t kWays = 4;

  // Rows of `dim` floats keyed by `key_bytes` bytes.
  ReconstructionCache(std::size_t dim, std::size_t key_bytes);

  // Sizes the table for `items` items within `capacity_bytes`: a power of two of at least 5/4 of
  // the items (so it grows by doubling, and an index that grows a little keeps its entries), never
  // above the budget. A new size empties the cache; 0 bytes disables it. Not thread-safe.
  void resize(std::size_t items, std::size_t capacity_bytes);
  // Forgets every entry (a new model). Not thread-safe.
  void clear();
  bool enabled() const { return slot_count_ > 0; }
  std::size_t slots() const { return slot_count_; }
  // Bytes one slot takes.
  std::size_t slot_bytes() const { return dim_ * sizeof(float) + key_bytes_ + 1; }

  // Copies the row of `key` into out and returns true when the cache holds it.
  bool find(const std::uint8_t* key, float* out) const;
  // Whether the cache holds `key` (no copy, no hit or miss counted).
  bool contains(const std::uint8_t* key) const;
  // Stores row under key (replacing an entry when both its buckets are full).
  void put(const std::uint8_t* key, const float* row) const;

  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kNone = ~std::size_t{0};
  struct Buckets {
    std::size_t first, second;
    std::uint64_t hash;
  };
  class BucketLocks;
  std::uint64_t hash(const std::uint8_t* key) const;
  Buckets buckets_of(const std::uint8_t* key) const;
  // The slot holding `key` in `bucket`, or kNone; free ways of `bucket`. Call under its lock.
  std::size_t slot_of(std::size_t bucket, const std::uint8_t* key) const;
  std::size_t free_ways(std::size_t bucket) const;
  // The slot holding `key` in either of its buckets, or kNone. Call under BucketLocks.
  std::size_t locate(const Buckets& b, const std::uint8_t* key) const;

  std::size_t dim_;
  std::size_t key_bytes_;
  std::size_t slot_count_ = 0;  // a multiple of kWays
  // Per slot: its key, its row, whether it holds one. Rows and keys are uninitialised until put.
  std::unique_ptr<std::uint8_t[]> keys_;
  std::unique_ptr<float[]> rows_;
  std::unique_ptr<std::uint8_t[]> full_;
  mutable std::array<std::mutex, kShards> shards_;
  mutable std::atomic<std::uint64_t> hits_{0};
  mutable std::atomic<std::uint64_t> misses_{0};
};

}  // namespace semid::impl
