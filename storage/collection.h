// storage::Collection: a durable set of items with unique semantic IDs, on RocksDB.
//
// A collection is one directory holding one RocksDB database with three column families
// (formats in record.h):
//   items  item id -> record: SID, collision suffix, the original vector, an optional JSON payload
//   sids   SID | suffix | item id -> empty; key order is trie order, so the keys under a SID prefix
//          are one contiguous range (a prefix scan with an upper bound lists exactly them)
//   meta   schema version, the model's hash and config, counters, and the model file itself
//          (checksummed): a collection directory is self-contained.
// In memory it keeps an IndexRQVAE (plugin/) over the stored SIDs, labelled by item id; the index's
// SidTrie (index/trie.h) is the collection's one trie, for search, next tokens, counts and the
// collision groups (its entries are index positions, which the index maps back to item ids).
//
// Semantic IDs. Each item's SID is L codes in [0, K) plus a collision suffix, unique together. The
// collision policy (chosen at create, stored with the collection; storage/options.h) decides how:
//  - suffix (default, TIGER): the SID is the model's encoding of the vector; within the group of
//    items on one SID, a newly placed item takes the smallest suffix no other member holds.
//  - relocate: an item whose SID is taken moves to the nearest free SID of L codes
//    (index/relocate.h: a free last code first, then under the nearest sibling prefixes above), so
//    SIDs stay L codes and suffixes stay 0 while the neighbourhood has room; only where it has none
//    does the item take a suffix on its own SID. The record keeps the model's own SID too
//    (`natural_sid`), and stats() counts the relocated items.
// Either way, items already placed never move when others arrive. An upsert of an existing id
// whose model SID does not change keeps its place; one whose SID changes leaves its old place
// (freeing it) and is placed anew. Within one batch, every leaving item frees its place first, then
// new places are assigned in batch order. A SID holds at most 65,536 items (the suffix is 2 bytes).
//
// Ids: the caller's, in [0, 2^63 - 1] (FAISS labels are signed 64-bit and -1 means "no result").
//
// Durability: every write is one RocksDB WriteBatch, written to the WAL before the call returns
// (StoreOptions::sync adds an fsync: see options.h). A crash at any moment leaves each batch
// either wholly applied or not at all. open() rebuilds the index and trie from RocksDB and checks
// that items, sids, index, trie and counters agree (Corruption otherwise).
//
// Thread safety: every method may be called from any thread. Readers (get, search, prefix_scan,
// next_tokens, count, resolve, reconstruct, stats, verify) run concurrently; writers (upsert,
// remove, reencode, create_snapshot, close) are serialised. A reader never sees half a batch: it
// reads the in-memory state and a RocksDB snapshot that were published together, after the
// batch's WAL write. A write's disk I/O (and fsync) does not block readers; only the short
// in-memory update does.
//
// Errors: Status / Result, never exceptions. Bad input (wrong dimension, NaN/Inf, duplicate ids in
// a batch, unknown ids on remove, a prefix longer than L, a code >= K, a payload that is not JSON)
// is InvalidArgument or NotFound naming the item and value, and nothing is written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "index/metrics.h"
#include "index/quantizer.h"
#include "index/status.h"
#include "index/trie.h"
#include "plugin/IndexRQVAE.h"
#include "storage/options.h"

namespace semid::storage {

// Schema version of the column families (meta "collection" records it).
inline constexpr int kSchemaVersion = 1;
// The largest item id.
inline constexpr std::uint64_t kMaxItemId = (std::uint64_t{1} << 63) - 1;
// The largest page a prefix scan returns.
inline constexpr std::size_t kMaxScanLimit = 100000;

struct Item {
  std::uint64_t id = 0;
  std::vector<std::int32_t> sid;  // L codes, coarse to fine: the stored SID
  std::uint16_t collision_suffix = 0;
  // The model's own SID of the vector: equal to sid unless the relocate policy moved the item.
  std::vector<std::int32_t> natural_sid;
  std::vector<float> vector;  // d floats, as upserted
  std::string payload;        // JSON text; empty when the item has none
};

// An entry of a prefix scan: an item's place in the trie.
struct ScanEntry {
  std::uint64_t id = 0;
  std::vector<std::int32_t> sid;
  std::uint16_t collision_suffix = 0;
};

struct ScanPage {
  std::vector<ScanEntry> items;
  // Pass it back to prefix_scan for the next page; empty when this page ends the listing.
  std::string next_cursor;
};

// The index's options (plugin/search_options.h: mode, shortlist, beam, min_prefix, prefix, checked
// by SearchOptions::validate) plus what only the store can do.
struct SearchOptions : semid::SearchOptions {
  // Only these item ids. Default: no filter.
  std::optional<std::vector<std::uint64_t>> allowed_ids;
  // R > 0: ask the index for max(R, k) candidates per query, re-score them by the exact metric
  // against their stored original vectors (not their reconstructions), keep the best k. The
  // distances are then those exact scores. Default: 0 (off).
  std::size_t rerank = 0;
};

struct SearchHit {
  std::uint64_t id = 0;
  // Cosine similarity (larger is closer) for a cosine model, squared L2 otherwise.
  float distance = 0;
  // Where the item sat when the search ran (from memory: no read of its record).
  std::vector<std::int32_t> sid;
  std::uint16_t collision_suffix = 0;
  bool relocated = false;  // the relocate policy moved it off its model SID (see Item)
};

struct CollectionStats {
  std::size_t items = 0;
  int dim = 0;
  int levels = 0;
  int codebook_size = 0;
  std::string model_kind;
  std::string model_hash;
  // Bytes of the collection directory's files (SSTs, WAL, manifest).
  std::uint64_t disk_bytes = 0;
  // RocksDB: live SST bytes and memtable bytes over the column families.
  std::uint64_t sst_bytes = 0;
  std::uint64_t memtable_bytes = 0;
  // In memory: the index's packed codes and the trie's nodes.
  std::uint64_t index_code_bytes = 0;
  std::uint64_t trie_bytes = 0;
  // Per-level usage, hourglass shares (top_code_share), collisions (index/metrics.h).
  CodeHealth codes;
  // SIDs holding more than one item, and the largest collision suffix in use.
  std::size_t collision_groups = 0;
  std::uint32_t max_collision_suffix = 0;
  // The collection's collision policy, and the items it moved off their model SID (relocate).
  CollisionPolicy collision_policy = CollisionPolicy::kSuffix;
  std::size_t relocated_items = 0;
  nlohmann::json to_json() const;
};

class Collection {
 public:
  // Creates a collection in `dir` (which must not exist, or be empty) for `model`, and opens it.
  // The model file and the collision policy are stored in the collection. Errors: AlreadyExists
  // (a non-empty dir), InvalidArgument (options), IOError.
  static Result<std::unique_ptr<Collection>> create(
      const std::string& dir, std::shared_ptr<const Quantizer> model,
      const StoreOptions& options = {}, CollisionPolicy policy = CollisionPolicy::kSuffix);

  // Opens the collection in `dir`, rebuilding the index and trie from RocksDB and checking that
  // they agree with it. With `expected_model`, the stored model's content hash must equal its
  // (FailedPrecondition otherwise: the stored codes came from another model; reencode() instead).
  // Errors: NotFound (no collection there), Corruption (bad records, disagreement),
  // FailedPrecondition, IOError (e.g. Busy-like "lock held": another process has it open).
  static Result<std::unique_ptr<Collection>> open(
      const std::string& dir, const StoreOptions& options = {},
      std::shared_ptr<const Quantizer> expected_model = nullptr);

  // Copies the snapshot directory `snapshot_dir` (made by create_snapshot) to `target_dir`
  // (which must not exist), checks that it opens and agrees, and only then moves it into place
  // (temporary directory, fsync, rename): a crash leaves no half-restored target.
  static Status restore_snapshot(const std::string& snapshot_dir, const std::string& target_dir);

  ~Collection();
  Collection(const Collection&) = delete;
  Collection& operator=(const Collection&) = delete;

  const std::string& dir() const;
  const StoreOptions& options() const;
  int dim() const;
  int levels() const;
  int codebook_size() const;
  CollisionPolicy collision_policy() const;
  // Items stored.
  std::size_t size() const;
  // The current model (reencode() replaces it).
  std::shared_ptr<const Quantizer> model() const;

  // Inserts or replaces n = ids.size() items. vectors: n * dim() floats (row i for ids[i]),
  // finite. payloads: empty (no payloads) or n strings, each empty (no payload) or JSON text of at
  // most max_payload_bytes. Errors (nothing written): InvalidArgument for a size mismatch, an id
  // above kMaxItemId, an id twice in the batch, NaN/Inf (naming row and column), a bad payload
  // (naming its row), more than max_batch_items items, a full collision group; IOError from
  // RocksDB. An empty batch is a no-op.
  Status upsert(std::span<const std::uint64_t> ids, std::span<const float> vectors,
                std::span<const std::string> payloads = {});

  // Removes the items `ids`. Errors (nothing written): NotFound naming the first unknown id,
  // InvalidArgument for an id twice or too many ids; IOError.
  Status remove(std::span<const std::uint64_t> ids);

  // The item `id` (NotFound when absent).
  Result<Item> get(std::uint64_t id) const;
  // Items for each id, std::nullopt where absent. InvalidArgument for more than max_batch_items.
  Result<std::vector<std::optional<Item>>> get_many(std::span<const std::uint64_t> ids) const;

  // The decoded reconstruction of item `id`'s SID (dim() floats). NotFound when absent.
  Result<std::vector<float>> reconstruct(std::uint64_t id) const;

  // Fills the search's reconstruction cache ahead of searches (IndexRQVAE::
  // prefetch_reconstructions): decodes the SIDs that the cache lacks among up to `count` items
  // from index position `begin`. Returns the position to go on from, which equals `begin` once
  // nothing is left to prefetch. Holds the reader lock for this one step, so a caller (the
  // server's start-up) goes in small steps while searches and writers run.
  Result<std::size_t> prefetch_reconstructions(std::size_t begin, std::size_t count) const;

  // k nearest items of each of n queries (queries: n * dim() floats), closest first; fewer than k
  // when fewer items qualify. Errors: InvalidArgument for a size mismatch, k < 1, NaN/Inf, a bad
  // prefix or option combination (the index's rules, as a Status).
  Result<std::vector<std::vector<SearchHit>>> search(std::size_t n, std::span<const float> queries,
                                                     std::size_t k,
                                                     const SearchOptions& options = {}) const;

  // Up to `limit` (in [1, kMaxScanLimit]) items under `prefix` (0..L codes) in key order (SID,
  // then suffix), after `cursor` (empty: from the start; otherwise a next_cursor of an earlier page
  // of the same prefix, hex text). A RocksDB range scan bounded by the prefix's upper bound.
  Result<ScanPage> prefix_scan(std::span<const std::int32_t> prefix, std::string_view cursor,
                               std::size_t limit) const;
  // The cursor that resumes a prefix scan after `entry` (for a page cut short by its reader).
  Result<std::string> cursor_after(const ScanEntry& entry) const;

  // For each prefix (0..L codes): the populated next codes and their item counts, ascending by
  // code (empty for a full SID). InvalidArgument naming the first bad prefix.
  Result<std::vector<std::vector<SidTrie::Child>>> next_tokens(
      const std::vector<std::vector<std::int32_t>>& prefixes) const;

  // Items under `prefix` (0..L codes).
  Result<std::uint64_t> count(std::span<const std::int32_t> prefix) const;

  // The item whose full semantic ID is `semantic_id`: L codes then the collision suffix (L + 1
  // values; the suffix in [0, 65535]). NotFound when no item has it.
  Result<Item> resolve(std::span<const std::int32_t> semantic_id) const;

  // Re-encodes every stored vector with `new_model` (same dim; any levels, K, kind or metric),
  // places every item afresh under the collision policy (in the items' insertion order, as if they
  // arrived anew), stores the new model, all in
  // one atomic WriteBatch, then swaps the in-memory state. A no-op when the hashes are equal.
  Status reencode(std::shared_ptr<const Quantizer> new_model);

  // Writes the memtables to SST files and waits, so the write-ahead log they came from is retired
  // and the next open has nothing to replay (what a bulk load does at its end).
  Status flush();

  // A consistent copy of the collection in `snapshot_dir` (must not exist) through RocksDB's
  // Checkpoint (hard links where possible). Writers wait meanwhile; readers do not.
  Status create_snapshot(const std::string& snapshot_dir);

  // Checks that the items and sids column families, the counters, the index and the trie agree
  // exactly (every item once, same SID and suffix everywhere). Corruption naming the first
  // difference.
  Status verify() const;

  Result<CollectionStats> stats() const;

  // Closes the database; later calls return FailedPrecondition. The destructor closes too.
  Status close();

  struct Impl;

 private:
  explicit Collection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace semid::storage
