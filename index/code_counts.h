// CodeCounts: the health of a changing set of SIDs (code usage per level, collision groups), kept
// up to date in O(levels) per added or removed item, so that reading it costs O(levels * K)
// whatever the number of items. What storage/ keeps for `stats` and the server's `/metrics`;
// code_health (metrics.h) computes the same figures from scratch for a fixed set of codes.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "index/metrics.h"

namespace semid {

class CodeCounts {
 public:
  // levels >= 1 and codebook_size >= 2 (the caller's codec has checked them).
  CodeCounts(int levels, int codebook_size);

  // One more item on `sid` (levels codes in [0, codebook_size)), which `group_before` items held
  // already (the trie's count of that full SID before the insert).
  void add(std::span<const std::int32_t> sid, std::uint64_t group_before);
  // One item less on `sid`, which held `group_before` >= 1 items before the erase.
  void remove(std::span<const std::int32_t> sid, std::uint64_t group_before);

  std::uint64_t items() const { return items_; }
  // SIDs that hold two items or more.
  std::uint64_t collision_groups() const;
  // The figures code_health gives for the same SIDs.
  CodeHealth health() const;

 private:
  void regroup(std::uint64_t from, std::uint64_t to);

  int levels_;
  int codebook_size_;
  std::vector<std::uint64_t> per_code_;  // items on code c at level l: per_code_[l * K + c]
  std::uint64_t items_ = 0;
  std::map<std::uint64_t, std::uint64_t> groups_by_size_;  // SIDs holding s items, per s >= 1
};

}  // namespace semid
