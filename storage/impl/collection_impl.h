// Collection::Impl: what the collection rooms share. collection_open.cpp creates, opens and closes
// a collection; collection_write.cpp changes it; collection_read.cpp answers reads;
// collection_verify.cpp checks that memory and disk agree.
#pragma once

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "storage/collection.h"
#include "storage/impl/placement.h"
#include "storage/impl/rocks.h"
#include "storage/impl/state.h"
#include "storage/record.h"

namespace semid::storage {
namespace impl {

// The largest collision suffix (2 bytes).
inline constexpr std::uint32_t kMaxSuffix = 65535;

inline constexpr const char* kMetaCollection = "collection";
inline constexpr const char* kMetaModel = "model";
inline constexpr const char* kMetaCounters = "counters";

// Items listed per trie page when the trie is checked against RocksDB.
inline constexpr std::size_t kCheckPage = 65536;

// The model stored in a collection's metadata, parsed back into its kind.
Result<std::shared_ptr<const Quantizer>> model_from_bytes(std::string bytes);
// The 'collection' metadata: schema version, policy, shape and the model's identity.
nlohmann::json collection_meta(const Quantizer& model, CollisionPolicy policy);

struct Counters {
  std::uint64_t items = 0;
  std::uint64_t next_sequence = 0;
  std::string encode() const {
    return encode_meta_value(
        nlohmann::json{{"items", items}, {"next_sequence", next_sequence}}.dump());
  }
};

}  // namespace impl

using impl::Counters;
using impl::Database;
using impl::Entry;
using impl::Family;
using impl::from_rocks;
using impl::kItems;
using impl::kMeta;
using impl::kMetaCollection;
using impl::kMetaCounters;
using impl::kMetaModel;
using impl::kSids;
using impl::Location;
using impl::open_database;
using impl::Placement;
using impl::State;

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

}  // namespace semid::storage
