#include "index/sid.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace semid {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

TEST(SidKeyCodec, OneBytePerLevelUpTo256Codes) {
  auto codec = SidKeyCodec::create(3, 256);
  ASSERT_TRUE(codec.is_ok());
  EXPECT_EQ(codec->bytes_per_level(), 1u);
  EXPECT_EQ(codec->sid_bytes(), 3u);
  EXPECT_EQ(codec->key_bytes(), 13u);
  auto key = codec->encode_key(std::vector<std::int32_t>{1, 255, 7}, 0x0102, 0x0A0B0C0D0E0F1011ull);
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ(*key, bytes({1, 255, 7, 1, 2, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11}));
}

TEST(SidKeyCodec, TwoBigEndianBytesPerLevelAbove256Codes) {
  auto codec = SidKeyCodec::create(2, 257);
  ASSERT_TRUE(codec.is_ok());
  EXPECT_EQ(codec->bytes_per_level(), 2u);
  auto key = codec->encode_key(std::vector<std::int32_t>{256, 3}, 0, 5);
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ(*key, bytes({1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}));
  auto max = SidKeyCodec::create(1, 65536);
  ASSERT_TRUE(max.is_ok());
  EXPECT_EQ(*max->encode_prefix(std::vector<std::int32_t>{65535}), bytes({255, 255}));
}

TEST(SidKeyCodec, DecodeInvertsEncode) {
  auto codec = SidKeyCodec::create(4, 1000);
  ASSERT_TRUE(codec.is_ok());
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::int32_t> codes(4);
    for (auto& c : codes) c = static_cast<std::int32_t>(rng() % 1000);
    const auto suffix = static_cast<std::uint16_t>(rng());
    const std::uint64_t id = rng();
    auto key = codec->encode_key(codes, suffix, id);
    ASSERT_TRUE(key.is_ok());
    auto decoded = codec->decode_key(*key);
    ASSERT_TRUE(decoded.is_ok());
    EXPECT_EQ(decoded->codes, codes);
    EXPECT_EQ(decoded->collision_suffix, suffix);
    EXPECT_EQ(decoded->item_id, id);
    std::vector<std::uint8_t> packed(codec->sid_bytes());
    codec->pack(codes.data(), packed.data());
    std::vector<std::int32_t> unpacked(4);
    codec->unpack(packed.data(), unpacked.data());
    EXPECT_EQ(unpacked, codes);
    EXPECT_EQ(std::string(packed.begin(), packed.end()), key->substr(0, codec->sid_bytes()));
  }
}

TEST(SidKeyCodec, KeyOrderIsTrieOrderAndPrefixesArePrefixes) {
  auto codec = SidKeyCodec::create(3, 300);
  ASSERT_TRUE(codec.is_ok());
  std::mt19937_64 rng(9);
  struct Entry {
    std::vector<std::int32_t> codes;
    std::uint16_t suffix;
    std::uint64_t id;
  };
  std::vector<Entry> entries;
  for (int i = 0; i < 300; ++i) {
    entries.push_back(
        {{static_cast<std::int32_t>(rng() % 4), static_cast<std::int32_t>(rng() % 300),
          static_cast<std::int32_t>(rng() % 300)},
         static_cast<std::uint16_t>(rng() % 3),
         rng() % 1000});
  }
  for (const Entry& a : entries) {
    const std::string ka = *codec->encode_key(a.codes, a.suffix, a.id);
    for (std::size_t j = 0; j <= 3; ++j) {
      const std::string prefix = *codec->encode_prefix({a.codes.data(), j});
      EXPECT_EQ(ka.compare(0, prefix.size(), prefix), 0);
    }
    for (int probe = 0; probe < 5; ++probe) {
      const Entry& b = entries[rng() % entries.size()];
      const std::string kb = *codec->encode_key(b.codes, b.suffix, b.id);
      const bool tuple_less = std::tie(a.codes, a.suffix, a.id) < std::tie(b.codes, b.suffix, b.id);
      EXPECT_EQ(ka < kb, tuple_less);
    }
  }
}

TEST(SidKeyCodec, RejectsBadShapesAndCodes) {
  EXPECT_FALSE(SidKeyCodec::create(0, 256).is_ok());
  EXPECT_FALSE(SidKeyCodec::create(17, 256).is_ok());
  EXPECT_FALSE(SidKeyCodec::create(3, 1).is_ok());
  EXPECT_FALSE(SidKeyCodec::create(3, 65537).is_ok());
  auto codec = SidKeyCodec::create(2, 10);
  ASSERT_TRUE(codec.is_ok());
  auto too_long = codec->encode_prefix(std::vector<std::int32_t>{1, 2, 3});
  EXPECT_EQ(too_long.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("longer"), std::string::npos);
  auto big = codec->encode_prefix(std::vector<std::int32_t>{1, 10});
  EXPECT_EQ(big.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(big.status().message().find("10"), std::string::npos);
  EXPECT_FALSE(codec->encode_prefix(std::vector<std::int32_t>{-1}).is_ok());
  EXPECT_FALSE(codec->encode_key(std::vector<std::int32_t>{1}, 0, 0).is_ok());
  EXPECT_FALSE(codec->decode_key("short").is_ok());
  // A key whose code is >= K.
  EXPECT_FALSE(codec->decode_key(bytes({1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})).is_ok());
  EXPECT_TRUE(codec->encode_prefix({}).is_ok());
}

}  // namespace
}  // namespace semid
