// semid.Index / semid.IndexRQVAE (the FAISS face), semid.SearchParametersRQVAE, write_index,
// read_index, index_factory. Same semantics as the C++ index: labels -1 pad missing results, the
// distances are FAISS's (inner product larger-is-closer, squared L2 smaller-is-closer), errors are
// RuntimeError with FAISS's message.
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "plugin/IndexRQVAE.h"
#include "plugin/index_factory.h"
#include "plugin/index_io.h"
#include "python/bindings/arrays.h"
#include "python/bindings/quantizer.h"

namespace semid::python {
namespace {

using idx_t = faiss::Index::idx_t;

// SearchParametersRQVAE that owns its id filter (an IDSelectorBatch over the ids given).
struct PySearchParameters : SearchParametersRQVAE {
  std::shared_ptr<faiss::IDSelectorBatch> owned_sel;
  py::object sel_ids = py::none();
};

faiss::MetricType parse_index_metric(py::handle metric) {
  if (py::isinstance<py::int_>(metric)) {
    const int value = metric.cast<int>();
    if (value != faiss::METRIC_INNER_PRODUCT && value != faiss::METRIC_L2) {
      throw py::value_error("metric = " + std::to_string(value) +
                            "; expected METRIC_INNER_PRODUCT (0) or METRIC_L2 (1)");
    }
    return static_cast<faiss::MetricType>(value);
  }
  const std::string name = metric.cast<std::string>();
  if (name == "cosine" || name == "ip" || name == "inner_product") {
    return faiss::METRIC_INNER_PRODUCT;
  }
  if (name == "l2") return faiss::METRIC_L2;
  throw py::value_error("metric = '" + name + "'; expected 'cosine', 'ip' or 'l2'");
}

void set_sel(PySearchParameters& p, py::object ids) {
  if (ids.is_none()) {
    p.owned_sel.reset();
    p.sel = nullptr;
  } else {
    const auto array = as_array<idx_t>(ids, "sel", 1);
    p.owned_sel = std::make_shared<faiss::IDSelectorBatch>(static_cast<std::size_t>(array.shape(0)),
                                                           array.data());
    p.sel = p.owned_sel.get();
  }
  p.sel_ids = ids;
}

const faiss::SearchParameters* params_of(py::handle params) {
  if (params.is_none()) return nullptr;
  return params.cast<const PySearchParameters*>();
}

py::tuple search(const faiss::Index& index, py::handle x_in, idx_t k, py::handle params) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  if (k <= 0) throw py::value_error("k = " + std::to_string(k) + " must be > 0");
  const idx_t n = x.shape(0);
  auto distances = new_matrix<float>(n, k);
  auto labels = new_matrix<idx_t>(n, k);
  const faiss::SearchParameters* p = params_of(params);
  {
    py::gil_scoped_release release;
    index.search(n, x.data(), k, distances.mutable_data(), labels.mutable_data(), p);
  }
  return py::make_tuple(distances, labels);
}

py::tuple range_search(const faiss::Index& index, py::handle x_in, float radius,
                       py::handle params) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  const idx_t n = x.shape(0);
  faiss::RangeSearchResult result(n);
  const faiss::SearchParameters* p = params_of(params);
  {
    py::gil_scoped_release release;
    index.range_search(n, x.data(), radius, &result, p);
  }
  py::array_t<idx_t> lims(n + 1);
  std::copy_n(reinterpret_cast<const idx_t*>(result.lims), n + 1, lims.mutable_data());
  const auto total = static_cast<py::ssize_t>(result.lims[n]);
  py::array_t<float> distances(total);
  py::array_t<idx_t> labels(total);
  std::copy_n(result.distances, total, distances.mutable_data());
  std::copy_n(result.labels, total, labels.mutable_data());
  return py::make_tuple(lims, distances, labels);
}

void add(faiss::Index& index, py::handle x_in) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  py::gil_scoped_release release;
  index.add(x.shape(0), x.data());
}

void add_with_ids(faiss::Index& index, py::handle x_in, py::handle ids_in) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  const auto ids = as_array<idx_t>(ids_in, "ids", 1);
  if (ids.shape(0) != x.shape(0)) {
    throw py::value_error("ids has " + std::to_string(ids.shape(0)) + " entries for " +
                          std::to_string(x.shape(0)) + " vectors");
  }
  py::gil_scoped_release release;
  index.add_with_ids(x.shape(0), x.data(), ids.data());
}

void train(faiss::Index& index, py::handle x_in) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  py::gil_scoped_release release;
  index.train(x.shape(0), x.data());
}

std::size_t remove_ids(faiss::Index& index, py::handle ids_in) {
  const auto ids = as_array<idx_t>(ids_in, "ids", 1);
  py::gil_scoped_release release;
  if (auto* rq = dynamic_cast<IndexRQVAE*>(&index))
    return rq->remove_labels(ids.shape(0), ids.data());
  const faiss::IDSelectorBatch selector(static_cast<std::size_t>(ids.shape(0)), ids.data());
  return index.remove_ids(selector);
}

py::array_t<float> reconstruct(const faiss::Index& index, idx_t key) {
  py::array_t<float> out(index.d);
  index.reconstruct(key, out.mutable_data());
  return out;
}

py::array_t<std::uint8_t> sa_encode(const faiss::Index& index, py::handle x_in) {
  const auto x = as_array<float>(x_in, "x", 2, index.d);
  auto bytes = new_matrix<std::uint8_t>(x.shape(0), static_cast<py::ssize_t>(index.sa_code_size()));
  py::gil_scoped_release release;
  index.sa_encode(x.shape(0), x.data(), bytes.mutable_data());
  return bytes;
}

py::array_t<float> sa_decode(const faiss::Index& index, py::handle bytes_in) {
  const auto bytes =
      as_array<std::uint8_t>(bytes_in, "codes", 2, static_cast<py::ssize_t>(index.sa_code_size()));
  auto out = new_matrix<float>(bytes.shape(0), index.d);
  py::gil_scoped_release release;
  index.sa_decode(bytes.shape(0), bytes.data(), out.mutable_data());
  return out;
}

std::shared_ptr<faiss::Index> owned(faiss::Index* index) {
  return std::shared_ptr<faiss::Index>(index);
}

}  // namespace

void bind_index(py::module_& m) {
  m.attr("METRIC_INNER_PRODUCT") = static_cast<int>(faiss::METRIC_INNER_PRODUCT);
  m.attr("METRIC_L2") = static_cast<int>(faiss::METRIC_L2);

  py::class_<PySearchParameters>(m, "SearchParametersRQVAE",
                                 "Search parameters of IndexRQVAE (plugin/IndexRQVAE.h).")
      .def(py::init([](const std::string& mode, idx_t shortlist, int beam, int min_prefix,
                       std::vector<std::int32_t> prefix, py::object sel) {
             auto p = std::make_unique<PySearchParameters>();
             p->mode = value_or_raise(parse_search_mode(mode));
             p->shortlist = shortlist;
             p->beam = beam;
             p->min_prefix = min_prefix;
             p->prefix = std::move(prefix);
             set_sel(*p, std::move(sel));
             return p;
           }),
           py::kw_only(), py::arg("mode") = "cosine", py::arg("shortlist") = 0, py::arg("beam") = 0,
           py::arg("min_prefix") = 0, py::arg("prefix") = std::vector<std::int32_t>{},
           py::arg("sel") = py::none())
      .def_property(
          "mode", [](const PySearchParameters& p) { return search_mode_name(p.mode); },
          [](PySearchParameters& p, const std::string& mode) {
            p.mode = value_or_raise(parse_search_mode(mode));
          })
      .def_readwrite("shortlist", &PySearchParameters::shortlist)
      .def_readwrite("beam", &PySearchParameters::beam)
      .def_readwrite("min_prefix", &PySearchParameters::min_prefix)
      .def_readwrite("prefix", &PySearchParameters::prefix)
      .def_property(
          "sel", [](const PySearchParameters& p) { return p.sel_ids; }, &set_sel,
          "Only these labels (an int64 array), or None.");

  py::class_<faiss::Index, std::shared_ptr<faiss::Index>>(
      m, "Index", "A FAISS index (semid's IndexRQVAE, or a FAISS index around it).")
      .def_property_readonly("d", [](const faiss::Index& i) { return i.d; })
      .def_property_readonly("ntotal", [](const faiss::Index& i) { return i.ntotal; })
      .def_property_readonly("is_trained", [](const faiss::Index& i) { return i.is_trained; })
      .def_property_readonly("metric_type",
                             [](const faiss::Index& i) { return static_cast<int>(i.metric_type); })
      .def("train", &train, py::arg("x"))
      .def("add", &add, py::arg("x"))
      .def("add_with_ids", &add_with_ids, py::arg("x"), py::arg("ids"))
      .def("search", &search, py::arg("x"), py::arg("k"), py::arg("params") = py::none(),
           "(D float32 [n, k], I int64 [n, k]), closest first; -1 labels pad.")
      .def("range_search", &range_search, py::arg("x"), py::arg("radius"),
           py::arg("params") = py::none(),
           "(lims int64 [n + 1], D float32, I int64) as faiss's range_search.")
      .def("reconstruct", &reconstruct, py::arg("key"))
      .def("remove_ids", &remove_ids, py::arg("ids"), "Removes these labels; returns how many.")
      .def("reset", [](faiss::Index& i) { i.reset(); })
      .def("sa_code_size", [](const faiss::Index& i) { return i.sa_code_size(); })
      .def("sa_encode", &sa_encode, py::arg("x"))
      .def("sa_decode", &sa_decode, py::arg("codes"));

  py::class_<IndexRQVAE, faiss::Index, std::shared_ptr<IndexRQVAE>>(
      m, "IndexRQVAE", "semid's FAISS index: codes are semantic IDs (plugin/IndexRQVAE.h).")
      .def(py::init([](const PyQuantizer& q) { return std::make_shared<IndexRQVAE>(q.model); }),
           py::arg("quantizer"))
      .def_property_readonly("quantizer",
                             [](const IndexRQVAE& i) -> py::object {
                               if (!i.model()) return py::none();
                               return py::cast(PyQuantizer{i.model(), nlohmann::json::object()});
                             })
      .def_property_readonly("levels", &IndexRQVAE::levels)
      .def_property_readonly("codebook_size", &IndexRQVAE::codebook_size)
      .def_property_readonly("has_ids", &IndexRQVAE::has_ids)
      .def_property_readonly("ids",
                             [](const IndexRQVAE& i) {
                               return py::array_t<idx_t>(static_cast<py::ssize_t>(i.ids().size()),
                                                         i.ids().data());
                             })
      .def_property_readonly(
          "sids",
          [](const IndexRQVAE& i) {
            auto out = new_matrix<std::int32_t>(i.ntotal, i.levels());
            for (idx_t r = 0; r < i.ntotal; ++r) {
              i.codec().unpack(i.codes.data() + r * i.code_size,
                               out.mutable_data() + r * i.levels());
            }
            return out;
          },
          "The stored SIDs by position, int32 [ntotal, levels].")
      .def_property_readonly(
          "trie", [](const IndexRQVAE& i) -> const SidTrie& { return i.trie(); },
          py::return_value_policy::reference_internal,
          "The stored SIDs as a SidTrie (its item ids are positions; see ids).")
      .def(
          "add_sids",
          [](IndexRQVAE& index, py::handle sids_in, py::object ids_in) {
            const auto sids = as_array<std::int32_t>(sids_in, "sids", 2, index.levels());
            const idx_t n = sids.shape(0);
            std::vector<std::uint8_t> packed(static_cast<std::size_t>(n) * index.code_size);
            for (idx_t r = 0; r < n; ++r) {
              check(index.codec().validate_prefix(
                  {sids.data() + r * index.levels(), static_cast<std::size_t>(index.levels())}));
              index.codec().pack(sids.data() + r * index.levels(),
                                 packed.data() + r * index.code_size);
            }
            if (ids_in.is_none()) {
              index.add_codes(n, packed.data(), nullptr);
              return;
            }
            const auto ids = as_array<idx_t>(ids_in, "ids", 1);
            if (ids.shape(0) != n) throw py::value_error("ids and sids differ in length");
            index.add_codes(n, packed.data(), ids.data());
          },
          py::arg("sids"), py::arg("ids") = py::none(),
          "Adds already-encoded items (int32 [n, levels]), with optional ids.");

  m.def(
      "write_index",
      [](const faiss::Index& index, const std::string& path) {
        semid::write_index(&index, path.c_str());
      },
      py::arg("index"), py::arg("path"));
  m.def(
      "read_index", [](const std::string& path) { return owned(semid::read_index(path.c_str())); },
      py::arg("path"));
  m.def(
      "index_factory",
      [](int d, const std::string& description, py::handle metric) {
        return owned(semid::index_factory(d, description.c_str(), parse_index_metric(metric)));
      },
      py::arg("d"), py::arg("description"), py::arg("metric") = "l2",
      "semid::index_factory: 'RQVAE3x8,...' (optionally under IDMap/IDMap2) or any FAISS string.");
}

}  // namespace semid::python
