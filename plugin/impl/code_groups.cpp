#include "plugin/impl/code_groups.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace semid::impl {

void CodeGroups::reset(std::size_t codebook_size, std::size_t levels, std::size_t bytes_per_level) {
  groups_.assign(codebook_size, {});
  slots_.clear();
  levels_ = levels;
  bytes_per_level_ = bytes_per_level;
  tail_bytes_ = levels > 0 ? (levels - 1) * bytes_per_level : 0;
}

std::size_t CodeGroups::run_for(Group& group, std::uint32_t code) {
  const auto at = std::lower_bound(group.runs.begin(), group.runs.end(), code,
                                   [](const Run& run, std::uint32_t c) { return run.code < c; });
  const auto r = static_cast<std::size_t>(at - group.runs.begin());
  if (at == group.runs.end() || at->code != code) {
    const std::uint32_t start = r == 0 ? 0 : group.runs[r - 1].end;
    group.runs.insert(at, Run{code, start, std::numeric_limits<float>::infinity()});
  }
  return r;
}

void CodeGroups::renumber(const Group& group, std::size_t from) {
  for (std::size_t j = from; j < group.positions.size(); ++j) {
    slots_[group.positions[j]] = static_cast<std::uint32_t>(j);
  }
}

void CodeGroups::insert(std::uint32_t position, const std::uint8_t* code, float norm) {
  Group& group = groups_[level_code(code)];
  std::size_t slot = group.positions.size();
  if (levels_ >= 2) {
    const std::size_t r = run_for(group, level_code(code + bytes_per_level_));
    slot = group.runs[r].end;
    group.runs[r].min_norm = std::min(group.runs[r].min_norm, norm);
    for (std::size_t i = r; i < group.runs.size(); ++i) ++group.runs[i].end;
  }
  group.min_norm = group.positions.empty() ? norm : std::min(group.min_norm, norm);
  const auto at = static_cast<std::ptrdiff_t>(slot);
  group.positions.insert(group.positions.begin() + at, position);
  group.norms.insert(group.norms.begin() + at, norm);
  const std::uint8_t* tail = code + bytes_per_level_;
  group.tails.insert(group.tails.begin() + at * static_cast<std::ptrdiff_t>(tail_bytes_), tail,
                     tail + tail_bytes_);
  if (slots_.size() <= position) slots_.resize(std::size_t{position} + 1);
  renumber(group, slot);
}

void CodeGroups::build(std::size_t n, const std::uint8_t* codes, const float* norms) {
  reset(groups_.size(), levels_, bytes_per_level_);
  const std::size_t sid_bytes = levels_ * bytes_per_level_;
  // (level-1 code, level-2 code) per item, then items in that order (stable: by position).
  std::vector<std::uint64_t> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* code = codes + i * sid_bytes;
    const std::uint64_t second = levels_ >= 2 ? level_code(code + bytes_per_level_) : 0;
    keys[i] = std::uint64_t{level_code(code)} << 16 | second;
  }
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return keys[a] < keys[b]; });
  slots_.assign(n, 0);
  for (const std::uint32_t position : order) {
    const std::uint8_t* code = codes + std::size_t{position} * sid_bytes;
    Group& group = groups_[level_code(code)];
    const float norm = norms[position];
    group.min_norm = group.positions.empty() ? norm : std::min(group.min_norm, norm);
    if (levels_ >= 2) {
      const std::uint32_t second = level_code(code + bytes_per_level_);
      if (group.runs.empty() || group.runs.back().code != second) {
        group.runs.push_back(Run{second, static_cast<std::uint32_t>(group.positions.size()), norm});
      }
      Run& run = group.runs.back();
      ++run.end;
      run.min_norm = std::min(run.min_norm, norm);
    }
    slots_[position] = static_cast<std::uint32_t>(group.positions.size());
    group.positions.push_back(position);
    group.norms.push_back(norm);
    group.tails.insert(group.tails.end(), code + bytes_per_level_,
                       code + bytes_per_level_ + tail_bytes_);
  }
}

void CodeGroups::remove(std::uint32_t position, const std::uint8_t* code, std::uint32_t last,
                        const std::uint8_t* last_code) {
  Group& group = groups_[level_code(code)];
  const std::size_t slot = slots_[position];
  const auto at = static_cast<std::ptrdiff_t>(slot);
  group.positions.erase(group.positions.begin() + at);
  group.norms.erase(group.norms.begin() + at);
  const auto tail_at = group.tails.begin() + at * static_cast<std::ptrdiff_t>(tail_bytes_);
  group.tails.erase(tail_at, tail_at + static_cast<std::ptrdiff_t>(tail_bytes_));
  if (!group.runs.empty()) {
    // The run holding the slot: the first whose end lies past it.
    const auto run =
        std::upper_bound(group.runs.begin(), group.runs.end(), static_cast<std::uint32_t>(slot),
                         [](std::uint32_t s, const Run& r) { return s < r.end; });
    for (auto r = run; r != group.runs.end(); ++r) --r->end;
    const std::uint32_t start = run == group.runs.begin() ? 0 : std::prev(run)->end;
    if (run->end == start) group.runs.erase(run);
  }
  renumber(group, slot);
  // The group's and runs' min_norm stay: a lower bound is still a bound.
  if (position != last) {
    Group& moved = groups_[level_code(last_code)];
    moved.positions[slots_[last]] = position;
    slots_[position] = slots_[last];
  }
  slots_.pop_back();
}

}  // namespace semid::impl
