#include "index/vecs_io.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

#include "index/file_util.h"

namespace semid {

// Every format here is little-endian on disk and is copied with memcpy.
static_assert(std::endian::native == std::endian::little, "semid assumes a little-endian host");

namespace {

enum class Dtype { kFloat32, kInt32, kInt64, kUint8 };

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
      return "float32";
    case Dtype::kInt32:
      return "int32";
    case Dtype::kInt64:
      return "int64";
    case Dtype::kUint8:
      return "uint8";
  }
  return "?";
}

std::size_t dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
    case Dtype::kInt32:
      return 4;
    case Dtype::kInt64:
      return 8;
    case Dtype::kUint8:
      return 1;
  }
  return 0;
}

// Where the values of a validated file lie: row i starts at
// data_offset + i * row_stride + row_prefix and holds `cols` values of `dtype`.
struct Layout {
  VecsFormat format = VecsFormat::kFvecs;
  Dtype dtype = Dtype::kFloat32;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t data_offset = 0;
  std::size_t row_stride = 0;
  std::size_t row_prefix = 0;  // the int32 dimension of each texmex record
};

std::string quoted(const std::string& path) { return "'" + path + "'"; }

Status corruption(const std::string& path, const std::string& what) {
  return Status::corruption(quoted(path) + ": " + what);
}
Status invalid(const std::string& path, const std::string& what) {
  return Status::invalid_argument(quoted(path) + ": " + what);
}

// a * b, or nullopt on overflow.
std::optional<std::size_t> checked_mul(std::size_t a, std::size_t b) {
  std::size_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

template <typename T>
T load(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// ---- texmex .fvecs / .ivecs / .bvecs ----------------------------------------------------------

Result<Layout> parse_texmex(const std::string& path, std::span<const std::uint8_t> bytes,
                            VecsFormat format) {
  Layout layout;
  layout.format = format;
  layout.dtype = format == VecsFormat::kFvecs   ? Dtype::kFloat32
                 : format == VecsFormat::kIvecs ? Dtype::kInt32
                                                : Dtype::kUint8;
  layout.row_prefix = sizeof(std::int32_t);
  const std::size_t size = bytes.size();
  if (size == 0) return layout;  // no records: 0 x 0
  if (size < sizeof(std::int32_t)) {
    return corruption(path, "truncated header: " + std::to_string(size) +
                                " bytes, a record starts with a 4-byte dimension");
  }
  const std::int32_t dim = load<std::int32_t>(bytes.data());
  if (dim <= 0 || dim > kMaxDimension) {
    return invalid(path, "dimension " + std::to_string(dim) +
                             " of the first record is outside [1, " +
                             std::to_string(kMaxDimension) + "]");
  }
  layout.cols = static_cast<std::size_t>(dim);
  layout.row_stride = layout.row_prefix + layout.cols * dtype_size(layout.dtype);
  // Every record must carry the same dimension and be complete. Checking each record's dimension
  // before the total size gives the more useful message when a record in the middle is off.
  std::size_t row = 0;
  for (std::size_t offset = 0; offset < size; offset += layout.row_stride, ++row) {
    const std::size_t left = size - offset;
    if (left < layout.row_prefix) {
      return corruption(path, "truncated record " + std::to_string(row) + ": " +
                                  std::to_string(left) + " trailing bytes after " +
                                  std::to_string(row) + " complete records");
    }
    const std::int32_t record_dim = load<std::int32_t>(bytes.data() + offset);
    if (record_dim != dim) {
      return corruption(path, "record " + std::to_string(row) + " has dimension " +
                                  std::to_string(record_dim) + ", the first record has " +
                                  std::to_string(dim));
    }
    if (left < layout.row_stride) {
      return corruption(path, "truncated record " + std::to_string(row) + ": " +
                                  std::to_string(left) + " bytes of " +
                                  std::to_string(layout.row_stride));
    }
  }
  layout.rows = row;
  return layout;
}

// ---- .npy ---------------------------------------------------------------------------------------

// The header dictionary of an .npy file, e.g. "{'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }" — a Python literal, parsed strictly enough to reject anything else.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
};

class NpyHeaderParser {
 public:
  explicit NpyHeaderParser(std::string_view text) : text_(text) {}

  // Empty string on success, otherwise what is wrong.
  std::string parse(NpyHeader* out) {
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!consume('{')) return "header does not start with '{'";
    while (true) {
      if (consume('}')) break;
      std::string key;
      if (!parse_string(&key)) return "expected a quoted key at offset " + std::to_string(pos_);
      if (!consume(':')) return "expected ':' after key '" + key + "'";
      if (key == "descr") {
        if (!parse_string(&out->descr)) return "'descr' is not a string";
        seen_descr = true;
      } else if (key == "fortran_order") {
        if (consume_word("True")) {
          out->fortran_order = true;
        } else if (consume_word("False")) {
          out->fortran_order = false;
        } else {
          return "'fortran_order' is not True or False";
        }
        seen_order = true;
      } else if (key == "shape") {
        if (!parse_shape(&out->shape)) return "'shape' is not a tuple of non-negative integers";
        seen_shape = true;
      } else {
        return "unexpected key '" + key + "'";
      }
      if (consume(',')) continue;
      if (consume('}')) break;
      return "expected ',' or '}' at offset " + std::to_string(pos_);
    }
    skip_space();
    if (pos_ != text_.size()) return "unexpected text after the closing '}'";
    if (!seen_descr || !seen_order || !seen_shape) {
      return "header lacks one of 'descr', 'fortran_order', 'shape'";
    }
    return {};
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool consume_word(std::string_view word) {
    skip_space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool parse_string(std::string* out) {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return false;
    const char quote = text_[pos_++];
    const std::size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) return false;
    *out = std::string(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }
  bool parse_shape(std::vector<std::size_t>* shape) {
    if (!consume('(')) return false;
    while (true) {
      if (consume(')')) return true;
      skip_space();
      std::size_t value = 0, digits = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        if (__builtin_mul_overflow(value, std::size_t{10}, &value) ||
            __builtin_add_overflow(value, static_cast<std::size_t>(text_[pos_] - '0'), &value)) {
          return false;
        }
        ++pos_;
        ++digits;
      }
      if (digits == 0) return false;
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long literal
      shape->push_back(value);
      if (consume(',')) continue;
      if (consume(')')) return true;
      return false;
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

constexpr std::string_view kNpyMagic = "\x93NUMPY";

Result<Layout> parse_npy(const std::string& path, std::span<const std::uint8_t> bytes) {
  const std::size_t size = bytes.size();
  if (size < kNpyMagic.size() ||
      std::memcmp(bytes.data(), kNpyMagic.data(), kNpyMagic.size()) != 0) {
    return corruption(path, "not an .npy file (bad magic, expected \\x93NUMPY)");
  }
  if (size < 10)
    return corruption(path, "truncated .npy header (" + std::to_string(size) + " bytes)");
  const int major = bytes[6];
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = load<std::uint16_t>(bytes.data() + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) {
      return corruption(path, "truncated .npy header (" + std::to_string(size) + " bytes)");
    }
    header_len = load<std::uint32_t>(bytes.data() + 8);
    header_start = 12;
  } else {
    return corruption(path, "unsupported .npy version " + std::to_string(major) + "." +
                                std::to_string(bytes[7]) + " (1.0, 2.0 and 3.0 are read)");
  }
  if (header_len > size - header_start) {
    return corruption(path, ".npy header length " + std::to_string(header_len) +
                                " runs past the end of the file (" + std::to_string(size) +
                                " bytes)");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + header_start),
                              header_len);
  NpyHeader header;
  if (std::string error = NpyHeaderParser(text).parse(&header); !error.empty()) {
    return corruption(path, "malformed .npy header: " + error);
  }

  Layout layout;
  layout.format = VecsFormat::kNpy;
  if (header.descr == "<f4") {
    layout.dtype = Dtype::kFloat32;
  } else if (header.descr == "<i4") {
    layout.dtype = Dtype::kInt32;
  } else if (header.descr == "<i8") {
    layout.dtype = Dtype::kInt64;
  } else {
    return invalid(path, "unsupported .npy dtype '" + header.descr +
                             "' (little-endian '<f4', '<i4' or '<i8' are read)");
  }
  if (header.fortran_order) {
    return invalid(path, "Fortran-order .npy arrays are not supported (save a C-order array)");
  }
  if (header.shape.empty() || header.shape.size() > 2) {
    return invalid(path, "a " + std::to_string(header.shape.size()) +
                             "-D .npy array; 1-D and 2-D arrays are read");
  }
  layout.rows = header.shape[0];
  layout.cols = header.shape.size() == 2 ? header.shape[1] : 1;
  if (layout.cols < 1 || layout.cols > static_cast<std::size_t>(kMaxDimension)) {
    return invalid(path, "dimension " + std::to_string(layout.cols) + " is outside [1, " +
                             std::to_string(kMaxDimension) + "]");
  }
  layout.data_offset = header_start + header_len;
  layout.row_stride = layout.cols * dtype_size(layout.dtype);
  const auto data_bytes = checked_mul(layout.rows, layout.row_stride);
  if (!data_bytes) {
    return invalid(path, "shape (" + std::to_string(layout.rows) + ", " +
                             std::to_string(layout.cols) + ") overflows the byte count");
  }
  const std::size_t available = size - layout.data_offset;
  if (*data_bytes > available) {
    return corruption(path, "truncated .npy data: " + std::to_string(available) + " bytes for " +
                                std::to_string(layout.rows) + " x " + std::to_string(layout.cols) +
                                " " + dtype_name(layout.dtype) + " (" +
                                std::to_string(*data_bytes) + " bytes)");
  }
  if (*data_bytes < available) {
    return corruption(
        path, std::to_string(available - *data_bytes) + " unexpected bytes after the .npy data");
  }
  return layout;
}

Result<Layout> parse_layout(const std::string& path, std::span<const std::uint8_t> bytes,
                            VecsFormat format) {
  if (format == VecsFormat::kNpy) return parse_npy(path, bytes);
  return parse_texmex(path, bytes, format);
}

// ---- reading ------------------------------------------------------------------------------------

template <typename T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return Dtype::kFloat32;
  if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::kInt32;
  if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::kInt64;
  return Dtype::kUint8;
}

// Which stored dtypes widen (or narrow with a range check) into T.
template <typename T>
bool can_read_as(Dtype stored) {
  if constexpr (std::is_same_v<T, float>) {
    return stored == Dtype::kFloat32 || stored == Dtype::kUint8;
  } else {
    return stored == Dtype::kInt32 || stored == Dtype::kInt64;
  }
}

// Copies `cols` values of type Src at `src` into `dst` as T. False when a value does not fit T.
template <typename T, typename Src>
bool convert_row(const std::uint8_t* src, std::size_t cols, T* dst, std::size_t* bad_col) {
  if constexpr (std::is_same_v<T, Src>) {
    std::memcpy(dst, src, cols * sizeof(T));
  } else {
    for (std::size_t j = 0; j < cols; ++j) {
      const Src value = load<Src>(src + j * sizeof(Src));
      if constexpr (sizeof(Src) > sizeof(T)) {
        if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) {
          *bad_col = j;
          return false;
        }
      }
      dst[j] = static_cast<T>(value);
    }
  }
  return true;
}

template <typename T, typename Src>
Status copy_rows(const std::string& path, const std::uint8_t* base, const Layout& layout,
                 std::size_t first_row, Matrix<T>* out) {
  for (std::size_t i = 0; i < out->rows; ++i) {
    const std::uint8_t* src =
        base + layout.data_offset + (first_row + i) * layout.row_stride + layout.row_prefix;
    std::size_t bad_col = 0;
    if (!convert_row<T, Src>(src, out->cols, out->row(i), &bad_col)) {
      return invalid(path, "value " + std::to_string(load<Src>(src + bad_col * sizeof(Src))) +
                               " at row " + std::to_string(first_row + i) + ", column " +
                               std::to_string(bad_col) + " does not fit " +
                               dtype_name(dtype_of<T>()));
    }
  }
  return Status::ok();
}

Status check_finite(const std::string& path, const FloatMatrix& m, std::size_t first_row) {
  const float* data = m.data.data();
  const std::size_t n = m.data.size();
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(data[k])) {
      return invalid(path, std::string("non-finite value ") +
                               (std::isnan(data[k]) ? "NaN"
                                : data[k] > 0       ? "+Inf"
                                                    : "-Inf") +
                               " at row " + std::to_string(first_row + k / m.cols) + ", column " +
                               std::to_string(k % m.cols));
    }
  }
  return Status::ok();
}

template <typename T>
Result<Matrix<T>> read_matrix(const std::string& path, const std::uint8_t* base,
                              const Layout& layout, const ReadOptions& options) {
  if (!can_read_as<T>(layout.dtype)) {
    return invalid(path, std::string("holds ") + dtype_name(layout.dtype) +
                             " values, which cannot be read as " + dtype_name(dtype_of<T>()));
  }
  if (options.first_row > layout.rows) {
    return invalid(path, "first_row " + std::to_string(options.first_row) + " is past the end (" +
                             std::to_string(layout.rows) + " rows)");
  }
  std::size_t count = layout.rows - options.first_row;
  if (options.max_rows > 0) count = std::min(count, options.max_rows);
  if (!checked_mul(count, layout.cols) || !checked_mul(count * layout.cols, sizeof(T))) {
    return invalid(path, "too many values to hold in memory");
  }
  Matrix<T> out(count, layout.cols);
  Status copied;
  switch (layout.dtype) {
    case Dtype::kFloat32:
      if constexpr (std::is_same_v<T, float>) {
        copied = copy_rows<T, float>(path, base, layout, options.first_row, &out);
      }
      break;
    case Dtype::kUint8:
      if constexpr (std::is_same_v<T, float>) {
        copied = copy_rows<T, std::uint8_t>(path, base, layout, options.first_row, &out);
      }
      break;
    case Dtype::kInt32:
      if constexpr (!std::is_same_v<T, float>) {
        copied = copy_rows<T, std::int32_t>(path, base, layout, options.first_row, &out);
      }
      break;
    case Dtype::kInt64:
      if constexpr (!std::is_same_v<T, float>) {
        copied = copy_rows<T, std::int64_t>(path, base, layout, options.first_row, &out);
      }
      break;
  }
  SEMID_RETURN_IF_ERROR(copied);
  if constexpr (std::is_same_v<T, float>) {
    if (options.reject_non_finite && layout.dtype == Dtype::kFloat32) {
      SEMID_RETURN_IF_ERROR(check_finite(path, out, options.first_row));
    }
  }
  return out;
}

}  // namespace

struct VectorFile::Impl {
  std::string path;
  std::unique_ptr<MappedFile> file;
  Layout layout;
};

Result<VectorFile> VectorFile::open(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(const VecsFormat format, format_from_path(path));
  SEMID_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  SEMID_ASSIGN_OR_RETURN(const Layout layout, parse_layout(path, file->bytes(), format));
  return VectorFile(std::shared_ptr<const Impl>(new Impl{path, std::move(file), layout}));
}

VecsShape VectorFile::shape() const { return {impl_->layout.rows, impl_->layout.cols}; }
const std::string& VectorFile::path() const { return impl_->path; }

Result<FloatMatrix> VectorFile::read_floats(const ReadOptions& options) const {
  return read_matrix<float>(impl_->path, impl_->file->bytes().data(), impl_->layout, options);
}
Result<Int32Matrix> VectorFile::read_int32(const ReadOptions& options) const {
  return read_matrix<std::int32_t>(impl_->path, impl_->file->bytes().data(), impl_->layout,
                                   options);
}
Result<Int64Matrix> VectorFile::read_int64(const ReadOptions& options) const {
  return read_matrix<std::int64_t>(impl_->path, impl_->file->bytes().data(), impl_->layout,
                                   options);
}

namespace {

// ---- writing ------------------------------------------------------------------------------------

// Buffers small appends into large writes to the sink.
class BufferedSink {
 public:
  explicit BufferedSink(const ByteSink& sink) : sink_(sink) { buffer_.reserve(kCapacity); }
  void append(const void* data, std::size_t size) {
    if (failed_) return;
    if (buffer_.size() + size > kCapacity) flush();
    if (size >= kCapacity) {
      failed_ = !sink_(data, size);
      return;
    }
    const auto* p = static_cast<const char*>(data);
    buffer_.insert(buffer_.end(), p, p + size);
  }
  void flush() {
    if (!failed_ && !buffer_.empty()) failed_ = !sink_(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

 private:
  static constexpr std::size_t kCapacity = 1 << 20;
  const ByteSink& sink_;
  std::vector<char> buffer_;
  bool failed_ = false;
};

template <typename T>
Status check_writable(const std::string& path, const Matrix<T>& m, bool allow_empty_without_cols) {
  const auto expected = checked_mul(m.rows, m.cols);
  if (!expected || *expected != m.data.size()) {
    return invalid(path, "matrix of " + std::to_string(m.rows) + " x " + std::to_string(m.cols) +
                             " holds " + std::to_string(m.data.size()) + " values");
  }
  if (allow_empty_without_cols && m.rows == 0) return Status::ok();
  if (m.cols < 1 || m.cols > static_cast<std::size_t>(kMaxDimension)) {
    return invalid(path, "cannot write dimension " + std::to_string(m.cols) + " (must be in [1, " +
                             std::to_string(kMaxDimension) + "])");
  }
  return Status::ok();
}

template <typename T>
Status write_texmex(const std::string& path, const Matrix<T>& m) {
  SEMID_RETURN_IF_ERROR(check_writable(path, m, /*allow_empty_without_cols=*/true));
  return write_file_atomically(path, [&](const ByteSink& sink) {
    BufferedSink out(sink);
    const auto dim = static_cast<std::int32_t>(m.cols);
    for (std::size_t i = 0; i < m.rows; ++i) {
      out.append(&dim, sizeof(dim));
      out.append(m.row(i), m.cols * sizeof(T));
    }
    out.flush();
    return Status::ok();
  });
}

template <typename T>
Status write_npy_matrix(const std::string& path, const Matrix<T>& m, const char* descr) {
  SEMID_RETURN_IF_ERROR(check_writable(path, m, /*allow_empty_without_cols=*/false));
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(m.rows) + ", " +
                       std::to_string(m.cols) + "), }";
  // Version 1.0: magic (6) + version (2) + uint16 header length (2) + header, padded with spaces
  // and a final '\n' to a multiple of 64 bytes so that the data is aligned.
  constexpr std::size_t kPrefix = 10;
  const std::size_t total = (kPrefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - kPrefix - header.size() - 1, ' ');
  header.push_back('\n');
  const auto header_len = static_cast<std::uint16_t>(header.size());
  return write_file_atomically(path, [&](const ByteSink& sink) {
    BufferedSink out(sink);
    out.append(kNpyMagic.data(), kNpyMagic.size());
    const std::uint8_t version[2] = {1, 0};
    out.append(version, sizeof(version));
    out.append(&header_len, sizeof(header_len));
    out.append(header.data(), header.size());
    out.append(m.data.data(), m.data.size() * sizeof(T));
    out.flush();
    return Status::ok();
  });
}

}  // namespace

Result<VecsFormat> format_from_path(const std::string& path) {
  auto ends_with = [&](std::string_view suffix) {
    return path.size() > suffix.size() &&
           std::string_view(path).substr(path.size() - suffix.size()) == suffix;
  };
  if (ends_with(".fvecs")) return VecsFormat::kFvecs;
  if (ends_with(".ivecs")) return VecsFormat::kIvecs;
  if (ends_with(".bvecs")) return VecsFormat::kBvecs;
  if (ends_with(".npy")) return VecsFormat::kNpy;
  return invalid(path, "unknown vector file extension (expected .fvecs, .ivecs, .bvecs or .npy)");
}

const char* format_name(VecsFormat format) {
  switch (format) {
    case VecsFormat::kFvecs:
      return "fvecs";
    case VecsFormat::kIvecs:
      return "ivecs";
    case VecsFormat::kBvecs:
      return "bvecs";
    case VecsFormat::kNpy:
      return "npy";
  }
  return "?";
}

Result<VecsShape> read_shape(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(const VectorFile file, VectorFile::open(path));
  return file.shape();
}

Result<FloatMatrix> read_float_vectors(const std::string& path, const ReadOptions& options) {
  SEMID_ASSIGN_OR_RETURN(const VectorFile file, VectorFile::open(path));
  return file.read_floats(options);
}
Result<Int32Matrix> read_int32_vectors(const std::string& path, const ReadOptions& options) {
  SEMID_ASSIGN_OR_RETURN(const VectorFile file, VectorFile::open(path));
  return file.read_int32(options);
}
Result<Int64Matrix> read_int64_vectors(const std::string& path, const ReadOptions& options) {
  SEMID_ASSIGN_OR_RETURN(const VectorFile file, VectorFile::open(path));
  return file.read_int64(options);
}

Status write_fvecs(const std::string& path, const FloatMatrix& m) { return write_texmex(path, m); }
Status write_ivecs(const std::string& path, const Int32Matrix& m) { return write_texmex(path, m); }
Status write_bvecs(const std::string& path, const Matrix<std::uint8_t>& m) {
  return write_texmex(path, m);
}
Status write_npy(const std::string& path, const FloatMatrix& m) {
  return write_npy_matrix(path, m, "<f4");
}
Status write_npy(const std::string& path, const Int32Matrix& m) {
  return write_npy_matrix(path, m, "<i4");
}
Status write_npy(const std::string& path, const Int64Matrix& m) {
  return write_npy_matrix(path, m, "<i8");
}

Status write_float_vectors(const std::string& path, const FloatMatrix& m) {
  SEMID_ASSIGN_OR_RETURN(const VecsFormat format, format_from_path(path));
  if (format == VecsFormat::kFvecs) return write_fvecs(path, m);
  if (format == VecsFormat::kNpy) return write_npy(path, m);
  return invalid(path, "float vectors are written as .fvecs or .npy");
}

Status write_int32_vectors(const std::string& path, const Int32Matrix& m) {
  SEMID_ASSIGN_OR_RETURN(const VecsFormat format, format_from_path(path));
  if (format == VecsFormat::kIvecs) return write_ivecs(path, m);
  if (format == VecsFormat::kNpy) return write_npy(path, m);
  return invalid(path, "int32 vectors are written as .ivecs or .npy");
}

}  // namespace semid
