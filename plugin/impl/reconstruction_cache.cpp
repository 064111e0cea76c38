#include "plugin/impl/reconstruction_cache.h"

#include <bit>
#include <cstring>

namespace semid::impl {

ReconstructionCache::ReconstructionCache(std::size_t dim, std::size_t key_bytes)
    : dim_(dim), key_bytes_(key_bytes) {}

void ReconstructionCache::resize(std::size_t items, std::size_t capacity_bytes) {
  const std::size_t budget = capacity_bytes / slot_bytes() / kWays * kWays;
  std::size_t wanted = std::bit_ceil(std::max<std::size_t>(items + items / 4, 1024));
  wanted = std::min({wanted, budget, kWays << 32});
  if (wanted == slot_count_) return;
  slot_count_ = wanted;
  keys_.reset(wanted > 0 ? new std::uint8_t[wanted * key_bytes_] : nullptr);
  rows_.reset(wanted > 0 ? new float[wanted * dim_] : nullptr);
  full_.reset(wanted > 0 ? new std::uint8_t[wanted]() : nullptr);
}

void ReconstructionCache::clear() {
  if (slot_count_ > 0) std::fill_n(full_.get(), slot_count_, std::uint8_t{0});
}

std::uint64_t ReconstructionCache::hash(const std::uint8_t* key) const {
  // FNV-1a over the key, then a multiplicative mix so that every bit depends on every byte.
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < key_bytes_; ++i) h = (h ^ key[i]) * 1099511628211ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

ReconstructionCache::Buckets ReconstructionCache::buckets_of(const std::uint8_t* key) const {
  // Lemire's multiply-shift range reduction, one per half of the hash: any bucket count below
  // 2^32 (resize keeps it there), no division.
  const std::uint64_t h = hash(key);
  const std::uint64_t buckets = slot_count_ / kWays;
  return {static_cast<std::size_t>(((h >> 32) * buckets) >> 32),
          static_cast<std::size_t>(((h & 0xffffffffull) * buckets) >> 32), h};
}

std::size_t ReconstructionCache::slot_of(std::size_t bucket, const std::uint8_t* key) const {
  for (std::size_t slot = bucket * kWays; slot < (bucket + 1) * kWays; ++slot) {
    if (full_[slot] && std::memcmp(keys_.get() + slot * key_bytes_, key, key_bytes_) == 0) {
      return slot;
    }
  }
  return kNone;
}

std::size_t ReconstructionCache::free_ways(std::size_t bucket) const {
  std::size_t n = 0;
  for (std::size_t slot = bucket * kWays; slot < (bucket + 1) * kWays; ++slot) n += !full_[slot];
  return n;
}

// Both buckets' shards, locked in a fixed order (one lock when they share a shard).
class ReconstructionCache::BucketLocks {
 public:
  BucketLocks(const ReconstructionCache& cache, const Buckets& b)
      : first_(cache.shards_[std::min(b.first % kShards, b.second % kShards)]),
        second_(cache.shards_[std::max(b.first % kShards, b.second % kShards)]) {
    first_.lock();
    if (&second_ != &first_) second_.lock();
  }
  ~BucketLocks() {
    if (&second_ != &first_) second_.unlock();
    first_.unlock();
  }
  BucketLocks(const BucketLocks&) = delete;
  BucketLocks& operator=(const BucketLocks&) = delete;

 private:
  std::mutex& first_;
  std::mutex& second_;
};

std::size_t ReconstructionCache::locate(const Buckets& b, const std::uint8_t* key) const {
  const std::size_t slot = slot_of(b.first, key);
  return slot != kNone ? slot : slot_of(b.second, key);
}

bool ReconstructionCache::find(const std::uint8_t* key, float* out) const {
  if (slot_count_ == 0) return false;
  const Buckets b = buckets_of(key);
  {
    const BucketLocks lock(*this, b);
    if (const std::size_t slot = locate(b, key); slot != kNone) {
      std::memcpy(out, rows_.get() + slot * dim_, dim_ * sizeof(float));
      hits_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool ReconstructionCache::contains(const std::uint8_t* key) const {
  if (slot_count_ == 0) return false;
  const Buckets b = buckets_of(key);
  const BucketLocks lock(*this, b);
  return locate(b, key) != kNone;
}

void ReconstructionCache::put(const std::uint8_t* key, const float* row) const {
  if (slot_count_ == 0) return;
  const Buckets b = buckets_of(key);
  const BucketLocks lock(*this, b);
  std::size_t slot = locate(b, key);
  if (slot == kNone) {
    // A newcomer goes to the emptier of its two buckets (two choices keep a table ~90% full
    // before entries start to push each other out); into a full one, it replaces the way the
    // hash names.
    const std::size_t bucket = free_ways(b.second) > free_ways(b.first) ? b.second : b.first;
    slot = bucket * kWays + static_cast<std::size_t>(b.hash % kWays);
    for (std::size_t s = bucket * kWays; s < (bucket + 1) * kWays; ++s) {
      if (!full_[s]) {
        slot = s;
        break;
      }
    }
  }
  std::memcpy(keys_.get() + slot * key_bytes_, key, key_bytes_);
  std::memcpy(rows_.get() + slot * dim_, row, dim_ * sizeof(float));
  full_[slot] = 1;
}

}  // namespace semid::impl
