#include "storage/impl/state.h"

#include <cstring>
#include <exception>
#include <unordered_map>
#include <unordered_set>

#include "storage/options.h"

namespace semid::storage::impl {

using idx_t = faiss::Index::idx_t;

static_assert(StoreOptions{}.reconstruction_cache_bytes ==
                  IndexRQVAE::kDefaultReconstructionCacheBytes,
              "a collection's index gets the index's default cache budget");

Result<std::unique_ptr<State>> make_state(std::shared_ptr<const Quantizer> model,
                                          std::size_t reconstruction_cache_bytes) {
  SEMID_ASSIGN_OR_RETURN(SidKeyCodec codec,
                         SidKeyCodec::create(model->levels(), model->codebook_size()));
  std::unique_ptr<IndexRQVAE> index;
  try {
    index = std::make_unique<IndexRQVAE>(model);
    index->set_reconstruction_cache_bytes(reconstruction_cache_bytes);
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("the model cannot back an index: ") + e.what());
  }
  CodeCounts counts(codec.levels(), codec.codebook_size());
  return std::unique_ptr<State>(
      new State{std::move(model), codec, std::move(index), {}, nullptr, std::move(counts), {}, 0});
}

Status State::refile(std::span<const std::uint64_t> leaving, std::span<const std::uint64_t> ids,
                     std::vector<Location> places) {
  if (ids.size() != places.size()) {
    return Status::internal("refile: " + std::to_string(ids.size()) + " ids for " +
                            std::to_string(places.size()) + " places");
  }
  // The counters need each touched SID's group size as it changes: read from the trie before the
  // index changes, then followed through the batch.
  std::unordered_map<std::string, std::uint64_t> groups;
  const auto group = [&](const std::string& sid,
                         const std::vector<std::int32_t>& codes) -> std::uint64_t& {
    auto [it, fresh] = groups.try_emplace(sid, 0);
    if (fresh) {
      const auto count = trie().count(codes);
      it->second = count.is_ok() ? *count : 0;
    }
    return it->second;
  };
  for (std::uint64_t id : leaving) {
    const auto found = locations.find(id);
    if (found == locations.end()) {
      return Status::internal("item " + std::to_string(id) + " leaves but is not filed");
    }
    const Location& where = found->second;
    const std::vector<std::int32_t> codes = unpack(where.sid);
    std::uint64_t& size = group(where.sid, codes);
    if (size == 0) {
      return Status::internal("item " + std::to_string(id) + " is not in the trie");
    }
    counts.remove(codes, size--);
    if (const auto it = suffixes.find(where.suffix); --it->second == 0) suffixes.erase(it);
    relocated -= where.relocated;
    locations.erase(found);
  }
  const std::size_t sid_bytes = codec.sid_bytes();
  std::vector<std::uint8_t> packed(ids.size() * sid_bytes);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    Location& where = places[i];
    const std::vector<std::int32_t> codes = unpack(where.sid);
    std::uint64_t& size = group(where.sid, codes);
    counts.add(codes, size++);
    ++suffixes[where.suffix];
    relocated += where.relocated;
    std::memcpy(packed.data() + i * sid_bytes, where.sid.data(), sid_bytes);
    if (!locations.emplace(ids[i], std::move(where)).second) {
      return Status::internal("item " + std::to_string(ids[i]) + " is filed twice");
    }
  }
  try {
    const std::vector<idx_t> gone(leaving.begin(), leaving.end());
    index->remove_labels(static_cast<idx_t>(gone.size()), gone.data());
    const std::vector<idx_t> labels(ids.begin(), ids.end());
    index->add_codes(static_cast<idx_t>(labels.size()), packed.data(), labels.data());
  } catch (const std::exception& e) {
    return Status::internal(std::string("updating the index: ") + e.what());
  }
  return Status::ok();
}

Status fill_state(State& state, const std::vector<Entry>& entries) {
  std::vector<std::uint64_t> ids(entries.size());
  std::vector<Location> places(entries.size());
  std::unordered_set<std::uint64_t> seen;
  seen.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (!seen.insert(e.id).second) {
      return Status::corruption("item " + std::to_string(e.id) + " is stored twice");
    }
    ids[i] = e.id;
    places[i] = Location{e.sid, e.suffix, e.relocated};
  }
  state.locations.reserve(entries.size());
  return state.refile({}, ids, std::move(places));
}

}  // namespace semid::storage::impl
