#include "storage/options.h"

#include <string>

namespace semid::storage {
namespace {

Status check_range(const char* field, std::size_t value, std::size_t low, std::size_t high) {
  if (value >= low && value <= high) return Status::ok();
  return Status::invalid_argument("StoreOptions." + std::string(field) + " = " +
                                  std::to_string(value) + ": must be in [" + std::to_string(low) +
                                  ", " + std::to_string(high) + "]");
}

}  // namespace

Status StoreOptions::validate() const {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  SEMID_RETURN_IF_ERROR(check_range("max_batch_items", max_batch_items, 1, 10000000));
  SEMID_RETURN_IF_ERROR(check_range("max_payload_bytes", max_payload_bytes, 0, 64 * kMiB));
  SEMID_RETURN_IF_ERROR(check_range("encode_chunk", encode_chunk, 1, kMiB));
  SEMID_RETURN_IF_ERROR(check_range("write_buffer_bytes", write_buffer_bytes, kMiB, 4096 * kMiB));
  SEMID_RETURN_IF_ERROR(check_range("block_cache_bytes", block_cache_bytes, 0, kMiB * kMiB));
  SEMID_RETURN_IF_ERROR(
      check_range("reconstruction_cache_bytes", reconstruction_cache_bytes, 0, kMiB * kMiB));
  return Status::ok();
}

const char* collision_policy_name(CollisionPolicy policy) {
  return policy == CollisionPolicy::kRelocate ? "relocate" : "suffix";
}

Result<CollisionPolicy> parse_collision_policy(std::string_view name) {
  if (name == "suffix") return CollisionPolicy::kSuffix;
  if (name == "relocate") return CollisionPolicy::kRelocate;
  return Status::invalid_argument("collision policy '" + std::string(name) +
                                  "': expected 'suffix' or 'relocate'");
}

}  // namespace semid::storage
