#include "storage/record.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "index/checksum.h"

namespace semid::storage {
namespace {

const RecordShape kShape{3, 256, 4};

std::string sample_record(std::string_view payload = R"({"word":"cat"})") {
  const std::vector<std::int32_t> sid = {1, 255, 7};
  const std::vector<std::int32_t> natural = {1, 255, 6};
  const std::vector<float> vector = {0.5f, -1.25f, 3.0f, 1e-30f};
  return encode_item_record(sid, natural, 9, 123456789012345ULL, vector, payload);
}

TEST(ItemKey, RoundTripsAndSortsById) {
  for (std::uint64_t id : {0ULL, 1ULL, 255ULL, 256ULL, (1ULL << 63) - 1}) {
    auto back = decode_item_key(encode_item_key(id));
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, id);
  }
  EXPECT_LT(encode_item_key(255), encode_item_key(256));
  EXPECT_EQ(decode_item_key("1234567").status().code(), Status::Code::kCorruption);
}

TEST(ItemRecord, RoundTripsEveryField) {
  const std::string bytes = sample_record();
  EXPECT_EQ(bytes.size(), 24 + 4 * 3 + 4 * 4 + 14u);
  auto record = decode_item_record(bytes, kShape);
  ASSERT_TRUE(record.is_ok()) << record.status().to_string();
  EXPECT_EQ(record->sid, (std::vector<std::int32_t>{1, 255, 7}));
  EXPECT_EQ(record->natural_sid, (std::vector<std::int32_t>{1, 255, 6}));
  EXPECT_EQ(record->collision_suffix, 9);
  EXPECT_EQ(record->sequence, 123456789012345ULL);
  EXPECT_EQ(record->vector, (std::vector<float>{0.5f, -1.25f, 3.0f, 1e-30f}));
  EXPECT_EQ(record->payload, R"({"word":"cat"})");
}

TEST(ItemRecord, EmptyPayloadAndTwoByteCodes) {
  const std::vector<std::int32_t> sid = {65535, 0};
  const std::vector<float> vector = {1.0f};
  auto record =
      decode_item_record(encode_item_record(sid, sid, 65535, 0, vector, ""), {2, 65536, 1});
  ASSERT_TRUE(record.is_ok()) << record.status().to_string();
  EXPECT_EQ(record->sid, sid);
  EXPECT_EQ(record->collision_suffix, 65535);
  EXPECT_TRUE(record->payload.empty());
}

TEST(ItemRecord, EveryTruncationIsCorruption) {
  const std::string bytes = sample_record();
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    auto record = decode_item_record(bytes.substr(0, size), kShape);
    EXPECT_EQ(record.status().code(), Status::Code::kCorruption) << "size " << size;
  }
}

TEST(ItemRecord, EveryFlippedBitIsCorruption) {
  const std::string bytes = sample_record();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      auto record = decode_item_record(flipped, kShape);
      EXPECT_EQ(record.status().code(), Status::Code::kCorruption)
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(ItemRecord, RejectsAnotherShapeVersionOrTrailingBytes) {
  const std::string bytes = sample_record();
  auto other_dim = decode_item_record(bytes, {3, 256, 5});
  EXPECT_EQ(other_dim.status().code(), Status::Code::kCorruption);
  EXPECT_NE(other_dim.status().message().find("dimension 4"), std::string::npos);
  EXPECT_EQ(decode_item_record(bytes, {2, 256, 4}).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(decode_item_record(bytes + "x", kShape).status().code(), Status::Code::kCorruption);
  std::string version = bytes;
  version[0] = 3;
  auto bad_version = decode_item_record(version, kShape);
  EXPECT_NE(bad_version.status().message().find("version 3"), std::string::npos);
}

TEST(ItemRecord, ReadsVersionOneWithTheModelSidEqualToTheStoredOne) {
  // A version-1 record: the same header, one copy of the codes, then the vector and payload.
  std::string bytes = sample_record();
  bytes.erase(20 + 2 * 3, 2 * 3);  // drop the model SID
  bytes[0] = 1;
  bytes.resize(bytes.size() - 4);
  const std::uint32_t crc = crc32c(0, bytes.data(), bytes.size());
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(crc >> (8 * i)));
  auto record = decode_item_record(bytes, kShape);
  ASSERT_TRUE(record.is_ok()) << record.status().to_string();
  EXPECT_EQ(record->sid, (std::vector<std::int32_t>{1, 255, 7}));
  EXPECT_EQ(record->natural_sid, record->sid);
  EXPECT_EQ(record->payload, R"({"word":"cat"})");
}

TEST(ItemRecord, HugeDeclaredSizesDoNotAllocate) {
  // A header claiming a 4 GiB payload in a short value is rejected by the size check.
  std::string bytes = sample_record();
  for (int i = 16; i < 20; ++i) bytes[i] = '\xff';
  auto record = decode_item_record(bytes, kShape);
  EXPECT_EQ(record.status().code(), Status::Code::kCorruption);
  EXPECT_NE(record.status().message().find("header describes"), std::string::npos);
}

TEST(ItemRecord, CodeAboveCodebookSizeIsCorruption) {
  auto record = decode_item_record(sample_record(), {3, 128, 4});  // code 255 >= 128
  EXPECT_EQ(record.status().code(), Status::Code::kCorruption);
  EXPECT_NE(record.status().message().find("code 255 at level 1"), std::string::npos);
}

TEST(ItemRecord, NonFiniteValueIsCorruption) {
  const std::vector<std::int32_t> sid = {1, 2, 3};
  const std::vector<float> vector = {0, std::numeric_limits<float>::quiet_NaN(), 0, 0};
  auto record = decode_item_record(encode_item_record(sid, sid, 0, 0, vector, ""), kShape);
  EXPECT_EQ(record.status().code(), Status::Code::kCorruption);
}

TEST(MetaValue, RoundTripsAndDetectsDamage) {
  const std::string bytes = encode_meta_value(R"({"items":3})");
  auto body = decode_meta_value(bytes);
  ASSERT_TRUE(body.is_ok());
  EXPECT_EQ(*body, R"({"items":3})");
  EXPECT_TRUE(decode_meta_value(encode_meta_value("")).is_ok());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    EXPECT_EQ(decode_meta_value(flipped).status().code(), Status::Code::kCorruption) << i;
  }
  EXPECT_EQ(decode_meta_value("abc").status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace semid::storage
