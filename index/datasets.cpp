#include "index/datasets.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "index/file_util.h"

namespace semid {
namespace {

using json = nlohmann::json;

// Receives the SAX events of the GloVe JSON and fills the result row by row. The state says where
// in the document the next event lands; any event that does not fit the expected shape records an
// error and stops the parse (by returning false).
class GloveSaxHandler {
 public:
  explicit GloveSaxHandler(std::string source) : source_(std::move(source)) {}

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t value) { return number(static_cast<double>(value)); }
  bool number_unsigned(json::number_unsigned_t value) { return number(static_cast<double>(value)); }
  bool number_float(json::number_float_t value, const json::string_t&) { return number(value); }
  bool string(json::string_t& value) {
    if (state_ == State::kWords) {
      words_.push_back(std::move(value));
      return true;
    }
    return scalar("a string");
  }
  bool binary(json::binary_t&) { return fail("unexpected binary value"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::kStart:
        state_ = State::kTop;
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      case State::kTop:
        if (top_key_ == "vectors") return start_vectors();
        if (top_key_ == "words") return fail("\"words\" is not an array");
        return start_skip();
      case State::kVectors:
        return fail("vectors[\"" + word_ + "\"] is not an array");
      default:
        return fail(where() + " holds an object");
    }
  }
  bool end_object() {
    switch (state_) {
      case State::kSkip:
        return end_skip();
      case State::kVectors:
        state_ = State::kTop;
        return true;
      case State::kTop:
        state_ = State::kDone;
        return true;
      default:
        return fail("unexpected end of object");
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::kSkip:
        ++skip_depth_;
        return true;
      case State::kTop:
        if (top_key_ == "words") return start_words();
        if (top_key_ == "vectors") return fail("\"vectors\" is not an object");
        return start_skip();
      case State::kVectors:
        values_.clear();
        state_ = State::kVector;
        return true;
      case State::kStart:
        return fail("the top level is not an object");
      default:
        return fail(where() + " holds an array");
    }
  }
  bool end_array() {
    switch (state_) {
      case State::kSkip:
        return end_skip();
      case State::kWords:
        state_ = State::kTop;
        return true;
      case State::kVector: {
        const bool ok = finish_vector();  // (its messages name the word, so state changes after)
        state_ = State::kVectors;
        return ok;
      }
      default:
        return fail("unexpected end of array");
    }
  }
  bool key(json::string_t& value) {
    if (state_ == State::kTop) {
      top_key_ = std::move(value);
    } else if (state_ == State::kVectors) {
      word_ = std::move(value);
    }
    return true;  // keys inside skipped values are of no interest
  }
  bool parse_error(std::size_t position, const std::string&, const json::exception& e) {
    return fail("invalid JSON at byte " + std::to_string(position) + ": " + e.what());
  }

  // After a successful parse: checks that every word got its vector, and hands over the result.
  Result<WordVectors> finish() {
    if (!error_.empty()) return Status::corruption(error_);
    if (!saw_words_) return corruption("no \"words\" array");
    if (!saw_vectors_) return corruption("no \"vectors\" object");
    const std::size_t n = words_.size();
    if (n == 0) return corruption("\"words\" is empty");
    if (expected_size_ && *expected_size_ != n) {
      return corruption("\"size\" is " + std::to_string(*expected_size_) + " but \"words\" has " +
                        std::to_string(n) + " entries");
    }
    for (std::size_t i = n; i < filled_.size(); ++i) {
      if (filled_[i]) {
        return corruption("vectors[\"" + keys_[i] + "\"] has index " + std::to_string(i) +
                          " but there are " + std::to_string(n) + " words");
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (i >= filled_.size() || !filled_[i]) {
        return corruption("word \"" + words_[i] + "\" (row " + std::to_string(i) +
                          ") has no vector");
      }
      // Vectors that arrived before "words" were checked against their key here, not on arrival.
      if (!words_known_ && keys_[i] != words_[i]) return index_mismatch(keys_[i], i);
    }
    WordVectors out;
    out.vectors.rows = n;
    out.vectors.cols = dim_;
    data_.resize(n * dim_);
    out.vectors.data = std::move(data_);
    out.words = std::move(words_);
    return out;
  }

 private:
  enum class State { kStart, kTop, kSkip, kWords, kVectors, kVector, kDone };

  Status corruption(const std::string& what) const {
    return Status::corruption("'" + source_ + "': " + what);
  }
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = corruption(what).message();
    return false;
  }
  std::string where() const {
    if (state_ == State::kWords) return "\"words\"[" + std::to_string(words_.size()) + "]";
    if (state_ == State::kVector) return "vectors[\"" + word_ + "\"]";
    return "the document";
  }
  Status index_mismatch(const std::string& word, std::size_t index) const {
    return corruption("vectors[\"" + word + "\"] has index " + std::to_string(index) +
                      " but words[" + std::to_string(index) + "] is \"" + words_[index] + "\"");
  }

  bool scalar(const char* kind) {
    switch (state_) {
      case State::kSkip:
        return true;
      case State::kTop:
        if (top_key_ == "words") return fail("\"words\" is not an array");
        if (top_key_ == "vectors") return fail("\"vectors\" is not an object");
        return true;  // a top-level scalar we do not use
      case State::kWords:
        return fail("\"words\"[" + std::to_string(words_.size()) + "] is " + kind +
                    ", not a string");
      case State::kVector:
        return fail(where() + " holds " + kind + ", not a number");
      case State::kVectors:
        return fail("vectors[\"" + word_ + "\"] is not an array");
      default:
        return fail(std::string("the top level is ") + kind + ", not an object");
    }
  }

  bool number(double value) {
    if (state_ == State::kVector) {
      values_.push_back(value);
      return true;
    }
    if (state_ == State::kTop && top_key_ == "dimensions") return set_dimensions(value);
    if (state_ == State::kTop && top_key_ == "size") {
      if (value < 0 || value != std::floor(value)) return fail("\"size\" is not a count");
      expected_size_ = static_cast<std::size_t>(value);
      return true;
    }
    return scalar("a number");
  }

  bool set_dimensions(double value) {
    if (value != std::floor(value) || value < 1 || value > static_cast<double>(kMaxDimension)) {
      return fail("\"dimensions\" " + std::to_string(value) + " is not in [1, " +
                  std::to_string(kMaxDimension) + "]");
    }
    if (saw_vectors_) return true;  // too late to matter: the vectors set the width
    dim_ = static_cast<std::size_t>(value);
    return true;
  }

  bool start_skip() {
    state_ = State::kSkip;
    skip_depth_ = 1;
    return true;
  }
  bool end_skip() {
    if (--skip_depth_ == 0) state_ = State::kTop;
    return true;
  }
  bool start_words() {
    if (saw_words_) return fail("a second \"words\" array");
    saw_words_ = true;
    state_ = State::kWords;
    return true;
  }
  bool start_vectors() {
    if (saw_vectors_) return fail("a second \"vectors\" object");
    saw_vectors_ = true;
    words_known_ = saw_words_;  // top-level values do not nest: "words" is complete by now
    state_ = State::kVectors;
    return true;
  }

  // One vector array is complete in values_: d values, norm, index.
  bool finish_vector() {
    if (dim_ == 0) {
      if (values_.size() < 3) {
        return fail(where() + " has " + std::to_string(values_.size()) +
                    " numbers; expected the values, the norm and the index");
      }
      dim_ = values_.size() - 2;
    }
    if (values_.size() != dim_ + 2) {
      return fail(where() + " has " + std::to_string(values_.size()) + " numbers, expected " +
                  std::to_string(dim_ + 2) + " (" + std::to_string(dim_) +
                  " values, the norm and the index)");
    }
    const double index_value = values_.back();
    constexpr double kMaxRows = 1u << 31;
    if (index_value < 0 || index_value >= kMaxRows || index_value != std::floor(index_value)) {
      return fail(where() + " has index " + std::to_string(index_value) + ", not a row number");
    }
    const auto index = static_cast<std::size_t>(index_value);
    if (words_known_) {
      if (index >= words_.size()) {
        return fail(where() + " has index " + std::to_string(index) + " but there are " +
                    std::to_string(words_.size()) + " words");
      }
      if (words_[index] != word_) return fail(index_mismatch(word_, index).message());
      if (filled_.empty()) {  // the first vector: now both the row count and d are known
        filled_.resize(words_.size(), false);
        data_.resize(words_.size() * dim_);
      }
    } else if (index >= filled_.size()) {
      const std::size_t rows = std::max(index + 1, 2 * filled_.size());
      filled_.resize(rows, false);
      data_.resize(rows * dim_);
      keys_.resize(rows);
    }
    if (filled_[index]) {
      return fail(where() + " has index " + std::to_string(index) +
                  ", which another word already has");
    }
    filled_[index] = true;
    if (!words_known_) keys_[index] = word_;
    float* row = data_.data() + index * dim_;
    for (std::size_t j = 0; j < dim_; ++j) row[j] = static_cast<float>(values_[j]);
    return true;
  }

  std::string source_;
  State state_ = State::kStart;
  std::string error_;
  std::string top_key_;
  std::string word_;
  int skip_depth_ = 0;
  bool saw_words_ = false;
  bool saw_vectors_ = false;
  bool words_known_ = false;  // "words" came before "vectors": check each vector on arrival
  std::optional<std::size_t> expected_size_;
  std::size_t dim_ = 0;
  std::vector<double> values_;  // the numbers of the vector being read
  std::vector<std::string> words_;
  std::vector<float> data_;        // rows placed by index
  std::vector<bool> filled_;       // which rows have arrived
  std::vector<std::string> keys_;  // words of rows that arrived before "words" (else empty)
};

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// Validates an IDX file of uint8 values with `rank` dimensions and returns them (and the offset of
// the data).
Result<std::vector<std::size_t>> parse_idx(const std::string& path,
                                           std::span<const std::uint8_t> bytes, int rank,
                                           std::size_t* data_offset) {
  auto corruption = [&](const std::string& what) {
    return Status::corruption("'" + path + "': " + what);
  };
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    return Status::invalid_argument("'" + path +
                                    "' is gzip-compressed; decompress it first (gunzip)");
  }
  if (bytes.size() < 4) return corruption("truncated IDX header");
  if (bytes[0] != 0 || bytes[1] != 0) {
    return corruption("bad IDX magic (the first two bytes must be 0)");
  }
  if (bytes[2] != 0x08) {
    return Status::invalid_argument("'" + path + "': IDX element type " + std::to_string(bytes[2]) +
                                    " is not uint8 (8)");
  }
  if (bytes[3] != rank) {
    return Status::invalid_argument("'" + path + "': IDX rank " + std::to_string(bytes[3]) +
                                    ", expected " + std::to_string(rank));
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (bytes.size() < header) return corruption("truncated IDX header");
  std::vector<std::size_t> dims(rank);
  std::size_t total = 1;
  for (int i = 0; i < rank; ++i) {
    dims[i] = load_be32(bytes.data() + 4 + 4 * i);
    if (__builtin_mul_overflow(total, dims[i], &total)) {
      return corruption("IDX dimensions overflow");
    }
  }
  if (bytes.size() - header != total) {
    return corruption("IDX data holds " + std::to_string(bytes.size() - header) +
                      " bytes, the header promises " + std::to_string(total));
  }
  *data_offset = header;
  return dims;
}

}  // namespace

Result<WordVectors> read_glove_json(std::istream& in, const std::string& source_name) {
  GloveSaxHandler handler(source_name);
  try {
    json::sax_parse(in, &handler);
  } catch (const std::exception& e) {  // the library's own failures, e.g. a stream error
    return Status::io_error("'" + source_name + "': reading JSON failed: " + e.what());
  }
  if (in.bad()) return Status::io_error("'" + source_name + "': read error");
  return handler.finish();
}

Result<WordVectors> read_glove_json_file(const std::string& path) {
  // Probe with MappedFile for its NotFound / IOError messages, then stream.
  { SEMID_ASSIGN_OR_RETURN(auto probe, MappedFile::open(path)); }
  std::vector<char> buffer(1 << 20);
  std::ifstream in;
  in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  in.open(path, std::ios::binary);
  if (!in) return Status::io_error("cannot open '" + path + "'");
  return read_glove_json(in, path);
}

Result<Matrix<std::uint8_t>> read_idx_images(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  std::size_t offset = 0;
  SEMID_ASSIGN_OR_RETURN(auto dims, parse_idx(path, file->bytes(), 3, &offset));
  const std::size_t cols = dims[1] * dims[2];
  if (cols < 1 || cols > static_cast<std::size_t>(kMaxDimension)) {
    return Status::invalid_argument("'" + path + "': images of " + std::to_string(dims[1]) + " x " +
                                    std::to_string(dims[2]) + " pixels");
  }
  Matrix<std::uint8_t> out(dims[0], cols);
  if (!out.data.empty())
    std::memcpy(out.data.data(), file->bytes().data() + offset, out.data.size());
  return out;
}

Result<std::vector<std::uint8_t>> read_idx_labels(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  std::size_t offset = 0;
  SEMID_ASSIGN_OR_RETURN(auto dims, parse_idx(path, file->bytes(), 1, &offset));
  const auto* data = file->bytes().data() + offset;
  return std::vector<std::uint8_t>(data, data + dims[0]);
}

Result<RowSplit> split_rows(std::size_t n_rows, std::size_t n_queries, std::uint64_t seed) {
  if (n_queries > n_rows) {
    return Status::invalid_argument("cannot choose " + std::to_string(n_queries) +
                                    " query rows from " + std::to_string(n_rows) + " rows");
  }
  std::mt19937_64 rng(seed);
  // Uniform in [0, bound) by rejection, identical on every standard library.
  auto draw_below = [&rng](std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    while (true) {
      const std::uint64_t r = rng();
      if (r >= threshold) return r % bound;
    }
  };
  // A partial Fisher-Yates shuffle: the first n_queries entries become the sample.
  std::vector<std::size_t> order(n_rows);
  for (std::size_t i = 0; i < n_rows; ++i) order[i] = i;
  for (std::size_t i = 0; i < n_queries; ++i) {
    std::swap(order[i], order[i + draw_below(n_rows - i)]);
  }
  RowSplit split;
  split.query_rows.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_queries));
  std::sort(split.query_rows.begin(), split.query_rows.end());
  split.base_rows.reserve(n_rows - n_queries);
  std::size_t next_query = 0;
  for (std::size_t i = 0; i < n_rows; ++i) {
    if (next_query < n_queries && split.query_rows[next_query] == i) {
      ++next_query;
    } else {
      split.base_rows.push_back(i);
    }
  }
  return split;
}

FloatMatrix select_rows(const FloatMatrix& m, const std::vector<std::size_t>& rows) {
  FloatMatrix out(rows.size(), m.cols);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    assert(rows[i] < m.rows);
    std::memcpy(out.row(i), m.row(rows[i]), m.cols * sizeof(float));
  }
  return out;
}

}  // namespace semid
