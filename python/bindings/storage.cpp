// semid.CollectionManager and semid.Collection: durable collections in-process, over the same data
// directory the server uses (RocksDB's lock makes a second opener fail with a clear error).
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "index/trie.h"
#include "python/bindings/arrays.h"
#include "python/bindings/quantizer.h"
#include "storage/collection_manager.h"

namespace semid::python {
namespace {

using storage::Collection;
using storage::CollectionManager;

struct PyCollection {
  std::shared_ptr<CollectionManager> manager;
  std::string name;
  std::shared_ptr<Collection> collection;
};

std::vector<std::uint64_t> as_ids(py::handle ids_in, const char* name) {
  const auto ids = as_array<std::int64_t>(ids_in, name, 1);
  std::vector<std::uint64_t> out(static_cast<std::size_t>(ids.shape(0)));
  for (py::ssize_t i = 0; i < ids.shape(0); ++i) {
    if (ids.at(i) < 0) {
      throw py::value_error(std::string(name) + "[" + std::to_string(i) +
                            "] = " + std::to_string(ids.at(i)) + " is negative");
    }
    out[static_cast<std::size_t>(i)] = static_cast<std::uint64_t>(ids.at(i));
  }
  return out;
}

py::object payload_object(const std::string& payload) {
  if (payload.empty()) return py::none();
  return py::module_::import("json").attr("loads")(payload);
}

py::dict item_dict(const storage::Item& item, bool with_vector) {
  py::dict d;
  d["id"] = item.id;
  d["sid"] = item.sid;
  d["collision_suffix"] = item.collision_suffix;
  if (item.natural_sid != item.sid) d["model_sid"] = item.natural_sid;
  d["payload"] = payload_object(item.payload);
  if (with_vector)
    d["vector"] =
        py::array_t<float>(static_cast<py::ssize_t>(item.vector.size()), item.vector.data());
  return d;
}

void upsert(const PyCollection& c, py::handle ids_in, py::handle x_in, py::object payloads_in) {
  const std::vector<std::uint64_t> ids = as_ids(ids_in, "ids");
  const auto x = as_array<float>(x_in, "x", 2, c.collection->dim());
  if (static_cast<std::size_t>(x.shape(0)) != ids.size()) {
    throw py::value_error("x has " + std::to_string(x.shape(0)) + " rows for " +
                          std::to_string(ids.size()) + " ids");
  }
  std::vector<std::string> payloads;
  if (!payloads_in.is_none()) {
    for (py::handle p : payloads_in)
      payloads.push_back(p.is_none() ? std::string() : to_json_text(p));
  }
  Status status;
  {
    py::gil_scoped_release release;
    status = c.collection->upsert(ids, {x.data(), static_cast<std::size_t>(x.size())}, payloads);
  }
  check(status);
}

py::list search(const PyCollection& c, py::handle x_in, std::size_t k, const std::string& mode,
                std::int64_t shortlist, int beam, int min_prefix, std::vector<std::int32_t> prefix,
                py::object filter, std::size_t rerank) {
  const auto x = as_array<float>(x_in, "x", 2, c.collection->dim());
  storage::SearchOptions options;
  options.mode = value_or_raise(parse_search_mode(mode));
  options.shortlist = shortlist;
  options.beam = beam;
  options.min_prefix = min_prefix;
  options.prefix = std::move(prefix);
  if (!filter.is_none()) options.allowed_ids = as_ids(filter, "filter");
  options.rerank = rerank;
  Result<std::vector<std::vector<storage::SearchHit>>> hits = Status::internal("no search");
  std::vector<std::uint64_t> found;
  Result<std::vector<std::optional<storage::Item>>> items = Status::internal("no items");
  {
    py::gil_scoped_release release;
    hits = c.collection->search(static_cast<std::size_t>(x.shape(0)),
                                {x.data(), static_cast<std::size_t>(x.size())}, k, options);
    if (hits.is_ok()) {
      for (const auto& row : *hits)
        for (const auto& hit : row) found.push_back(hit.id);
      items = c.collection->get_many(found);
    }
  }
  check(hits.status());
  check(items.status());
  py::list out;
  std::size_t next = 0;
  for (const auto& row : *hits) {
    py::list results;
    for (const auto& hit : row) {
      const std::optional<storage::Item>& item = (*items)[next++];
      py::dict r;
      r["id"] = hit.id;
      r["score"] = hit.distance;
      if (item) {  // an item removed between the search and the read is reported without them
        r["sid"] = item->sid;
        r["collision_suffix"] = item->collision_suffix;
        r["payload"] = payload_object(item->payload);
      }
      results.append(r);
    }
    out.append(results);
  }
  return out;
}

std::shared_ptr<SidTrie> sid_trie(const PyCollection& c, bool with_suffix) {
  const Collection& collection = *c.collection;
  std::vector<storage::ScanEntry> entries;
  Status failed;
  {
    py::gil_scoped_release release;
    std::string cursor;
    do {
      auto page = collection.prefix_scan({}, cursor, 10000);
      if (!page.is_ok()) {
        failed = page.status();
        break;
      }
      for (auto& e : page->items) entries.push_back(std::move(e));
      cursor = page->next_cursor;
    } while (!cursor.empty());
  }
  check(failed);
  int codebook_size = collection.codebook_size();
  for (const auto& e : entries) {
    if (with_suffix) codebook_size = std::max(codebook_size, e.collision_suffix + 1);
  }
  const int levels = collection.levels() + (with_suffix ? 1 : 0);
  auto trie = std::make_shared<SidTrie>(value_or_raise(SidTrie::create(levels, codebook_size)));
  std::vector<std::int32_t> sid;
  for (const auto& e : entries) {
    sid = e.sid;
    if (with_suffix) sid.push_back(e.collision_suffix);
    check(trie->insert(sid, e.id));
  }
  return trie;
}

}  // namespace

void bind_storage(py::module_& m) {
  py::class_<PyCollection>(m, "Collection", "A durable collection (storage/collection.h).")
      .def_property_readonly("name", [](const PyCollection& c) { return c.name; })
      .def_property_readonly("dim", [](const PyCollection& c) { return c.collection->dim(); })
      .def_property_readonly("levels", [](const PyCollection& c) { return c.collection->levels(); })
      .def_property_readonly("codebook_size",
                             [](const PyCollection& c) { return c.collection->codebook_size(); })
      .def_property_readonly(
          "collision_policy",
          [](const PyCollection& c) {
            return storage::collision_policy_name(c.collection->collision_policy());
          })
      .def_property_readonly("quantizer",
                             [](const PyCollection& c) {
                               return PyQuantizer{c.collection->model(), nlohmann::json::object()};
                             })
      .def("__len__", [](const PyCollection& c) { return c.collection->size(); })
      .def("upsert", &upsert, py::arg("ids"), py::arg("x"), py::arg("payloads") = py::none(),
           "One atomic, durable batch: ids (int64 [n]), x (float [n, dim]), payloads (JSON-able "
           "objects or JSON text, None for none).")
      .def(
          "remove",
          [](const PyCollection& c, py::handle ids) {
            const auto list = as_ids(ids, "ids");
            py::gil_scoped_release release;
            check(c.collection->remove(list));
          },
          py::arg("ids"))
      .def(
          "get",
          [](const PyCollection& c, py::handle ids, bool with_vector) {
            const auto list = as_ids(ids, "ids");
            auto items = value_or_raise(c.collection->get_many(list));
            py::list out;
            for (const auto& item : items) {
              out.append(item ? py::object(item_dict(*item, with_vector)) : py::none());
            }
            return out;
          },
          py::arg("ids"), py::arg("with_vector") = false,
          "Per id a dict {'id', 'sid', 'collision_suffix', 'payload'[, 'vector']}, or None.")
      .def("search", &search, py::arg("x"), py::arg("k") = 10, py::kw_only(),
           py::arg("mode") = "cosine", py::arg("shortlist") = 0, py::arg("beam") = 0,
           py::arg("min_prefix") = 0, py::arg("prefix") = std::vector<std::int32_t>{},
           py::arg("filter") = py::none(), py::arg("rerank") = 0,
           "Per query a list of {'id', 'score', 'sid', 'collision_suffix', 'payload'}.")
      .def(
          "next_tokens",
          [](const PyCollection& c, const std::vector<std::vector<std::int32_t>>& prefixes) {
            auto children = value_or_raise(c.collection->next_tokens(prefixes));
            py::list out;
            for (std::size_t i = 0; i < prefixes.size(); ++i) {
              out.append(next_tokens_entry(
                  prefixes[i], value_or_raise(c.collection->count(prefixes[i])), children[i]));
            }
            return out;
          },
          py::arg("prefixes"))
      .def(
          "prefix_scan",
          [](const PyCollection& c, const std::vector<std::int32_t>& prefix,
             const std::string& cursor, std::size_t limit) {
            auto page = value_or_raise(c.collection->prefix_scan(prefix, cursor, limit));
            py::list items;
            for (const auto& e : page.items) {
              items.append(py::dict(py::arg("id") = e.id, py::arg("sid") = e.sid,
                                    py::arg("collision_suffix") = e.collision_suffix));
            }
            return py::dict(py::arg("items") = items, py::arg("next_cursor") = page.next_cursor);
          },
          py::arg("prefix") = std::vector<std::int32_t>{}, py::arg("cursor") = std::string(),
          py::arg("limit") = 100)
      .def(
          "resolve",
          [](const PyCollection& c, std::vector<std::int32_t> sid, int suffix) {
            sid.push_back(suffix);
            return item_dict(value_or_raise(c.collection->resolve(sid)), false);
          },
          py::arg("sid"), py::arg("suffix") = 0,
          "The item on SID `sid` with collision suffix `suffix`.")
      .def("stats",
           [](const PyCollection& c) {
             return to_python(value_or_raise(c.collection->stats()).to_json());
           })
      .def(
          "snapshot",
          [](const PyCollection& c) { return value_or_raise(c.manager->create_snapshot(c.name)); },
          "A consistent snapshot (returns its id; CollectionManager.restore_snapshot restores it).")
      .def("flush", [](const PyCollection& c) { check(c.collection->flush()); })
      .def("sid_trie", &sid_trie, py::kw_only(), py::arg("with_suffix") = false,
           "A SidTrie of the stored SIDs (item ids as its ids), for constrained decoding; with "
           "with_suffix the collision suffix is one more level (codebook_size then covers the "
           "largest suffix too).");

  py::class_<CollectionManager, std::shared_ptr<CollectionManager>>(
      m, "CollectionManager", "The named collections of one data directory.")
      .def(py::init([](const std::string& data_dir, bool sync) {
             storage::StoreOptions options;
             options.sync = sync;
             return std::shared_ptr<CollectionManager>(
                 value_or_raise(CollectionManager::open(data_dir, options)));
           }),
           py::arg("data_dir"), py::kw_only(), py::arg("sync") = false)
      .def(
          "create",
          [](const std::shared_ptr<CollectionManager>& mgr, const std::string& name,
             const PyQuantizer& q, const std::string& collision_policy) {
            const auto policy = value_or_raise(storage::parse_collision_policy(collision_policy));
            return PyCollection{mgr, name, value_or_raise(mgr->create(name, q.model, policy))};
          },
          py::arg("name"), py::arg("quantizer"), py::kw_only(),
          py::arg("collision_policy") = "suffix")
      .def(
          "open",
          [](const std::shared_ptr<CollectionManager>& mgr, const std::string& name) {
            return PyCollection{mgr, name, value_or_raise(mgr->get(name))};
          },
          py::arg("name"))
      .def("list", [](const CollectionManager& mgr) { return value_or_raise(mgr.list()); })
      .def(
          "drop", [](CollectionManager& mgr, const std::string& name) { check(mgr.drop(name)); },
          py::arg("name"))
      .def(
          "list_snapshots",
          [](const CollectionManager& mgr, const std::string& name) {
            return value_or_raise(mgr.list_snapshots(name));
          },
          py::arg("name"))
      .def(
          "restore_snapshot",
          [](CollectionManager& mgr, const std::string& name, const std::string& snapshot) {
            check(mgr.restore_snapshot(name, snapshot));
          },
          py::arg("name"), py::arg("snapshot"))
      .def("close", [](CollectionManager& mgr) { check(mgr.close_all()); });
}

}  // namespace semid::python
