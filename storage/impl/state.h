// The in-memory half of a collection: its model, the index over the stored SIDs (whose trie is the
// collection's one trie), and each item's place. Readers see one State at a time (collection.cpp
// publishes it with a RocksDB snapshot); writers change it only under the collection's exclusive
// lock.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/code_counts.h"
#include "index/quantizer.h"
#include "index/sid.h"
#include "index/status.h"
#include "index/trie.h"
#include "plugin/IndexRQVAE.h"
#include "storage/record.h"

namespace semid::storage::impl {

// An item's place: its packed SID (SidKeyCodec::pack), collision suffix, and whether the
// `relocate` policy moved it off the model's own SID.
struct Location {
  std::string sid;
  std::uint16_t suffix = 0;
  bool relocated = false;
};

struct State {
  std::shared_ptr<const Quantizer> model;
  SidKeyCodec codec;
  // Labelled by item id; its trie (keyed by index position, see id_at) is the collection's trie.
  std::unique_ptr<IndexRQVAE> index;
  std::unordered_map<std::uint64_t, Location> locations;
  const rocksdb::Snapshot* snapshot = nullptr;
  // Running counters over the stored SIDs, so stats cost O(levels * K), not O(items).
  CodeCounts counts;
  std::map<std::uint16_t, std::uint64_t> suffixes;  // items per collision suffix in use
  std::uint64_t relocated = 0;                      // items `relocate` moved off their SID

  // The stored SIDs, one entry per item; its item ids are index positions (id_at gives the item).
  const SidTrie& trie() const { return index->trie(); }
  std::uint64_t id_at(std::uint64_t position) const {
    return static_cast<std::uint64_t>(index->ids()[position]);
  }

  // One batch's change, O(levels) per item: the items `leaving` (each filed now) go, then item
  // ids[i] is filed at places[i] (none of them filed once the leaving ones are gone) — in the
  // index and its trie, the locations and the counters. Internal for a request that breaks those
  // rules or an index that refuses; the state is then unusable (the caller marks it broken).
  Status refile(std::span<const std::uint64_t> leaving, std::span<const std::uint64_t> ids,
                std::vector<Location> places);

  std::vector<std::int32_t> unpack(const std::string& sid) const {
    std::vector<std::int32_t> codes(static_cast<std::size_t>(codec.levels()));
    codec.unpack(reinterpret_cast<const std::uint8_t*>(sid.data()), codes.data());
    return codes;
  }
  std::string pack(const std::int32_t* codes) const {
    std::string sid(codec.sid_bytes(), '\0');
    codec.pack(codes, reinterpret_cast<std::uint8_t*>(sid.data()));
    return sid;
  }
  // The sids key of an item: packed SID | suffix (2 bytes, big-endian) | item key.
  static std::string key(const std::string& sid, std::uint16_t suffix, std::uint64_t id) {
    std::string key = sid;
    key.push_back(static_cast<char>(suffix >> 8));
    key.push_back(static_cast<char>(suffix & 0xff));
    key += encode_item_key(id);
    return key;
  }
  RecordShape shape() const { return {codec.levels(), codec.codebook_size(), model->dim()}; }
};

// An empty state for `model` (InvalidArgument when the model cannot back an index).
// reconstruction_cache_bytes: StoreOptions::reconstruction_cache_bytes, for the index.
Result<std::unique_ptr<State>> make_state(std::shared_ptr<const Quantizer> model,
                                          std::size_t reconstruction_cache_bytes);

// One item as a rebuild (open, reencode) sees it.
struct Entry {
  std::uint64_t sequence = 0;
  std::uint64_t id = 0;
  std::string sid;  // packed
  std::uint16_t suffix = 0;
  bool relocated = false;
};

// Loads entries (sorted by sequence) into an empty state: the index in sequence order, locations
// and counters (Corruption for an item stored twice).
Status fill_state(State& state, const std::vector<Entry>& entries);

}  // namespace semid::storage::impl
