// Api: semid's HTTP API as one pure function, handle(request) -> response, over the collections
// of a storage::CollectionManager. No sockets and no threads of its own: Server (server.h) calls
// it on its worker pool, tests call it directly.
//
// Endpoints (README "HTTP API" documents each body and result):
//   GET    /healthz  /readyz  /metrics
//   GET    /v1/collections                                   list
//   PUT    /v1/collections/{name}                            create (model file or training)
//   GET    /v1/collections/{name}                            describe (config, size, code health)
//   DELETE /v1/collections/{name}                            delete
//   PUT    /v1/collections/{name}/items                      batch upsert, per-item errors
//   POST   /v1/collections/{name}/items/retrieve             get many
//   POST   /v1/collections/{name}/items/delete               delete many
//   GET    /v1/collections/{name}/items/{id}                 get one
//   DELETE /v1/collections/{name}/items/{id}                 delete one
//   GET    /v1/collections/{name}/items/{id}/sid             its semantic ID
//   GET    /v1/collections/{name}/items/{id}/reconstruction  its SID decoded
//   POST   /v1/collections/{name}/items/{id}/similar         items similar to it
//   POST   /v1/collections/{name}/search                     one or many queries
//   POST   /v1/collections/{name}/encode                     vector(s) -> SID(s), not stored
//   POST   /v1/collections/{name}/trie/next                  next tokens under prefix(es)
//   POST   /v1/collections/{name}/trie/items                 items under a prefix, paged
//   POST   /v1/collections/{name}/trie/resolve               full SID (+ suffix) -> item
//   POST   /v1/collections/{name}/snapshots                  create a snapshot
//   GET    /v1/collections/{name}/snapshots                  list snapshots
//   POST   /v1/collections/{name}/snapshots/{snapshot}/restore
//   DELETE /v1/collections/{name}/snapshots/{snapshot}
//
// Envelope: {"result": ..., "time": seconds} (200, or 201 for a created collection or snapshot).
// Errors: {"error": {"code": "...", "message": "..."}}:
//   400 invalid_json (malformed, nested deeper than max_json_depth), invalid_field (missing,
//       unknown or wrongly typed field or query parameter), wrong_dimension, invalid_number (a
//       vector value beyond float range; JSON itself has no NaN/Inf and overflowing literals are
//       malformed JSON);
//   401 unauthorized (a key is configured and none was sent); 403 forbidden (a wrong key),
//       read_only (the read-only key on a write); 404 not_found; 405 method_not_allowed (with an
//       Allow header); 409 already_exists / failed_precondition; 415 unsupported_media_type (a
//       POST/PUT body that is not application/json);
//   422 invalid_value: well-formed and well-typed but semantically invalid: a number out of its
//       range (k, limit, id above 2^63 - 1, a code >= K, a prefix longer than L), too many items
//       or queries, an unknown mode or kind, a collection name breaking the naming rule, a bad
//       cursor, a model or data file that cannot be read, a training configuration that does not
//       validate, an option combination the index refuses;
//   503 starting / draining (readiness), busy (the store is locked); 500 only for internal I/O
//       failures (corruption, RocksDB errors), which are also logged.
//
// Auth: when api_key or read_only_key is set, every route except /healthz and /readyz needs a
// key, in the `api-key` header (as Qdrant) or `Authorization: Bearer <key>`. The api key may do
// everything; the read-only key may GET and call the read-only POSTs (retrieve, similar, search,
// encode, trie/*). Keys are compared through SHA-256 digests with CRYPTO_memcmp (constant time
// whatever the lengths) and never logged.
//
// Readiness: /v1 routes answer 503 until set_readiness(kReady) and again after
// set_readiness(kDraining); /healthz is always 200; /readyz is 200 only while ready.
//
// Observability: every request is counted in metrics() under its route *pattern* (404s under
// "unmatched"), and logged at info level (method, route, status, milliseconds) when access_log is
// on. /metrics adds per-collection gauges: items, per-level used fraction, collision rate, disk
// bytes.
//
// Thread safety: handle() may run on many threads at once; set_readiness() from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "http/http_types.h"
#include "http/metrics.h"
#include "index/status.h"
#include "storage/collection_manager.h"

namespace semid::http {

struct ApiOptions {
  // Key that may call every endpoint. Empty: no key is needed (unless read_only_key is set, which
  // then makes the server read-only). Never logged. Default: "" (open).
  std::string api_key;
  // Key that may only read (see the header comment). Must differ from api_key. Default: "".
  std::string read_only_key;
  // Most items in one upsert, ids in one retrieve or delete, and ids in a search's id filter.
  // Range [1, 10,000,000]. Default: 10,000.
  std::size_t max_batch_items = 10000;
  // Most query vectors in one search or encode, and prefixes in one trie/next call.
  // Range [1, 1,000,000]. Default: 1,000.
  std::size_t max_queries = 1000;
  // Largest k of a search. A search also needs queries * max(k, rerank) <= max_queries * max_k.
  // Range [1, 1,000,000]. Default: 1,000.
  std::size_t max_k = 1000;
  // Largest page of trie/items. Range [1, storage::kMaxScanLimit]. Default: 10,000.
  std::size_t max_page = 10000;
  // Largest shortlist and rerank of a search (CPU per query). Range [1, 10,000,000].
  // Default: 100,000.
  std::size_t max_candidates = 100000;
  // Deepest nesting of arrays and objects in a body (and in a stored payload that is returned);
  // bounds the recursion of JSON serialisation. Range [4, 1000]. Default: 64.
  int max_json_depth = 64;
  // Largest answer body. An answer is counted while it is built, so one that would pass the limit
  // fails before it is fetched or built (422 response_too_large, naming the limit and how to ask
  // for less), and trie/items cuts its page short with a cursor instead. Range [1 KiB, 16 GiB].
  // Default: 32 MiB.
  std::size_t max_response_bytes = std::size_t{32} << 20;
  // One info line per request: method, route pattern, status, latency. Default: true.
  bool access_log = true;

  // InvalidArgument naming the first field outside its range (keys are not named by value).
  Status validate() const;
};

enum class Readiness { kStarting, kReady, kDraining };

class Api {
 public:
  // `collections` must outlive the Api. `options` must validate (asserts; call validate() first).
  Api(storage::CollectionManager& collections, ApiOptions options);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // The response to `request`. Never throws.
  Response handle(const Request& request);
  // handle() as a Server handler; the Api must outlive the server.
  Handler handler();
  // Whether `request` is one of the cheap in-memory reads (health probes, trie/next, an item's
  // SID) with a small body, which a server may answer on its I/O thread instead of handing it to
  // the worker pool: the hand-off's two thread wake-ups cost more than the answer.
  bool is_quick(const Request& request) const;

  void set_readiness(Readiness readiness);
  Readiness readiness() const;

  Metrics& metrics();
  const ApiOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace semid::http
