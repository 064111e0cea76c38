#include "storage/record.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "index/checksum.h"

namespace semid::storage {
namespace {

// The fixed part of a record: the header before the codes (20 bytes) and the CRC (4 bytes).
constexpr std::size_t kHeaderBytes = 20;
constexpr std::size_t kCrcBytes = 4;

void put_le(std::string& out, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

std::uint64_t get_le(const unsigned char* in, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return value;
}

std::uint32_t crc_of(std::string_view bytes) { return crc32c(0, bytes.data(), bytes.size()); }

}  // namespace

std::string encode_item_key(std::uint64_t id) {
  std::string key(kItemKeyBytes, '\0');
  for (std::size_t i = 0; i < kItemKeyBytes; ++i) {
    key[i] = static_cast<char>(id >> (8 * (kItemKeyBytes - 1 - i)));
  }
  return key;
}

Result<std::uint64_t> decode_item_key(std::string_view key) {
  if (key.size() != kItemKeyBytes) {
    return Status::corruption("item key of " + std::to_string(key.size()) + " bytes (expected 8)");
  }
  std::uint64_t id = 0;
  for (unsigned char byte : key) id = (id << 8) | byte;
  return id;
}

std::string encode_item_record(std::span<const std::int32_t> sid,
                               std::span<const std::int32_t> natural_sid,
                               std::uint16_t collision_suffix, std::uint64_t sequence,
                               std::span<const float> vector, std::string_view payload) {
  std::string out;
  out.reserve(kHeaderBytes + 4 * sid.size() + 4 * vector.size() + payload.size() + kCrcBytes);
  put_le(out, kRecordVersion, 1);
  put_le(out, sid.size(), 1);
  put_le(out, collision_suffix, 2);
  put_le(out, vector.size(), 4);
  put_le(out, sequence, 8);
  put_le(out, payload.size(), 4);
  for (std::int32_t code : sid) put_le(out, static_cast<std::uint32_t>(code), 2);
  for (std::int32_t code : natural_sid) put_le(out, static_cast<std::uint32_t>(code), 2);
  for (float value : vector) put_le(out, std::bit_cast<std::uint32_t>(value), 4);
  out.append(payload);
  put_le(out, crc_of(out), 4);
  return out;
}

Result<ItemRecord> decode_item_record(std::string_view bytes, const RecordShape& shape) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < kHeaderBytes + kCrcBytes) {
    return Status::corruption("item record of " + std::to_string(bytes.size()) +
                              " bytes is shorter than its 24-byte frame");
  }
  if (p[0] != 1 && p[0] != kRecordVersion) {
    return Status::corruption("item record version " + std::to_string(p[0]) + " (expected 1 or " +
                              std::to_string(kRecordVersion) + ")");
  }
  const std::uint64_t sid_copies = p[0] == 1 ? 1 : 2;
  const std::uint64_t levels = p[1];
  const std::uint64_t dim = get_le(p + 4, 4);
  const std::uint64_t payload_bytes = get_le(p + 16, 4);
  if (levels != static_cast<std::uint64_t>(shape.levels) ||
      dim != static_cast<std::uint64_t>(shape.dim)) {
    return Status::corruption("item record has " + std::to_string(levels) +
                              " levels and dimension " + std::to_string(dim) +
                              "; the collection has " + std::to_string(shape.levels) + " and " +
                              std::to_string(shape.dim));
  }
  // Each term is below 2^34, so the sum cannot overflow 64 bits.
  const std::uint64_t expected =
      kHeaderBytes + 2 * sid_copies * levels + 4 * dim + payload_bytes + kCrcBytes;
  if (expected != bytes.size()) {
    return Status::corruption("item record of " + std::to_string(bytes.size()) +
                              " bytes; its header describes " + std::to_string(expected));
  }
  const std::size_t body = bytes.size() - kCrcBytes;
  const std::uint32_t stored_crc = static_cast<std::uint32_t>(get_le(p + body, 4));
  if (stored_crc != crc_of(bytes.substr(0, body))) {
    return Status::corruption("item record checksum mismatch");
  }
  ItemRecord record;
  record.collision_suffix = static_cast<std::uint16_t>(get_le(p + 2, 2));
  record.sequence = get_le(p + 8, 8);
  const unsigned char* at = p + kHeaderBytes;
  for (std::uint64_t copy = 0; copy < sid_copies; ++copy) {
    std::vector<std::int32_t>& sid = copy == 0 ? record.sid : record.natural_sid;
    sid.resize(levels);
    for (std::size_t l = 0; l < levels; ++l, at += 2) {
      sid[l] = static_cast<std::int32_t>(get_le(at, 2));
      if (sid[l] >= shape.codebook_size) {
        return Status::corruption(std::string("item record has ") +
                                  (copy == 0 ? "" : "model SID ") + "code " +
                                  std::to_string(sid[l]) + " at level " + std::to_string(l) +
                                  ", outside [0, " + std::to_string(shape.codebook_size) + ")");
      }
    }
  }
  if (sid_copies == 1) record.natural_sid = record.sid;
  record.vector.resize(dim);
  for (std::size_t j = 0; j < dim; ++j, at += 4) {
    record.vector[j] = std::bit_cast<float>(static_cast<std::uint32_t>(get_le(at, 4)));
    if (!std::isfinite(record.vector[j])) {
      return Status::corruption("item record has a non-finite value at column " +
                                std::to_string(j));
    }
  }
  record.payload.assign(reinterpret_cast<const char*>(at), payload_bytes);
  return record;
}

std::string encode_meta_value(std::string_view body) {
  std::string out;
  out.reserve(1 + body.size() + kCrcBytes);
  put_le(out, kMetaVersion, 1);
  out.append(body);
  put_le(out, crc_of(out), 4);
  return out;
}

Result<std::string> decode_meta_value(std::string_view bytes) {
  if (bytes.size() < 1 + kCrcBytes) {
    return Status::corruption("meta value of " + std::to_string(bytes.size()) +
                              " bytes is shorter than its 5-byte frame");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (p[0] != kMetaVersion) {
    return Status::corruption("meta value version " + std::to_string(p[0]) + " (expected " +
                              std::to_string(kMetaVersion) + ")");
  }
  const std::size_t body = bytes.size() - kCrcBytes;
  if (static_cast<std::uint32_t>(get_le(p + body, 4)) != crc_of(bytes.substr(0, body))) {
    return Status::corruption("meta value checksum mismatch");
  }
  return std::string(bytes.substr(1, body - 1));
}

}  // namespace semid::storage
