// Writes: upserts (with the collision policy's placement), removes, re-encoding with a new model,
// flushing and snapshots. Each batch is durable in RocksDB before memory changes.
#include <faiss/impl/FaissException.h>
#include <rocksdb/utilities/checkpoint.h>

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "storage/dir_util.h"
#include "storage/impl/collection_impl.h"

namespace semid::storage {

namespace fs = std::filesystem;
using idx_t = faiss::Index::idx_t;
using impl::collection_meta;
using impl::kMaxSuffix;

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
  // A re-upserted item leaves and comes back with its new place: O(levels) each.
  std::vector<std::uint64_t> moved;
  std::vector<Location> places;
  places.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    Placement& p = placements[i];
    if (p.old) moved.push_back(ids[i]);
    places.push_back(Location{std::move(p.sid), p.suffix, p.relocated});
  }
  const Status status = state->refile(moved, ids, std::move(places));
  if (!status.is_ok()) return mark_broken("upsert: " + status.to_string());
  return Status::ok();
}

Status Collection::Impl::apply_remove(std::span<const std::uint64_t> ids) {
  const Status status = state->refile(ids, {}, {});
  if (!status.is_ok()) return mark_broken("remove: " + status.to_string());
  return Status::ok();
}

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
  SEMID_ASSIGN_OR_RETURN(
      std::unique_ptr<State> next,
      impl::make_state(std::move(new_model), im.options.reconstruction_cache_bytes));
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

}  // namespace semid::storage
