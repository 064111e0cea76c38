// What a search asks for, the one definition used by the FAISS face (SearchParametersRQVAE), the
// storage layer (storage::SearchOptions adds its id filter and exact rerank), the HTTP API and the
// Python binding, with the one validation all of them run.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "index/sid.h"
#include "index/status.h"

namespace semid {

enum class SearchMode { kCosine, kPrefix, kExhaustive };

// "cosine", "prefix", "exhaustive"; InvalidArgument naming the choices otherwise.
Result<SearchMode> parse_search_mode(std::string_view name);
const char* search_mode_name(SearchMode mode);

struct SearchOptions {
  // Default: kCosine.
  SearchMode mode = SearchMode::kCosine;
  // kCosine and kPrefix: items per query that the lookup-table scan keeps and that are then ranked
  // exactly (per shared length in kPrefix). 0 means IndexRQVAE's default (max(4 k, 64)); values
  // below k are raised to k. Larger is slower and closer to kExhaustive. Default: 0.
  std::int64_t shortlist = 0;
  // kCosine: 0 scans every candidate; B > 0 keeps the B best prefixes per level (trie beam search)
  // and scans only the items under the B best full SIDs. Default: 0.
  int beam = 0;
  // kPrefix: only items sharing at least this many leading codes with the query's SID, in
  // [0, levels]. Default: 0.
  int min_prefix = 0;
  // Every mode: only items whose SID starts with these codes (at most `levels` codes, each in
  // [0, codebook_size)). Default: empty (no filter).
  std::vector<std::int32_t> prefix;

  // InvalidArgument naming the field for a negative value, a value outside its range, or a field
  // the chosen mode does not use that is not at its default (rather than silently ignoring it).
  Status validate(const SidKeyCodec& codec) const;
};

}  // namespace semid
