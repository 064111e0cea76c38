#include "http/auth.h"

#include <gtest/gtest.h>

#include "tests/http/api_test_util.h"

namespace semid::http {
namespace {

using Grant = KeyChecker::Grant;
using testing::make_request;

Grant grant_for(const KeyChecker& keys, const testing::Headers& headers) {
  return keys.grant(make_request(Verb::get, "/v1/collections", "", "", headers));
}

TEST(KeyChecker, NoKeysConfiguredGrantsEverything) {
  const KeyChecker keys("", "");
  EXPECT_FALSE(keys.enabled());
  EXPECT_EQ(grant_for(keys, {}), Grant::kWrite);
  EXPECT_EQ(grant_for(keys, {{"api-key", "anything"}}), Grant::kWrite);
}

TEST(KeyChecker, KeysFromEitherHeader) {
  const KeyChecker keys("writer", "reader");
  EXPECT_EQ(grant_for(keys, {}), Grant::kMissing);
  EXPECT_EQ(grant_for(keys, {{"api-key", "writer"}}), Grant::kWrite);
  EXPECT_EQ(grant_for(keys, {{"Api-Key", "reader"}}), Grant::kRead);
  EXPECT_EQ(grant_for(keys, {{"Authorization", "Bearer writer"}}), Grant::kWrite);
  EXPECT_EQ(grant_for(keys, {{"Authorization", "bearer reader"}}), Grant::kRead);
  EXPECT_EQ(grant_for(keys, {{"Authorization", "Basic writer"}}), Grant::kMissing);
  EXPECT_EQ(grant_for(keys, {{"Authorization", "Bearer "}}), Grant::kMissing);
  for (const char* wrong : {"write", "Writer", "writerwriter", "r"}) {
    EXPECT_EQ(grant_for(keys, {{"api-key", wrong}}), Grant::kInvalid) << wrong;
  }
}

TEST(KeyChecker, ReadOnlyKeyAloneMakesAReadOnlyServer) {
  const KeyChecker keys("", "reader");
  EXPECT_TRUE(keys.enabled());
  EXPECT_EQ(grant_for(keys, {{"api-key", "reader"}}), Grant::kRead);
  EXPECT_EQ(grant_for(keys, {{"api-key", ""}}), Grant::kMissing);
  EXPECT_EQ(grant_for(keys, {{"api-key", "x"}}), Grant::kInvalid);
}

}  // namespace
}  // namespace semid::http
