// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors), the
// container of semid model files. No dependency beyond nlohmann::json.
//
// Layout of a file:
//   bytes [0, 8)        N, the header length, a little-endian uint64
//   bytes [8, 8 + N)    the header: a UTF-8 JSON object mapping each tensor name to
//                       {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, plus an
//                       optional "__metadata__": {string: string}
//   bytes [8 + N, end)  the data buffer; a tensor's bytes are [begin, end) of it, little-endian,
//                       row-major (C order)
//
// Reading treats the bytes as hostile (STYLE.md, rule 7): every size is checked against the others
// and against overflow before use, nothing is allocated from a size the file declares, and the
// tensors must tile the data buffer exactly (as the Python package demands). Every defect of the
// bytes is reported as Status::corruption with a message that names the tensor or field and the
// offending values. Writing follows the Python package byte for byte: tensors ordered by dtype
// alignment (largest first) then name, a compact header with "__metadata__" first, padded with
// spaces to a multiple of 8 bytes — so every tensor's data is aligned to its element size within
// the file.
//
// The host must be little-endian (checked at compile time); data bytes are never byte-swapped.
// Thread safety: Archive and File are immutable after construction; concurrent const calls are
// safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/file_util.h"
#include "index/status.h"

namespace semid::safetensors {

// The element types semid reads and writes (the subset of the Python package's dtypes that
// LibTorch and FAISS use). Other dtypes in a file are rejected as corruption.
enum class DType { kF32, kF64, kI32, kI64, kU8, kI8, kI16, kU16, kF16, kBF16, kBool };

// Bytes per element: 1, 2, 4 or 8.
std::size_t dtype_size(DType dtype);
// The name used in the header: "F32", "F64", "I32", "I64", "U8", "I8", "I16", "U16", "F16",
// "BF16", "BOOL".
const char* dtype_name(DType dtype);
// Inverse of dtype_name (exact, case-sensitive). Error: InvalidArgument naming the string and the
// supported names.
Result<DType> parse_dtype(std::string_view name);

// A tensor inside an Archive: its bytes stay in the caller's buffer (no copy). `data` holds
// numel() * dtype_size(dtype) bytes and may be unaligned for the element type when the file was
// not written with aligned offsets; read it with std::memcpy (or use Archive::floats).
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // [] for a scalar; dimensions may be 0 (empty tensor)
  std::span<const std::uint8_t> data;

  // Product of the dimensions (1 for a scalar). Never overflows for a view from Archive.
  std::int64_t numel() const;
};

// An owned tensor to write. `data` must hold numel(shape) * dtype_size(dtype) bytes, little-endian,
// row-major; serialize() checks this.
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;

  // Copies `values` into an F32 / I64 / I32 tensor of `shape`. A size that does not match the
  // shape is not checked here; serialize() and write() reject it with InvalidArgument.
  static Tensor from_floats(std::vector<std::int64_t> shape, std::span<const float> values);
  static Tensor from_int64s(std::vector<std::int64_t> shape, std::span<const std::int64_t> values);
  static Tensor from_int32s(std::vector<std::int64_t> shape, std::span<const std::int32_t> values);
};

// Bounds on what Archive::parse accepts before it does any work proportional to the claim.
struct ParseLimits {
  // Largest accepted header (the JSON part), in bytes. The parsed header costs a small multiple
  // of this in memory. Default: 100,000,000 (the Python package's MAX_HEADER_SIZE).
  std::uint64_t max_header_bytes = 100'000'000;
  // Largest accepted number of tensors. Default: 65,536 (far above any semid model).
  std::uint64_t max_tensors = 1 << 16;
};

// A parsed, validated view over the bytes of a safetensors file. Does not own the bytes: they must
// outlive the Archive and every TensorView taken from it (File below bundles both).
class Archive {
 public:
  // Parses and validates `bytes` (a whole file). On success every tensor's offsets are in bounds,
  // its size matches dtype and shape, and the tensors tile the data buffer with neither holes nor
  // overlaps nor trailing bytes. Errors (all Corruption, naming the field and values): fewer than
  // 8 bytes; header length over limits.max_header_bytes or past the end of `bytes`; a header that
  // is not valid UTF-8 JSON, not an object, holds a NUL byte or a duplicate key (at any level), or
  // nests deeper than 64 levels; more tensors than limits.max_tensors; an unknown dtype; a shape
  // that is not an array of non-negative integers or whose element count (or byte size) overflows
  // int64; data_offsets that are not two ascending non-negative integers, end past the buffer, or
  // (end - begin) != numel * dtype_size; a layout that is not contiguous from 0 to the end of the
  // buffer; a "__metadata__" that is not an object of strings. Unknown fields inside a tensor entry
  // are ignored, as in the Python package.
  static Result<Archive> parse(std::span<const std::uint8_t> bytes, const ParseLimits& limits = {});

  // The "__metadata__" map; empty when the file has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Tensor names in lexicographic order.
  std::vector<std::string> names() const;
  // Number of tensors ("__metadata__" is not one).
  std::size_t size() const { return tensors_.size(); }

  // The named tensor. Error: NotFound naming the tensor.
  Result<TensorView> tensor(const std::string& name) const;
  // The named tensor, checked against what the caller expects. Errors: NotFound naming the tensor;
  // Corruption "tensor 'w': expected F32 [4, 8], got F64 [4, 8]" when dtype or shape differ.
  Result<TensorView> tensor(const std::string& name, DType expected_dtype,
                            const std::vector<std::int64_t>& expected_shape) const;
  // A copy of an F32 tensor's elements in row-major order (size numel()). Errors: NotFound;
  // InvalidArgument when the tensor's dtype is not F32 (naming tensor and dtype).
  Result<std::vector<float>> floats(const std::string& name) const;

 private:
  Archive(std::map<std::string, TensorView> tensors, std::map<std::string, std::string> metadata)
      : tensors_(std::move(tensors)), metadata_(std::move(metadata)) {}

  std::map<std::string, TensorView> tensors_;  // views into the caller's bytes, validated
  std::map<std::string, std::string> metadata_;
};

// A safetensors file, memory-mapped read-only, with its Archive. Movable, not copyable; views taken
// from archive() live as long as the File.
class File {
 public:
  // Maps and parses `path`. Errors: NotFound / IOError from mapping, InvalidArgument for a path
  // that is not a regular file; parse errors as in Archive::parse, prefixed with the path.
  static Result<File> open(const std::string& path, const ParseLimits& limits = {});

  const Archive& archive() const { return archive_; }
  const std::string& path() const { return mapped_->path(); }

 private:
  File(std::unique_ptr<MappedFile> mapped, Archive archive)
      : mapped_(std::move(mapped)), archive_(std::move(archive)) {}
  std::unique_ptr<MappedFile> mapped_;  // the mapping does not move when File moves
  Archive archive_;
};

// The whole file for `tensors` and `metadata`, byte-identical to what the Python package writes for
// the same input (except that "__metadata__" is omitted when `metadata` is empty, and metadata
// keys are in sorted order). Errors (InvalidArgument, naming the tensor): a negative dimension,
// an element count that overflows, data.size() != numel * dtype_size, a tensor named
// "__metadata__", a name or metadata string that is not valid UTF-8.
Result<std::string> serialize(const std::map<std::string, Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Writes serialize()'s bytes to `path` atomically (write_file_atomically: a reader sees the old
// file or the new one, never a mix), streaming tensor data without an extra full copy. Errors: as
// serialize(), then IOError from the file system; on error `path` is left untouched.
Status write(const std::string& path, const std::map<std::string, Tensor>& tensors,
             const std::map<std::string, std::string>& metadata = {});

}  // namespace semid::safetensors
