#include "storage/collection.h"

#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/distances.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "storage/dir_util.h"
#include "storage/impl/placement.h"
#include "storage/impl/state.h"
#include "storage/record.h"

namespace semid::storage {
namespace {

namespace fs = std::filesystem;
using idx_t = faiss::Index::idx_t;
using impl::Entry;
using impl::Location;
using impl::Placement;
using impl::State;

// The largest collision suffix (2 bytes).
constexpr std::uint32_t kMaxSuffix = 65535;

// Column families, in the order their handles are kept ("default" is RocksDB's own, unused).
enum Family : std::size_t { kDefault = 0, kItems = 1, kSids = 2, kMeta = 3 };
constexpr const char* kFamilyNames[] = {"default", "items", "sids", "meta"};
constexpr std::size_t kFamilies = 4;

constexpr const char* kMetaCollection = "collection";
constexpr const char* kMetaModel = "model";
constexpr const char* kMetaCounters = "counters";

// Items listed per trie page when the trie is checked against RocksDB.
constexpr std::size_t kCheckPage = 65536;

Status from_rocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::ok();
  const std::string message = context + ": " + s.ToString();
  if (s.IsNotFound()) return Status::not_found(message);
  if (s.IsCorruption()) return Status::corruption(message);
  if (s.IsInvalidArgument()) return Status::invalid_argument(message);
  if (s.IsBusy() || s.IsTryAgain()) return Status::busy(message);
  // Another process (or handle) holding the database: RocksDB says so as an IOError on LOCK.
  if (s.ToString().find("LOCK") != std::string::npos) {
    return Status::busy(message + " (the collection is open elsewhere)");
  }
  return Status::io_error(message);
}

std::string hex(std::string_view bytes) {
  constexpr const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::optional<std::string> unhex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out(text.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = digit(text[2 * i]), low = digit(text[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<char>(high << 4 | low);
  }
  return out;
}

// The smallest byte string greater than every string starting with `prefix`; empty when there is
// none (the prefix is empty or all 0xff): then a scan needs no upper bound.
std::string prefix_successor(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last != 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

// ---- the model inside the collection
// --------------------------------------------------------------

Result<std::shared_ptr<const Quantizer>> model_from_bytes(std::string bytes) {
  SEMID_ASSIGN_OR_RETURN(auto model, quantizer_from_bytes(std::move(bytes)));
  return std::shared_ptr<const Quantizer>(std::move(model));
}

nlohmann::json collection_meta(const Quantizer& model, CollisionPolicy policy) {
  return {{"schema_version", kSchemaVersion},
          {"collision_policy", collision_policy_name(policy)},
          {"dim", model.dim()},
          {"levels", model.levels()},
          {"codebook_size", model.codebook_size()},
          {"metric", metric_name(model.metric())},
          {"model_kind", model.kind()},
          {"model_hash", model.content_hash()},
          {"model_config", model.config_json()}};
}

struct Counters {
  std::uint64_t items = 0;
  std::uint64_t next_sequence = 0;
  std::string encode() const {
    return encode_meta_value(
        nlohmann::json{{"items", items}, {"next_sequence", next_sequence}}.dump());
  }
};

// ---- RocksDB options
// ------------------------------------------------------------------------------

rocksdb::ColumnFamilyOptions family_options(const StoreOptions& options,
                                            const std::shared_ptr<rocksdb::Cache>& cache,
                                            bool point_lookups) {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.write_buffer_bytes;
  rocksdb::BlockBasedTableOptions table;
  if (cache) {
    table.block_cache = cache;
  } else {
    table.no_block_cache = true;
  }
  // items is read by id (get, rerank): a Bloom filter spares SST reads for absent ids. sids is
  // only range-scanned, where a whole-key filter cannot help.
  if (point_lookups) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

rocksdb::DBOptions db_options(bool create) {
  rocksdb::DBOptions db;
  db.create_if_missing = create;
  db.create_missing_column_families = create;
  db.error_if_exists = create;
  // After a crash, replay the WAL up to the first torn record: every batch before it is whole.
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db.max_background_jobs = 2;
  db.keep_log_file_num = 4;
  return db;
}

// An open database and its column families.
struct Database {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> families;

  Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database() { close(); }

  Status close() {
    if (!db) return Status::ok();
    for (auto* handle : families) db->DestroyColumnFamilyHandle(handle);
    families.clear();
    const rocksdb::Status s = db->Close();
    delete db;
    db = nullptr;
    return from_rocks(s, "closing the collection");
  }
};

Status open_database(const std::string& dir, const StoreOptions& options, bool create,
                     const std::shared_ptr<rocksdb::Cache>& cache, Database* out) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (std::size_t f = 0; f < kFamilies; ++f) {
    descriptors.emplace_back(kFamilyNames[f], family_options(options, cache, f == kItems));
  }
  const rocksdb::Status s =
      rocksdb::DB::Open(db_options(create), dir, descriptors, &out->families, &out->db);
  return from_rocks(s, "opening the collection in " + dir);
}

}  // namespace

// ---- Impl ---------------------------------------------------------------------------------------

struct Collection::Impl {
  std::string dir;
  StoreOptions options;
  std::shared_ptr<rocksdb::Cache> cache;
  Database database;
  int dim = 0;
  CollisionPolicy policy = CollisionPolicy::kSuffix;

  // Writers hold write_mutex for a whole operation; the in-memory update also takes state_mutex
  // exclusively. Readers hold state_mutex shared for a whole operation.
  mutable std::mutex write_mutex;
  mutable std::shared_mutex state_mutex;
  std::unique_ptr<State> state;
  // Writers only (under write_mutex).
  std::uint64_t next_sequence = 0;
  // Set under both locks.
  bool closed = false;
  // Non-OK after an in-memory update failed behind a durable write: memory and disk differ until
  // the collection is reopened.
  Status broken;

  rocksdb::DB* db() const { return database.db; }
  rocksdb::ColumnFamilyHandle* family(Family f) const { return database.families[f]; }

  Status usable() const {
    if (closed) return Status::failed_precondition("collection " + dir + " is closed");
    return broken;
  }

  rocksdb::ReadOptions read_options() const {
    rocksdb::ReadOptions ro;
    ro.snapshot = state->snapshot;
    return ro;
  }

  rocksdb::WriteOptions write_options() const {
    rocksdb::WriteOptions wo;
    wo.sync = options.sync;
    wo.disableWAL = false;
    return wo;
  }

  // Makes `state` visible with a snapshot of the database as it is now (caller holds both locks;
  // no write can land between the batch and the snapshot).
  void publish() {
    if (state->snapshot) db()->ReleaseSnapshot(state->snapshot);
    state->snapshot = db()->GetSnapshot();
  }

  void release_snapshot() {
    if (state && state->snapshot) {
      db()->ReleaseSnapshot(state->snapshot);
      state->snapshot = nullptr;
    }
  }

  Status write(rocksdb::WriteBatch& batch, const char* what) {
    return from_rocks(db()->Write(write_options(), &batch), std::string(what) + " in " + dir);
  }

  Result<std::string> read_meta(const char* key, const rocksdb::ReadOptions& ro) const {
    std::string value;
    const rocksdb::Status s = db()->Get(ro, family(kMeta), key, &value);
    if (s.IsNotFound()) {
      return Status::corruption("collection " + dir + " has no '" + key + "' metadata");
    }
    SEMID_RETURN_IF_ERROR(from_rocks(s, std::string("reading metadata '") + key + "'"));
    auto body = decode_meta_value(value);
    if (!body) return body.status().with_context(std::string("metadata '") + key + "'");
    return body;
  }

  Result<Counters> read_counters(const rocksdb::ReadOptions& ro) const {
    SEMID_ASSIGN_OR_RETURN(std::string body, read_meta(kMetaCounters, ro));
    try {
      const auto j = nlohmann::json::parse(body);
      return Counters{j.at("items").get<std::uint64_t>(),
                      j.at("next_sequence").get<std::uint64_t>()};
    } catch (const nlohmann::json::exception& e) {
      return Status::corruption(std::string("metadata 'counters' is malformed: ") + e.what());
    }
  }

  Result<ItemRecord> parse_record(std::uint64_t id, std::string_view value) const {
    auto record = decode_item_record(value, state->shape());
    if (!record) return record.status().with_context("item " + std::to_string(id));
    return record;
  }

  Item to_item(std::uint64_t id, ItemRecord&& record) const {
    return Item{id,
                std::move(record.sid),
                record.collision_suffix,
                std::move(record.natural_sid),
                std::move(record.vector),
                std::move(record.payload)};
  }

  // The records of `ids` under the published snapshot, nullopt where absent (caller holds
  // state_mutex).
  Result<std::vector<std::optional<ItemRecord>>> read_records(
      std::span<const std::uint64_t> ids) const;
  // Calls fn(id, record) (returning Status) for every record of the items family in id order,
  // read with `ro`; stops at the first error (Corruption for a malformed key or record).
  template <class Fn>
  Status for_each_record(const rocksdb::ReadOptions& ro, Fn&& fn) const {
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(ro, family(kItems)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      SEMID_ASSIGN_OR_RETURN(std::uint64_t id,
                             decode_item_key(std::string_view(it->key().data(), it->key().size())));
      if (id > kMaxItemId) {
        return Status::corruption("item id " + std::to_string(id) + " is out of range");
      }
      SEMID_ASSIGN_OR_RETURN(
          ItemRecord record,
          parse_record(id, std::string_view(it->value().data(), it->value().size())));
      SEMID_RETURN_IF_ERROR(fn(id, std::move(record)));
    }
    return from_rocks(it->status(), "scanning the items of " + dir);
  }
  Status load(std::shared_ptr<const Quantizer> expected_model);
  // InvalidArgument naming the row for any bad part of an upsert (sizes, ids, NaN/Inf, payloads).
  Status check_upsert(std::span<const std::uint64_t> ids, std::span<const float> vectors,
                      std::span<const std::string> payloads) const;
  // The in-memory half of an upsert or a remove, after its batch is durable (exclusive lock held).
  Status apply_upsert(std::span<const std::uint64_t> ids, std::vector<Placement>& placements);
  Status apply_remove(std::span<const std::uint64_t> ids);
  // Records that memory no longer matches disk; every later call fails until a reopen.
  Status mark_broken(const std::string& what);
  Status check_agreement(bool check_items) const;
  Status validate_batch_ids(std::span<const std::uint64_t> ids, const char* what) const;
  Status encode(std::size_t n, const float* x, const Quantizer& model, std::int32_t* codes) const;
};

Result<std::vector<std::optional<ItemRecord>>> Collection::Impl::read_records(
    std::span<const std::uint64_t> ids) const {
  std::vector<std::string> keys(ids.size());
  std::vector<rocksdb::Slice> slices(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) slices[i] = keys[i] = encode_item_key(ids[i]);
  std::vector<rocksdb::PinnableSlice> values(ids.size());
  std::vector<rocksdb::Status> statuses(ids.size());
  db()->MultiGet(read_options(), family(kItems), ids.size(), slices.data(), values.data(),
                 statuses.data());
  std::vector<std::optional<ItemRecord>> records(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    SEMID_RETURN_IF_ERROR(from_rocks(statuses[i], "reading item " + std::to_string(ids[i])));
    SEMID_ASSIGN_OR_RETURN(
        records[i], parse_record(ids[i], std::string_view(values[i].data(), values[i].size())));
  }
  return records;
}

// Reads the metadata and the model, rebuilds the state from the items family, checks agreement.
Status Collection::Impl::load(std::shared_ptr<const Quantizer> expected_model) {
  const rocksdb::ReadOptions ro;
  SEMID_ASSIGN_OR_RETURN(std::string meta_body, read_meta(kMetaCollection, ro));
  nlohmann::json meta;
  std::string stored_hash;
  try {
    meta = nlohmann::json::parse(meta_body);
    const int version = meta.at("schema_version").get<int>();
    if (version != kSchemaVersion) {
      return Status::failed_precondition("collection " + dir + " has schema version " +
                                         std::to_string(version) + "; this semid reads version " +
                                         std::to_string(kSchemaVersion));
    }
    dim = meta.at("dim").get<int>();
    stored_hash = meta.at("model_hash").get<std::string>();
    // Collections made before the policy existed use suffixes.
    const std::string policy_name = meta.value("collision_policy", std::string("suffix"));
    auto parsed_policy = parse_collision_policy(policy_name);
    if (!parsed_policy) {
      return Status::corruption("metadata 'collection': " + parsed_policy.status().message());
    }
    policy = *parsed_policy;
  } catch (const nlohmann::json::exception& e) {
    return Status::corruption(std::string("metadata 'collection' is malformed: ") + e.what());
  }
  if (expected_model && expected_model->content_hash() != stored_hash) {
    return Status::failed_precondition(
        "collection " + dir + " was encoded with model " + stored_hash + ", not with model " +
        expected_model->content_hash() +
        " given now; open it without a model (the stored one is used) or re-encode it with "
        "the new model");
  }
  // The stored model's frame is checked even when the caller brings the model.
  SEMID_ASSIGN_OR_RETURN(std::string bytes, read_meta(kMetaModel, ro));
  std::shared_ptr<const Quantizer> model = std::move(expected_model);
  if (!model) {
    auto stored = model_from_bytes(std::move(bytes));
    if (!stored) return stored.status().with_context("stored model of " + dir);
    model = std::move(stored).value();
  }
  if (model->content_hash() != stored_hash || model->dim() != dim) {
    return Status::corruption("the stored model (hash " + model->content_hash() + ", dim " +
                              std::to_string(model->dim()) +
                              ") disagrees with the metadata (hash " + stored_hash + ", dim " +
                              std::to_string(dim) + ")");
  }
  SEMID_ASSIGN_OR_RETURN(Counters counters, read_counters(ro));
  SEMID_ASSIGN_OR_RETURN(state, impl::make_state(std::move(model)));

  std::vector<Entry> entries;
  rocksdb::ReadOptions scan;
  scan.fill_cache = false;
  SEMID_RETURN_IF_ERROR(for_each_record(scan, [&](std::uint64_t id, ItemRecord&& record) {
    if (record.sequence >= counters.next_sequence) {
      return Status::corruption("item " + std::to_string(id) + " has sequence " +
                                std::to_string(record.sequence) + ", beyond the counter " +
                                std::to_string(counters.next_sequence));
    }
    entries.push_back({record.sequence, id, state->pack(record.sid.data()), record.collision_suffix,
                       record.sid != record.natural_sid});
    return Status::ok();
  }));
  if (entries.size() != counters.items) {
    return Status::corruption("collection " + dir + " holds " + std::to_string(entries.size()) +
                              " item records; its counter says " + std::to_string(counters.items));
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.sequence < b.sequence; });
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].sequence == entries[i - 1].sequence) {
      return Status::corruption("items " + std::to_string(entries[i - 1].id) + " and " +
                                std::to_string(entries[i].id) + " share sequence " +
                                std::to_string(entries[i].sequence));
    }
  }
  SEMID_RETURN_IF_ERROR(impl::fill_state(*state, entries));
  next_sequence = counters.next_sequence;
  publish();
  return check_agreement(/*check_items=*/false);
}

// Compares the sids family (and with check_items, the items family) under the published snapshot
// with the locations, and the trie and index with the locations.
Status Collection::Impl::check_agreement(bool check_items) const {
  const State& s = *state;
  const std::size_t n = s.locations.size();
  const std::string where = "collection " + dir + ": ";

  // sids == locations, key for key, in key order; no two items on one SID and suffix.
  std::vector<std::string> keys;
  keys.reserve(n);
  for (const auto& [id, location] : s.locations)
    keys.push_back(State::key(location.sid, location.suffix, id));
  std::sort(keys.begin(), keys.end());
  const std::size_t place_bytes = s.codec.sid_bytes() + SidKeyCodec::kSuffixBytes;
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].compare(0, place_bytes, keys[i - 1], 0, place_bytes) == 0) {
      auto a = s.codec.decode_key(keys[i - 1]);
      auto b = s.codec.decode_key(keys[i]);
      return Status::corruption(where + "items " + std::to_string(a->item_id) + " and " +
                                std::to_string(b->item_id) + " share SID " + sid_text(a->codes) +
                                " and suffix " + std::to_string(a->collision_suffix));
    }
  }
  {
    // A merge of two sorted lists: the first difference says which side lacks a key.
    const auto missing = [&](const std::string& key) {
      auto decoded = s.codec.decode_key(key);
      return Status::corruption(where + "item " + std::to_string(decoded->item_id) +
                                " has no sids key (SID " + sid_text(decoded->codes) + ", suffix " +
                                std::to_string(decoded->collision_suffix) + ")");
    };
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options(), family(kSids)));
    std::size_t i = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++i) {
      const std::string_view key(it->key().data(), it->key().size());
      if (i < n && key == keys[i]) continue;
      if (i < n && key > std::string_view(keys[i])) return missing(keys[i]);
      auto decoded = s.codec.decode_key(key);
      if (!decoded)
        return Status::corruption(where + "malformed sids key: " + decoded.status().message());
      return Status::corruption(where + "sids key of item " + std::to_string(decoded->item_id) +
                                " (SID " + sid_text(decoded->codes) + ", suffix " +
                                std::to_string(decoded->collision_suffix) +
                                ") matches no item record");
    }
    SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "scanning sids"));
    if (i != n) return missing(keys[i]);
  }
  if (check_items) {
    std::size_t count = 0;
    SEMID_RETURN_IF_ERROR(
        for_each_record(read_options(), [&](std::uint64_t id, ItemRecord&& record) {
          ++count;
          const auto found = s.locations.find(id);
          if (found == s.locations.end() || found->second.sid != s.pack(record.sid.data()) ||
              found->second.suffix != record.collision_suffix ||
              found->second.relocated != (record.sid != record.natural_sid)) {
            return Status::corruption(where + "the record of item " + std::to_string(id) +
                                      " disagrees with memory");
          }
          return Status::ok();
        }));
    if (count != n) {
      return Status::corruption(where + std::to_string(count) + " item records for " +
                                std::to_string(n) + " items in memory");
    }
    SEMID_ASSIGN_OR_RETURN(Counters counters, read_counters(read_options()));
    if (counters.items != n) {
      return Status::corruption(where + "the item counter says " + std::to_string(counters.items) +
                                ", memory holds " + std::to_string(n));
    }
  }

  // The trie lists exactly the locations.
  if (s.trie.size() != n) {
    return Status::corruption(where + "the trie holds " + std::to_string(s.trie.size()) +
                              " items, the store " + std::to_string(n));
  }
  std::string cursor;
  std::size_t listed = 0;
  do {
    auto page = s.trie.items({}, cursor, kCheckPage);
    if (!page) return page.status().with_context(where + "listing the trie");
    const auto L = static_cast<std::size_t>(s.codec.levels());
    for (std::size_t r = 0; r < page->item_ids.size(); ++r, ++listed) {
      const std::uint64_t id = page->item_ids[r];
      const auto found = s.locations.find(id);
      if (found == s.locations.end() || found->second.sid != s.pack(page->codes.data() + r * L)) {
        return Status::corruption(where + "the trie holds item " + std::to_string(id) + " on SID " +
                                  sid_text({page->codes.data() + r * L, L}) +
                                  ", which the store does not");
      }
    }
    cursor = std::move(page->next_cursor);
  } while (!cursor.empty());
  if (listed != n) {
    return Status::corruption(where + "the trie lists " + std::to_string(listed) + " items for " +
                              std::to_string(n));
  }

  // The index holds every item once, with its SID.
  const IndexRQVAE& index = *s.index;
  if (static_cast<std::size_t>(index.ntotal) != n || (n > 0 && !index.has_ids()) ||
      static_cast<std::size_t>(index.trie().size()) != n) {
    return Status::corruption(where + "the index holds " + std::to_string(index.ntotal) +
                              " items, the store " + std::to_string(n));
  }
  std::vector<idx_t> ids = index.ids();
  for (std::size_t pos = 0; pos < n; ++pos) {
    const auto found = s.locations.find(static_cast<std::uint64_t>(ids[pos]));
    if (found == s.locations.end() ||
        std::memcmp(found->second.sid.data(), index.codes.data() + pos * index.code_size,
                    index.code_size) != 0) {
      return Status::corruption(where + "the index holds item " + std::to_string(ids[pos]) +
                                " with a SID the store does not have");
    }
  }
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    return Status::corruption(where + "the index holds an item twice");
  }
  return Status::ok();
}

Status Collection::Impl::validate_batch_ids(std::span<const std::uint64_t> ids,
                                            const char* what) const {
  if (ids.size() > options.max_batch_items) {
    return Status::invalid_argument(
        std::string(what) + " of " + std::to_string(ids.size()) +
        " items exceeds StoreOptions.max_batch_items = " + std::to_string(options.max_batch_items));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] > kMaxItemId) {
      return Status::invalid_argument(std::string(what) + ": id " + std::to_string(ids[i]) +
                                      " (row " + std::to_string(i) + ") exceeds 2^63 - 1");
    }
  }
  std::vector<std::uint64_t> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  const auto twice = std::adjacent_find(sorted.begin(), sorted.end());
  if (twice != sorted.end()) {
    return Status::invalid_argument(std::string(what) + ": id " + std::to_string(*twice) +
                                    " appears more than once in the batch");
  }
  return Status::ok();
}

Status Collection::Impl::encode(std::size_t n, const float* x, const Quantizer& model,
                                std::int32_t* codes) const {
  const auto d = static_cast<std::size_t>(model.dim());
  const auto L = static_cast<std::size_t>(model.levels());
  for (std::size_t first = 0; first < n; first += options.encode_chunk) {
    const std::size_t count = std::min(options.encode_chunk, n - first);
    SEMID_RETURN_IF_ERROR(model.encode(count, x + first * d, codes + first * L));
  }
  return Status::ok();
}

Status Collection::Impl::check_upsert(std::span<const std::uint64_t> ids,
                                      std::span<const float> vectors,
                                      std::span<const std::string> payloads) const {
  const std::size_t n = ids.size();
  const auto d = static_cast<std::size_t>(dim);
  if (vectors.size() != n * d) {
    return Status::invalid_argument("upsert: " + std::to_string(vectors.size()) + " floats for " +
                                    std::to_string(n) + " ids of dimension " + std::to_string(d) +
                                    " (expected " + std::to_string(n * d) + ")");
  }
  if (!payloads.empty() && payloads.size() != n) {
    return Status::invalid_argument("upsert: " + std::to_string(payloads.size()) +
                                    " payloads for " + std::to_string(n) + " ids");
  }
  SEMID_RETURN_IF_ERROR(validate_batch_ids(ids, "upsert"));
  const auto row_name = [&](std::size_t i) {
    return "id " + std::to_string(ids[i]) + " (row " + std::to_string(i) + ")";
  };
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = vectors.data() + i * d;
    const auto bad = std::find_if(row, row + d, [](float v) { return !std::isfinite(v); });
    if (bad != row + d) {
      return Status::invalid_argument("upsert: the vector of " + row_name(i) + " has " +
                                      std::to_string(*bad) + " at dimension " +
                                      std::to_string(bad - row));
    }
  }
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const std::string& payload = payloads[i];
    if (payload.empty()) continue;
    if (payload.size() > options.max_payload_bytes) {
      return Status::invalid_argument(
          "upsert: the payload of " + row_name(i) + " has " + std::to_string(payload.size()) +
          " bytes; StoreOptions.max_payload_bytes = " + std::to_string(options.max_payload_bytes));
    }
    if (!nlohmann::json::accept(payload)) {
      std::string why;
      try {
        why = nlohmann::json::parse(payload).dump();  // throws: accept() said it is not JSON
      } catch (const nlohmann::json::parse_error& e) {
        why = e.what();
      }
      return Status::invalid_argument("upsert: the payload of " + row_name(i) +
                                      " is not JSON: " + why);
    }
  }
  return Status::ok();
}

Status Collection::Impl::mark_broken(const std::string& what) {
  broken = Status::internal(what +
                            " failed after its batch was written; memory and disk differ "
                            "until the collection is reopened");
  return broken;
}

Status Collection::Impl::apply_upsert(std::span<const std::uint64_t> ids,
                                      std::vector<Placement>& placements) {
  State& s = *state;
  const std::size_t n = ids.size();
  const std::size_t sid_bytes = s.codec.sid_bytes();
  try {
    // A re-upserted item leaves the index and comes back with its new SID: O(levels) each (the
    // index answers alike whatever the order its items sit in).
    std::vector<idx_t> moved;
    for (std::size_t i = 0; i < n; ++i) {
      if (placements[i].old) moved.push_back(static_cast<idx_t>(ids[i]));
    }
    s.index->remove_labels(static_cast<idx_t>(moved.size()), moved.data());
    std::vector<std::uint8_t> packed(n * sid_bytes);
    std::vector<idx_t> labels(ids.begin(), ids.end());
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(packed.data() + i * sid_bytes, placements[i].sid.data(), sid_bytes);
    }
    s.index->add_codes(static_cast<idx_t>(n), packed.data(), labels.data());
  } catch (const std::exception& e) {
    return mark_broken(std::string("upsert: updating the index (") + e.what() + ")");
  }
  for (std::size_t i = 0; i < n; ++i) {
    Placement& p = placements[i];
    Status status = Status::ok();
    if (p.old) status = s.unfile(ids[i]);
    if (status.is_ok()) status = s.file(ids[i], Location{std::move(p.sid), p.suffix, p.relocated});
    if (!status.is_ok())
      return mark_broken("upsert: updating the trie (" + status.to_string() + ")");
  }
  return Status::ok();
}

Status Collection::Impl::apply_remove(std::span<const std::uint64_t> ids) {
  State& s = *state;
  try {
    const std::vector<idx_t> labels(ids.begin(), ids.end());
    s.index->remove_labels(static_cast<idx_t>(labels.size()), labels.data());
  } catch (const std::exception& e) {
    return mark_broken(std::string("remove: updating the index (") + e.what() + ")");
  }
  for (std::uint64_t id : ids) {
    const Status status = s.unfile(id);
    if (!status.is_ok())
      return mark_broken("remove: updating the trie (" + status.to_string() + ")");
  }
  return Status::ok();
}

// ---- creation, opening, closing
// -------------------------------------------------------------------

Collection::Collection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Collection::~Collection() { close(); }

Result<std::unique_ptr<Collection>> Collection::create(const std::string& dir,
                                                       std::shared_ptr<const Quantizer> model,
                                                       const StoreOptions& options,
                                                       CollisionPolicy policy) {
  SEMID_RETURN_IF_ERROR(options.validate());
  if (!model) return Status::invalid_argument("Collection::create: the model is null");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return Status::already_exists("cannot create a collection in " + dir + ": it is not empty");
  }
  SEMID_ASSIGN_OR_RETURN(std::string bytes, model->to_bytes());
  SEMID_ASSIGN_OR_RETURN(auto probe, impl::make_state(model));  // the model must fit an index
  (void)probe;
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir + ": " + ec.message());
  {
    Database database;
    SEMID_RETURN_IF_ERROR(open_database(dir, options, /*create=*/true, nullptr, &database));
    rocksdb::WriteBatch batch;
    auto* meta = database.families[kMeta];
    batch.Put(meta, kMetaCollection, encode_meta_value(collection_meta(*model, policy).dump()));
    batch.Put(meta, kMetaModel, encode_meta_value(bytes));
    batch.Put(meta, kMetaCounters, Counters{}.encode());
    rocksdb::WriteOptions wo;
    wo.sync = true;  // a created collection is durable whatever the options say
    SEMID_RETURN_IF_ERROR(from_rocks(database.db->Write(wo, &batch), "creating " + dir));
    SEMID_RETURN_IF_ERROR(database.close());
  }
  return open(dir, options, std::move(model));
}

Result<std::unique_ptr<Collection>> Collection::open(
    const std::string& dir, const StoreOptions& options,
    std::shared_ptr<const Quantizer> expected_model) {
  SEMID_RETURN_IF_ERROR(options.validate());
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "CURRENT", ec)) {
    return Status::not_found("no collection in " + dir);
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  if (options.block_cache_bytes > 0) impl->cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  SEMID_RETURN_IF_ERROR(
      open_database(dir, options, /*create=*/false, impl->cache, &impl->database));
  Status loaded = impl->load(std::move(expected_model));
  if (!loaded.is_ok()) {
    impl->release_snapshot();
    return loaded;
  }
  return std::unique_ptr<Collection>(new Collection(std::move(impl)));
}

Status Collection::close() {
  if (!impl_) return Status::ok();
  std::lock_guard write_lock(impl_->write_mutex);
  std::unique_lock state_lock(impl_->state_mutex);
  if (impl_->closed) return Status::ok();
  impl_->closed = true;
  impl_->release_snapshot();
  return impl_->database.close();
}

Status Collection::restore_snapshot(const std::string& snapshot_dir,
                                    const std::string& target_dir) {
  std::error_code ec;
  if (fs::exists(target_dir, ec)) {
    return Status::already_exists("cannot restore into " + target_dir + ": it exists");
  }
  if (!fs::exists(fs::path(snapshot_dir) / "CURRENT", ec)) {
    return Status::not_found("no snapshot in " + snapshot_dir);
  }
  const fs::path target(target_dir);
  const std::string staging =
      (target.parent_path() / ("." + target.filename().string() + ".restore-" + unique_token()))
          .string();
  if (!target.parent_path().empty()) fs::create_directories(target.parent_path(), ec);
  SEMID_RETURN_IF_ERROR(copy_directory_durably(snapshot_dir, staging));
  Status checked = [&]() -> Status {
    SEMID_ASSIGN_OR_RETURN(auto restored, Collection::open(staging));
    SEMID_RETURN_IF_ERROR(restored->verify());
    return restored->close();
  }();
  if (checked.is_ok()) checked = rename_durably(staging, target_dir);
  if (!checked.is_ok()) {
    remove_tree(staging);
    return checked.with_context("restoring " + snapshot_dir);
  }
  return Status::ok();
}

// ---- accessors ----------------------------------------------------------------------------------

const std::string& Collection::dir() const { return impl_->dir; }
const StoreOptions& Collection::options() const { return impl_->options; }
int Collection::dim() const { return impl_->dim; }

int Collection::levels() const {
  std::shared_lock lock(impl_->state_mutex);
  return impl_->state->codec.levels();
}

int Collection::codebook_size() const {
  std::shared_lock lock(impl_->state_mutex);
  return impl_->state->codec.codebook_size();
}

CollisionPolicy Collection::collision_policy() const { return impl_->policy; }

std::size_t Collection::size() const {
  std::shared_lock lock(impl_->state_mutex);
  return impl_->state->locations.size();
}

std::shared_ptr<const Quantizer> Collection::model() const {
  std::shared_lock lock(impl_->state_mutex);
  return impl_->state->model;
}

// ---- writes -------------------------------------------------------------------------------------

Status Collection::upsert(std::span<const std::uint64_t> ids, std::span<const float> vectors,
                          std::span<const std::string> payloads) {
  Impl& im = *impl_;
  std::lock_guard write_lock(im.write_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const std::size_t n = ids.size();
  if (n == 0 && vectors.empty() && payloads.empty()) return Status::ok();
  SEMID_RETURN_IF_ERROR(im.check_upsert(ids, vectors, payloads));

  // Encode, then place every item: writers alone change the state, so reading it here is safe.
  const State& s = *im.state;
  const auto L = static_cast<std::size_t>(s.codec.levels());
  const auto d = static_cast<std::size_t>(im.dim);
  std::vector<std::int32_t> codes(n * L);
  SEMID_RETURN_IF_ERROR(
      im.encode(n, vectors.data(), *s.model, codes.data()).with_context("upsert"));
  const std::vector<std::int32_t> natural = codes;  // codes become the SIDs to store
  auto placed = impl::place_batch(s, im.policy, ids, codes, vectors.data());
  if (!placed) return placed.status().with_context("upsert");
  std::vector<Placement>& placements = *placed;

  // One batch: old SID keys go, records and new SID keys come, the counters follow.
  rocksdb::WriteBatch batch;
  std::size_t added = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Placement& p = placements[i];
    if (!p.old) ++added;
    if (p.old && !p.keeps_place) {
      batch.Delete(im.family(kSids), State::key(p.old->sid, p.old->suffix, ids[i]));
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Placement& p = placements[i];
    const std::string_view payload = payloads.empty() ? std::string_view() : payloads[i];
    batch.Put(im.family(kItems), encode_item_key(ids[i]),
              encode_item_record({codes.data() + i * L, L}, {natural.data() + i * L, L}, p.suffix,
                                 im.next_sequence + i, vectors.subspan(i * d, d), payload));
    if (!p.keeps_place) {
      batch.Put(im.family(kSids), State::key(p.sid, p.suffix, ids[i]), rocksdb::Slice());
    }
  }
  const Counters counters{s.locations.size() + added, im.next_sequence + n};
  batch.Put(im.family(kMeta), kMetaCounters, counters.encode());
  SEMID_RETURN_IF_ERROR(im.write(batch, "upsert"));

  // Durable: now the in-memory state, all at once for readers.
  std::unique_lock state_lock(im.state_mutex);
  im.next_sequence += n;
  SEMID_RETURN_IF_ERROR(im.apply_upsert(ids, placements));
  im.publish();
  return Status::ok();
}

Status Collection::remove(std::span<const std::uint64_t> ids) {
  Impl& im = *impl_;
  std::lock_guard write_lock(im.write_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  if (ids.empty()) return Status::ok();
  SEMID_RETURN_IF_ERROR(im.validate_batch_ids(ids, "remove"));
  const State& s = *im.state;
  rocksdb::WriteBatch batch;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto found = s.locations.find(ids[i]);
    if (found == s.locations.end()) {
      return Status::not_found("remove: item " + std::to_string(ids[i]) + " (row " +
                               std::to_string(i) + ") does not exist; nothing was removed");
    }
    batch.Delete(im.family(kItems), encode_item_key(ids[i]));
    batch.Delete(im.family(kSids), State::key(found->second.sid, found->second.suffix, ids[i]));
  }
  batch.Put(im.family(kMeta), kMetaCounters,
            Counters{s.locations.size() - ids.size(), im.next_sequence}.encode());
  SEMID_RETURN_IF_ERROR(im.write(batch, "remove"));

  std::unique_lock state_lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.apply_remove(ids));
  im.publish();
  return Status::ok();
}

Status Collection::reencode(std::shared_ptr<const Quantizer> new_model) {
  Impl& im = *impl_;
  std::lock_guard write_lock(im.write_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  if (!new_model) return Status::invalid_argument("reencode: the model is null");
  if (new_model->dim() != im.dim) {
    return Status::invalid_argument("reencode: the model has dimension " +
                                    std::to_string(new_model->dim()) + "; the collection holds " +
                                    std::to_string(im.dim) + "-d vectors");
  }
  const State& old = *im.state;
  if (new_model->content_hash() == old.model->content_hash()) return Status::ok();
  SEMID_ASSIGN_OR_RETURN(std::string bytes, new_model->to_bytes());
  SEMID_ASSIGN_OR_RETURN(std::unique_ptr<State> next, impl::make_state(std::move(new_model)));
  const Quantizer& model = *next->model;

  // Every record, in insertion order (writers alone change the items family: no snapshot needed).
  struct Stored {
    std::uint64_t id;
    ItemRecord record;
  };
  std::vector<Stored> stored;
  stored.reserve(old.locations.size());
  SEMID_RETURN_IF_ERROR(
      im.for_each_record(rocksdb::ReadOptions(), [&](std::uint64_t id, ItemRecord&& record) {
        stored.push_back({id, std::move(record)});
        return Status::ok();
      }));
  std::sort(stored.begin(), stored.end(),
            [](const Stored& a, const Stored& b) { return a.record.sequence < b.record.sequence; });
  const auto d = static_cast<std::size_t>(im.dim);
  const auto L = static_cast<std::size_t>(model.levels());
  std::vector<float> x(stored.size() * d);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    std::copy(stored[i].record.vector.begin(), stored[i].record.vector.end(), x.begin() + i * d);
  }
  std::vector<std::int32_t> codes(stored.size() * L);
  SEMID_RETURN_IF_ERROR(
      im.encode(stored.size(), x.data(), model, codes.data()).with_context("reencode"));
  const std::vector<std::int32_t> natural = codes;

  // Places afresh, in insertion order, as if every item arrived anew under the collision policy.
  std::vector<std::uint64_t> ids(stored.size());
  for (std::size_t i = 0; i < stored.size(); ++i) ids[i] = stored[i].id;
  auto placed = impl::place_batch(*next, im.policy, ids, codes, x.data());
  if (!placed) return placed.status().with_context("reencode");
  x = {};
  std::vector<Entry> entries(stored.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    const Placement& p = (*placed)[i];
    entries[i] = {stored[i].record.sequence, ids[i], p.sid, p.suffix, p.relocated};
  }
  SEMID_RETURN_IF_ERROR(impl::fill_state(*next, entries));

  rocksdb::WriteBatch batch;
  for (const auto& [id, location] : old.locations) {
    batch.Delete(im.family(kSids), State::key(location.sid, location.suffix, id));
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    const ItemRecord& r = stored[i].record;
    batch.Put(im.family(kItems), encode_item_key(e.id),
              encode_item_record({codes.data() + i * L, L}, {natural.data() + i * L, L}, e.suffix,
                                 e.sequence, r.vector, r.payload));
    batch.Put(im.family(kSids), State::key(e.sid, e.suffix, e.id), rocksdb::Slice());
  }
  batch.Put(im.family(kMeta), kMetaCollection,
            encode_meta_value(collection_meta(model, im.policy).dump()));
  batch.Put(im.family(kMeta), kMetaModel, encode_meta_value(bytes));
  SEMID_RETURN_IF_ERROR(im.write(batch, "reencode"));

  std::unique_lock state_lock(im.state_mutex);
  im.release_snapshot();
  im.state = std::move(next);
  im.publish();
  return Status::ok();
}

Status Collection::flush() {
  Impl& im = *impl_;
  std::lock_guard write_lock(im.write_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  rocksdb::FlushOptions options;
  options.wait = true;
  return from_rocks(im.db()->Flush(options, im.database.families), "flush of " + im.dir);
}

Status Collection::create_snapshot(const std::string& snapshot_dir) {
  Impl& im = *impl_;
  std::lock_guard write_lock(im.write_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  std::error_code ec;
  if (fs::exists(snapshot_dir, ec)) {
    return Status::already_exists("snapshot directory " + snapshot_dir + " already exists");
  }
  const fs::path parent = fs::path(snapshot_dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  rocksdb::Checkpoint* raw = nullptr;
  SEMID_RETURN_IF_ERROR(from_rocks(rocksdb::Checkpoint::Create(im.db(), &raw), "snapshot"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  SEMID_RETURN_IF_ERROR(
      from_rocks(checkpoint->CreateCheckpoint(snapshot_dir), "snapshot to " + snapshot_dir));
  return parent.empty() ? Status::ok() : fsync_directory(parent.string());
}

// ---- reads --------------------------------------------------------------------------------------

Result<std::vector<std::optional<Item>>> Collection::get_many(
    std::span<const std::uint64_t> ids) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  if (ids.size() > im.options.max_batch_items) {
    return Status::invalid_argument("get of " + std::to_string(ids.size()) +
                                    " items exceeds StoreOptions.max_batch_items = " +
                                    std::to_string(im.options.max_batch_items));
  }
  SEMID_ASSIGN_OR_RETURN(auto records, im.read_records(ids));
  std::vector<std::optional<Item>> items(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (records[i]) items[i] = im.to_item(ids[i], std::move(*records[i]));
  }
  return items;
}

Result<Item> Collection::get(std::uint64_t id) const {
  SEMID_ASSIGN_OR_RETURN(auto items, get_many({&id, 1}));
  if (!items[0]) return Status::not_found("item " + std::to_string(id) + " does not exist");
  return std::move(*items[0]);
}

Result<std::vector<float>> Collection::reconstruct(std::uint64_t id) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto found = s.locations.find(id);
  if (found == s.locations.end())
    return Status::not_found("item " + std::to_string(id) + " does not exist");
  std::vector<float> out(static_cast<std::size_t>(im.dim));
  SEMID_RETURN_IF_ERROR(s.model->decode(1, s.unpack(found->second.sid).data(), out.data()));
  return out;
}

Result<std::vector<std::vector<SearchHit>>> Collection::search(std::size_t n,
                                                               std::span<const float> queries,
                                                               std::size_t k,
                                                               const SearchOptions& options) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto d = static_cast<std::size_t>(im.dim);
  if (queries.size() != n * d) {
    return Status::invalid_argument("search: " + std::to_string(queries.size()) + " floats for " +
                                    std::to_string(n) + " queries of dimension " +
                                    std::to_string(d));
  }
  if (k < 1) return Status::invalid_argument("search: k = 0; must be >= 1");
  SEMID_RETURN_IF_ERROR(check_finite(n, d, queries.data()).with_context("search queries"));
  SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(options.prefix).with_context("search prefix"));
  std::vector<std::vector<SearchHit>> hits(n);
  if (n == 0) return hits;

  SearchParametersRQVAE params;
  params.mode = options.mode;
  params.shortlist = options.shortlist;
  params.beam = options.beam;
  params.min_prefix = options.min_prefix;
  params.prefix = options.prefix;
  std::vector<idx_t> allowed;
  std::optional<faiss::IDSelectorBatch> selector;
  if (options.allowed_ids) {
    allowed.assign(options.allowed_ids->begin(), options.allowed_ids->end());
    selector.emplace(allowed.size(), allowed.data());
    params.sel = &*selector;
  }
  const std::size_t kk = std::max(k, options.rerank);
  std::vector<float> distances(n * kk);
  std::vector<idx_t> labels(n * kk);
  try {
    s.index->search(static_cast<idx_t>(n), queries.data(), static_cast<idx_t>(kk), distances.data(),
                    labels.data(), &params);
  } catch (const faiss::FaissException& e) {
    return Status::invalid_argument(std::string("search: ") + e.what());
  }
  for (std::size_t q = 0; q < n; ++q) {
    for (std::size_t r = 0; r < kk && labels[q * kk + r] >= 0; ++r) {
      hits[q].push_back({static_cast<std::uint64_t>(labels[q * kk + r]), distances[q * kk + r]});
    }
  }
  if (options.rerank == 0) return hits;

  // Re-score each query's candidates against their stored original vectors.
  const bool cosine = s.model->metric() == Metric::kCosine;
  std::vector<float> query(d);
  for (std::size_t q = 0; q < n; ++q) {
    auto& list = hits[q];
    std::vector<std::uint64_t> ids;
    for (const SearchHit& hit : list) ids.push_back(hit.id);
    SEMID_ASSIGN_OR_RETURN(auto records, im.read_records(ids));
    std::copy_n(queries.data() + q * d, d, query.data());
    if (cosine) faiss::fvec_renorm_L2(d, 1, query.data());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (!records[i])
        return Status::corruption("search: item " + std::to_string(ids[i]) +
                                  " is in the index, not in the store");
      std::vector<float>& v = records[i]->vector;
      if (cosine) {
        faiss::fvec_renorm_L2(d, 1, v.data());
        list[i].distance = faiss::fvec_inner_product(query.data(), v.data(), d);
      } else {
        list[i].distance = faiss::fvec_L2sqr(query.data(), v.data(), d);
      }
    }
    std::sort(list.begin(), list.end(), [cosine](const SearchHit& a, const SearchHit& b) {
      if (a.distance != b.distance)
        return cosine ? a.distance > b.distance : a.distance < b.distance;
      return a.id < b.id;
    });
    if (list.size() > k) list.resize(k);
  }
  return hits;
}

Result<ScanPage> Collection::prefix_scan(std::span<const std::int32_t> prefix,
                                         std::string_view cursor, std::size_t limit) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(prefix).with_context("prefix scan"));
  if (limit < 1 || limit > kMaxScanLimit) {
    return Status::invalid_argument("prefix scan: limit = " + std::to_string(limit) +
                                    " outside [1, " + std::to_string(kMaxScanLimit) + "]");
  }
  SEMID_ASSIGN_OR_RETURN(const std::string lower, s.codec.encode_prefix(prefix));
  const std::string upper = prefix_successor(lower);
  std::string start = lower;
  if (!cursor.empty()) {
    auto key = unhex(cursor);
    if (!key || key->size() != s.codec.key_bytes() || key->compare(0, lower.size(), lower) != 0 ||
        !s.codec.decode_key(*key).is_ok()) {
      return Status::invalid_argument("prefix scan: '" + std::string(cursor.substr(0, 80)) +
                                      "' is not a cursor of prefix " + sid_text(prefix));
    }
    start = std::move(*key);
  }
  rocksdb::ReadOptions ro = im.read_options();
  const rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(im.db()->NewIterator(ro, im.family(kSids)));
  it->Seek(start);
  if (!cursor.empty() && it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  ScanPage page;
  std::string last;
  for (; it->Valid() && page.items.size() < limit; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    auto decoded = s.codec.decode_key(key);
    if (!decoded)
      return Status::corruption("prefix scan: malformed sids key: " + decoded.status().message());
    page.items.push_back({decoded->item_id, std::move(decoded->codes), decoded->collision_suffix});
    last.assign(key);
  }
  SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "prefix scan"));
  if (it->Valid()) page.next_cursor = hex(last);
  return page;
}

Result<std::vector<std::vector<SidTrie::Child>>> Collection::next_tokens(
    const std::vector<std::vector<std::int32_t>>& prefixes) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(prefixes[i])
                              .with_context("next tokens: prefix " + std::to_string(i)));
  }
  std::vector<std::vector<SidTrie::Child>> out;
  out.reserve(prefixes.size());
  for (const auto& prefix : prefixes) {
    SEMID_ASSIGN_OR_RETURN(auto children, s.trie.children(prefix));
    out.push_back(std::move(children));
  }
  return out;
}

Result<std::uint64_t> Collection::count(std::span<const std::int32_t> prefix) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  SEMID_RETURN_IF_ERROR(im.state->codec.validate_prefix(prefix).with_context("count"));
  return im.state->trie.count(prefix);
}

Result<Item> Collection::resolve(std::span<const std::int32_t> semantic_id) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto L = static_cast<std::size_t>(s.codec.levels());
  if (semantic_id.size() != L + 1) {
    return Status::invalid_argument("resolve: a semantic ID has " + std::to_string(L) +
                                    " codes and a collision suffix; got " +
                                    std::to_string(semantic_id.size()) + " values");
  }
  SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(semantic_id.first(L)).with_context("resolve"));
  const std::int32_t suffix = semantic_id[L];
  if (suffix < 0 || static_cast<std::uint32_t>(suffix) > kMaxSuffix) {
    return Status::invalid_argument("resolve: collision suffix " + std::to_string(suffix) +
                                    " outside [0, 65535]");
  }
  SEMID_ASSIGN_OR_RETURN(std::string place, s.codec.encode_prefix(semantic_id.first(L)));
  place.push_back(static_cast<char>(suffix >> 8));
  place.push_back(static_cast<char>(suffix & 0xff));
  std::unique_ptr<rocksdb::Iterator> it(im.db()->NewIterator(im.read_options(), im.family(kSids)));
  it->Seek(place);
  SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "resolve"));
  if (!it->Valid() || !it->key().starts_with(place)) {
    return Status::not_found("no item has semantic ID " + sid_text(semantic_id));
  }
  SEMID_ASSIGN_OR_RETURN(SidKey key,
                         s.codec.decode_key(std::string_view(it->key().data(), it->key().size())));
  SEMID_ASSIGN_OR_RETURN(auto records, im.read_records({&key.item_id, 1}));
  if (!records[0]) {
    return Status::corruption("resolve: item " + std::to_string(key.item_id) +
                              " has a sids key and no record");
  }
  return im.to_item(key.item_id, std::move(*records[0]));
}

Status Collection::verify() const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  return im.check_agreement(/*check_items=*/true);
}

nlohmann::json CollectionStats::to_json() const {
  return {{"items", items},
          {"dim", dim},
          {"levels", levels},
          {"codebook_size", codebook_size},
          {"model", {{"kind", model_kind}, {"content_hash", model_hash}}},
          {"disk_bytes", disk_bytes},
          {"sst_bytes", sst_bytes},
          {"memtable_bytes", memtable_bytes},
          {"memory", {{"index_code_bytes", index_code_bytes}, {"trie_bytes", trie_bytes}}},
          {"codes", codes.to_json()},
          {"collision_groups", collision_groups},
          {"max_collision_suffix", max_collision_suffix},
          {"collision_policy", collision_policy_name(collision_policy)},
          {"relocated_items", relocated_items}};
}

Result<CollectionStats> Collection::stats() const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  CollectionStats stats;
  stats.items = s.locations.size();
  stats.dim = im.dim;
  stats.levels = s.codec.levels();
  stats.codebook_size = s.codec.codebook_size();
  stats.model_kind = s.model->kind();
  stats.model_hash = s.model->content_hash();
  SEMID_ASSIGN_OR_RETURN(stats.disk_bytes, directory_bytes(im.dir));
  for (Family f : {kItems, kSids, kMeta}) {
    std::uint64_t value = 0;
    if (im.db()->GetIntProperty(im.family(f), "rocksdb.live-sst-files-size", &value))
      stats.sst_bytes += value;
    if (im.db()->GetIntProperty(im.family(f), "rocksdb.cur-size-all-mem-tables", &value))
      stats.memtable_bytes += value;
  }
  stats.index_code_bytes = s.index->codes.size();
  stats.trie_bytes = s.trie.memory_bytes();
  stats.max_collision_suffix = s.suffixes.empty() ? 0 : s.suffixes.rbegin()->first;
  stats.relocated_items = s.relocated;
  stats.collision_policy = im.policy;
  stats.codes = s.counts.health();
  stats.collision_groups = s.counts.collision_groups();
  return stats;
}

}  // namespace semid::storage
