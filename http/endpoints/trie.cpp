// {c}/trie: next tokens, items under a prefix, resolving a SID.
#include "http/impl/api_impl.h"

namespace semid::http {

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
  // Called at every decoding step: written straight to text (the json values it used to build
  // cost ~0.7 us a child in allocations), in the key order json would give.
  std::string out;
  out.reserve(64 + 24 * (children.empty() ? 0 : children[0].size()) * prefixes.size());
  const auto append_number = [&out](std::uint64_t value) {
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(digits, end);
  };
  if (many != nullptr) out += '[';
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    std::uint64_t count = 0;
    for (const SidTrie::Child& child : children[i]) count += child.count;
    // A full SID has no next codes; its count is the size of its collision group.
    if (prefixes[i].size() == static_cast<std::size_t>(levels)) {
      count = value_or_throw(collection->count(prefixes[i]));
    }
    if (i > 0) out += ',';
    out += "{\"count\":";
    append_number(count);
    out += ",\"next\":[";
    for (std::size_t j = 0; j < children[i].size(); ++j) {
      out += j > 0 ? ",{\"code\":" : "{\"code\":";
      append_number(static_cast<std::uint64_t>(children[i][j].code));
      out += ",\"count\":";
      append_number(children[i][j].count);
      out += '}';
    }
    out += "],\"prefix\":[";
    for (std::size_t j = 0; j < prefixes[i].size(); ++j) {
      if (j > 0) out += ',';
      append_number(static_cast<std::uint64_t>(prefixes[i][j]));
    }
    out += "]}";
  }
  if (many != nullptr) out += ']';
  call.json_text = std::move(out);
  return nullptr;
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
  storage::ScanPage page = value_or_throw(collection->prefix_scan(prefix, cursor, limit));
  // A page whose payloads would pass max_response_bytes is cut short, with a cursor after its
  // last item; only a single item too large for the limit fails.
  ResponseBudget budget(options.max_response_bytes,
                        "one item's payload alone is larger; list with \"with_payload\": false");
  json list = json::array();
  std::size_t kept = 0;
  // A row without its payload; with payloads, they are read in chunks alongside.
  const auto add_row = [&](const storage::ScanEntry& entry, const storage::Item* item) {
    const std::size_t bytes = 96 + 8 * entry.sid.size() + (item ? item->payload.size() : 0);
    if (kept > 0 && !budget.fits(bytes)) return false;
    budget.charge(bytes);  // throws only for a first item over the limit
    json row = {{"id", entry.id}, {"sid", entry.sid}, {"collision_suffix", entry.collision_suffix}};
    if (with_payload)
      row["payload"] = item ? payload_json(item->payload, options.max_json_depth) : json();
    list.push_back(std::move(row));
    ++kept;
    return true;
  };
  if (with_payload) {
    std::vector<std::uint64_t> ids;
    for (const auto& entry : page.items) ids.push_back(entry.id);
    fetch_in_chunks(*collection, ids, [&](auto, const auto& items) {
      for (const auto& item : items) {
        if (!add_row(page.items[kept], item ? &*item : nullptr)) return false;
      }
      return true;
    });
  } else {
    for (const auto& entry : page.items) {
      if (!add_row(entry, nullptr)) break;
    }
  }
  if (kept < page.items.size()) {  // cut short: resume after the last row kept
    page.next_cursor = value_or_throw(collection->cursor_after(page.items[kept - 1]));
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

}  // namespace semid::http
