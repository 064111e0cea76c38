// Reading and writing vector data files: texmex .fvecs / .ivecs / .bvecs and NumPy .npy.
//
// Formats
// - .fvecs / .ivecs / .bvecs: records of (int32 little-endian dimension d, then d values of
//   float32 / int32 / uint8). Every record of a file must have the same d.
// - .npy (version 1.0, 2.0 and 3.0): a 2-D (or 1-D, read as n x 1) C-order array of '<f4', '<i4'
//   or '<i8'. Fortran order, other dtypes, big-endian data and other ranks are rejected.
//
// Reading memory-maps the file and validates it completely before allocating the result; the
// result is a dense row-major matrix (x[i * cols + j]). A file can also be read in row ranges
// (`first_row`, `max_rows`), so a large file never has to be held whole.
//
// Errors (Status codes): NotFound for a missing file; Corruption for a truncated file, a record
// whose dimension differs from the first record's, a malformed .npy header; InvalidArgument for a
// wrong dtype or extension, Fortran order, NaN/Inf in float data (reported with row and column),
// and absurd sizes (dimension <= 0 or > kMaxDimension, row counts whose byte size overflows). Every
// message names the file.
//
// An empty texmex file holds no records and reads as a 0 x 0 matrix.
//
// Writing goes through write_file_atomically (temporary file, fsync, rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/status.h"

namespace semid {

// A dense row-major matrix: element (i, j) is data[i * cols + j].
template <typename T>
struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<T> data;

  Matrix() = default;
  Matrix(std::size_t r, std::size_t c) : rows(r), cols(c), data(r * c) {}
  T* row(std::size_t i) { return data.data() + i * cols; }
  const T* row(std::size_t i) const { return data.data() + i * cols; }
};

using FloatMatrix = Matrix<float>;
using Int32Matrix = Matrix<std::int32_t>;
using Int64Matrix = Matrix<std::int64_t>;

// The largest dimension a file may declare: larger values are taken as corruption, not data.
inline constexpr std::int64_t kMaxDimension = 1 << 20;

enum class VecsFormat { kFvecs, kIvecs, kBvecs, kNpy };

// The format named by the path's extension (.fvecs, .ivecs, .bvecs, .npy); InvalidArgument
// otherwise.
Result<VecsFormat> format_from_path(const std::string& path);

// "fvecs", "ivecs", "bvecs" or "npy".
const char* format_name(VecsFormat format);

// Rows [first_row, min(rows, first_row + max_rows)) are returned; first_row == rows gives an empty
// result with the file's cols, first_row > rows is InvalidArgument.
struct ReadOptions {
  // First row to return. Default: 0.
  std::size_t first_row = 0;
  // Upper bound on the number of rows returned (0 = all rows from first_row). Default: 0.
  std::size_t max_rows = 0;
  // Reject NaN and Inf in float data (only the rows returned are checked). Default: true.
  bool reject_non_finite = true;
};

// Shape of a vector file without reading its values (validates the whole layout).
struct VecsShape {
  std::size_t rows = 0;
  std::size_t cols = 0;
};
Result<VecsShape> read_shape(const std::string& path);

// A vector file opened once: memory-mapped and its whole layout validated at open, then any row
// range read without validating the file again (what a streaming reader such as `semid ingest`
// needs: the read_* functions below open the file on every call). Copies share the mapping.
class VectorFile {
 public:
  static Result<VectorFile> open(const std::string& path);

  VecsShape shape() const;
  const std::string& path() const;
  // As read_float_vectors / read_int32_vectors / read_int64_vectors, on the open file.
  Result<FloatMatrix> read_floats(const ReadOptions& options = {}) const;
  Result<Int32Matrix> read_int32(const ReadOptions& options = {}) const;
  Result<Int64Matrix> read_int64(const ReadOptions& options = {}) const;

 private:
  struct Impl;
  explicit VectorFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Float vectors from .fvecs, .bvecs (uint8 widened) or .npy ('<f4').
Result<FloatMatrix> read_float_vectors(const std::string& path, const ReadOptions& options = {});

// Integer vectors from .ivecs or .npy ('<i4' or '<i8'; int64 values outside int32 are an error
// when reading into Int32Matrix).
Result<Int32Matrix> read_int32_vectors(const std::string& path, const ReadOptions& options = {});
Result<Int64Matrix> read_int64_vectors(const std::string& path, const ReadOptions& options = {});

// Writers. rows * cols must equal data.size(); cols must be in [1, kMaxDimension] (except that a
// texmex writer given 0 rows writes an empty file, whatever cols is). Errors: InvalidArgument for
// a bad shape (naming the path), IOError from the file system.
Status write_fvecs(const std::string& path, const FloatMatrix& m);
Status write_ivecs(const std::string& path, const Int32Matrix& m);
Status write_bvecs(const std::string& path, const Matrix<std::uint8_t>& m);
Status write_npy(const std::string& path, const FloatMatrix& m);
Status write_npy(const std::string& path, const Int32Matrix& m);
Status write_npy(const std::string& path, const Int64Matrix& m);

// Writes by extension: .fvecs or .npy for floats, .ivecs or .npy for int32; InvalidArgument for
// any other extension.
Status write_float_vectors(const std::string& path, const FloatMatrix& m);
Status write_int32_vectors(const std::string& path, const Int32Matrix& m);

}  // namespace semid
