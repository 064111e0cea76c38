#include "http/api.h"

#include "http/impl/api_impl.h"

namespace semid::http {

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
  if (max_response_bytes < 1024 || max_response_bytes > (std::size_t{1} << 34)) {
    return out_of_range("max_response_bytes", max_response_bytes, 1024, std::size_t{1} << 34);
  }
  if (max_json_depth < 4 || max_json_depth > 1000) {
    return out_of_range("max_json_depth", static_cast<std::size_t>(std::max(max_json_depth, 0)), 4,
                        1000);
  }
  return Status::ok();
}

Api::Impl::Impl(CollectionManager& collections, ApiOptions api_options)
    : manager(collections),
      options(std::move(api_options)),
      keys(options.api_key, options.read_only_key) {
  assert(options.validate().is_ok());
  const std::string c = "/v1/collections/{name}";
  const std::vector<std::string> item_flags = {"with_vector", "with_payload"};
  add(Verb::get, "/healthz", Access::kPublic, &Impl::healthz);
  infos.back().quick = true;
  add(Verb::get, "/readyz", Access::kPublic, &Impl::readyz);
  infos.back().quick = true;
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
  infos.back().quick = true;
  add(Verb::get, c + "/items/{id}/reconstruction", Access::kRead, &Impl::item_reconstruction);
  add(Verb::post, c + "/items/{id}/similar", Access::kRead, &Impl::similar_items);
  add(Verb::post, c + "/search", Access::kRead, &Impl::search);
  add(Verb::post, c + "/encode", Access::kRead, &Impl::encode);
  add(Verb::post, c + "/trie/next", Access::kRead, &Impl::trie_next);
  infos.back().quick = true;
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
  if (response.body().size() > options.max_response_bytes) {
    // What the endpoints' own counting did not foresee: still never sent.
    failure = "the answer has " + std::to_string(response.body().size()) + " bytes";
    response = error_response(request, HttpStatus::unprocessable_entity, "response_too_large",
                              failure + ", over the limit of " +
                                  std::to_string(options.max_response_bytes) +
                                  " bytes (max_response_bytes): ask for less per request");
  }
  const double seconds = static_cast<double>(elapsed_micros(start)) / 1e6;
  const std::string method(request.method_string());
  const unsigned status = response.result_int();
  if (status == 401) response.set(beast_http::field::www_authenticate, "Bearer");
  metrics.observe(method, route_pattern, status, seconds);
  if (status >= 500 && status != 503) {  // 503 (starting, draining, busy) is no failure of ours
    spdlog::error("{} {} -> {}: {}", method, route_pattern, status, printable(failure));
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
  Call call{request, match, body, query, HttpStatus::ok, std::nullopt, std::nullopt};
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
  if (call.json_text) {
    std::string text = "{\"result\":";
    text += *call.json_text;
    text += ",\"time\":";
    text += json(seconds).dump();
    text += '}';
    return json_text_response(request, call.status, std::move(text));
  }
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
  return parse_json_object(request.body(), options.max_json_depth);
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

json Api::Impl::place_json(std::uint64_t id, const std::vector<std::int32_t>& sid,
                           std::uint16_t suffix, const std::vector<std::int32_t>& natural_sid) {
  json out = {{"id", id}, {"sid", sid}, {"collision_suffix", suffix}};
  // The relocate policy moved the item: the model's own SID of its vector.
  if (!natural_sid.empty() && natural_sid != sid) out["model_sid"] = natural_sid;
  return out;
}

json Api::Impl::item_json(const storage::Item& item, bool with_vector, bool with_payload) const {
  json out = place_json(item.id, item.sid, item.collision_suffix, item.natural_sid);
  if (with_payload) out["payload"] = payload_json(item.payload, options.max_json_depth);
  if (with_vector) out["vector"] = json_floats(item.vector.data(), item.vector.size());
  return out;
}

std::vector<std::optional<storage::Item>> Api::Impl::get_items(const Collection& collection,
                                                               std::span<const std::uint64_t> ids,
                                                               ResponseBudget& budget,
                                                               bool with_vector,
                                                               bool with_payload) const {
  std::vector<std::optional<storage::Item>> items;
  items.reserve(ids.size());
  fetch_in_chunks(collection, ids, [&](auto, auto& part) {
    for (auto& item : part) {
      if (item) budget.charge(item_json_bytes(*item, with_vector, with_payload));
      items.push_back(std::move(item));
    }
    return true;
  });
  return items;
}

// ---- Api --------------------------------------------------------------------------------------

Api::Api(CollectionManager& collections, ApiOptions options)
    : impl_(std::make_unique<Impl>(collections, std::move(options))) {}

Api::~Api() = default;

Response Api::handle(const Request& request) { return impl_->handle(request); }

Handler Api::handler() {
  return [this](const Request& request) { return handle(request); };
}

bool Api::is_quick(const Request& request) const {
  if (request.body().size() > 4096) return false;
  const std::string_view target = to_std(request.target());
  const Router::Match match =
      impl_->router.match(request.method(), target.substr(0, target.find('?')));
  return match.outcome == Router::Match::Outcome::kFound && impl_->infos[match.route->tag].quick;
}

void Api::set_readiness(Readiness readiness) { impl_->readiness = readiness; }
Readiness Api::readiness() const { return impl_->readiness.load(); }
Metrics& Api::metrics() { return impl_->metrics; }
const ApiOptions& Api::options() const { return impl_->options; }

}  // namespace semid::http
