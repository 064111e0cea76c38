#include "index/status.h"

#include <gtest/gtest.h>

#include <string>

namespace semid {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return Status::invalid_argument("x must be > 0, got " + std::to_string(x));
  return x;
}

Result<int> doubled(int x) {
  SEMID_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return v * 2;
}

Status check(int x) {
  SEMID_RETURN_IF_ERROR(parse_positive(x).status());
  return Status::ok();
}

TEST(Status, PrintableEscapesInvalidUtf8AndControlBytes) {
  // Issue 13.6: `semid ingest` printed a corrupted model header's raw bytes to the terminal.
  EXPECT_EQ(printable("plain text, tab\tkept"), "plain text, tab\tkept");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // valid UTF-8 stays
  EXPECT_EQ(printable("last read: '\"\xff\xfe'"), "last read: '\"\\xff\\xfe'");
  EXPECT_EQ(printable(std::string("a\0b\x1b[2J\n", 8)), "a\\x00b\\x1b[2J\\x0a");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");           // cut short
}

TEST(Status, OkAndErrorCarryCodeAndMessage) {
  EXPECT_TRUE(Status::ok().is_ok());
  EXPECT_EQ(Status::ok().to_string(), "OK");
  Status s = Status::corruption("bad header");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_EQ(s.to_string(), "Corruption: bad header");
  EXPECT_EQ(s.with_context("file.bin").message(), "file.bin: bad header");
  EXPECT_TRUE(Status::ok().with_context("x").is_ok());
}

TEST(Result, PropagatesValuesAndErrors) {
  auto good = doubled(21);
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 42);
  auto bad = doubled(-3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "x must be > 0, got -3");
  EXPECT_TRUE(check(1).is_ok());
  EXPECT_EQ(check(0).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace semid
