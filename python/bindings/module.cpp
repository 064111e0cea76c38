// The compiled half of `import semid` (see python/semid/__init__.py for the package around it).
#include <pybind11/stl.h>

#include "python/bindings/arrays.h"

namespace semid::python {

void raise(const Status& status) {
  const std::string message = status.to_string();
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
      throw py::value_error(message);
    case Status::Code::kNotFound:
      throw py::key_error(message);
    default:
      throw std::runtime_error(message);
  }
}

py::dict next_tokens_entry(const std::vector<std::int32_t>& prefix, std::uint64_t count,
                           const std::vector<SidTrie::Child>& children) {
  py::list next;
  for (const SidTrie::Child& c : children) {
    next.append(py::dict(py::arg("code") = c.code, py::arg("count") = c.count));
  }
  return py::dict(py::arg("prefix") = prefix, py::arg("count") = count, py::arg("next") = next);
}

py::object to_python(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

std::string to_json_text(py::handle obj) {
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  return py::module_::import("json").attr("dumps")(obj).cast<std::string>();
}

}  // namespace semid::python

PYBIND11_MODULE(_semid, m) {
  m.doc() = "semid: semantic IDs (RQ-VAE and residual k-means), a FAISS index, tries, collections";
  m.attr("__version__") = SEMID_VERSION;
  semid::python::bind_quantizer(m);
  semid::python::bind_index(m);
  semid::python::bind_trie(m);
  semid::python::bind_storage(m);
}
