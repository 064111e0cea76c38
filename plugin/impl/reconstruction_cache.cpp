#include "plugin/impl/reconstruction_cache.h"

#include <bit>
#include <cstring>

namespace semid::impl {

ReconstructionCache::ReconstructionCache(std::size_t dim, std::size_t key_bytes)
    : dim_(dim), key_bytes_(key_bytes) {}

void ReconstructionCache::resize(std::size_t items, std::size_t capacity_bytes) {
  const std::size_t budget = capacity_bytes / slot_bytes();
  std::size_t wanted = std::bit_ceil(std::max<std::size_t>(2 * items, 1024));
  if (wanted > budget) wanted = budget > 0 ? std::bit_floor(budget) : 0;
  if (wanted == slot_count_) return;
  slot_count_ = wanted;
  keys_.reset(wanted > 0 ? new std::uint8_t[wanted * key_bytes_] : nullptr);
  rows_.reset(wanted > 0 ? new float[wanted * dim_] : nullptr);
  full_.reset(wanted > 0 ? new std::uint8_t[wanted]() : nullptr);
}

void ReconstructionCache::clear() {
  if (slot_count_ > 0) std::fill_n(full_.get(), slot_count_, std::uint8_t{0});
}

std::size_t ReconstructionCache::slot_of(const std::uint8_t* key) const {
  // FNV-1a over the key, then a multiplicative mix so that the low bits depend on every byte.
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < key_bytes_; ++i) h = (h ^ key[i]) * 1099511628211ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return static_cast<std::size_t>(h) & (slot_count_ - 1);
}

bool ReconstructionCache::find(const std::uint8_t* key, float* out) const {
  if (slot_count_ == 0) return false;
  const std::size_t slot = slot_of(key);
  {
    std::lock_guard lock(shards_[slot % kShards]);
    if (full_[slot] && std::memcmp(keys_.get() + slot * key_bytes_, key, key_bytes_) == 0) {
      std::memcpy(out, rows_.get() + slot * dim_, dim_ * sizeof(float));
      hits_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ReconstructionCache::put(const std::uint8_t* key, const float* row) const {
  if (slot_count_ == 0) return;
  const std::size_t slot = slot_of(key);
  std::lock_guard lock(shards_[slot % kShards]);
  std::memcpy(keys_.get() + slot * key_bytes_, key, key_bytes_);
  std::memcpy(rows_.get() + slot * dim_, row, dim_ * sizeof(float));
  full_[slot] = 1;
}

}  // namespace semid::impl
