// The byte formats of a collection's RocksDB column families (schema version 1).
//
// items:  key = item id, 8 bytes big-endian (so iteration is in id order)
//         value = an item record (below)
// sids:   key = SidKeyCodec key (index/sid.h): packed SID | collision suffix | item id; value empty
// meta:   key = "collection" | "model" | "counters"; value = a meta value (below)
//
// Item record, all integers little-endian:
//   offset 0   u8   format version (kRecordVersion = 2; version 1 is read too)
//          1   u8   levels L
//          2   u16  collision suffix
//          4   u32  dimension d
//          8   u64  sequence: the order in which items entered the collection (the in-memory
//                   index is rebuilt in this order, so search ties break the same after a restart)
//          16  u32  payload bytes P
//          20  L x u16 codes, coarse to fine
//              d x f32 the vector as upserted (not normalised)
//              P bytes payload (JSON text; P = 0: no payload)
//   end - 4    u32  CRC-32C of every preceding byte
// Size: 24 + 2L + 4d + P.
//
// Meta value: u8 version (kMetaVersion = 1) | body | u32 CRC-32C (little-endian) of version and
// body. The "collection" and "counters" bodies are JSON; "model" is the model file's bytes
// (index/model_file.h), which carries its own content hash besides.
//
// Parsing treats the bytes as hostile: sizes are checked against each other (without overflow)
// before anything is copied, and every failure is a Corruption naming what is wrong.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace semid::storage {

inline constexpr std::uint8_t kRecordVersion = 2;
inline constexpr std::uint8_t kMetaVersion = 1;
// Bytes of an item key.
inline constexpr std::size_t kItemKeyBytes = 8;

struct ItemRecord {
  std::vector<std::int32_t> sid;          // L codes: the stored SID
  std::vector<std::int32_t> natural_sid;  // L codes: the model's SID of `vector`
  std::uint16_t collision_suffix = 0;
  std::uint64_t sequence = 0;
  std::vector<float> vector;  // d floats
  std::string payload;        // JSON text; empty: none
};

// The items key of `id`, and back (Corruption unless the key has exactly 8 bytes).
std::string encode_item_key(std::uint64_t id);
Result<std::uint64_t> decode_item_key(std::string_view key);

// The record bytes (version 2). The caller has validated the fields (both SIDs of L codes < 65536,
// d < 2^32, P < 2^32).
std::string encode_item_record(std::span<const std::int32_t> sid,
                               std::span<const std::int32_t> natural_sid,
                               std::uint16_t collision_suffix, std::uint64_t sequence,
                               std::span<const float> vector, std::string_view payload);

// What a record must agree with: the collection's shape.
struct RecordShape {
  int levels = 0;
  int codebook_size = 0;
  int dim = 0;
};

// Parses and verifies a record: version, shape (levels and dim as expected), total size, CRC,
// codes < codebook_size, finite floats. Corruption with a message naming the problem.
Result<ItemRecord> decode_item_record(std::string_view bytes, const RecordShape& shape);

// Meta values.
std::string encode_meta_value(std::string_view body);
// The body; Corruption for a short value, another version or a CRC mismatch.
Result<std::string> decode_meta_value(std::string_view bytes);

}  // namespace semid::storage
