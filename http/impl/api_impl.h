// Api::Impl: what the API's rooms share. api.cpp holds the route table, dispatch (auth, body
// parsing, errors as JSON) and the shared helpers; http/endpoints/ holds the endpoints, one file
// per resource (health, collections, items, search, trie, snapshots).
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "http/api.h"
#include "http/auth.h"
#include "http/json_fields.h"
#include "http/router.h"
#include "index/rq_kmeans.h"
#include "index/train.h"
#include "index/trainer.h"
#include "index/vecs_io.h"

namespace semid::http {

using nlohmann::json;
using storage::Collection;
using storage::CollectionManager;

enum class Access { kPublic, kRead, kWrite };

// What an endpoint sees of its request.
struct Call {
  const Request& request;
  const Router::Match& match;
  const json& body;  // the body's JSON object; {} when there is no body
  const std::map<std::string, std::string>& query;
  // Endpoints may change the success status (201) or answer plain text instead of JSON.
  HttpStatus status = HttpStatus::ok;
  std::optional<std::string> text;
  // A hot endpoint may answer its result as serialised JSON instead (skipping the json values
  // whose allocations dominate a small answer); the endpoint then returns null.
  std::optional<std::string> json_text;
};

// How a search is to be run and answered.
struct SearchSpec {
  std::size_t k = 10;
  storage::SearchOptions options;
  bool with_payload = true;
  bool with_vector = false;
};

inline constexpr const char* kUnmatchedRoute = "unmatched";

// "a=1&b=2" -> {a: 1, b: 2}; values are taken verbatim (semid's parameters never need decoding).
inline std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (!pair.empty()) {
      out[std::string(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

inline bool query_flag(const Call& call, const std::string& name, bool fallback) {
  const auto it = call.query.find(name);
  if (it == call.query.end()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  throw_invalid_field("query parameter '" + name + "' must be true or false, not '" + it->second +
                      "'");
}

inline std::string_view to_std(boost::beast::string_view text) {
  return {text.data(), text.size()};
}

inline bool is_json_media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return boost::beast::iequals(boost::beast::string_view(content_type.data(), content_type.size()),
                               "application/json");
}

// A stored payload as JSON; text that does not parse (or nests too deep to serialise safely) is
// returned as a JSON string rather than failing the request.
inline json payload_json(const std::string& text, int max_depth) {
  if (text.empty()) return nullptr;
  if (!json_depth_within(text, max_depth)) return text;
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(text) : value;
}

inline std::uint64_t elapsed_micros(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}

template <typename T>
T value_or_throw(Result<T> result) {
  if (!result) throw_status(result.status());
  return std::move(result).value();
}

inline void ok_or_throw(const Status& status) {
  if (!status) throw_status(status);
}

// 503 "starting" or "draining".
[[noreturn]] inline void throw_not_ready(Readiness state) {
  if (state == Readiness::kStarting) {
    throw_api_error(HttpStatus::service_unavailable, "starting",
                    "the server is starting: collections are being opened");
  }
  throw_api_error(HttpStatus::service_unavailable, "draining", "the server is shutting down");
}

// The {id} of an item route.
inline std::uint64_t item_id(const Call& call) {
  const std::string& text = call.match.param("id");
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size()) {
    if (ec == std::errc::result_out_of_range) {
      throw_invalid_value("item id " + text + " is outside [0, 2^63 - 1]");
    }
    throw_invalid_field("item id '" + text + "' is not an unsigned integer");
  }
  if (id > storage::kMaxItemId)
    throw_invalid_value("item id " + text + " is outside [0, 2^63 - 1]");
  return id;
}

// The bytes an answer may take (ApiOptions::max_response_bytes), counted while it is built: what
// would pass the limit fails the request (422 response_too_large, naming the limit and how to ask
// for less) before the rest is fetched or built.
class ResponseBudget {
 public:
  ResponseBudget(std::size_t limit, std::string ask_less)
      : limit_(limit), ask_less_(std::move(ask_less)) {}
  bool fits(std::size_t bytes) const { return used_ <= limit_ && bytes <= limit_ - used_; }
  // Adds `bytes`, or throws when the total would pass the limit.
  void charge(std::size_t bytes) {
    if (!fits(bytes)) {
      throw_api_error(HttpStatus::unprocessable_entity, "response_too_large",
                      "the answer would pass the limit of " + std::to_string(limit_) +
                          " bytes (max_response_bytes): " + ask_less_);
    }
    used_ += bytes;
  }

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
  std::string ask_less_;
};

// About as many bytes as item_json gives for `item` (no fewer): the stored payload text, up to 16
// bytes a float of the vector, the SIDs and the fixed fields.
// ... and of its place alone (id, SID, suffix, the model's SID when it differs): what place_json
// gives.
inline std::size_t place_json_bytes(std::size_t sid_codes, std::size_t natural_sid_codes) {
  return 96 + 8 * (sid_codes + natural_sid_codes);
}
inline std::size_t item_json_bytes(const storage::Item& item, bool with_vector, bool with_payload) {
  return place_json_bytes(item.sid.size(), item.natural_sid.size()) +
         (with_payload ? item.payload.size() + 8 : 0) + (with_vector ? 16 * item.vector.size() : 0);
}

// Calls each(ids_chunk, items_chunk) over `ids` read with get_many in small chunks, so that what
// is read at once stays small (payloads may be large), until `each` returns false.
template <typename Each>
void fetch_in_chunks(const Collection& collection, std::span<const std::uint64_t> ids,
                     Each&& each) {
  const std::size_t chunk = std::min<std::size_t>(64, collection.options().max_batch_items);
  for (std::size_t first = 0; first < ids.size(); first += chunk) {
    const auto part = ids.subspan(first, std::min(chunk, ids.size() - first));
    auto items = value_or_throw(collection.get_many(part));
    if (!each(part, items)) return;
  }
}

struct Api::Impl {
  using Endpoint = json (Impl::*)(Call&);
  struct RouteInfo {
    Access access;
    Endpoint endpoint;
    // Query parameters the endpoint reads; any other is a 400.
    std::vector<std::string> query_params;
    // A microsecond read of memory (see Api::is_quick).
    bool quick = false;
  };

  Impl(CollectionManager& collections, ApiOptions api_options);

  Response handle(const Request& request);
  Response route(const Request& request, std::string& route_pattern,
                 std::chrono::steady_clock::time_point start);
  void add(Verb method, std::string pattern, Access access, Endpoint endpoint,
           std::vector<std::string> query_params = {});
  void authorize(const Request& request, Access access) const;
  json parse_body(const Request& request) const;

  // Endpoints, in README order.
  json healthz(Call& call);
  json readyz(Call& call);
  json prometheus(Call& call);
  json list_collections(Call& call);
  json create_collection(Call& call);
  json describe_collection(Call& call);
  json delete_collection(Call& call);
  json upsert_items(Call& call);
  json retrieve_items(Call& call);
  json delete_items(Call& call);
  json get_item(Call& call);
  json delete_item(Call& call);
  json item_sid(Call& call);
  json item_reconstruction(Call& call);
  json similar_items(Call& call);
  json search(Call& call);
  json encode(Call& call);
  json trie_next(Call& call);
  json trie_items(Call& call);
  json trie_resolve(Call& call);
  json create_snapshot(Call& call);
  json list_snapshots(Call& call);
  json restore_snapshot(Call& call);
  json delete_snapshot(Call& call);

  // Helpers.
  std::string collection_name(const Call& call) const;
  std::shared_ptr<Collection> collection(const Call& call) const;
  json describe(const std::string& name, const Collection& collection) const;
  std::shared_ptr<const Quantizer> train_model(const json& spec, json& report) const;
  SearchSpec read_search_spec(Fields& fields, const Collection& collection) const;
  void check_result_budget(std::size_t queries, const SearchSpec& spec) const;
  json hits_json(const Collection& collection,
                 const std::vector<std::vector<storage::SearchHit>>& hits,
                 const SearchSpec& spec) const;
  // hits_json without payloads or vectors: rows from the hits' places, records read only for
  // relocated items (their model SID).
  json placed_hits_json(const Collection& collection,
                        const std::vector<std::vector<storage::SearchHit>>& hits,
                        const std::string& ask_less) const;
  json item_json(const storage::Item& item, bool with_vector, bool with_payload) const;
  // An item's place: {"id", "sid", "collision_suffix"}, plus "model_sid" when the relocate policy
  // moved it (natural_sid non-empty and unlike sid). item_json and hit rows start from it.
  static json place_json(std::uint64_t id, const std::vector<std::int32_t>& sid,
                         std::uint16_t suffix, const std::vector<std::int32_t>& natural_sid);
  // The items of `ids` (nullopt where missing), fetched in small chunks; each found item is
  // charged to `budget` as item_json_bytes(item, with_vector, with_payload), so an answer too
  // large fails before the rest is read.
  std::vector<std::optional<storage::Item>> get_items(const Collection& collection,
                                                      std::span<const std::uint64_t> ids,
                                                      ResponseBudget& budget, bool with_vector,
                                                      bool with_payload) const;
  void collection_gauges(std::string& out);

  CollectionManager& manager;
  const ApiOptions options;
  const KeyChecker keys;
  Router router;
  std::vector<RouteInfo> infos;  // by route tag
  Metrics metrics;
  std::atomic<Readiness> readiness{Readiness::kStarting};
};

}  // namespace semid::http
