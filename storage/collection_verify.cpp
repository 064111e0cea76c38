// Checking that a collection's memory and disk agree: the sids and items families, the trie and
// the index against the item locations (at open, and on request).
#include <algorithm>

#include "storage/impl/collection_impl.h"

namespace semid::storage {

using idx_t = faiss::Index::idx_t;
using impl::kCheckPage;

// Compares the sids family (and with check_items, the items family) under the published snapshot
// with the locations, and the trie and index with the locations.
Status Collection::Impl::check_agreement(bool check_items) const {
  const State& s = *state;
  const std::size_t n = s.locations.size();
  const std::string where = "collection " + dir + ": ";

  // sids == locations, key for key, in key order; no two items on one SID and suffix.
  std::vector<std::string> keys;
  keys.reserve(n);
  for (const auto& [id, location] : s.locations)
    keys.push_back(State::key(location.sid, location.suffix, id));
  std::sort(keys.begin(), keys.end());
  const std::size_t place_bytes = s.codec.sid_bytes() + SidKeyCodec::kSuffixBytes;
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].compare(0, place_bytes, keys[i - 1], 0, place_bytes) == 0) {
      auto a = s.codec.decode_key(keys[i - 1]);
      auto b = s.codec.decode_key(keys[i]);
      return Status::corruption(where + "items " + std::to_string(a->item_id) + " and " +
                                std::to_string(b->item_id) + " share SID " + sid_text(a->codes) +
                                " and suffix " + std::to_string(a->collision_suffix));
    }
  }
  {
    // A merge of two sorted lists: the first difference says which side lacks a key.
    const auto missing = [&](const std::string& key) {
      auto decoded = s.codec.decode_key(key);
      return Status::corruption(where + "item " + std::to_string(decoded->item_id) +
                                " has no sids key (SID " + sid_text(decoded->codes) + ", suffix " +
                                std::to_string(decoded->collision_suffix) + ")");
    };
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options(), family(kSids)));
    std::size_t i = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++i) {
      const std::string_view key(it->key().data(), it->key().size());
      if (i < n && key == keys[i]) continue;
      if (i < n && key > std::string_view(keys[i])) return missing(keys[i]);
      auto decoded = s.codec.decode_key(key);
      if (!decoded)
        return Status::corruption(where + "malformed sids key: " + decoded.status().message());
      return Status::corruption(where + "sids key of item " + std::to_string(decoded->item_id) +
                                " (SID " + sid_text(decoded->codes) + ", suffix " +
                                std::to_string(decoded->collision_suffix) +
                                ") matches no item record");
    }
    SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "scanning sids"));
    if (i != n) return missing(keys[i]);
  }
  if (check_items) {
    std::size_t count = 0;
    SEMID_RETURN_IF_ERROR(
        for_each_record(read_options(), [&](std::uint64_t id, ItemRecord&& record) {
          ++count;
          const auto found = s.locations.find(id);
          if (found == s.locations.end() || found->second.sid != s.pack(record.sid.data()) ||
              found->second.suffix != record.collision_suffix ||
              found->second.relocated != (record.sid != record.natural_sid)) {
            return Status::corruption(where + "the record of item " + std::to_string(id) +
                                      " disagrees with memory");
          }
          return Status::ok();
        }));
    if (count != n) {
      return Status::corruption(where + std::to_string(count) + " item records for " +
                                std::to_string(n) + " items in memory");
    }
    SEMID_ASSIGN_OR_RETURN(Counters counters, read_counters(read_options()));
    if (counters.items != n) {
      return Status::corruption(where + "the item counter says " + std::to_string(counters.items) +
                                ", memory holds " + std::to_string(n));
    }
  }

  // The trie (the index's) lists every index position once, with the SID stored there.
  const IndexRQVAE& index = *s.index;
  if (static_cast<std::size_t>(index.ntotal) != n || (n > 0 && !index.has_ids())) {
    return Status::corruption(where + "the index holds " + std::to_string(index.ntotal) +
                              " items, the store " + std::to_string(n));
  }
  if (s.trie().size() != n) {
    return Status::corruption(where + "the trie holds " + std::to_string(s.trie().size()) +
                              " items, the store " + std::to_string(n));
  }
  std::string cursor;
  std::size_t listed = 0;
  std::vector<bool> seen(n, false);
  do {
    auto page = s.trie().items({}, cursor, kCheckPage);
    if (!page) return page.status().with_context(where + "listing the trie");
    const auto L = static_cast<std::size_t>(s.codec.levels());
    for (std::size_t r = 0; r < page->item_ids.size(); ++r, ++listed) {
      const std::uint64_t position = page->item_ids[r];
      if (position >= n || seen[position] ||
          s.pack(page->codes.data() + r * L) !=
              std::string_view(
                  reinterpret_cast<const char*>(index.codes.data() + position * index.code_size),
                  index.code_size)) {
        return Status::corruption(where + "the trie holds position " + std::to_string(position) +
                                  " on SID " + sid_text({page->codes.data() + r * L, L}) +
                                  ", which the index does not");
      }
      seen[position] = true;
    }
    cursor = std::move(page->next_cursor);
  } while (!cursor.empty());
  if (listed != n) {
    return Status::corruption(where + "the trie lists " + std::to_string(listed) + " items for " +
                              std::to_string(n));
  }

  // The index holds every item once, with its SID.
  std::vector<idx_t> ids = index.ids();
  for (std::size_t pos = 0; pos < n; ++pos) {
    const auto found = s.locations.find(static_cast<std::uint64_t>(ids[pos]));
    if (found == s.locations.end() ||
        std::memcmp(found->second.sid.data(), index.codes.data() + pos * index.code_size,
                    index.code_size) != 0) {
      return Status::corruption(where + "the index holds item " + std::to_string(ids[pos]) +
                                " with a SID the store does not have");
    }
  }
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    return Status::corruption(where + "the index holds an item twice");
  }
  return Status::ok();
}

Status Collection::verify() const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  return im.check_agreement(/*check_items=*/true);
}

}  // namespace semid::storage
