#include "storage/impl/state.h"

#include <cstring>
#include <exception>

namespace semid::storage::impl {

using idx_t = faiss::Index::idx_t;

Result<std::unique_ptr<State>> make_state(std::shared_ptr<const Quantizer> model) {
  SEMID_ASSIGN_OR_RETURN(SidKeyCodec codec,
                         SidKeyCodec::create(model->levels(), model->codebook_size()));
  SEMID_ASSIGN_OR_RETURN(SidTrie trie, SidTrie::create(model->levels(), model->codebook_size()));
  std::unique_ptr<IndexRQVAE> index;
  try {
    index = std::make_unique<IndexRQVAE>(model);
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("the model cannot back an index: ") + e.what());
  }
  CodeCounts counts(codec.levels(), codec.codebook_size());
  return std::unique_ptr<State>(new State{std::move(model),
                                          codec,
                                          std::move(index),
                                          std::move(trie),
                                          {},
                                          nullptr,
                                          std::move(counts),
                                          {},
                                          0});
}

Status State::file(std::uint64_t id, Location where) {
  const std::vector<std::int32_t> sid = unpack(where.sid);
  SEMID_ASSIGN_OR_RETURN(const std::uint64_t group_before, trie.count(sid));
  SEMID_RETURN_IF_ERROR(trie.insert(sid, id));
  counts.add(sid, group_before);
  ++suffixes[where.suffix];
  relocated += where.relocated;
  if (!locations.emplace(id, std::move(where)).second) {
    return Status::internal("item " + std::to_string(id) + " is filed twice");
  }
  return Status::ok();
}

Status State::unfile(std::uint64_t id) {
  const auto found = locations.find(id);
  if (found == locations.end()) {
    return Status::not_found("item " + std::to_string(id) + " is not filed");
  }
  const Location& where = found->second;
  const std::vector<std::int32_t> sid = unpack(where.sid);
  SEMID_ASSIGN_OR_RETURN(const std::uint64_t group_before, trie.count(sid));
  SEMID_RETURN_IF_ERROR(trie.erase(sid, id));
  counts.remove(sid, group_before);
  if (const auto it = suffixes.find(where.suffix); --it->second == 0) suffixes.erase(it);
  relocated -= where.relocated;
  locations.erase(found);
  return Status::ok();
}

Status fill_state(State& state, const std::vector<Entry>& entries) {
  const std::size_t sid_bytes = state.codec.sid_bytes();
  std::vector<std::uint8_t> codes(entries.size() * sid_bytes);
  std::vector<idx_t> ids(entries.size());
  state.locations.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    std::memcpy(codes.data() + i * sid_bytes, e.sid.data(), sid_bytes);
    ids[i] = static_cast<idx_t>(e.id);
    if (state.locations.contains(e.id)) {
      return Status::corruption("item " + std::to_string(e.id) + " is stored twice");
    }
    SEMID_RETURN_IF_ERROR(state.file(e.id, Location{e.sid, e.suffix, e.relocated}));
  }
  try {
    state.index->add_codes(static_cast<idx_t>(entries.size()), codes.data(), ids.data());
  } catch (const std::exception& e) {
    return Status::internal(std::string("building the index: ") + e.what());
  }
  return Status::ok();
}

}  // namespace semid::storage::impl
