#include "index/sid.h"

namespace semid {
namespace {

void put_big_endian(std::uint64_t value, std::size_t bytes, std::uint8_t* out) {
  for (std::size_t i = 0; i < bytes; ++i) {
    out[i] = static_cast<std::uint8_t>(value >> (8 * (bytes - 1 - i)));
  }
}

std::uint64_t get_big_endian(const std::uint8_t* in, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) value = (value << 8) | in[i];
  return value;
}

void pack_codes(std::span<const std::int32_t> codes, std::size_t bytes_per_level,
                std::uint8_t* out) {
  for (std::size_t l = 0; l < codes.size(); ++l) {
    put_big_endian(static_cast<std::uint32_t>(codes[l]), bytes_per_level,
                   out + l * bytes_per_level);
  }
}

}  // namespace

Result<SidKeyCodec> SidKeyCodec::create(int levels, int codebook_size) {
  if (levels < 1 || levels > kMaxLevels) {
    return Status::invalid_argument("levels = " + std::to_string(levels) + ": must be in [1, " +
                                    std::to_string(kMaxLevels) + "]");
  }
  if (codebook_size < 2 || codebook_size > 65536) {
    return Status::invalid_argument("codebook_size = " + std::to_string(codebook_size) +
                                    ": must be in [2, 65536]");
  }
  return SidKeyCodec(levels, codebook_size);
}

Status SidKeyCodec::validate_prefix(std::span<const std::int32_t> prefix) const {
  if (prefix.size() > static_cast<std::size_t>(levels_)) {
    return Status::invalid_argument("SID prefix of " + std::to_string(prefix.size()) +
                                    " codes is longer than the " + std::to_string(levels_) +
                                    " levels");
  }
  for (std::size_t l = 0; l < prefix.size(); ++l) {
    if (prefix[l] < 0 || prefix[l] >= codebook_size_) {
      return Status::invalid_argument("code " + std::to_string(prefix[l]) + " at level " +
                                      std::to_string(l) + " is outside [0, " +
                                      std::to_string(codebook_size_) + ")");
    }
  }
  return Status::ok();
}

Result<std::string> SidKeyCodec::encode_key(std::span<const std::int32_t> codes,
                                            std::uint16_t collision_suffix,
                                            std::uint64_t item_id) const {
  if (codes.size() != static_cast<std::size_t>(levels_)) {
    return Status::invalid_argument("a SID key needs " + std::to_string(levels_) + " codes, got " +
                                    std::to_string(codes.size()));
  }
  SEMID_RETURN_IF_ERROR(validate_prefix(codes));
  std::string key(key_bytes(), '\0');
  auto* out = reinterpret_cast<std::uint8_t*>(key.data());
  pack_codes(codes, bytes_per_level_, out);
  put_big_endian(collision_suffix, kSuffixBytes, out + sid_bytes());
  put_big_endian(item_id, kItemIdBytes, out + sid_bytes() + kSuffixBytes);
  return key;
}

Result<std::string> SidKeyCodec::encode_prefix(std::span<const std::int32_t> prefix) const {
  SEMID_RETURN_IF_ERROR(validate_prefix(prefix));
  std::string bytes(prefix.size() * bytes_per_level_, '\0');
  pack_codes(prefix, bytes_per_level_, reinterpret_cast<std::uint8_t*>(bytes.data()));
  return bytes;
}

Result<SidKey> SidKeyCodec::decode_key(std::string_view key) const {
  if (key.size() != key_bytes()) {
    return Status::invalid_argument("a SID key has " + std::to_string(key_bytes()) +
                                    " bytes, got " + std::to_string(key.size()));
  }
  const auto* in = reinterpret_cast<const std::uint8_t*>(key.data());
  SidKey out;
  out.codes.resize(static_cast<std::size_t>(levels_));
  unpack(in, out.codes.data());
  SEMID_RETURN_IF_ERROR(validate_prefix(out.codes));
  out.collision_suffix = static_cast<std::uint16_t>(get_big_endian(in + sid_bytes(), kSuffixBytes));
  out.item_id = get_big_endian(in + sid_bytes() + kSuffixBytes, kItemIdBytes);
  return out;
}

void SidKeyCodec::pack(const std::int32_t* codes, std::uint8_t* out) const {
  pack_codes({codes, static_cast<std::size_t>(levels_)}, bytes_per_level_, out);
}

void SidKeyCodec::unpack(const std::uint8_t* bytes, std::int32_t* codes) const {
  for (int l = 0; l < levels_; ++l) {
    codes[l] = static_cast<std::int32_t>(
        get_big_endian(bytes + static_cast<std::size_t>(l) * bytes_per_level_, bytes_per_level_));
  }
}

std::string sid_text(std::span<const std::int32_t> codes) {
  std::string out = "(";
  for (std::size_t l = 0; l < codes.size(); ++l) {
    if (l) out += ", ";
    out += std::to_string(codes[l]);
  }
  return out + ")";
}

}  // namespace semid
