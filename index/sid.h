// Semantic IDs as bytes: the key codec that every sorted store of SIDs shares (DESIGN.md).
//
// A SID of `levels` (L) codes in [0, codebook_size) (K) is packed level by level, each code as a
// big-endian unsigned integer of 1 byte when K <= 256, else 2 bytes (K <= 65536). A stored key
// appends the collision suffix (2 bytes, big-endian; 0 for the first item on a SID, 1 for the
// next, ...) and the item id (8 bytes, big-endian):
//
//   key = code_1 .. code_L | suffix | item_id          (L * bytes_per_level + 10 bytes)
//
// Because every field is big-endian and fixed-width, the bytewise (memcmp) order of keys is the
// depth-first order of the SID trie (then suffix, then id), and the packed first j levels of a SID
// are a byte prefix of every key under that SID prefix: a prefix scan over them is exactly "all
// items under this prefix". The same packed codes (without suffix and id) are IndexRQVAE's FAISS
// codes.
//
// Thread safety: SidKeyCodec is immutable; all its methods are const and safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace semid {

// A decoded key.
struct SidKey {
  std::vector<std::int32_t> codes;  // L codes, coarse to fine
  std::uint16_t collision_suffix = 0;
  std::uint64_t item_id = 0;
};

class SidKeyCodec {
 public:
  // Bytes of the collision suffix and of the item id in a key.
  static constexpr std::size_t kSuffixBytes = 2;
  static constexpr std::size_t kItemIdBytes = 8;
  // The most levels a SID may have.
  static constexpr int kMaxLevels = 16;

  // InvalidArgument for levels outside [1, kMaxLevels] or codebook_size outside [2, 65536] (the
  // ranges of the models' configs).
  static Result<SidKeyCodec> create(int levels, int codebook_size);

  int levels() const { return levels_; }
  int codebook_size() const { return codebook_size_; }
  // 1 (codebook_size <= 256) or 2.
  std::size_t bytes_per_level() const { return bytes_per_level_; }
  // Bytes of a packed full SID: levels * bytes_per_level.
  std::size_t sid_bytes() const { return static_cast<std::size_t>(levels_) * bytes_per_level_; }
  // Bytes of a key: sid_bytes() + 2 + 8.
  std::size_t key_bytes() const { return sid_bytes() + kSuffixBytes + kItemIdBytes; }

  // OK when `prefix` holds at most levels() codes, each in [0, codebook_size); InvalidArgument
  // naming the level and value (or the length) otherwise. A full SID is a prefix of length L.
  Status validate_prefix(std::span<const std::int32_t> prefix) const;

  // The key of an item: `codes` must hold exactly levels() valid codes (InvalidArgument
  // otherwise).
  Result<std::string> encode_key(std::span<const std::int32_t> codes,
                                 std::uint16_t collision_suffix, std::uint64_t item_id) const;
  // The bytes every key under `prefix` starts with (0..L codes; the empty prefix gives "").
  Result<std::string> encode_prefix(std::span<const std::int32_t> prefix) const;
  // Inverse of encode_key. InvalidArgument when key.size() != key_bytes() or a code is >= K.
  Result<SidKey> decode_key(std::string_view key) const;

  // Unchecked fast paths for callers that validated their codes (IndexRQVAE's codes, tries):
  // pack exactly levels() codes into sid_bytes() bytes at `out`, and unpack them back.
  void pack(const std::int32_t* codes, std::uint8_t* out) const;
  void unpack(const std::uint8_t* bytes, std::int32_t* codes) const;

 private:
  SidKeyCodec(int levels, int codebook_size)
      : levels_(levels),
        codebook_size_(codebook_size),
        bytes_per_level_(codebook_size <= 256 ? 1 : 2) {}

  int levels_;
  int codebook_size_;
  std::size_t bytes_per_level_;
};

// "(3, 14, 7)": a SID (or any list of codes) for messages.
std::string sid_text(std::span<const std::int32_t> codes);

}  // namespace semid
