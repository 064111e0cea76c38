// StoreOptions: how a storage::Collection (and a CollectionManager's collections) behave on disk.
//
// Every field states its default and what it costs or buys in crash safety and speed. Options are
// validated once, when a collection is created or opened (InvalidArgument naming the field).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "index/status.h"

namespace semid::storage {

struct StoreOptions {
  // fsync the write-ahead log at the end of every write batch (upsert, remove, reencode) before the
  // call returns. true: an acknowledged write survives power loss and OS crashes, at the price of
  // one fsync per batch. false: an acknowledged write is in the WAL (in the OS page cache) and
  // survives a crash of the process (SIGKILL, abort), not of the machine. The WAL is always on.
  // Default: false.
  bool sync = false;
  // Most items one upsert or remove may carry; bounds a batch's memory and its single RocksDB
  // WriteBatch. Range [1, 10,000,000]. Default: 100,000.
  std::size_t max_batch_items = 100000;
  // Largest payload of one item, in bytes of JSON text. Range [0, 64 MiB]. Default: 1 MiB.
  std::size_t max_payload_bytes = std::size_t{1} << 20;
  // Vectors per model call when a batch (or reencode) is encoded. Small chunks keep the encoder's
  // activations in cache: the default RQ-VAE on GloVe encoded ~160k items/s in chunks of 256,
  // ~85k in chunks of 8192 (benchmarks/bench_storage, 1 thread). Range [1, 1,048,576].
  // Default: 256.
  std::size_t encode_chunk = 256;
  // RocksDB memtable size (write_buffer_size) of each column family: larger means fewer, bigger
  // flushes and a longer WAL replay after a crash. Range [1 MiB, 4 GiB]. Default: 64 MiB.
  std::size_t write_buffer_bytes = std::size_t{64} << 20;
  // LRU block cache shared by the column families (reads of items and SID keys); 0 disables it.
  // Range [0, 1 TiB]. Default: 32 MiB.
  std::size_t block_cache_bytes = std::size_t{32} << 20;
  // Memory for the search rerank's decoded reconstructions, cached by SID (IndexRQVAE's
  // set_reconstruction_cache_bytes; 5/4 slots per item, rounded up to a power of two, within it);
  // 0 disables the cache. Results are the same either way.
  // Range [0, 1 TiB]. Default: 256 MiB (IndexRQVAE::kDefaultReconstructionCacheBytes).
  std::size_t reconstruction_cache_bytes = std::size_t{256} << 20;

  // InvalidArgument naming the first field outside its range.
  Status validate() const;
};

// How a collection makes every stored SID unique; chosen when the collection is created and stored
// with it (collection.h has the rules).
//  kSuffix (default): TIGER's collision suffix, an extra code 0, 1, 2... per SID.
//  kRelocate: a colliding newcomer takes the nearest free SID of L codes (index/relocate.h); the
//    suffix is used only where no free SID is near enough (a full neighbourhood).
enum class CollisionPolicy { kSuffix, kRelocate };

// "suffix" or "relocate".
const char* collision_policy_name(CollisionPolicy policy);
// InvalidArgument naming the accepted names otherwise.
Result<CollisionPolicy> parse_collision_policy(std::string_view name);

}  // namespace semid::storage
