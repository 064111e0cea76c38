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
  return std::unique_ptr<State>(
      new State{std::move(model), codec, std::move(index), std::move(trie), {}, nullptr});
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
    if (!state.locations.emplace(e.id, Location{e.sid, e.suffix, e.relocated}).second) {
      return Status::corruption("item " + std::to_string(e.id) + " is stored twice");
    }
    SEMID_RETURN_IF_ERROR(state.trie.insert(state.unpack(e.sid), e.id));
  }
  try {
    state.index->add_codes(static_cast<idx_t>(entries.size()), codes.data(), ids.data());
  } catch (const std::exception& e) {
    return Status::internal(std::string("building the index: ") + e.what());
  }
  return Status::ok();
}

}  // namespace semid::storage::impl
