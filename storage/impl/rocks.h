// RocksDB as a collection uses it: the column families and their options, an open database, and
// RocksDB's statuses as semid's.
#pragma once

#include <rocksdb/cache.h>
#include <rocksdb/db.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "index/status.h"
#include "storage/options.h"

namespace semid::storage::impl {

// Column families, in the order their handles are kept ("default" is RocksDB's own, unused).
enum Family : std::size_t { kDefault = 0, kItems = 1, kSids = 2, kMeta = 3 };
inline constexpr const char* kFamilyNames[] = {"default", "items", "sids", "meta"};
inline constexpr std::size_t kFamilies = 4;

// `s` as a Status with `context` in front: NotFound, Corruption, InvalidArgument, Busy (also for
// the LOCK another process holds), IOError for the rest.
Status from_rocks(const rocksdb::Status& s, const std::string& context);

// The options of one column family: `point_lookups` adds a Bloom filter (the items family).
rocksdb::ColumnFamilyOptions family_options(const StoreOptions& options,
                                            const std::shared_ptr<rocksdb::Cache>& cache,
                                            bool point_lookups);
rocksdb::DBOptions db_options(bool create);

// An open database and its column families.
struct Database {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> families;

  Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database() { static_cast<void>(close()); }  // callers that need the result close() first

  // Destroys the family handles and closes the database (OK when not open).
  Status close();
};

// Opens (or with `create`, creates) the database in `dir` with every family.
Status open_database(const std::string& dir, const StoreOptions& options, bool create,
                     const std::shared_ptr<rocksdb::Cache>& cache, Database* out);

}  // namespace semid::storage::impl
