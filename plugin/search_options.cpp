#include "plugin/search_options.h"

#include <string>

namespace semid {

Result<SearchMode> parse_search_mode(std::string_view name) {
  if (name == "cosine") return SearchMode::kCosine;
  if (name == "prefix") return SearchMode::kPrefix;
  if (name == "exhaustive") return SearchMode::kExhaustive;
  return Status::invalid_argument("mode = '" + std::string(name) +
                                  "'; expected 'cosine', 'prefix' or 'exhaustive'");
}

const char* search_mode_name(SearchMode mode) {
  switch (mode) {
    case SearchMode::kCosine:
      return "cosine";
    case SearchMode::kPrefix:
      return "prefix";
    case SearchMode::kExhaustive:
      return "exhaustive";
  }
  return "unknown";
}

Status SearchOptions::validate(const SidKeyCodec& codec) const {
  if (shortlist < 0) {
    return Status::invalid_argument("shortlist = " + std::to_string(shortlist) + "; must be >= 0");
  }
  if (beam < 0)
    return Status::invalid_argument("beam = " + std::to_string(beam) + "; must be >= 0");
  if (min_prefix < 0 || min_prefix > codec.levels()) {
    return Status::invalid_argument("min_prefix = " + std::to_string(min_prefix) + " outside [0, " +
                                    std::to_string(codec.levels()) + "]");
  }
  if (beam != 0 && mode != SearchMode::kCosine) {
    return Status::invalid_argument("beam = " + std::to_string(beam) +
                                    " applies to the cosine mode only");
  }
  if (min_prefix != 0 && mode != SearchMode::kPrefix) {
    return Status::invalid_argument("min_prefix = " + std::to_string(min_prefix) +
                                    " applies to the prefix mode only");
  }
  if (shortlist != 0 && mode == SearchMode::kExhaustive) {
    return Status::invalid_argument("shortlist = " + std::to_string(shortlist) +
                                    " does not apply to the exhaustive mode");
  }
  return codec.validate_prefix(prefix).with_context("prefix filter");
}

}  // namespace semid
