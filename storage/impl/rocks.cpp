#include "storage/impl/rocks.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

namespace semid::storage::impl {

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

Status Database::close() {
  if (!db) return Status::ok();
  for (auto* handle : families) db->DestroyColumnFamilyHandle(handle);
  families.clear();
  const rocksdb::Status s = db->Close();
  delete db;
  db = nullptr;
  return from_rocks(s, "closing the collection");
}

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

}  // namespace semid::storage::impl
