#include "index/exact_knn.h"

#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace semid {
namespace {

using idx_t = faiss::Index::idx_t;  // faiss 1.7.3 has no faiss::idx_t yet

Status check_matrix(const FloatMatrix& m, const char* name) {
  if (m.cols == 0) return Status::invalid_argument(std::string(name) + " has 0 columns");
  if (m.rows * m.cols != m.data.size()) {
    return Status::invalid_argument(std::string(name) + " is " + std::to_string(m.rows) + " x " +
                                    std::to_string(m.cols) + " but holds " +
                                    std::to_string(m.data.size()) + " values");
  }
  return Status::ok();
}

// Adds the base to `index` in chunks; for cosine each chunk is a normalised copy, so the base is
// never held twice in full.
void add_base(faiss::IndexFlat& index, const FloatMatrix& base, bool normalise) {
  constexpr std::size_t kChunkRows = 16384;
  std::vector<float> chunk;
  for (std::size_t first = 0; first < base.rows; first += kChunkRows) {
    const std::size_t n = std::min(kChunkRows, base.rows - first);
    const float* rows = base.row(first);
    if (normalise) {
      chunk.assign(rows, rows + n * base.cols);
      faiss::fvec_renorm_L2(base.cols, n, chunk.data());
      rows = chunk.data();
    }
    index.add(static_cast<idx_t>(n), rows);
  }
}

}  // namespace

Result<KnnResult> exact_knn(const FloatMatrix& base, const FloatMatrix& queries, int k,
                            Metric metric, const ExactKnnOptions& options) {
  if (k < 1) return Status::invalid_argument("k must be >= 1, got " + std::to_string(k));
  if (options.query_batch_size == 0) {
    return Status::invalid_argument("query_batch_size must be >= 1");
  }
  SEMID_RETURN_IF_ERROR(check_matrix(base, "base"));
  SEMID_RETURN_IF_ERROR(check_matrix(queries, "queries"));
  if (base.cols != queries.cols) {
    return Status::invalid_argument("base dimension " + std::to_string(base.cols) +
                                    " differs from query dimension " +
                                    std::to_string(queries.cols));
  }
  if (base.rows > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    return Status::invalid_argument("base has " + std::to_string(base.rows) +
                                    " rows, more than int32 ids can address");
  }

  const auto d = static_cast<idx_t>(base.cols);
  const auto kk = static_cast<std::size_t>(k);
  const bool normalise = metric == Metric::kCosine;
  KnnResult result;
  result.ids = Int32Matrix(queries.rows, kk);
  result.distances = FloatMatrix(queries.rows, kk);
  try {
    std::unique_ptr<faiss::IndexFlat> index;
    if (metric == Metric::kL2) {
      index = std::make_unique<faiss::IndexFlatL2>(d);
    } else {
      index = std::make_unique<faiss::IndexFlatIP>(d);
    }
    add_base(*index, base, normalise);

    const std::size_t batch =
        std::min(options.query_batch_size, std::max<std::size_t>(queries.rows, 1));
    std::vector<float> query_copy;
    std::vector<idx_t> labels(batch * kk);
    for (std::size_t first = 0; first < queries.rows; first += batch) {
      const std::size_t n = std::min(batch, queries.rows - first);
      const float* x = queries.row(first);
      if (normalise) {
        query_copy.assign(x, x + n * queries.cols);
        faiss::fvec_renorm_L2(queries.cols, n, query_copy.data());
        x = query_copy.data();
      }
      index->search(static_cast<idx_t>(n), x, static_cast<idx_t>(k), result.distances.row(first),
                    labels.data());
      std::int32_t* ids = result.ids.row(first);
      for (std::size_t i = 0; i < n * kk; ++i) ids[i] = static_cast<std::int32_t>(labels[i]);
      if (options.progress) options.progress(first + n, queries.rows);
    }
  } catch (const faiss::FaissException& e) {
    return Status::internal(std::string("FAISS exact search failed: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status::internal("out of memory in exact search over " + std::to_string(base.rows) +
                            " x " + std::to_string(base.cols) + " base rows");
  }
  return result;
}

}  // namespace semid
