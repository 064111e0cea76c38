// What the FAISS face (IndexRQVAE.cpp) and its search engine (impl/search.cpp) share: the heap
// orders, limits and the Status -> FaissException helpers.
#pragma once

#include <faiss/Index.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/Heap.h>

#include <cstddef>
#include <cstdint>
#include <limits>

#include "index/status.h"

namespace semid::impl {

using idx_t = faiss::Index::idx_t;
// Keeps the largest scores (inner product, lookup-table scores) / the smallest (L2 distances).
using MaxKeeper = faiss::CMin<float, idx_t>;
using MinKeeper = faiss::CMax<float, idx_t>;

// Items decoded per model call in exhaustive search and range search.
inline constexpr std::size_t kDecodeChunk = 8192;
// Bound on the decoded shortlist floats of one block of queries (64 MiB).
inline constexpr std::size_t kRerankFloats = std::size_t{1} << 24;
inline constexpr float kInfinity = std::numeric_limits<float>::infinity();
// Positions are kept as uint32 in the level-1 groups.
inline constexpr faiss::Index::idx_t kMaxItems = std::numeric_limits<std::uint32_t>::max();

[[noreturn]] inline void throw_status(const char* what, const Status& status) {
  FAISS_THROW_FMT("IndexRQVAE: %s: %s", what, status.to_string().c_str());
}

inline void check(const Status& status, const char* what) {
  if (!status.is_ok()) throw_status(what, status);
}

// For calls that cannot fail on validated input (and run inside parallel regions, where an
// exception would terminate): an internal invariant.
inline void expect_ok(const Status& status) {
  FAISS_ASSERT_FMT(status.is_ok(), "%s", status.to_string().c_str());
}

}  // namespace semid::impl
