// storage::CollectionManager: the named collections of one data directory.
//
// Layout:
//   <data_dir>/collections/<name>/             one Collection (a RocksDB database) per name
//   <data_dir>/snapshots/<name>/<snapshot>/    RocksDB checkpoints of that collection
// Names: 1 to 64 characters of [A-Za-z0-9_-], starting with a letter or digit. Entries starting
// with '.' are the manager's staging and trash directories: creation builds a collection in
// `.<name>.create-*` and renames it into place, dropping renames it to `.<name>.drop-*` before
// removing it, so a crash never leaves a half-made or half-dropped collection under its name.
// A restore first builds a verified copy in `.<name>.restore-*`, then swaps it in. open() clears
// the leftovers, and completes a restore that a crash interrupted between the two renames.
//
// Each collection is opened at most once per manager and shared: get() returns the same
// Collection to every caller until drop(). Another process opening the same collection gets Busy
// (RocksDB's lock).
//
// Thread safety: every method may be called from any thread (one mutex over the name table;
// collections synchronise themselves).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "index/quantizer.h"
#include "index/status.h"
#include "storage/collection.h"
#include "storage/options.h"

namespace semid::storage {

class CollectionManager {
 public:
  // Opens (creating when missing) the data directory; `options` apply to every collection.
  static Result<std::unique_ptr<CollectionManager>> open(const std::string& data_dir,
                                                         const StoreOptions& options = {});

  // InvalidArgument naming the rule a collection name breaks.
  static Status validate_name(const std::string& name);

  const std::string& data_dir() const { return data_dir_; }
  const StoreOptions& options() const { return options_; }

  // Creates collection `name` for `model` with a collision policy (collection.h). AlreadyExists
  // when it exists.
  Result<std::shared_ptr<Collection>> create(const std::string& name,
                                             std::shared_ptr<const Quantizer> model,
                                             CollisionPolicy policy = CollisionPolicy::kSuffix);
  // Opens collection `name` (or returns the open one). With `expected_model`, its hash must match
  // the stored model's (FailedPrecondition otherwise). NotFound when there is no such collection.
  Result<std::shared_ptr<Collection>> get(
      const std::string& name, std::shared_ptr<const Quantizer> expected_model = nullptr);
  bool exists(const std::string& name) const;
  // Collection names, sorted.
  Result<std::vector<std::string>> list() const;
  // Closes and deletes collection `name` and its snapshots. Holders of the Collection get
  // FailedPrecondition ("closed") from then on. NotFound when absent.
  Status drop(const std::string& name);

  // Takes a snapshot of `name`; returns its id (UTC time "YYYYMMDDTHHMMSS.mmmZ", made unique).
  Result<std::string> create_snapshot(const std::string& name);
  // Snapshot ids of `name`, oldest first.
  Result<std::vector<std::string>> list_snapshots(const std::string& name) const;
  // Replaces collection `name` (which may exist or not) by snapshot `snapshot` of it. The open
  // Collection, if any, is closed first (its holders get FailedPrecondition). The new state is
  // verified before it replaces the old one.
  Status restore_snapshot(const std::string& name, const std::string& snapshot);
  // Deletes one snapshot.
  Status drop_snapshot(const std::string& name, const std::string& snapshot);

  // Closes every open collection.
  Status close_all();

 private:
  CollectionManager(std::string data_dir, StoreOptions options)
      : data_dir_(std::move(data_dir)), options_(options) {}
  std::string collection_dir(const std::string& name) const;
  std::string snapshot_root(const std::string& name) const;
  Status close_locked(const std::string& name);

  std::string data_dir_;
  StoreOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Collection>> open_;
};

}  // namespace semid::storage
