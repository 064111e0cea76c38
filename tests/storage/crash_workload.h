// The crash test's workload, shared by the parent (tests/storage/crash_test.cpp) and the child
// that it kills (tests/storage/crash_child.cpp): which vector and payload an item gets in a batch,
// and the report protocol.
//
// Report file, one line per event, appended by the child with write(2):
//   "U <batch> <id> <id> ...\n"  about to upsert these ids (vectors and payloads from the batch)
//   "R <batch> <id> <id> ...\n"  about to remove these ids
//   "A <batch>\n"                the call returned OK: the batch is acknowledged
//   "E <batch> <message>\n"      the call failed (the test fails)
// An intent line without its "A" line is a batch in flight when the child died: after the crash
// it must be either wholly applied or not at all.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace semid::testing::crash {

inline constexpr int kDim = 8;
// Ids are drawn from [0, kIdUniverse): upserts often replace (move) existing items.
inline constexpr std::uint64_t kIdUniverse = 240;

inline std::vector<float> item_vector(std::uint64_t id, std::uint64_t batch) {
  std::mt19937_64 rng(id * 1000003ULL + batch * 7919ULL + 17);
  std::normal_distribution<float> normal;
  std::vector<float> v(kDim);
  for (auto& x : v) x = normal(rng);
  return v;
}

// Every fourth item has no payload.
inline std::string item_payload(std::uint64_t id, std::uint64_t batch) {
  if ((id + batch) % 4 == 0) return "";
  return "{\"id\":" + std::to_string(id) + ",\"batch\":" + std::to_string(batch) + "}";
}

}  // namespace semid::testing::crash
