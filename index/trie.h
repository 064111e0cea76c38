// SidTrie: the stored semantic IDs as an in-memory prefix tree with per-node item counts.
//
// Every item is a full SID (exactly `levels` codes in [0, codebook_size)) plus a uint64 item id;
// items on the same SID (a collision group) share one leaf. The trie answers, for any prefix of
// 0..levels codes: how many items lie under it (count), which next codes are populated and with how
// many items each (children), and which items lie under it, page by page (items). It is what the
// prefix search modes of IndexRQVAE walk, and what storage/ and http/ serve as "next tokens".
//
// Order: items are listed depth-first by code at every level, then by item id — the byte order of
// SidKeyCodec keys (sid.h), so a listing matches a RocksDB prefix scan over the same items.
//
// Cost: insert and erase walk one path, O(levels * log(children per node)) plus the shift of one
// sorted vector. count and children are O(levels * log K); items is O(levels * log K + page).
// Memory: each inner node is a count and a sorted vector of (code, child) pairs of 8 bytes; each
// leaf is a sorted vector of item ids — no per-node map.
//
// Errors (Status, never an empty answer): a prefix longer than `levels` or a code outside
// [0, codebook_size) is InvalidArgument; inserting an (SID, id) pair already present is
// AlreadyExists; erasing an absent pair is NotFound; a malformed cursor is InvalidArgument.
//
// Thread safety: const methods may run concurrently with each other. insert, erase and clear need
// exclusive access: one writer at a time and no reader during a write; the caller synchronises.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "index/sid.h"
#include "index/status.h"

namespace semid {

class SidTrie {
 public:
  // A populated next code under a prefix and the number of items under prefix + code.
  struct Child {
    std::int32_t code = 0;
    std::uint64_t count = 0;
    bool operator==(const Child&) const = default;
  };

  // One page of items(). Item r has SID codes[r * levels .. (r + 1) * levels) and id item_ids[r].
  struct ItemPage {
    std::vector<std::int32_t> codes;
    std::vector<std::uint64_t> item_ids;
    // Pass it back to items() for the next page; empty when this page ends the listing.
    std::string next_cursor;
  };

  // InvalidArgument for levels outside [1, 16] or codebook_size outside [2, 65536].
  static Result<SidTrie> create(int levels, int codebook_size);

  int levels() const { return codec_.levels(); }
  int codebook_size() const { return codec_.codebook_size(); }
  // Items in the trie.
  std::uint64_t size() const { return inner_[0].count; }
  // Approximate heap bytes held by the nodes (capacity, not size).
  std::size_t memory_bytes() const;

  // Adds item `item_id` on `sid` (exactly levels() codes).
  Status insert(std::span<const std::int32_t> sid, std::uint64_t item_id);
  // Removes it; nodes left without items are freed.
  Status erase(std::span<const std::int32_t> sid, std::uint64_t item_id);
  // Removes every item.
  void clear();

  // Items under `prefix` (0..levels codes; the empty prefix counts every item).
  Result<std::uint64_t> count(std::span<const std::int32_t> prefix) const;
  // The populated next codes under `prefix`, ascending by code. A full SID (levels codes) has no
  // children: the answer is empty.
  Result<std::vector<Child>> children(std::span<const std::int32_t> prefix) const;
  // Sets mask[c] = true for every populated next code c under `prefix` and leaves the other
  // entries as they are: children() without the counts, what a decoding mask needs (mask holds
  // codebook_size entries). A full SID, or a prefix no item lies under, marks nothing.
  Status mark_next_codes(std::span<const std::int32_t> prefix, bool* mask) const;
  // Up to `limit` (>= 1) items under `prefix` in trie order, starting after `cursor` (empty: from
  // the first item). The cursor is opaque: the SidKeyCodec key of the last item returned; it stays
  // valid across inserts and erases (the listing resumes after that position).
  Result<ItemPage> items(std::span<const std::int32_t> prefix, std::string_view cursor,
                         std::size_t limit) const;
  // Appends the ids of every item under `prefix`, in trie order, to `out`.
  Status append_items(std::span<const std::int32_t> prefix, std::vector<std::uint64_t>* out) const;
  // The largest j <= sid.size() such that some item lies under sid's first j codes (0 when the
  // trie is empty). `sid` holds 0..levels codes.
  Result<int> longest_shared_prefix(std::span<const std::int32_t> sid) const;

 private:
  struct Edge {
    std::int32_t code = 0;
    std::uint32_t node = 0;  // index into inner_ (depth < levels) or leaves_ (depth == levels)
    // Items under this edge, kept beside the code so that children() reads one contiguous array
    // instead of a node scattered in memory per child (the cache misses dominated trie/next).
    std::uint64_t count = 0;
  };
  struct Inner {
    std::uint64_t count = 0;
    std::vector<Edge> children;  // ascending by code
  };
  struct Leaf {
    std::vector<std::uint64_t> items;  // ascending
  };
  static constexpr std::uint32_t kNone = UINT32_MAX;

  explicit SidTrie(SidKeyCodec codec);
  // InvalidArgument unless `sid` has exactly levels() codes, each in [0, codebook_size()).
  Status validate_full_sid(std::span<const std::int32_t> sid, const char* operation) const;
  // The node reached by `prefix` (an inner index for prefix.size() < levels, a leaf index
  // otherwise), or kNone when the prefix is not populated. The prefix must be valid.
  std::uint32_t find(std::span<const std::int32_t> prefix) const;
  std::uint64_t count_of(std::uint32_t node, std::size_t depth) const;
  std::uint32_t allocate_inner();
  std::uint32_t allocate_leaf();
  // Depth-first visit of the items under `node` at `depth`, skipping items at or before the
  // position `after` (a full SID + id) when `bounded`. `path` holds the codes of node's prefix and
  // receives the codes below it. fn(path, id) returns false to stop; visit then returns false.
  template <class Fn>
  bool visit(std::uint32_t node, std::size_t depth, std::vector<std::int32_t>& path, bool bounded,
             const SidKey& after, Fn& fn) const;

  SidKeyCodec codec_;
  std::vector<Inner> inner_;  // inner_[0] is the root
  std::vector<Leaf> leaves_;
  std::vector<std::uint32_t> free_inner_;
  std::vector<std::uint32_t> free_leaves_;
};

}  // namespace semid
