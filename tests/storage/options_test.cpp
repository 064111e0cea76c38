#include "storage/options.h"

#include <gtest/gtest.h>

namespace semid::storage {
namespace {

TEST(StoreOptions, DefaultsAreValid) {
  const StoreOptions options;
  EXPECT_TRUE(options.validate().is_ok());
  EXPECT_FALSE(options.sync);
  EXPECT_EQ(options.max_batch_items, 100000u);
  EXPECT_EQ(options.max_payload_bytes, 1u << 20);
  EXPECT_EQ(options.reconstruction_cache_bytes, std::size_t{256} << 20);
}

TEST(StoreOptions, EachOutOfRangeFieldIsNamed) {
  const auto message_of = [](auto mutate) {
    StoreOptions options;
    mutate(options);
    const Status status = options.validate();
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
    return status.message();
  };
  EXPECT_NE(message_of([](StoreOptions& o) { o.max_batch_items = 0; }).find("max_batch_items = 0"),
            std::string::npos);
  EXPECT_NE(message_of([](StoreOptions& o) {
              o.max_payload_bytes = std::size_t{1} << 40;
            }).find("max_payload_bytes"),
            std::string::npos);
  EXPECT_NE(message_of([](StoreOptions& o) { o.encode_chunk = 0; }).find("encode_chunk"),
            std::string::npos);
  EXPECT_NE(
      message_of([](StoreOptions& o) { o.write_buffer_bytes = 1000; }).find("write_buffer_bytes"),
      std::string::npos);
  EXPECT_NE(message_of([](StoreOptions& o) {
              o.reconstruction_cache_bytes = std::size_t{1} << 41;
            }).find("reconstruction_cache_bytes"),
            std::string::npos);
}

}  // namespace
}  // namespace semid::storage
