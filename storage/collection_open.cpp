// Creating, opening, closing and restoring a collection, and loading its state from RocksDB.
#include <algorithm>
#include <filesystem>

#include "storage/dir_util.h"
#include "storage/impl/collection_impl.h"

namespace semid::storage {
namespace impl {

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

}  // namespace impl

namespace fs = std::filesystem;
using impl::collection_meta;
using impl::model_from_bytes;

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
  SEMID_ASSIGN_OR_RETURN(state,
                         impl::make_state(std::move(model), options.reconstruction_cache_bytes));

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

Collection::Collection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Callers that need the result call close() first.
Collection::~Collection() { static_cast<void>(close()); }

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
  // The model must fit an index (a probe without a cache).
  SEMID_ASSIGN_OR_RETURN(auto probe, impl::make_state(model, 0));
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
    return with_cleanup(checked, remove_tree(staging)).with_context("restoring " + snapshot_dir);
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

}  // namespace semid::storage
