// Where the items of a batch go: each one's stored SID and collision suffix, under the collection's
// collision policy (storage/options.h; the rules are in collection.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "index/status.h"
#include "storage/impl/state.h"
#include "storage/options.h"

namespace semid::storage::impl {

struct Placement {
  std::string sid;  // packed: the SID to store
  std::uint16_t suffix = 0;
  bool relocated = false;         // sid is not the model's own SID of the vector
  const Location* old = nullptr;  // its current place, when the id exists
  bool keeps_place = false;       // same SID as before: keeps its suffix
};

// Places n = ids.size() items of a batch against `state` (which the batch has not changed yet).
// codes: the model's SIDs (n * L); on return, the SIDs to store. vectors: the items' vectors
// (n * dim): kRelocate settles the batch's collisions jointly (SidRelocator::place_batch, whoever
// loses least moves); suffixes go in batch order. Every item of the batch that already
// exists and changes SID frees its old place first. InvalidArgument (naming the id and SID) when a
// SID would need more than 65,536 suffixes.
Result<std::vector<Placement>> place_batch(const State& state, CollisionPolicy policy,
                                           std::span<const std::uint64_t> ids,
                                           std::span<std::int32_t> codes, const float* vectors);

}  // namespace semid::storage::impl
