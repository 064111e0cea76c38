// semid.SidTrie: valid next codes for constrained decoding. allowed_mask answers a whole beam batch
// per decoding step in one call; to_csr flattens the trie so a decoder can gather valid codes on
// any device (semid.torch.TrieConstraint does, in torch).
#include "index/trie.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "python/bindings/arrays.h"

namespace semid::python {
namespace {

std::vector<std::int32_t> as_prefix(py::handle prefix) {
  if (py::isinstance<py::array>(prefix)) {
    const auto a = as_array<std::int32_t>(prefix, "prefix", 1);
    return {a.data(), a.data() + a.shape(0)};
  }
  return prefix.cast<std::vector<std::int32_t>>();
}

std::shared_ptr<SidTrie> from_codes(py::handle codes_in, py::handle ids_in, int codebook_size) {
  const auto codes = as_array<std::int32_t>(codes_in, "codes", 2);
  const auto n = codes.shape(0);
  const auto levels = static_cast<std::size_t>(codes.shape(1));
  auto trie = std::make_shared<SidTrie>(
      value_or_raise(SidTrie::create(static_cast<int>(levels), codebook_size)));
  py::array_t<std::int64_t, py::array::c_style> ids;
  if (!ids_in.is_none()) {
    ids = as_array<std::int64_t>(ids_in, "ids", 1);
    if (ids.shape(0) != n) {
      throw py::value_error("ids has " + std::to_string(ids.shape(0)) + " entries for " +
                            std::to_string(n) + " SIDs");
    }
  }
  for (py::ssize_t r = 0; r < n; ++r) {
    const std::int64_t id = ids_in.is_none() ? r : ids.at(r);
    if (id < 0)
      throw py::value_error("ids[" + std::to_string(r) + "] = " + std::to_string(id) +
                            " is negative");
    const Status status =
        trie->insert({codes.data() + r * levels, levels}, static_cast<std::uint64_t>(id));
    if (!status.is_ok()) raise(status.with_context("row " + std::to_string(r)));
  }
  return trie;
}

py::array_t<bool> allowed_mask(const SidTrie& trie, py::handle prefixes_in) {
  const auto prefixes = as_array<std::int32_t>(prefixes_in, "prefixes", 2);
  const auto batch = prefixes.shape(0);
  const auto depth = static_cast<std::size_t>(prefixes.shape(1));
  if (depth >= static_cast<std::size_t>(trie.levels())) {
    throw py::value_error("prefixes hold " + std::to_string(depth) + " codes; a SID of " +
                          std::to_string(trie.levels()) + " levels has next codes after 0.." +
                          std::to_string(trie.levels() - 1));
  }
  const auto K = static_cast<py::ssize_t>(trie.codebook_size());
  auto mask = new_matrix<bool>(batch, K);
  bool* out = mask.mutable_data();
  std::fill_n(out, batch * K, false);
  Status failed;
  {
    py::gil_scoped_release release;
    for (py::ssize_t b = 0; b < batch && failed.is_ok(); ++b) {
      const Status marked = trie.mark_next_codes({prefixes.data() + b * depth, depth}, out + b * K);
      if (!marked.is_ok()) failed = marked.with_context("prefixes row " + std::to_string(b));
    }
  }
  check(failed);
  return mask;
}

// Level by level, breadth first: the nodes at depth l are numbered 0..N_l-1 in trie order; node
// i's children are edges indptr[i]..indptr[i+1] with their codes (ascending), the index of the
// child node at depth l + 1 (at the last level: the leaf, i.e. the full SID's rank) and the items
// under it.
py::list to_csr(const SidTrie& trie) {
  py::list levels;
  std::vector<std::vector<std::int32_t>> frontier = {{}};
  for (int l = 0; l < trie.levels(); ++l) {
    std::vector<std::int64_t> indptr = {0};
    std::vector<std::int32_t> codes;
    std::vector<std::int64_t> child;
    std::vector<std::int64_t> counts;
    std::vector<std::vector<std::int32_t>> next;
    for (const auto& prefix : frontier) {
      for (const SidTrie::Child& c : value_or_raise(trie.children(prefix))) {
        codes.push_back(c.code);
        child.push_back(static_cast<std::int64_t>(next.size()));
        counts.push_back(static_cast<std::int64_t>(c.count));
        std::vector<std::int32_t> longer = prefix;
        longer.push_back(c.code);
        next.push_back(std::move(longer));
      }
      indptr.push_back(static_cast<std::int64_t>(codes.size()));
    }
    const auto array = [](const auto& v) {
      using T = typename std::decay_t<decltype(v)>::value_type;
      return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
    };
    py::dict level;
    level["indptr"] = array(indptr);
    level["codes"] = array(codes);
    level["child"] = array(child);
    level["counts"] = array(counts);
    levels.append(level);
    frontier = std::move(next);
  }
  return levels;
}

}  // namespace

void bind_trie(py::module_& m) {
  py::class_<SidTrie, std::shared_ptr<SidTrie>>(
      m, "SidTrie", "Stored semantic IDs as a prefix tree with item counts (index/trie.h).")
      .def_static("from_codes", &from_codes, py::arg("codes"), py::arg("ids") = py::none(),
                  py::kw_only(), py::arg("codebook_size"),
                  "A trie of codes (int32 [n, levels]) with item ids (int64 [n]; default 0..n-1).")
      .def_property_readonly("levels", &SidTrie::levels)
      .def_property_readonly("codebook_size", &SidTrie::codebook_size)
      .def("__len__", [](const SidTrie& t) { return t.size(); })
      .def(
          "count",
          [](const SidTrie& t, py::handle p) { return value_or_raise(t.count(as_prefix(p))); },
          py::arg("prefix"), "Items under the prefix (0..levels codes).")
      .def(
          "next_tokens",
          [](const SidTrie& t, const std::vector<std::vector<std::int32_t>>& prefixes) {
            py::list out;
            for (const auto& prefix : prefixes) {
              out.append(next_tokens_entry(prefix, value_or_raise(t.count(prefix)),
                                           value_or_raise(t.children(prefix))));
            }
            return out;
          },
          py::arg("prefixes"),
          "Per prefix: {'prefix', 'count', 'next': [{'code', 'count'}, ...]}, codes ascending.")
      .def(
          "items",
          [](const SidTrie& t, py::handle prefix, std::size_t limit, const std::string& cursor) {
            if (limit == 0) throw py::value_error("limit must be >= 1");
            SidTrie::ItemPage page = value_or_raise(t.items(as_prefix(prefix), cursor, limit));
            const auto rows = static_cast<py::ssize_t>(page.item_ids.size());
            auto codes = new_matrix<std::int32_t>(rows, t.levels());
            std::copy(page.codes.begin(), page.codes.end(), codes.mutable_data());
            py::array_t<std::uint64_t> ids(rows, page.item_ids.data());
            return py::dict(py::arg("codes") = codes, py::arg("ids") = ids,
                            py::arg("next_cursor") = py::bytes(page.next_cursor));
          },
          py::arg("prefix") = std::vector<std::int32_t>{}, py::arg("limit") = 100,
          py::arg("cursor") = std::string(),
          "One page of the items under prefix, in trie order: {'codes', 'ids', 'next_cursor'}.")
      .def("allowed_mask", &allowed_mask, py::arg("prefixes"),
           "bool [B, K]: the populated next codes of each prefix row (int32 [B, j], j < levels).")
      .def("to_csr", &to_csr,
           "Per level a dict of int arrays: indptr, codes, child, counts (see semid.torch).");
}

}  // namespace semid::python
