#include "http/api.h"

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

Status ApiOptions::validate() const {
  auto out_of_range = [](const char* field, std::size_t value, std::size_t min, std::size_t max) {
    return Status::invalid_argument(std::string(field) + " = " + std::to_string(value) +
                                    " is outside [" + std::to_string(min) + ", " +
                                    std::to_string(max) + "]");
  };
  if (!read_only_key.empty() && read_only_key == api_key) {
    return Status::invalid_argument("read_only_key must differ from api_key");
  }
  if (max_batch_items < 1 || max_batch_items > 10000000) {
    return out_of_range("max_batch_items", max_batch_items, 1, 10000000);
  }
  if (max_queries < 1 || max_queries > 1000000)
    return out_of_range("max_queries", max_queries, 1, 1000000);
  if (max_k < 1 || max_k > 1000000) return out_of_range("max_k", max_k, 1, 1000000);
  if (max_page < 1 || max_page > storage::kMaxScanLimit) {
    return out_of_range("max_page", max_page, 1, storage::kMaxScanLimit);
  }
  if (max_candidates < 1 || max_candidates > 10000000) {
    return out_of_range("max_candidates", max_candidates, 1, 10000000);
  }
  if (max_json_depth < 4 || max_json_depth > 1000) {
    return out_of_range("max_json_depth", static_cast<std::size_t>(std::max(max_json_depth, 0)), 4,
                        1000);
  }
  return Status::ok();
}

namespace {

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
};

// How a search is to be run and answered.
struct SearchSpec {
  std::size_t k = 10;
  storage::SearchOptions options;
  bool with_payload = true;
  bool with_vector = false;
};

constexpr const char* kUnmatchedRoute = "unmatched";

// "a=1&b=2" -> {a: 1, b: 2}; values are taken verbatim (semid's parameters never need decoding).
std::map<std::string, std::string> parse_query(std::string_view query) {
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

bool query_flag(const Call& call, const std::string& name, bool fallback) {
  const auto it = call.query.find(name);
  if (it == call.query.end()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  throw_invalid_field("query parameter '" + name + "' must be true or false, not '" + it->second +
                      "'");
}

std::string_view to_std(boost::beast::string_view text) { return {text.data(), text.size()}; }

bool is_json_media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return boost::beast::iequals(boost::beast::string_view(content_type.data(), content_type.size()),
                               "application/json");
}

// A stored payload as JSON; text that does not parse (or nests too deep to serialise safely) is
// returned as a JSON string rather than failing the request.
json payload_json(const std::string& text, int max_depth) {
  if (text.empty()) return nullptr;
  if (!json_depth_within(text, max_depth)) return text;
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(text) : value;
}

std::uint64_t elapsed_micros(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}

template <typename T>
T value_or_throw(Result<T> result) {
  if (!result) throw_status(result.status());
  return std::move(result).value();
}

void ok_or_throw(const Status& status) {
  if (!status) throw_status(status);
}

// 503 "starting" or "draining".
[[noreturn]] void throw_not_ready(Readiness state) {
  if (state == Readiness::kStarting) {
    throw_api_error(HttpStatus::service_unavailable, "starting",
                    "the server is starting: collections are being opened");
  }
  throw_api_error(HttpStatus::service_unavailable, "draining", "the server is shutting down");
}

}  // namespace

struct Api::Impl {
  using Endpoint = json (Impl::*)(Call&);
  struct RouteInfo {
    Access access;
    Endpoint endpoint;
    // Query parameters the endpoint reads; any other is a 400.
    std::vector<std::string> query_params;
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
  json item_json(const storage::Item& item, bool with_vector, bool with_payload) const;
  std::vector<std::optional<storage::Item>> get_items(const Collection& collection,
                                                      std::span<const std::uint64_t> ids) const;
  void collection_gauges(std::string& out);

  CollectionManager& manager;
  const ApiOptions options;
  const KeyChecker keys;
  Router router;
  std::vector<RouteInfo> infos;  // by route tag
  Metrics metrics;
  std::atomic<Readiness> readiness{Readiness::kStarting};
};

Api::Impl::Impl(CollectionManager& collections, ApiOptions api_options)
    : manager(collections),
      options(std::move(api_options)),
      keys(options.api_key, options.read_only_key) {
  assert(options.validate().is_ok());
  const std::string c = "/v1/collections/{name}";
  const std::vector<std::string> item_flags = {"with_vector", "with_payload"};
  add(Verb::get, "/healthz", Access::kPublic, &Impl::healthz);
  add(Verb::get, "/readyz", Access::kPublic, &Impl::readyz);
  add(Verb::get, "/metrics", Access::kRead, &Impl::prometheus);
  add(Verb::get, "/v1/collections", Access::kRead, &Impl::list_collections);
  add(Verb::put, c, Access::kWrite, &Impl::create_collection);
  add(Verb::get, c, Access::kRead, &Impl::describe_collection);
  add(Verb::delete_, c, Access::kWrite, &Impl::delete_collection);
  add(Verb::put, c + "/items", Access::kWrite, &Impl::upsert_items);
  add(Verb::post, c + "/items/retrieve", Access::kRead, &Impl::retrieve_items);
  add(Verb::post, c + "/items/delete", Access::kWrite, &Impl::delete_items);
  add(Verb::get, c + "/items/{id}", Access::kRead, &Impl::get_item, item_flags);
  add(Verb::delete_, c + "/items/{id}", Access::kWrite, &Impl::delete_item);
  add(Verb::get, c + "/items/{id}/sid", Access::kRead, &Impl::item_sid);
  add(Verb::get, c + "/items/{id}/reconstruction", Access::kRead, &Impl::item_reconstruction);
  add(Verb::post, c + "/items/{id}/similar", Access::kRead, &Impl::similar_items);
  add(Verb::post, c + "/search", Access::kRead, &Impl::search);
  add(Verb::post, c + "/encode", Access::kRead, &Impl::encode);
  add(Verb::post, c + "/trie/next", Access::kRead, &Impl::trie_next);
  add(Verb::post, c + "/trie/items", Access::kRead, &Impl::trie_items);
  add(Verb::post, c + "/trie/resolve", Access::kRead, &Impl::trie_resolve);
  add(Verb::post, c + "/snapshots", Access::kWrite, &Impl::create_snapshot);
  add(Verb::get, c + "/snapshots", Access::kRead, &Impl::list_snapshots);
  add(Verb::post, c + "/snapshots/{snapshot}/restore", Access::kWrite, &Impl::restore_snapshot);
  add(Verb::delete_, c + "/snapshots/{snapshot}", Access::kWrite, &Impl::delete_snapshot);
  metrics.add_source([this](std::string& out) { collection_gauges(out); });
}

void Api::Impl::add(Verb method, std::string pattern, Access access, Endpoint endpoint,
                    std::vector<std::string> query_params) {
  router.add(method, std::move(pattern), infos.size());
  infos.push_back({access, endpoint, std::move(query_params)});
}

// ---- dispatch -------------------------------------------------------------------------------

Response Api::Impl::handle(const Request& request) {
  const auto start = std::chrono::steady_clock::now();
  std::string route_pattern = kUnmatchedRoute;
  Response response;
  std::string failure;
  try {
    response = route(request, route_pattern, start);
  } catch (const ApiError& e) {
    response = error_response(request, e.status, e.code, e.message);
    failure = e.message;
  } catch (const std::exception& e) {
    // Endpoints report through ApiError; anything else (bad_alloc, a library's exception) is a
    // bug or an exhausted machine, answered as 500 rather than letting it reach the server.
    response =
        error_response(request, HttpStatus::internal_server_error, "internal", "internal error");
    failure = e.what();
  }
  const double seconds = static_cast<double>(elapsed_micros(start)) / 1e6;
  const std::string method(request.method_string());
  const unsigned status = response.result_int();
  if (status == 401) response.set(beast_http::field::www_authenticate, "Bearer");
  metrics.observe(method, route_pattern, status, seconds);
  if (status >= 500 && status != 503) {  // 503 (starting, draining, busy) is no failure of ours
    spdlog::error("{} {} -> {}: {}", method, route_pattern, status, failure);
  }
  if (options.access_log) {
    spdlog::info("{} {} {} {:.3f}ms", method, route_pattern, status, seconds * 1e3);
  }
  return response;
}

Response Api::Impl::route(const Request& request, std::string& route_pattern,
                          std::chrono::steady_clock::time_point start) {
  const std::string_view target = to_std(request.target());
  const std::size_t question = target.find('?');
  const Router::Match match = router.match(request.method(), target.substr(0, question));
  // Without a valid key a client learns nothing of the routes: unknown paths and methods answer
  // 401 like known ones (the public /healthz and /readyz always match).
  if (match.outcome != Router::Match::Outcome::kFound) authorize(request, Access::kRead);
  if (match.outcome == Router::Match::Outcome::kNotFound) {
    return error_response(request, HttpStatus::not_found, "not_found",
                          "no endpoint at '" + std::string(target.substr(0, question)) + "'");
  }
  route_pattern = match.route->pattern;
  if (match.outcome == Router::Match::Outcome::kMethodNotAllowed) {
    Response response =
        error_response(request, HttpStatus::method_not_allowed, "method_not_allowed",
                       std::string(request.method_string()) + " is not allowed on " +
                           route_pattern + " (allowed: " + match.allow + ")");
    response.set(beast_http::field::allow, match.allow);
    return response;
  }
  const RouteInfo& info = infos[match.route->tag];
  authorize(request, info.access);
  if (route_pattern.starts_with("/v1/") && readiness.load() != Readiness::kReady) {
    throw_not_ready(readiness.load());
  }
  const auto query = parse_query(question == std::string_view::npos ? std::string_view()
                                                                    : target.substr(question + 1));
  for (const auto& [name, value] : query) {
    if (std::find(info.query_params.begin(), info.query_params.end(), name) ==
        info.query_params.end()) {
      throw_invalid_field("unknown query parameter '" + name + "'");
    }
  }
  const json body = parse_body(request);
  Call call{request, match, body, query, HttpStatus::ok, std::nullopt};
  json result = (this->*info.endpoint)(call);
  if (call.text) {
    Response response{HttpStatus::ok, request.version()};
    response.set(beast_http::field::server, "semid");
    response.set(beast_http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response.keep_alive(request.keep_alive());
    response.body() = std::move(*call.text);
    response.prepare_payload();
    return response;
  }
  const double seconds = static_cast<double>(elapsed_micros(start)) / 1e6;
  return json_response(request, call.status, {{"result", std::move(result)}, {"time", seconds}});
}

void Api::Impl::authorize(const Request& request, Access access) const {
  if (access == Access::kPublic) return;
  switch (keys.grant(request)) {
    case KeyChecker::Grant::kMissing:
      throw_api_error(HttpStatus::unauthorized, "unauthorized",
                      "an API key is required (header 'api-key' or 'Authorization: Bearer')");
    case KeyChecker::Grant::kInvalid:
      throw_api_error(HttpStatus::forbidden, "forbidden", "the API key is not valid");
    case KeyChecker::Grant::kRead:
      if (access == Access::kWrite) {
        throw_api_error(HttpStatus::forbidden, "read_only",
                        "the read-only key may not call " + std::string(request.method_string()) +
                            " on this endpoint");
      }
      return;
    case KeyChecker::Grant::kWrite:
      return;
  }
}

json Api::Impl::parse_body(const Request& request) const {
  const bool has_body_method = request.method() == Verb::post || request.method() == Verb::put;
  if (!has_body_method || request.body().empty()) return json::object();
  if (!is_json_media_type(to_std(request[beast_http::field::content_type]))) {
    throw_api_error(HttpStatus::unsupported_media_type, "unsupported_media_type",
                    "the body must be JSON with 'Content-Type: application/json', not '" +
                        std::string(request[beast_http::field::content_type]) + "'");
  }
  if (!json_depth_within(request.body(), options.max_json_depth)) {
    throw_api_error(HttpStatus::bad_request, "invalid_json",
                    "the body nests arrays and objects deeper than " +
                        std::to_string(options.max_json_depth) + " levels");
  }
  // A NUL byte ends nlohmann's input, so "{...}\0garbage" would parse: a parser differential with
  // any proxy that reads the whole body. Duplicate keys (nlohmann keeps the last) likewise.
  if (const auto nul = request.body().find('\0'); nul != std::string::npos) {
    throw_api_error(HttpStatus::bad_request, "invalid_json",
                    "the body holds a NUL byte at offset " + std::to_string(nul));
  }
  try {
    std::vector<std::set<std::string>> keys;  // per open object, its keys so far
    const json::parser_callback_t no_duplicates = [&keys](int, json::parse_event_t event,
                                                          json& parsed) {
      if (event == json::parse_event_t::object_start) keys.emplace_back();
      if (event == json::parse_event_t::object_end) keys.pop_back();
      if (event == json::parse_event_t::key &&
          !keys.back().insert(parsed.get<std::string>()).second) {
        throw_api_error(
            HttpStatus::bad_request, "invalid_json",
            "the body repeats the key '" + parsed.get<std::string>() + "' in one object");
      }
      return true;
    };
    json body = json::parse(request.body(), no_duplicates);
    if (!body.is_object()) throw_invalid_field("the body must be a JSON object");
    return body;
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number overflow
    throw_api_error(HttpStatus::bad_request, "invalid_json", e.what());
  }
}

// ---- helpers ----------------------------------------------------------------------------------

std::string Api::Impl::collection_name(const Call& call) const {
  const std::string& name = call.match.param("name");
  if (!CollectionManager::validate_name(name)) {
    throw_api_error(HttpStatus::not_found, "not_found", "collection '" + name + "' does not exist");
  }
  return name;
}

std::shared_ptr<Collection> Api::Impl::collection(const Call& call) const {
  return value_or_throw(manager.get(collection_name(call)));
}

namespace {

// The {id} of an item route.
std::uint64_t item_id(const Call& call) {
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

}  // namespace

json Api::Impl::describe(const std::string& name, const Collection& collection) const {
  const storage::CollectionStats stats = value_or_throw(collection.stats());
  json out = stats.to_json();
  out["name"] = name;
  out["model"]["config"] = collection.model()->config_json();
  const storage::StoreOptions& store = collection.options();
  out["store"] = {{"sync", store.sync},
                  {"max_batch_items", store.max_batch_items},
                  {"max_payload_bytes", store.max_payload_bytes}};
  return out;
}

json Api::Impl::item_json(const storage::Item& item, bool with_vector, bool with_payload) const {
  json out = {{"id", item.id}, {"sid", item.sid}, {"collision_suffix", item.collision_suffix}};
  // The relocate policy moved the item: the model's own SID of its vector.
  if (!item.natural_sid.empty() && item.natural_sid != item.sid)
    out["model_sid"] = item.natural_sid;
  if (with_payload) out["payload"] = payload_json(item.payload, options.max_json_depth);
  if (with_vector) out["vector"] = json_floats(item.vector.data(), item.vector.size());
  return out;
}

// get_many in chunks the store accepts.
std::vector<std::optional<storage::Item>> Api::Impl::get_items(
    const Collection& collection, std::span<const std::uint64_t> ids) const {
  std::vector<std::optional<storage::Item>> items;
  items.reserve(ids.size());
  const std::size_t chunk = collection.options().max_batch_items;
  for (std::size_t first = 0; first < ids.size(); first += chunk) {
    auto part = value_or_throw(
        collection.get_many(ids.subspan(first, std::min(chunk, ids.size() - first))));
    for (auto& item : part) items.push_back(std::move(item));
  }
  return items;
}

// ---- health and metrics ---------------------------------------------------------------------

json Api::Impl::healthz(Call&) { return {{"status", "ok"}}; }

json Api::Impl::readyz(Call&) {
  const Readiness state = readiness.load();
  if (state != Readiness::kReady) throw_not_ready(state);
  return {{"status", "ready"}};
}

json Api::Impl::prometheus(Call& call) {
  call.text = metrics.render();
  return nullptr;
}

void Api::Impl::collection_gauges(std::string& out) {
  if (readiness.load() != Readiness::kReady) return;
  auto names = manager.list();
  if (!names) return;
  std::string items, used, collisions, disk;
  for (const std::string& name : *names) {
    auto collection = manager.get(name);
    if (!collection) continue;
    auto stats = (*collection)->stats();
    if (!stats) continue;
    const std::string label = "collection=\"" + prometheus_label(name) + "\"";
    items += fmt::format("semid_collection_items{{{}}} {}\n", label, stats->items);
    for (std::size_t l = 0; l < stats->codes.levels.size(); ++l) {
      used += fmt::format("semid_collection_level_used_fraction{{{},level=\"{}\"}} {}\n", label,
                          l + 1, stats->codes.levels[l].used_fraction);
    }
    collisions += fmt::format("semid_collection_collision_rate{{{}}} {}\n", label,
                              stats->codes.collision_rate);
    disk += fmt::format("semid_collection_disk_bytes{{{}}} {}\n", label, stats->disk_bytes);
  }
  out +=
      "# HELP semid_collection_items Items stored in the collection.\n"
      "# TYPE semid_collection_items gauge\n" +
      items;
  out +=
      "# HELP semid_collection_level_used_fraction Share of a level's codes used by at least one "
      "item.\n"
      "# TYPE semid_collection_level_used_fraction gauge\n" +
      used;
  out +=
      "# HELP semid_collection_collision_rate Share of items whose full SID another item shares.\n"
      "# TYPE semid_collection_collision_rate gauge\n" +
      collisions;
  out +=
      "# HELP semid_collection_disk_bytes Bytes of the collection's files.\n"
      "# TYPE semid_collection_disk_bytes gauge\n" +
      disk;
}

// ---- collections ----------------------------------------------------------------------------

json Api::Impl::list_collections(Call&) {
  json list = json::array();
  for (const std::string& name : value_or_throw(manager.list())) {
    auto collection = manager.get(name);
    if (!collection) {
      if (collection.status().code() == Status::Code::kNotFound) continue;  // dropped meanwhile
      list.push_back({{"name", name},
                      {"error",
                       {{"code", error_code_of(collection.status().code())},
                        {"message", collection.status().message()}}}});
      continue;
    }
    const Collection& c = **collection;
    list.push_back({{"name", name},
                    {"items", c.size()},
                    {"dim", c.dim()},
                    {"levels", c.levels()},
                    {"codebook_size", c.codebook_size()},
                    {"model_kind", c.model()->kind()}});
  }
  return {{"collections", std::move(list)}};
}

json Api::Impl::create_collection(Call& call) {
  const std::string& name = call.match.param("name");
  if (Status valid = CollectionManager::validate_name(name); !valid)
    throw_invalid_value(valid.message());
  Fields fields(call.body, "");
  const json* model_path = fields.find("model");
  const json* train = fields.find("train");
  const json* policy_field = fields.find("collision_policy");
  fields.reject_unknown();
  storage::CollisionPolicy policy = storage::CollisionPolicy::kSuffix;
  if (policy_field != nullptr) {
    auto parsed = storage::parse_collision_policy(read_string(*policy_field, "collision_policy"));
    if (!parsed) throw_invalid_value("collision_policy: " + parsed.status().message());
    policy = *parsed;
  }
  if ((model_path == nullptr) == (train == nullptr)) {
    throw_invalid_field(
        "give exactly one of 'model' (a model file) and 'train' (training options)");
  }
  // Fail before a long training when the name is taken (create() checks again, atomically).
  if (manager.exists(name)) {
    throw_api_error(HttpStatus::conflict, "already_exists", "collection '" + name + "' exists");
  }
  json training;
  std::shared_ptr<const Quantizer> model;
  if (model_path != nullptr) {
    const std::string path = read_string(*model_path, "model");
    auto loaded = load_quantizer(path);
    if (!loaded) throw_invalid_value("model file '" + path + "': " + loaded.status().message());
    model = std::move(loaded).value();
  } else {
    model = train_model(*train, training);
  }
  auto collection = value_or_throw(manager.create(name, model, policy));
  spdlog::info("created collection '{}' ({} model {}, dim {}, {} levels x {} codes)", name,
               model->kind(), model->content_hash().substr(0, 12), model->dim(), model->levels(),
               model->codebook_size());
  call.status = HttpStatus::created;
  json out = describe(name, *collection);
  if (!training.is_null()) out["training"] = std::move(training);
  return out;
}

std::shared_ptr<const Quantizer> Api::Impl::train_model(const json& spec, json& report) const {
  constexpr std::int64_t kMaxInt = std::numeric_limits<std::int32_t>::max();
  Fields fields(spec, "train");
  const std::string path = read_string(fields.require("data"), "train.data");
  QuantizerTraining request;
  auto kind = parse_quantizer_kind(fields.string("kind", "rqvae"));
  if (!kind) throw_invalid_value("train." + kind.status().message());
  request.kind = *kind;
  const auto max_rows = static_cast<std::size_t>(
      fields.integer("max_rows", 0, 0, std::numeric_limits<std::int64_t>::max()));
  auto metric = parse_metric(fields.string("metric", "cosine"));
  if (!metric) throw_invalid_value("train.metric: " + metric.status().message());
  request.metric = *metric;
  request.levels = static_cast<int>(fields.integer("levels", 3, 1, 16));
  request.codebook_size = static_cast<int>(fields.integer("codebook_size", 256, 2, 65536));
  const auto seed = static_cast<std::uint64_t>(
      fields.integer("seed", 42, 0, std::numeric_limits<std::int64_t>::max()));
  const int threads = static_cast<int>(fields.integer("threads", 1, 1, 256));
  const int iterations = static_cast<int>(fields.integer("kmeans_iterations", 25, 1, 10000));
  request.beam_size = static_cast<int>(fields.integer(
      "beam_size", request.beam_size, 1, request.kind == QuantizerKind::kRqVae ? 256 : 1024));
  if (request.kind == QuantizerKind::kRqVae) {
    RqVaeConfig& config = request.rqvae;
    // A latent size asks for a bottleneck: the MLP architecture unless "architecture" says so.
    const bool has_latent = fields.find("latent_dim") != nullptr;
    const std::string architecture = fields.string("architecture", has_latent ? "mlp" : "residual");
    auto parsed_architecture = parse_architecture(architecture);
    if (!parsed_architecture) {
      throw_invalid_value("train.architecture: " + parsed_architecture.status().message());
    }
    config.architecture = *parsed_architecture;
    config.latent_dim = static_cast<int>(fields.integer("latent_dim", config.latent_dim, 0, 8192));
    if (const json* hidden = fields.find("hidden")) {
      config.hidden.clear();
      const json& sizes = read_array(*hidden, "train.hidden", 16);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        config.hidden.push_back(static_cast<int>(
            read_integer(sizes[i], "train.hidden[" + std::to_string(i) + "]", 1, 16384)));
      }
    }
    TrainOptions& o = request.rqvae_options;
    o.epochs = static_cast<int>(fields.integer("epochs", o.epochs, 0, 1000000));
    o.similarity_weight = fields.number("similarity_weight", o.similarity_weight, 0, 1e4);
    o.batch_size = static_cast<int>(fields.integer("batch_size", o.batch_size, 1, 1 << 20));
    o.learning_rate = fields.number("learning_rate", o.learning_rate, 1e-9, 100);
    o.time_budget_seconds = fields.number("time_budget_seconds", o.time_budget_seconds, 0, 1e9);
    o.patience = static_cast<int>(fields.integer("patience", o.patience, 0, kMaxInt));
    o.warmup_epochs =
        static_cast<int>(fields.integer("warmup_epochs", o.warmup_epochs, 0, kMaxInt));
    o.decoder_refine_epochs = static_cast<int>(
        fields.integer("decoder_refine_epochs", o.decoder_refine_epochs, 0, kMaxInt));
    o.kmeans_iterations = iterations;
    o.seed = seed;
    o.threads = threads;
  } else {
    request.rqkmeans_options.iterations = iterations;
    request.rqkmeans_options.seed = seed;
    request.rqkmeans_options.threads = threads;
  }
  fields.reject_unknown();

  ReadOptions read;
  read.max_rows = max_rows;
  auto data = read_float_vectors(path, read);
  if (!data) throw_invalid_value("train.data '" + path + "': " + data.status().message());
  spdlog::info("training a {} model on {} vectors of dimension {} from {}",
               quantizer_kind_name(request.kind), data->rows, data->cols, path);
  // Draining stops training after the current epoch, so shutdown waits for one epoch, not all.
  const auto keep_training = [this](const TrainProgress&) {
    return readiness.load() != Readiness::kDraining;
  };
  TrainedQuantizer trained = value_or_throw(
      train_quantizer(request, data->rows, data->cols, data->data.data(), keep_training));
  if (readiness.load() == Readiness::kDraining) {
    throw_api_error(HttpStatus::service_unavailable, "draining",
                    "training was stopped: the server is shutting down");
  }
  report = std::move(trained.report);
  report.erase("history");
  return std::shared_ptr<const Quantizer>(std::move(trained.model));
}

json Api::Impl::describe_collection(Call& call) {
  return describe(collection_name(call), *collection(call));
}

json Api::Impl::delete_collection(Call& call) {
  const std::string name = collection_name(call);
  ok_or_throw(manager.drop(name));
  spdlog::info("deleted collection '{}'", name);
  return {{"deleted", name}};
}

// ---- items ------------------------------------------------------------------------------------

json Api::Impl::upsert_items(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  const json& items = read_array(fields.require("items"), "items", options.max_batch_items);
  fields.reject_unknown();

  const auto dim = static_cast<std::size_t>(collection->dim());
  const std::size_t max_payload = collection->options().max_payload_bytes;
  std::vector<std::uint64_t> ids;
  std::vector<float> vectors;
  std::vector<std::string> payloads;
  bool any_payload = false;
  std::unordered_map<std::uint64_t, std::size_t> first_index;
  json errors = json::array();
  ids.reserve(items.size());
  vectors.reserve(items.size() * dim);
  payloads.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string path = "items[" + std::to_string(i) + "]";
    json id_value = nullptr;
    try {
      Fields item(items[i], path);
      const json& id_json = item.require("id");
      id_value = id_json;
      const std::uint64_t id = read_unsigned(id_json, path + ".id", storage::kMaxItemId);
      std::vector<float> vector;
      vector.reserve(dim);
      read_vector(item.require("vector"), path + ".vector", dim, vector);
      std::string payload;
      if (const json* value = item.find("payload")) {
        payload = value->dump(-1, ' ', false, json::error_handler_t::replace);
        if (payload.size() > max_payload) {
          throw_invalid_value(path + ".payload has " + std::to_string(payload.size()) +
                              " bytes of JSON; the limit is " + std::to_string(max_payload));
        }
      }
      item.reject_unknown();
      const auto [seen, inserted] = first_index.emplace(id, i);
      if (!inserted) {
        throw_invalid_value("id " + std::to_string(id) +
                            " appears earlier in the batch, at index " +
                            std::to_string(seen->second));
      }
      ids.push_back(id);
      vectors.insert(vectors.end(), vector.begin(), vector.end());
      any_payload = any_payload || !payload.empty();
      payloads.push_back(std::move(payload));
    } catch (const ApiError& e) {
      errors.push_back({{"index", i}, {"id", id_value}, {"code", e.code}, {"message", e.message}});
    }
  }
  ok_or_throw(collection->upsert(
      ids, vectors,
      any_payload ? std::span<const std::string>(payloads) : std::span<const std::string>()));
  return {{"upserted", ids.size()}, {"errors", std::move(errors)}};
}

json Api::Impl::retrieve_items(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  const auto ids =
      read_ids(fields.require("ids"), "ids", options.max_batch_items, storage::kMaxItemId);
  const bool with_vector = fields.boolean("with_vector", false);
  const bool with_payload = fields.boolean("with_payload", true);
  fields.reject_unknown();
  const auto items = get_items(*collection, ids);
  json found = json::array();
  json missing = json::array();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (items[i]) {
      found.push_back(item_json(*items[i], with_vector, with_payload));
    } else {
      missing.push_back(ids[i]);
    }
  }
  return {{"items", std::move(found)}, {"not_found", std::move(missing)}};
}

json Api::Impl::delete_items(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  auto ids = read_ids(fields.require("ids"), "ids", options.max_batch_items, storage::kMaxItemId);
  fields.reject_unknown();
  std::unordered_set<std::uint64_t> seen;
  std::erase_if(ids, [&](std::uint64_t id) { return !seen.insert(id).second; });
  // remove() refuses unknown ids, so remove the ones that exist; if a concurrent delete takes one
  // of them first (NotFound), look again.
  std::vector<std::uint64_t> existing, missing;
  for (int attempt = 0; attempt < 8; ++attempt) {
    const auto items = get_items(*collection, ids);
    existing.clear();
    missing.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) (items[i] ? existing : missing).push_back(ids[i]);
    const Status status = existing.empty() ? Status::ok() : collection->remove(existing);
    if (status) break;
    if (status.code() != Status::Code::kNotFound || attempt == 7) throw_status(status);
  }
  return {{"deleted", existing.size()}, {"not_found", missing}};
}

json Api::Impl::get_item(Call& call) {
  const bool with_vector = query_flag(call, "with_vector", false);
  const bool with_payload = query_flag(call, "with_payload", true);
  const std::uint64_t id = item_id(call);
  return item_json(value_or_throw(collection(call)->get(id)), with_vector, with_payload);
}

json Api::Impl::delete_item(Call& call) {
  const std::uint64_t id = item_id(call);
  const std::uint64_t ids[] = {id};
  ok_or_throw(collection(call)->remove(ids));
  return {{"deleted", 1}};
}

json Api::Impl::item_sid(Call& call) {
  const std::uint64_t id = item_id(call);
  return item_json(value_or_throw(collection(call)->get(id)), false, false);
}

json Api::Impl::item_reconstruction(Call& call) {
  const std::uint64_t id = item_id(call);
  const auto collection = this->collection(call);
  // One read gives the SID; decoding it here keeps SID and vector consistent under writes.
  const storage::Item item = value_or_throw(collection->get(id));
  std::vector<float> vector(static_cast<std::size_t>(collection->dim()));
  ok_or_throw(collection->model()->decode(1, item.sid.data(), vector.data()));
  json out = item_json(item, false, false);
  out["vector"] = json_floats(vector.data(), vector.size());
  return out;
}

// ---- search -----------------------------------------------------------------------------------

SearchSpec Api::Impl::read_search_spec(Fields& fields, const Collection& collection) const {
  SearchSpec spec;
  const auto max_candidates = static_cast<std::int64_t>(options.max_candidates);
  spec.k = static_cast<std::size_t>(
      fields.integer("k", 10, 1, static_cast<std::int64_t>(options.max_k)));
  const std::string mode = fields.string("mode", "cosine");
  if (mode == "cosine") {
    spec.options.mode = SearchMode::kCosine;
  } else if (mode == "prefix") {
    spec.options.mode = SearchMode::kPrefix;
  } else if (mode == "exhaustive") {
    spec.options.mode = SearchMode::kExhaustive;
  } else {
    throw_invalid_value("mode = '" + mode + "'; expected 'cosine', 'prefix' or 'exhaustive'");
  }
  spec.options.shortlist = fields.integer("shortlist", 0, 0, max_candidates);
  spec.options.beam = static_cast<int>(fields.integer("beam", 0, 0, 65536));
  spec.options.min_prefix =
      static_cast<int>(fields.integer("min_prefix", 0, 0, collection.levels()));
  spec.options.rerank = static_cast<std::size_t>(fields.integer("rerank", 0, 0, max_candidates));
  if (const json* filter = fields.find("filter")) {
    Fields filter_fields(*filter, "filter");
    if (const json* prefix = filter_fields.find("prefix")) {
      spec.options.prefix =
          read_codes(*prefix, "filter.prefix", collection.levels(), collection.codebook_size());
    }
    if (const json* ids = filter_fields.find("ids")) {
      spec.options.allowed_ids =
          read_ids(*ids, "filter.ids", options.max_batch_items, storage::kMaxItemId);
    }
    filter_fields.reject_unknown();
  }
  spec.with_payload = fields.boolean("with_payload", true);
  spec.with_vector = fields.boolean("with_vector", false);
  return spec;
}

void Api::Impl::check_result_budget(std::size_t queries, const SearchSpec& spec) const {
  const std::size_t per_query = std::max(spec.k, spec.options.rerank);
  if (queries > 0 && per_query > options.max_queries * options.max_k / queries) {
    throw_invalid_value(std::to_string(queries) + " queries x " + std::to_string(per_query) +
                        " results exceed the limit of " +
                        std::to_string(options.max_queries * options.max_k) + " per request");
  }
}

json Api::Impl::hits_json(const Collection& collection,
                          const std::vector<std::vector<storage::SearchHit>>& hits,
                          const SearchSpec& spec) const {
  std::vector<std::uint64_t> ids;
  std::unordered_set<std::uint64_t> unique;
  for (const auto& list : hits) {
    for (const auto& hit : list) {
      if (unique.insert(hit.id).second) ids.push_back(hit.id);
    }
  }
  const auto items = get_items(collection, ids);
  std::unordered_map<std::uint64_t, const storage::Item*> by_id;
  for (const auto& item : items) {
    if (item) by_id.emplace(item->id, &*item);
  }
  json out = json::array();
  for (const auto& list : hits) {
    json rows = json::array();
    for (const auto& hit : list) {
      const auto found = by_id.find(hit.id);
      if (found == by_id.end()) continue;  // deleted since the search
      json row = item_json(*found->second, spec.with_vector, spec.with_payload);
      row["score"] = json_float(hit.distance);
      rows.push_back(std::move(row));
    }
    out.push_back(std::move(rows));
  }
  return out;
}

json Api::Impl::search(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  std::vector<float> queries;
  bool batch = false;
  const std::size_t n = read_vectors(fields, static_cast<std::size_t>(collection->dim()),
                                     options.max_queries, queries, batch);
  const SearchSpec spec = read_search_spec(fields, *collection);
  fields.reject_unknown();
  check_result_budget(n, spec);
  const auto hits = value_or_throw(collection->search(n, queries, spec.k, spec.options));
  json out = hits_json(*collection, hits, spec);
  return batch ? out : out[0];
}

json Api::Impl::similar_items(Call& call) {
  const std::uint64_t id = item_id(call);
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  SearchSpec spec = read_search_spec(fields, *collection);
  fields.reject_unknown();
  check_result_budget(1, spec);
  const storage::Item item = value_or_throw(collection->get(id));
  // One more than asked: the item itself is usually its own nearest neighbour.
  auto hits = value_or_throw(collection->search(1, item.vector, spec.k + 1, spec.options));
  std::erase_if(hits[0], [id](const storage::SearchHit& hit) { return hit.id == id; });
  if (hits[0].size() > spec.k) hits[0].resize(spec.k);
  return hits_json(*collection, hits, spec)[0];
}

json Api::Impl::encode(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  std::vector<float> vectors;
  bool batch = false;
  const std::size_t n = read_vectors(fields, static_cast<std::size_t>(collection->dim()),
                                     options.max_queries, vectors, batch);
  fields.reject_unknown();
  const auto model = collection->model();
  const auto levels = static_cast<std::size_t>(model->levels());
  std::vector<std::int32_t> codes(n * levels);
  if (n > 0) ok_or_throw(model->encode(n, vectors.data(), codes.data()));
  json out = json::array();
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({{"sid", std::vector<std::int32_t>(
                               codes.begin() + static_cast<std::ptrdiff_t>(i * levels),
                               codes.begin() + static_cast<std::ptrdiff_t>((i + 1) * levels))}});
  }
  return batch ? out : out[0];
}

// ---- trie -------------------------------------------------------------------------------------

json Api::Impl::trie_next(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  const json* one = fields.find("prefix");
  const json* many = fields.find("prefixes");
  fields.reject_unknown();
  if ((one == nullptr) == (many == nullptr)) {
    throw_invalid_field("give exactly one of 'prefix' and 'prefixes'");
  }
  const int levels = collection->levels();
  const int codebook_size = collection->codebook_size();
  std::vector<std::vector<std::int32_t>> prefixes;
  if (one != nullptr) {
    prefixes.push_back(read_codes(*one, "prefix", levels, codebook_size));
  } else {
    const json& list = read_array(*many, "prefixes", options.max_queries);
    for (std::size_t i = 0; i < list.size(); ++i) {
      prefixes.push_back(
          read_codes(list[i], "prefixes[" + std::to_string(i) + "]", levels, codebook_size));
    }
  }
  const auto children = value_or_throw(collection->next_tokens(prefixes));
  json out = json::array();
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    json next = json::array();
    std::uint64_t count = 0;
    for (const SidTrie::Child& child : children[i]) {
      next.push_back({{"code", child.code}, {"count", child.count}});
      count += child.count;
    }
    // A full SID has no next codes; its count is the size of its collision group.
    if (prefixes[i].size() == static_cast<std::size_t>(levels)) {
      count = value_or_throw(collection->count(prefixes[i]));
    }
    out.push_back({{"prefix", prefixes[i]}, {"count", count}, {"next", std::move(next)}});
  }
  return one != nullptr ? out[0] : out;
}

json Api::Impl::trie_items(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  std::vector<std::int32_t> prefix;
  if (const json* value = fields.find("prefix")) {
    prefix = read_codes(*value, "prefix", collection->levels(), collection->codebook_size());
  }
  const auto limit = static_cast<std::size_t>(
      fields.integer("limit", 100, 1, static_cast<std::int64_t>(options.max_page)));
  const std::string cursor = fields.string("cursor", "");
  const bool with_payload = fields.boolean("with_payload", false);
  fields.reject_unknown();
  const storage::ScanPage page = value_or_throw(collection->prefix_scan(prefix, cursor, limit));
  std::vector<std::optional<storage::Item>> items;
  if (with_payload) {
    std::vector<std::uint64_t> ids;
    for (const auto& entry : page.items) ids.push_back(entry.id);
    items = get_items(*collection, ids);
  }
  json list = json::array();
  for (std::size_t i = 0; i < page.items.size(); ++i) {
    const storage::ScanEntry& entry = page.items[i];
    json row = {{"id", entry.id}, {"sid", entry.sid}, {"collision_suffix", entry.collision_suffix}};
    if (with_payload) {
      row["payload"] = items[i] ? payload_json(items[i]->payload, options.max_json_depth) : json();
    }
    list.push_back(std::move(row));
  }
  return {{"items", std::move(list)},
          {"next_cursor", page.next_cursor.empty() ? json() : json(page.next_cursor)}};
}

json Api::Impl::trie_resolve(Call& call) {
  const auto collection = this->collection(call);
  Fields fields(call.body, "");
  const int levels = collection->levels();
  std::vector<std::int32_t> semantic_id =
      read_codes(fields.require("sid"), "sid", levels, collection->codebook_size());
  if (semantic_id.size() != static_cast<std::size_t>(levels)) {
    throw_invalid_value("'sid' has " + std::to_string(semantic_id.size()) +
                        " codes; a full SID has " + std::to_string(levels));
  }
  semantic_id.push_back(static_cast<std::int32_t>(fields.integer("collision_suffix", 0, 0, 65535)));
  const bool with_vector = fields.boolean("with_vector", false);
  const bool with_payload = fields.boolean("with_payload", true);
  fields.reject_unknown();
  return item_json(value_or_throw(collection->resolve(semantic_id)), with_vector, with_payload);
}

// ---- snapshots --------------------------------------------------------------------------------

json Api::Impl::create_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string id = value_or_throw(manager.create_snapshot(name));
  spdlog::info("snapshot '{}' of collection '{}' created", id, name);
  call.status = HttpStatus::created;
  return {{"snapshot", id}};
}

json Api::Impl::list_snapshots(Call& call) {
  const std::string name = collection_name(call);
  if (!manager.exists(name)) {
    throw_api_error(HttpStatus::not_found, "not_found", "collection '" + name + "' does not exist");
  }
  return {{"snapshots", value_or_throw(manager.list_snapshots(name))}};
}

json Api::Impl::restore_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string& snapshot = call.match.param("snapshot");
  ok_or_throw(manager.restore_snapshot(name, snapshot));
  spdlog::info("collection '{}' restored from snapshot '{}'", name, snapshot);
  return {{"restored", snapshot}, {"items", collection(call)->size()}};
}

json Api::Impl::delete_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string& snapshot = call.match.param("snapshot");
  ok_or_throw(manager.drop_snapshot(name, snapshot));
  return {{"deleted", snapshot}};
}

// ---- Api --------------------------------------------------------------------------------------

Api::Api(CollectionManager& collections, ApiOptions options)
    : impl_(std::make_unique<Impl>(collections, std::move(options))) {}

Api::~Api() = default;

Response Api::handle(const Request& request) { return impl_->handle(request); }

Handler Api::handler() {
  return [this](const Request& request) { return handle(request); };
}

void Api::set_readiness(Readiness readiness) { impl_->readiness = readiness; }
Readiness Api::readiness() const { return impl_->readiness.load(); }
Metrics& Api::metrics() { return impl_->metrics; }
const ApiOptions& Api::options() const { return impl_->options; }

}  // namespace semid::http
