// Paging over RocksDB keys: a page's cursor is the hex of the last key it returned, and a prefix's
// scan ends at the prefix's successor.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace semid::storage::impl {

// Lower-case hex of `bytes`.
std::string hex(std::string_view bytes);
// The bytes of lower-case hex `text`; nullopt for an odd length or any other character.
std::optional<std::string> unhex(std::string_view text);
// The smallest byte string greater than every string starting with `prefix`; empty when there is
// none (the prefix is empty or all 0xff): then a scan needs no upper bound.
std::string prefix_successor(std::string prefix);

}  // namespace semid::storage::impl
