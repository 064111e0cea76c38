// Exact (brute-force) k-nearest-neighbour search: the ground truth that recall is measured against.
//
// Built on faiss::IndexFlatIP / IndexFlatL2 (BLAS for batches of queries). Queries are searched in
// batches of `query_batch_size`, so beyond the base (copied once into the FAISS index, normalised
// for cosine) memory stays at O(query_batch_size * (d + k)) plus the results.
//
// Thread safety: a pure function; FAISS may use its OpenMP threads inside one call.
#pragma once

#include <cstddef>
#include <functional>

#include "index/metric.h"
#include "index/status.h"
#include "index/vecs_io.h"

namespace semid {

struct KnnResult {
  // ids.row(q)[r] is the base row of query q's r-th nearest neighbour (closest first), -1 where the
  // base holds fewer than k rows. Size queries.rows x k.
  Int32Matrix ids;
  // The matching scores, same shape: squared L2 distance (kL2, ascending), inner product
  // (kInnerProduct, descending) or cosine similarity (kCosine, descending). Padding entries hold
  // FAISS's sentinels (+FLT_MAX for kL2, -FLT_MAX otherwise).
  FloatMatrix distances;
};

struct ExactKnnOptions {
  // Queries searched per FAISS call. Default: 4096.
  std::size_t query_batch_size = 4096;
  // Called after each batch with (queries done, queries in all), from the calling thread.
  // Default: none.
  std::function<void(std::size_t done, std::size_t total)> progress;
};

// The k nearest base rows of every query row under `metric` (shapes: base n x d, queries nq x d).
// Ties are broken as FAISS breaks them (in practice: the lower row first).
// Errors (InvalidArgument): k < 1, base or queries with 0 columns or inconsistent data sizes,
// differing dimensions, more base rows than int32 ids can address, query_batch_size 0.
// Internal: a FAISS exception (reported with its message).
Result<KnnResult> exact_knn(const FloatMatrix& base, const FloatMatrix& queries, int k,
                            Metric metric, const ExactKnnOptions& options = {});

}  // namespace semid
