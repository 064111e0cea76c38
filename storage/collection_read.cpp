// Reads under the published snapshot: items, reconstructions, search (with the exact rerank),
// prefix scans, next tokens, SID resolution and stats.
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/distances.h>

#include <algorithm>

#include "storage/dir_util.h"
#include "storage/impl/collection_impl.h"
#include "storage/impl/cursor.h"

namespace semid::storage {

using idx_t = faiss::Index::idx_t;
using impl::hex;
using impl::kMaxSuffix;
using impl::prefix_successor;
using impl::unhex;

Result<std::vector<std::optional<ItemRecord>>> Collection::Impl::read_records(
    std::span<const std::uint64_t> ids) const {
  std::vector<std::string> keys(ids.size());
  std::vector<rocksdb::Slice> slices(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) slices[i] = keys[i] = encode_item_key(ids[i]);
  std::vector<rocksdb::PinnableSlice> values(ids.size());
  std::vector<rocksdb::Status> statuses(ids.size());
  db()->MultiGet(read_options(), family(kItems), ids.size(), slices.data(), values.data(),
                 statuses.data());
  std::vector<std::optional<ItemRecord>> records(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    SEMID_RETURN_IF_ERROR(from_rocks(statuses[i], "reading item " + std::to_string(ids[i])));
    SEMID_ASSIGN_OR_RETURN(
        records[i], parse_record(ids[i], std::string_view(values[i].data(), values[i].size())));
  }
  return records;
}

Result<std::vector<std::optional<Item>>> Collection::get_many(
    std::span<const std::uint64_t> ids) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  if (ids.size() > im.options.max_batch_items) {
    return Status::invalid_argument("get of " + std::to_string(ids.size()) +
                                    " items exceeds StoreOptions.max_batch_items = " +
                                    std::to_string(im.options.max_batch_items));
  }
  SEMID_ASSIGN_OR_RETURN(auto records, im.read_records(ids));
  std::vector<std::optional<Item>> items(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (records[i]) items[i] = im.to_item(ids[i], std::move(*records[i]));
  }
  return items;
}

Result<Item> Collection::get(std::uint64_t id) const {
  SEMID_ASSIGN_OR_RETURN(auto items, get_many({&id, 1}));
  if (!items[0]) return Status::not_found("item " + std::to_string(id) + " does not exist");
  return std::move(*items[0]);
}

Result<std::vector<float>> Collection::reconstruct(std::uint64_t id) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto found = s.locations.find(id);
  if (found == s.locations.end())
    return Status::not_found("item " + std::to_string(id) + " does not exist");
  std::vector<float> out(static_cast<std::size_t>(im.dim));
  SEMID_RETURN_IF_ERROR(s.model->decode(1, s.unpack(found->second.sid).data(), out.data()));
  return out;
}

Result<std::size_t> Collection::prefetch_reconstructions(std::size_t begin,
                                                         std::size_t count) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const IndexRQVAE& index = *im.state->index;
  const auto limit = static_cast<std::size_t>(index.prefetch_limit());
  if (begin >= limit) return begin;
  const std::size_t step = std::min(count, limit - begin);
  index.prefetch_reconstructions(static_cast<idx_t>(begin), static_cast<idx_t>(step));
  return begin + step;
}

Result<std::vector<std::vector<SearchHit>>> Collection::search(std::size_t n,
                                                               std::span<const float> queries,
                                                               std::size_t k,
                                                               const SearchOptions& options) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto d = static_cast<std::size_t>(im.dim);
  if (queries.size() != n * d) {
    return Status::invalid_argument("search: " + std::to_string(queries.size()) + " floats for " +
                                    std::to_string(n) + " queries of dimension " +
                                    std::to_string(d));
  }
  if (k < 1) return Status::invalid_argument("search: k = 0; must be >= 1");
  SEMID_RETURN_IF_ERROR(check_finite(n, d, queries.data()).with_context("search queries"));
  SEMID_RETURN_IF_ERROR(options.validate(s.codec).with_context("search"));
  std::vector<std::vector<SearchHit>> hits(n);
  if (n == 0) return hits;

  SearchParametersRQVAE params;
  static_cast<semid::SearchOptions&>(params) = options;
  std::vector<idx_t> allowed;
  std::optional<faiss::IDSelectorBatch> selector;
  if (options.allowed_ids) {
    allowed.assign(options.allowed_ids->begin(), options.allowed_ids->end());
    selector.emplace(allowed.size(), allowed.data());
    params.sel = &*selector;
  }
  const std::size_t kk = std::max(k, options.rerank);
  std::vector<float> distances(n * kk);
  std::vector<idx_t> labels(n * kk);
  try {
    s.index->search(static_cast<idx_t>(n), queries.data(), static_cast<idx_t>(kk), distances.data(),
                    labels.data(), &params);
  } catch (const faiss::FaissException& e) {
    return Status::invalid_argument(std::string("search: ") + e.what());
  }
  for (std::size_t q = 0; q < n; ++q) {
    for (std::size_t r = 0; r < kk && labels[q * kk + r] >= 0; ++r) {
      hits[q].push_back({.id = static_cast<std::uint64_t>(labels[q * kk + r]),
                         .distance = distances[q * kk + r]});
    }
  }
  // Each hit's place, read under the same lock as the search.
  const auto place = [&s](std::vector<std::vector<SearchHit>>& lists) -> Status {
    for (auto& list : lists) {
      for (SearchHit& hit : list) {
        const auto found = s.locations.find(hit.id);
        if (found == s.locations.end()) {
          return Status::corruption("search: item " + std::to_string(hit.id) +
                                    " is in the index, not in the collection's locations");
        }
        hit.sid = s.unpack(found->second.sid);
        hit.collision_suffix = found->second.suffix;
        hit.relocated = found->second.relocated;
      }
    }
    return Status::ok();
  };
  if (options.rerank == 0) {
    SEMID_RETURN_IF_ERROR(place(hits));
    return hits;
  }

  // Re-score each query's candidates against their stored original vectors.
  const bool cosine = s.model->metric() == Metric::kCosine;
  std::vector<float> query(d);
  for (std::size_t q = 0; q < n; ++q) {
    auto& list = hits[q];
    std::vector<std::uint64_t> ids;
    for (const SearchHit& hit : list) ids.push_back(hit.id);
    SEMID_ASSIGN_OR_RETURN(auto records, im.read_records(ids));
    std::copy_n(queries.data() + q * d, d, query.data());
    if (cosine) faiss::fvec_renorm_L2(d, 1, query.data());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (!records[i])
        return Status::corruption("search: item " + std::to_string(ids[i]) +
                                  " is in the index, not in the store");
      std::vector<float>& v = records[i]->vector;
      if (cosine) {
        faiss::fvec_renorm_L2(d, 1, v.data());
        list[i].distance = faiss::fvec_inner_product(query.data(), v.data(), d);
      } else {
        list[i].distance = faiss::fvec_L2sqr(query.data(), v.data(), d);
      }
    }
    std::sort(list.begin(), list.end(), [cosine](const SearchHit& a, const SearchHit& b) {
      if (a.distance != b.distance)
        return cosine ? a.distance > b.distance : a.distance < b.distance;
      return a.id < b.id;
    });
    if (list.size() > k) list.resize(k);
  }
  SEMID_RETURN_IF_ERROR(place(hits));
  return hits;
}

Result<ScanPage> Collection::prefix_scan(std::span<const std::int32_t> prefix,
                                         std::string_view cursor, std::size_t limit) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(prefix).with_context("prefix scan"));
  if (limit < 1 || limit > kMaxScanLimit) {
    return Status::invalid_argument("prefix scan: limit = " + std::to_string(limit) +
                                    " outside [1, " + std::to_string(kMaxScanLimit) + "]");
  }
  SEMID_ASSIGN_OR_RETURN(const std::string lower, s.codec.encode_prefix(prefix));
  const std::string upper = prefix_successor(lower);
  std::string start = lower;
  if (!cursor.empty()) {
    auto key = unhex(cursor);
    if (!key || key->size() != s.codec.key_bytes() || key->compare(0, lower.size(), lower) != 0 ||
        !s.codec.decode_key(*key).is_ok()) {
      return Status::invalid_argument("prefix scan: '" + std::string(cursor.substr(0, 80)) +
                                      "' is not a cursor of prefix " + sid_text(prefix));
    }
    start = std::move(*key);
  }
  rocksdb::ReadOptions ro = im.read_options();
  const rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(im.db()->NewIterator(ro, im.family(kSids)));
  it->Seek(start);
  if (!cursor.empty() && it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  ScanPage page;
  std::string last;
  for (; it->Valid() && page.items.size() < limit; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    auto decoded = s.codec.decode_key(key);
    if (!decoded)
      return Status::corruption("prefix scan: malformed sids key: " + decoded.status().message());
    page.items.push_back({decoded->item_id, std::move(decoded->codes), decoded->collision_suffix});
    last.assign(key);
  }
  SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "prefix scan"));
  if (it->Valid()) page.next_cursor = hex(last);
  return page;
}

Result<std::string> Collection::cursor_after(const ScanEntry& entry) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  SEMID_ASSIGN_OR_RETURN(const std::string key,
                         im.state->codec.encode_key(entry.sid, entry.collision_suffix, entry.id));
  return hex(key);
}

Result<std::vector<std::vector<SidTrie::Child>>> Collection::next_tokens(
    const std::vector<std::vector<std::int32_t>>& prefixes) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(prefixes[i])
                              .with_context("next tokens: prefix " + std::to_string(i)));
  }
  std::vector<std::vector<SidTrie::Child>> out;
  out.reserve(prefixes.size());
  for (const auto& prefix : prefixes) {
    SEMID_ASSIGN_OR_RETURN(auto children, s.trie().children(prefix));
    out.push_back(std::move(children));
  }
  return out;
}

Result<std::uint64_t> Collection::count(std::span<const std::int32_t> prefix) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  SEMID_RETURN_IF_ERROR(im.state->codec.validate_prefix(prefix).with_context("count"));
  return im.state->trie().count(prefix);
}

Result<Item> Collection::resolve(std::span<const std::int32_t> semantic_id) const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  const auto L = static_cast<std::size_t>(s.codec.levels());
  if (semantic_id.size() != L + 1) {
    return Status::invalid_argument("resolve: a semantic ID has " + std::to_string(L) +
                                    " codes and a collision suffix; got " +
                                    std::to_string(semantic_id.size()) + " values");
  }
  SEMID_RETURN_IF_ERROR(s.codec.validate_prefix(semantic_id.first(L)).with_context("resolve"));
  const std::int32_t suffix = semantic_id[L];
  if (suffix < 0 || static_cast<std::uint32_t>(suffix) > kMaxSuffix) {
    return Status::invalid_argument("resolve: collision suffix " + std::to_string(suffix) +
                                    " outside [0, 65535]");
  }
  SEMID_ASSIGN_OR_RETURN(std::string place, s.codec.encode_prefix(semantic_id.first(L)));
  place.push_back(static_cast<char>(suffix >> 8));
  place.push_back(static_cast<char>(suffix & 0xff));
  std::unique_ptr<rocksdb::Iterator> it(im.db()->NewIterator(im.read_options(), im.family(kSids)));
  it->Seek(place);
  SEMID_RETURN_IF_ERROR(from_rocks(it->status(), "resolve"));
  if (!it->Valid() || !it->key().starts_with(place)) {
    return Status::not_found("no item has semantic ID " + sid_text(semantic_id));
  }
  SEMID_ASSIGN_OR_RETURN(SidKey key,
                         s.codec.decode_key(std::string_view(it->key().data(), it->key().size())));
  SEMID_ASSIGN_OR_RETURN(auto records, im.read_records({&key.item_id, 1}));
  if (!records[0]) {
    return Status::corruption("resolve: item " + std::to_string(key.item_id) +
                              " has a sids key and no record");
  }
  return im.to_item(key.item_id, std::move(*records[0]));
}

nlohmann::json CollectionStats::to_json() const {
  return {{"items", items},
          {"dim", dim},
          {"levels", levels},
          {"codebook_size", codebook_size},
          {"model", {{"kind", model_kind}, {"content_hash", model_hash}}},
          {"disk_bytes", disk_bytes},
          {"sst_bytes", sst_bytes},
          {"memtable_bytes", memtable_bytes},
          {"memory", {{"index_code_bytes", index_code_bytes}, {"trie_bytes", trie_bytes}}},
          {"codes", codes.to_json()},
          {"collision_groups", collision_groups},
          {"max_collision_suffix", max_collision_suffix},
          {"collision_policy", collision_policy_name(collision_policy)},
          {"relocated_items", relocated_items}};
}

Result<CollectionStats> Collection::stats() const {
  const Impl& im = *impl_;
  std::shared_lock lock(im.state_mutex);
  SEMID_RETURN_IF_ERROR(im.usable());
  const State& s = *im.state;
  CollectionStats stats;
  stats.items = s.locations.size();
  stats.dim = im.dim;
  stats.levels = s.codec.levels();
  stats.codebook_size = s.codec.codebook_size();
  stats.model_kind = s.model->kind();
  stats.model_hash = s.model->content_hash();
  SEMID_ASSIGN_OR_RETURN(stats.disk_bytes, directory_bytes(im.dir));
  for (Family f : {kItems, kSids, kMeta}) {
    std::uint64_t value = 0;
    if (im.db()->GetIntProperty(im.family(f), "rocksdb.live-sst-files-size", &value))
      stats.sst_bytes += value;
    if (im.db()->GetIntProperty(im.family(f), "rocksdb.cur-size-all-mem-tables", &value))
      stats.memtable_bytes += value;
  }
  stats.index_code_bytes = s.index->codes.size();
  stats.trie_bytes = s.trie().memory_bytes();
  stats.max_collision_suffix = s.suffixes.empty() ? 0 : s.suffixes.rbegin()->first;
  stats.relocated_items = s.relocated;
  stats.collision_policy = im.policy;
  stats.codes = s.counts.health();
  stats.collision_groups = s.counts.collision_groups();
  return stats;
}

}  // namespace semid::storage
