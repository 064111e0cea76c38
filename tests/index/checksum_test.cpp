#include "index/checksum.h"

#include <gtest/gtest.h>

#include <string>

namespace semid {
namespace {

TEST(Crc32c, MatchesTheStandardCheckValues) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(0, digits.data(), digits.size()), 0xE3069283u);
  EXPECT_EQ(crc32c(0, nullptr, 0), 0u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(Crc32c, StreamsAcrossAnySplit) {
  std::string text;
  for (int i = 0; i < 100; ++i) text.push_back(static_cast<char>(i * 37));
  const std::uint32_t whole = crc32c(0, text.data(), text.size());
  for (std::size_t split = 0; split <= text.size(); ++split) {
    EXPECT_EQ(crc32c(crc32c(0, text.data(), split), text.data() + split, text.size() - split),
              whole);
  }
}

}  // namespace
}  // namespace semid
