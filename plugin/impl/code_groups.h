// CodeGroups: IndexRQVAE's items laid out for the lookup-table scan. Items are grouped by their
// level-1 code; inside a group they sit in runs of equal level-2 code, each run contiguous
// (positions, norm terms, and the codes of levels 2..L). The scan bounds a group by its level-1
// table entry and a run by its level-1 and level-2 entries, so it skips whole runs without
// reading their items (on GloVe 3x256, 2% of the items a level-1 bound keeps pass the run's).
// Filing or removing an item moves the entries after it in its group: O(group size) bytes, no
// per-item allocation; a bulk build sorts once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace semid::impl {

class CodeGroups {
 public:
  // Items [previous run's end, end) of a group share level-2 code `code`; min_norm is a lower
  // bound of their norm terms (exact after a build, kept as a bound across removals).
  struct Run {
    std::uint32_t code;
    std::uint32_t end;
    float min_norm;
  };
  struct Group {
    std::vector<std::uint32_t> positions;
    std::vector<float> norms;
    std::vector<std::uint8_t> tails;  // tail_bytes() per item: the codes of levels 2..L
    std::vector<Run> runs;            // by code; empty for one-level SIDs
    float min_norm = 0;               // a lower bound of every norm term in the group
  };

  // Empties the layout for SIDs of `levels` codes of `bytes_per_level` bytes each.
  void reset(std::size_t codebook_size, std::size_t levels, std::size_t bytes_per_level);
  // Files the item at `position` (== size(), positions are appended) with packed SID `code`
  // (levels * bytes_per_level bytes) and norm term `norm`.
  void insert(std::uint32_t position, const std::uint8_t* code, float norm);
  // Files items [0, n) from scratch: packed SIDs at codes + i * sid_bytes, norms[i].
  void build(std::size_t n, const std::uint8_t* codes, const float* norms);
  // Removes the item at `position` (packed SID `code`); the item at `last` (== size() - 1, SID
  // `last_code`) takes its position, as IndexRQVAE's swap-with-last removal does.
  void remove(std::uint32_t position, const std::uint8_t* code, std::uint32_t last,
              const std::uint8_t* last_code);

  std::size_t size() const { return slots_.size(); }
  std::size_t tail_bytes() const { return tail_bytes_; }
  std::size_t bytes_per_level() const { return bytes_per_level_; }
  const Group& group(std::size_t code) const { return groups_[code]; }
  std::size_t group_count() const { return groups_.size(); }
  // The code of one level from its packed bytes.
  std::uint32_t level_code(const std::uint8_t* bytes) const {
    return bytes_per_level_ == 1 ? bytes[0] : (std::uint32_t{bytes[0]} << 8 | bytes[1]);
  }

 private:
  // The run of `code` in `group` (inserting an empty one where there is none).
  std::size_t run_for(Group& group, std::uint32_t code);
  // Rewrites slots_ of the group's entries from `from` on (after entries moved).
  void renumber(const Group& group, std::size_t from);

  std::vector<Group> groups_;
  std::vector<std::uint32_t> slots_;  // per position: its entry in its group
  std::size_t levels_ = 0;
  std::size_t bytes_per_level_ = 1;
  std::size_t tail_bytes_ = 0;
};

}  // namespace semid::impl
