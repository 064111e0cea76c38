#include "index/code_counts.h"

namespace semid {

CodeCounts::CodeCounts(int levels, int codebook_size)
    : levels_(levels),
      codebook_size_(codebook_size),
      per_code_(static_cast<std::size_t>(levels) * static_cast<std::size_t>(codebook_size), 0) {}

void CodeCounts::regroup(std::uint64_t from, std::uint64_t to) {
  if (from > 0) {
    const auto it = groups_by_size_.find(from);
    if (--it->second == 0) groups_by_size_.erase(it);
  }
  if (to > 0) ++groups_by_size_[to];
}

void CodeCounts::add(std::span<const std::int32_t> sid, std::uint64_t group_before) {
  for (std::size_t l = 0; l < sid.size(); ++l) {
    ++per_code_[l * static_cast<std::size_t>(codebook_size_) + static_cast<std::size_t>(sid[l])];
  }
  ++items_;
  regroup(group_before, group_before + 1);
}

void CodeCounts::remove(std::span<const std::int32_t> sid, std::uint64_t group_before) {
  for (std::size_t l = 0; l < sid.size(); ++l) {
    --per_code_[l * static_cast<std::size_t>(codebook_size_) + static_cast<std::size_t>(sid[l])];
  }
  --items_;
  regroup(group_before, group_before - 1);
}

std::uint64_t CodeCounts::collision_groups() const {
  std::uint64_t groups = 0;
  for (const auto& [size, count] : groups_by_size_) groups += size > 1 ? count : 0;
  return groups;
}

CodeHealth CodeCounts::health() const {
  CodeHealth h;
  h.items = items_;
  const auto K = static_cast<std::size_t>(codebook_size_);
  for (std::size_t l = 0; l < static_cast<std::size_t>(levels_); ++l) {
    h.levels.push_back(level_usage({per_code_.data() + l * K, K}, items_));
  }
  std::uint64_t colliding = 0;
  for (const auto& [size, groups] : groups_by_size_) {
    h.unique_sids += groups;
    if (size > 1) colliding += size * groups;
  }
  h.max_collision_group = groups_by_size_.empty() ? 0 : groups_by_size_.rbegin()->first;
  h.collision_rate = items_ > 0 ? static_cast<double>(colliding) / static_cast<double>(items_) : 0;
  return h;
}

}  // namespace semid
