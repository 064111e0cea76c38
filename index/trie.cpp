#include "index/trie.h"

#include <algorithm>
#include <array>

namespace semid {
namespace {

// The first edge whose code is >= `code`.
template <class Edges>
auto lower_bound_code(Edges& edges, std::int32_t code) {
  return std::lower_bound(edges.begin(), edges.end(), code,
                          [](const auto& edge, std::int32_t c) { return edge.code < c; });
}

}  // namespace

SidTrie::SidTrie(SidKeyCodec codec) : codec_(codec), inner_(1) {}

Result<SidTrie> SidTrie::create(int levels, int codebook_size) {
  SEMID_ASSIGN_OR_RETURN(SidKeyCodec codec, SidKeyCodec::create(levels, codebook_size));
  return SidTrie(codec);
}

std::size_t SidTrie::memory_bytes() const {
  std::size_t bytes = inner_.capacity() * sizeof(Inner) + leaves_.capacity() * sizeof(Leaf) +
                      (free_inner_.capacity() + free_leaves_.capacity()) * sizeof(std::uint32_t);
  for (const Inner& node : inner_) bytes += node.children.capacity() * sizeof(Edge);
  for (const Leaf& leaf : leaves_) bytes += leaf.items.capacity() * sizeof(std::uint64_t);
  return bytes;
}

std::uint32_t SidTrie::allocate_inner() {
  if (!free_inner_.empty()) {
    const std::uint32_t node = free_inner_.back();
    free_inner_.pop_back();
    return node;
  }
  inner_.emplace_back();
  return static_cast<std::uint32_t>(inner_.size() - 1);
}

std::uint32_t SidTrie::allocate_leaf() {
  if (!free_leaves_.empty()) {
    const std::uint32_t leaf = free_leaves_.back();
    free_leaves_.pop_back();
    return leaf;
  }
  leaves_.emplace_back();
  return static_cast<std::uint32_t>(leaves_.size() - 1);
}

std::uint64_t SidTrie::count_of(std::uint32_t node, std::size_t depth) const {
  return depth == static_cast<std::size_t>(levels()) ? leaves_[node].items.size()
                                                     : inner_[node].count;
}

std::uint32_t SidTrie::find(std::span<const std::int32_t> prefix) const {
  std::uint32_t node = 0;
  for (std::int32_t code : prefix) {
    const auto& edges = inner_[node].children;
    auto it = lower_bound_code(edges, code);
    if (it == edges.end() || it->code != code) return kNone;
    node = it->node;
  }
  return node;
}

Status SidTrie::validate_full_sid(std::span<const std::int32_t> sid, const char* operation) const {
  if (sid.size() != static_cast<std::size_t>(levels())) {
    return Status::invalid_argument(std::string(operation) + " needs a full SID of " +
                                    std::to_string(levels()) + " codes, got " +
                                    std::to_string(sid.size()));
  }
  return codec_.validate_prefix(sid);
}

Status SidTrie::insert(std::span<const std::int32_t> sid, std::uint64_t item_id) {
  SEMID_RETURN_IF_ERROR(validate_full_sid(sid, "insert"));
  std::array<std::uint32_t, 16> path{};
  std::array<std::size_t, 16> edge_at{};  // the edge taken at each depth, by index
  std::uint32_t node = 0;
  for (std::size_t depth = 0; depth < sid.size(); ++depth) {
    path[depth] = node;
    auto& edges = inner_[node].children;
    auto it = lower_bound_code(edges, sid[depth]);
    edge_at[depth] = static_cast<std::size_t>(it - edges.begin());
    if (it == edges.end() || it->code != sid[depth]) {
      // Allocation may grow inner_, so `edges` is not used past this point.
      const std::uint32_t child = depth + 1 == sid.size() ? allocate_leaf() : allocate_inner();
      auto& fresh = inner_[node].children;
      fresh.insert(fresh.begin() + static_cast<std::ptrdiff_t>(edge_at[depth]),
                   Edge{sid[depth], child});
      node = child;
    } else {
      node = it->node;
    }
  }
  auto& items = leaves_[node].items;
  auto it = std::lower_bound(items.begin(), items.end(), item_id);
  if (it != items.end() && *it == item_id) {
    return Status::already_exists("item " + std::to_string(item_id) + " is already on this SID");
  }
  items.insert(it, item_id);
  for (std::size_t depth = 0; depth < sid.size(); ++depth) {
    Inner& parent = inner_[path[depth]];
    ++parent.count;
    ++parent.children[edge_at[depth]].count;
  }
  return Status::ok();
}

Status SidTrie::erase(std::span<const std::int32_t> sid, std::uint64_t item_id) {
  SEMID_RETURN_IF_ERROR(validate_full_sid(sid, "erase"));
  std::array<std::uint32_t, 16> path{};
  std::uint32_t node = 0;
  for (std::size_t depth = 0; depth < sid.size(); ++depth) {
    path[depth] = node;
    const auto& edges = inner_[node].children;
    auto it = lower_bound_code(edges, sid[depth]);
    if (it == edges.end() || it->code != sid[depth]) {
      return Status::not_found("item " + std::to_string(item_id) + " is not on this SID");
    }
    node = it->node;
  }
  auto& items = leaves_[node].items;
  auto it = std::lower_bound(items.begin(), items.end(), item_id);
  if (it == items.end() || *it != item_id) {
    return Status::not_found("item " + std::to_string(item_id) + " is not on this SID");
  }
  items.erase(it);
  // Bottom-up: decrement counts and unlink the nodes that became empty.
  bool child_emptied = items.empty();
  if (child_emptied) {
    items.shrink_to_fit();
    free_leaves_.push_back(node);
  }
  for (std::size_t depth = sid.size(); depth-- > 0;) {
    Inner& parent = inner_[path[depth]];
    --parent.count;
    const auto edge = lower_bound_code(parent.children, sid[depth]);
    --edge->count;
    if (child_emptied) parent.children.erase(edge);
    child_emptied = depth > 0 && parent.count == 0;
    if (child_emptied) {
      parent.children.shrink_to_fit();
      free_inner_.push_back(path[depth]);
    }
  }
  return Status::ok();
}

void SidTrie::clear() {
  inner_.assign(1, Inner{});
  leaves_.clear();
  free_inner_.clear();
  free_leaves_.clear();
}

Result<std::uint64_t> SidTrie::count(std::span<const std::int32_t> prefix) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(prefix));
  const std::uint32_t node = find(prefix);
  return node == kNone ? 0 : count_of(node, prefix.size());
}

Result<std::vector<SidTrie::Child>> SidTrie::children(std::span<const std::int32_t> prefix) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(prefix));
  std::vector<Child> out;
  const std::uint32_t node = find(prefix);
  if (node == kNone || prefix.size() == static_cast<std::size_t>(levels())) return out;
  const auto& edges = inner_[node].children;
  out.reserve(edges.size());
  for (const Edge& edge : edges) {
    out.push_back({edge.code, edge.count});
  }
  return out;
}

Status SidTrie::mark_next_codes(std::span<const std::int32_t> prefix, bool* mask) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(prefix));
  const std::uint32_t node = find(prefix);
  if (node == kNone || prefix.size() == static_cast<std::size_t>(levels())) return Status::ok();
  for (const Edge& edge : inner_[node].children) mask[edge.code] = true;
  return Status::ok();
}

template <class Fn>
bool SidTrie::visit(std::uint32_t node, std::size_t depth, std::vector<std::int32_t>& path,
                    bool bounded, const SidKey& after, Fn& fn) const {
  if (depth == static_cast<std::size_t>(levels())) {
    const auto& items = leaves_[node].items;
    auto it = bounded ? std::upper_bound(items.begin(), items.end(), after.item_id) : items.begin();
    for (; it != items.end(); ++it) {
      if (!fn(path, *it)) return false;
    }
    return true;
  }
  const auto& edges = inner_[node].children;
  auto it = bounded ? lower_bound_code(edges, after.codes[depth]) : edges.begin();
  for (; it != edges.end(); ++it) {
    path[depth] = it->code;
    if (!visit(it->node, depth + 1, path, bounded && it->code == after.codes[depth], after, fn)) {
      return false;
    }
  }
  return true;
}

Result<SidTrie::ItemPage> SidTrie::items(std::span<const std::int32_t> prefix,
                                         std::string_view cursor, std::size_t limit) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(prefix));
  if (limit == 0) return Status::invalid_argument("items: limit must be >= 1, got 0");
  SidKey after;
  const bool bounded = !cursor.empty();
  if (bounded) {
    auto key = codec_.decode_key(cursor);
    if (!key) return key.status().with_context("items: malformed cursor");
    after = std::move(key).value();
    if (!std::equal(prefix.begin(), prefix.end(), after.codes.begin())) {
      return Status::invalid_argument("items: the cursor does not lie under the given prefix");
    }
  }
  ItemPage page;
  const std::uint32_t node = find(prefix);
  if (node == kNone) return page;
  const auto L = static_cast<std::size_t>(levels());
  std::vector<std::int32_t> path(L);
  std::copy(prefix.begin(), prefix.end(), path.begin());
  // One item beyond the page tells whether the listing goes on.
  bool more = false;
  auto take = [&](const std::vector<std::int32_t>& sid, std::uint64_t id) {
    if (page.item_ids.size() == limit) {
      more = true;
      return false;
    }
    page.codes.insert(page.codes.end(), sid.begin(), sid.end());
    page.item_ids.push_back(id);
    return true;
  };
  visit(node, prefix.size(), path, bounded, after, take);
  if (more) {
    const std::int32_t* last = page.codes.data() + page.codes.size() - L;
    page.next_cursor = *codec_.encode_key({last, L}, 0, page.item_ids.back());
  }
  return page;
}

Status SidTrie::append_items(std::span<const std::int32_t> prefix,
                             std::vector<std::uint64_t>* out) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(prefix));
  const std::uint32_t node = find(prefix);
  if (node == kNone) return Status::ok();
  out->reserve(out->size() + count_of(node, prefix.size()));
  std::vector<std::int32_t> path(static_cast<std::size_t>(levels()));
  auto take = [out](const std::vector<std::int32_t>&, std::uint64_t id) {
    out->push_back(id);
    return true;
  };
  visit(node, prefix.size(), path, false, SidKey{}, take);
  return Status::ok();
}

Result<int> SidTrie::longest_shared_prefix(std::span<const std::int32_t> sid) const {
  SEMID_RETURN_IF_ERROR(codec_.validate_prefix(sid));
  if (size() == 0) return 0;
  std::uint32_t node = 0;
  int depth = 0;
  for (std::int32_t code : sid) {
    const auto& edges = inner_[node].children;
    auto it = lower_bound_code(edges, code);
    if (it == edges.end() || it->code != code) break;
    node = it->node;
    ++depth;
  }
  return depth;
}

}  // namespace semid
