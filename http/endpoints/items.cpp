// {c}/items: upsert, retrieve, delete, one item, its SID and its reconstruction.
#include "http/impl/api_impl.h"

namespace semid::http {

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
  ResponseBudget budget(options.max_response_bytes,
                        "retrieve fewer ids per request, or without vectors or payloads");
  const auto items = get_items(*collection, ids, budget, with_vector, with_payload);
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
    existing.clear();
    missing.clear();
    // Only whether each id exists, so nothing of the items is kept.
    fetch_in_chunks(*collection, ids, [&](auto part, const auto& items) {
      for (std::size_t i = 0; i < part.size(); ++i) {
        (items[i] ? existing : missing).push_back(part[i]);
      }
      return true;
    });
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

}  // namespace semid::http
