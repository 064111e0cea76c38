// {c}/search, {c}/items/{id}/similar and {c}/encode.
#include "http/impl/api_impl.h"

namespace semid::http {

// ---- search -----------------------------------------------------------------------------------

SearchSpec Api::Impl::read_search_spec(Fields& fields, const Collection& collection) const {
  SearchSpec spec;
  const auto max_candidates = static_cast<std::int64_t>(options.max_candidates);
  spec.k = static_cast<std::size_t>(
      fields.integer("k", 10, 1, static_cast<std::int64_t>(options.max_k)));
  spec.options.mode = value_or_throw(parse_search_mode(fields.string("mode", "cosine")));
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
  const std::string ask_less =
      "ask for fewer queries or a smaller k per request, or without vectors or payloads";
  if (!spec.with_payload && !spec.with_vector) return placed_hits_json(collection, hits, ask_less);
  std::vector<std::uint64_t> ids;
  std::unordered_set<std::uint64_t> unique;
  for (const auto& list : hits) {
    for (const auto& hit : list) {
      if (unique.insert(hit.id).second) ids.push_back(hit.id);
    }
  }
  ResponseBudget fetched(options.max_response_bytes, ask_less);
  const auto items = get_items(collection, ids, fetched, spec.with_vector, spec.with_payload);
  ResponseBudget rows_budget(options.max_response_bytes, ask_less);
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
      rows_budget.charge(item_json_bytes(*found->second, spec.with_vector, spec.with_payload));
      json row = item_json(*found->second, spec.with_vector, spec.with_payload);
      row["score"] = json_float(hit.distance);
      rows.push_back(std::move(row));
    }
    out.push_back(std::move(rows));
  }
  return out;
}

json Api::Impl::placed_hits_json(const Collection& collection,
                                 const std::vector<std::vector<storage::SearchHit>>& hits,
                                 const std::string& ask_less) const {
  // The hits carry their places: only relocated items need their record, for the model's SID.
  std::vector<std::uint64_t> moved;
  for (const auto& list : hits) {
    for (const auto& hit : list) {
      if (hit.relocated) moved.push_back(hit.id);
    }
  }
  std::sort(moved.begin(), moved.end());
  moved.erase(std::unique(moved.begin(), moved.end()), moved.end());
  ResponseBudget fetched(options.max_response_bytes, ask_less);
  std::unordered_map<std::uint64_t, std::vector<std::int32_t>> model_sid;
  for (auto& item : get_items(collection, moved, fetched, false, false)) {
    if (item) model_sid.emplace(item->id, std::move(item->natural_sid));
  }
  ResponseBudget rows_budget(options.max_response_bytes, ask_less);
  const std::vector<std::int32_t> unmoved;
  json out = json::array();
  for (const auto& list : hits) {
    json rows = json::array();
    for (const auto& hit : list) {
      // (A record deleted since the search leaves the row as the search saw it.)
      const auto found = model_sid.find(hit.id);
      const auto& natural = found != model_sid.end() ? found->second : unmoved;
      rows_budget.charge(place_json_bytes(hit.sid.size(), natural.size()));
      json row = place_json(hit.id, hit.sid, hit.collision_suffix, natural);
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

}  // namespace semid::http
