// The search engine's building blocks: the shortlist heap (ties broken by order key), SIMD-friendly
// dot products and distances, and FAISS result-heap helpers.
#pragma once

#include <faiss/utils/Heap.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "plugin/impl/common.h"

namespace semid::impl {

// The `capacity` best-scoring items of a scan: a min-heap of (score, key), filled only by items
// the IDSelector admits (asked only for items that would enter the heap). The key is the item's
// order key (IndexRQVAE::order_key): equal scores — items sharing a SID score alike — are broken by
// it, so the shortlist does not depend on where items sit in the index.
class ScanHeap {
 public:
  ScanHeap(std::size_t capacity, float* scores, idx_t* keys)
      : capacity_(capacity), scores_(scores), keys_(keys) {}

  // Whether (score, key) would enter; true for every score above threshold().
  bool enters(float score, idx_t key) const {
    return size_ < capacity_ || MaxKeeper::cmp2(scores_[0], score, keys_[0], key);
  }
  template <class Admit>
  void offer(float score, idx_t key, std::uint64_t position, const Admit& admit) {
    if (!enters(score, key) || !admit(position)) return;
    if (size_ < capacity_) {
      faiss::heap_push<MaxKeeper>(++size_, scores_, keys_, score, key);
    } else {
      faiss::heap_replace_top<MaxKeeper>(capacity_, scores_, keys_, score, key);
    }
  }
  // Scores below this cannot enter (equal ones may, by key).
  float threshold() const { return size_ < capacity_ ? -kInfinity : scores_[0]; }
  // Sorts the kept items best first; returns how many there are (their keys in keys[0..)).
  std::size_t finish() {
    faiss::heap_reorder<MaxKeeper>(size_, scores_, keys_);
    return size_;
  }

 private:
  std::size_t capacity_;
  std::size_t size_ = 0;
  float* scores_;
  idx_t* keys_;
};

// <a, b> and ||a - b||^2 over d floats. Debian's FAISS computes these with its scalar reference
// code; eight independent partial sums let the compiler use SIMD registers (the rerank and the
// lookup tables run them per query).
inline float dot(const float* a, const float* b, std::size_t d) {
  std::array<float, 8> partial{};
  std::size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (std::size_t t = 0; t < 8; ++t) partial[t] += a[j + t] * b[j + t];
  }
  float sum = 0;
  for (float p : partial) sum += p;
  for (; j < d; ++j) sum += a[j] * b[j];
  return sum;
}

inline float l2sqr(const float* a, const float* b, std::size_t d) {
  std::array<float, 8> partial{};
  std::size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (std::size_t t = 0; t < 8; ++t) partial[t] += (a[j + t] - b[j + t]) * (a[j + t] - b[j + t]);
  }
  float sum = 0;
  for (float p : partial) sum += p;
  for (; j < d; ++j) sum += (a[j] - b[j]) * (a[j] - b[j]);
  return sum;
}

// Leading codes two SIDs share.
inline int shared_levels(const std::int32_t* a, const std::int32_t* b, int levels) {
  int l = 0;
  while (l < levels && a[l] == b[l]) ++l;
  return l;
}

template <class Keeper>
void finish_heaps(idx_t n, idx_t k, float* distances, idx_t* labels) {
#pragma omp parallel for
  for (idx_t q = 0; q < n; ++q) faiss::heap_reorder<Keeper>(k, distances + q * k, labels + q * k);
}

template <class Keeper>
void init_heaps(idx_t n, idx_t k, float* distances, idx_t* labels) {
#pragma omp parallel for
  for (idx_t q = 0; q < n; ++q) faiss::heap_heapify<Keeper>(k, distances + q * k, labels + q * k);
}

}  // namespace semid::impl
