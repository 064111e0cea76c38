#include "storage/collection_manager.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "storage/dir_util.h"

namespace semid::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxNameLength = 64;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// The collections under `dir` (collection_names) or its snapshots: staging and trash entries
// (leading '.') are skipped, and so, under collections/, are names outside the naming rule (a file
// system's lost+found). Every other entry must be a directory (Corruption naming it otherwise: a
// collection replaced by a file is damage, not absence).
Result<std::vector<std::string>> named_entries(const fs::path& dir, bool collection_names) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (collection_names && !CollectionManager::validate_name(name).is_ok()) continue;
    std::error_code type_ec;
    if (!entry.is_directory(type_ec)) {
      return Status::corruption(entry.path().string() +
                                " is not a directory: a collection or snapshot must be one");
    }
    names.push_back(name);
  }
  if (ec) return Status::io_error("cannot list " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[80];
  std::snprintf(buffer, sizeof buffer, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buffer;
}

// Snapshot ids are made here ("YYYYMMDDTHHMMSS.mmmZ[-n]"); a given one must stay inside its folder.
Status validate_snapshot_id(const std::string& id) {
  const bool ok =
      !id.empty() && id.size() <= kMaxNameLength && id[0] != '.' &&
      std::all_of(id.begin(), id.end(), [](char c) { return is_name_char(c) || c == '.'; });
  if (ok) return Status::ok();
  return Status::invalid_argument("snapshot id '" + id + "' is not valid");
}

// A leftover `.<name>.restore-<token>` holds a verified restored copy: when a crash came between
// moving the old collection away and moving the copy in, the copy becomes the collection.
// Returns the name to restore to, or "" for a leftover to delete.
std::string pending_restore(const std::string& entry) {
  const std::size_t marker = entry.find(".restore-");
  if (entry.size() < 2 || entry[0] != '.' || marker == std::string::npos) return "";
  std::string name = entry.substr(1, marker - 1);
  const std::string token = entry.substr(marker + 9);
  if (!CollectionManager::validate_name(name).is_ok() || token.find('.') != std::string::npos)
    return "";
  return name;
}

// Renames `dir` to a trash name beside it, then removes it: the name disappears atomically.
Status remove_durably(const fs::path& dir) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "." + string + ...
  std::string trash_name = ".";
  trash_name.append(dir.filename().string()).append(".drop-").append(unique_token());
  const fs::path trash = dir.parent_path() / trash_name;
  SEMID_RETURN_IF_ERROR(rename_durably(dir.string(), trash.string()));
  return remove_tree(trash.string());
}

}  // namespace

Status CollectionManager::validate_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return Status::invalid_argument("collection name '" + name + "' must have 1 to 64 characters");
  }
  if (!std::all_of(name.begin(), name.end(), is_name_char) || name[0] == '-' || name[0] == '_') {
    return Status::invalid_argument("collection name '" + name +
                                    "' may only hold letters, digits, '_' and '-', and must start "
                                    "with a letter or digit");
  }
  return Status::ok();
}

Result<std::unique_ptr<CollectionManager>> CollectionManager::open(const std::string& data_dir,
                                                                   const StoreOptions& options) {
  SEMID_RETURN_IF_ERROR(options.validate());
  std::error_code ec;
  for (const char* sub : {"collections", "snapshots"}) {
    fs::create_directories(fs::path(data_dir) / sub, ec);
    if (ec)
      return Status::io_error("cannot create " + (fs::path(data_dir) / sub).string() + ": " +
                              ec.message());
  }
  // Leftovers of a crash while creating, dropping or restoring.
  const fs::path collections = fs::path(data_dir) / "collections";
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(collections, ec)) {
    if (entry.path().filename().string().starts_with(".")) leftovers.push_back(entry.path());
  }
  if (ec) return Status::io_error("cannot list " + collections.string() + ": " + ec.message());
  for (const fs::path& leftover : leftovers) {
    const std::string name = pending_restore(leftover.filename().string());
    if (!name.empty() && !fs::exists(collections / name, ec)) {
      SEMID_RETURN_IF_ERROR(rename_durably(leftover.string(), (collections / name).string()));
    } else {
      SEMID_RETURN_IF_ERROR(remove_tree(leftover.string()));
    }
  }
  return std::unique_ptr<CollectionManager>(new CollectionManager(data_dir, options));
}

std::string CollectionManager::collection_dir(const std::string& name) const {
  return (fs::path(data_dir_) / "collections" / name).string();
}

std::string CollectionManager::snapshot_root(const std::string& name) const {
  return (fs::path(data_dir_) / "snapshots" / name).string();
}

Result<std::shared_ptr<Collection>> CollectionManager::create(
    const std::string& name, std::shared_ptr<const Quantizer> model, CollisionPolicy policy) {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  std::lock_guard lock(mutex_);
  const std::string dir = collection_dir(name);
  std::error_code ec;
  if (fs::exists(dir, ec))
    return Status::already_exists("collection '" + name + "' already exists");
  const std::string staging =
      (fs::path(data_dir_) / "collections" / ("." + name + ".create-" + unique_token())).string();
  {
    auto created = Collection::create(staging, model, options_, policy);
    if (!created) {
      return with_cleanup(created.status(), remove_tree(staging))
          .with_context("creating collection '" + name + "'");
    }
    SEMID_RETURN_IF_ERROR((*created)->close());
  }
  Status moved = rename_durably(staging, dir);
  if (!moved.is_ok()) return with_cleanup(moved, remove_tree(staging));
  SEMID_ASSIGN_OR_RETURN(auto opened, Collection::open(dir, options_, std::move(model)));
  std::shared_ptr<Collection> collection(std::move(opened));
  open_[name] = collection;
  return collection;
}

Result<std::shared_ptr<Collection>> CollectionManager::get(
    const std::string& name, std::shared_ptr<const Quantizer> expected_model) {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  std::lock_guard lock(mutex_);
  if (auto found = open_.find(name); found != open_.end()) {
    const auto& collection = found->second;
    if (expected_model && expected_model->content_hash() != collection->model()->content_hash()) {
      return Status::failed_precondition("collection '" + name + "' was encoded with model " +
                                         collection->model()->content_hash() + ", not with model " +
                                         expected_model->content_hash() +
                                         " given now; re-encode it instead");
    }
    return collection;
  }
  const std::string dir = collection_dir(name);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::not_found("no collection named '" + name + "'");
  auto opened = Collection::open(dir, options_, std::move(expected_model));
  if (!opened) return opened.status().with_context("opening collection '" + name + "'");
  std::shared_ptr<Collection> collection(std::move(opened).value());
  open_[name] = collection;
  return collection;
}

bool CollectionManager::exists(const std::string& name) const {
  if (!validate_name(name).is_ok()) return false;
  std::error_code ec;
  return fs::exists(collection_dir(name), ec);
}

Result<std::vector<std::string>> CollectionManager::list() const {
  std::lock_guard lock(mutex_);
  return named_entries(fs::path(data_dir_) / "collections", /*collection_names=*/true);
}

Status CollectionManager::close_locked(const std::string& name) {
  auto found = open_.find(name);
  if (found == open_.end()) return Status::ok();
  Status closed = found->second->close();
  open_.erase(found);
  return closed;
}

Status CollectionManager::drop(const std::string& name) {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  std::lock_guard lock(mutex_);
  const std::string dir = collection_dir(name);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::not_found("no collection named '" + name + "'");
  SEMID_RETURN_IF_ERROR(close_locked(name));
  SEMID_RETURN_IF_ERROR(remove_durably(dir));
  if (fs::exists(snapshot_root(name), ec))
    SEMID_RETURN_IF_ERROR(remove_durably(snapshot_root(name)));
  return Status::ok();
}

Result<std::string> CollectionManager::create_snapshot(const std::string& name) {
  SEMID_ASSIGN_OR_RETURN(auto collection, get(name));
  // Not under mutex_: a checkpoint may take a while, and other collections must not wait. Two
  // snapshots in one millisecond get "-1", "-2", ... (the collection serialises them).
  const fs::path root = snapshot_root(name);
  const std::string stamp = utc_timestamp();
  for (int n = 0; n < 100; ++n) {
    const std::string id = n == 0 ? stamp : stamp + "-" + std::to_string(n);
    const Status status = collection->create_snapshot((root / id).string());
    if (status.code() != Status::Code::kAlreadyExists) {
      if (!status.is_ok()) return status.with_context("snapshot of '" + name + "'");
      return id;
    }
  }
  return Status::busy("too many snapshots of '" + name + "' at " + stamp);
}

Result<std::vector<std::string>> CollectionManager::list_snapshots(const std::string& name) const {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  std::lock_guard lock(mutex_);
  SEMID_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                         named_entries(snapshot_root(name), /*collection_names=*/false));
  // RocksDB builds a checkpoint in "<id>.tmp" and renames it: such an entry is not (yet) one.
  std::erase_if(ids, [](const std::string& id) { return id.ends_with(".tmp"); });
  return ids;
}

Status CollectionManager::restore_snapshot(const std::string& name, const std::string& snapshot) {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  SEMID_RETURN_IF_ERROR(validate_snapshot_id(snapshot));
  std::lock_guard lock(mutex_);
  const std::string source = (fs::path(snapshot_root(name)) / snapshot).string();
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    return Status::not_found("collection '" + name + "' has no snapshot '" + snapshot + "'");
  }
  // Verified copy beside the collection first; only then does it replace the current one.
  const fs::path staging =
      fs::path(data_dir_) / "collections" / ("." + name + ".restore-" + unique_token());
  SEMID_RETURN_IF_ERROR(Collection::restore_snapshot(source, staging.string()));
  SEMID_RETURN_IF_ERROR(close_locked(name));
  const std::string dir = collection_dir(name);
  if (fs::exists(dir, ec)) {
    const fs::path trash =
        fs::path(data_dir_) / "collections" / ("." + name + ".drop-" + unique_token());
    SEMID_RETURN_IF_ERROR(rename_durably(dir, trash.string()));
    Status placed = rename_durably(staging.string(), dir);
    if (!placed.is_ok()) return with_cleanup(placed, rename_durably(trash.string(), dir));
    return remove_tree(trash.string());
  }
  return rename_durably(staging.string(), dir);
}

Status CollectionManager::drop_snapshot(const std::string& name, const std::string& snapshot) {
  SEMID_RETURN_IF_ERROR(validate_name(name));
  SEMID_RETURN_IF_ERROR(validate_snapshot_id(snapshot));
  std::lock_guard lock(mutex_);
  const fs::path dir = fs::path(snapshot_root(name)) / snapshot;
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return Status::not_found("collection '" + name + "' has no snapshot '" + snapshot + "'");
  }
  return remove_durably(dir);
}

Status CollectionManager::close_all() {
  std::lock_guard lock(mutex_);
  Status first = Status::ok();
  for (auto& [name, collection] : open_) {
    Status closed = collection->close();
    if (first.is_ok()) first = closed;
  }
  open_.clear();
  return first;
}

}  // namespace semid::storage
