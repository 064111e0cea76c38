// What every binding room shares: numpy arrays in and out with the argument named in each error,
// and semid's Status mapped onto Python's exceptions.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "index/status.h"
#include "index/trie.h"

namespace semid::python {

namespace py = pybind11;

// A C-contiguous array of T with `ndim` dimensions (and `cols` columns when cols >= 0) from any
// array-like: other numeric dtypes are converted (float data is refused where integers are
// expected), anything else is a TypeError and a wrong shape a ValueError, both naming `name`.
// No copy when obj already is such an array.
template <class T>
py::array_t<T, py::array::c_style> as_array(py::handle obj, const char* name, int ndim,
                                            py::ssize_t cols = -1) {
  py::array any = py::array::ensure(obj);
  if (!any) throw py::type_error(std::string(name) + " must be an array-like of numbers");
  const char kind = any.dtype().kind();
  const bool integer = std::is_integral_v<T>;
  if (kind != 'f' && kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(name) + " has dtype " +
                         py::str(any.dtype()).cast<std::string>() + "; expected " +
                         (integer ? "integers" : "numbers"));
  }
  if (integer && kind == 'f') {
    throw py::type_error(std::string(name) + " has dtype " +
                         py::str(any.dtype()).cast<std::string>() + "; expected integers");
  }
  auto out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(any);
  if (!out) throw py::type_error(std::string(name) + " cannot be converted");
  if (out.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimension(s), got " + std::to_string(out.ndim()));
  }
  if (cols >= 0 && out.shape(ndim - 1) != cols) {
    throw py::value_error(std::string(name) + " has " + std::to_string(out.shape(ndim - 1)) +
                          " columns; expected " + std::to_string(cols));
  }
  return out;
}

// A new C-contiguous array of shape (rows, cols).
template <class T>
py::array_t<T> new_matrix(py::ssize_t rows, py::ssize_t cols) {
  return py::array_t<T>({rows, cols});
}

// Raises the Python exception a Status maps to: InvalidArgument -> ValueError, NotFound ->
// KeyError, anything else -> RuntimeError; the message is the Status's, with its code.
[[noreturn]] void raise(const Status& status);

inline void check(const Status& status) {
  if (!status.is_ok()) raise(status);
}
template <class T>
T value_or_raise(Result<T> result) {
  if (!result.is_ok()) raise(result.status());
  return std::move(result).value();
}

// One next_tokens answer, the same for a SidTrie and a Collection: {"prefix", "count" (items under
// it), "next": [{"code", "count"}, ...]} with codes ascending.
py::dict next_tokens_entry(const std::vector<std::int32_t>& prefix, std::uint64_t count,
                           const std::vector<SidTrie::Child>& children);

// JSON <-> Python objects through Python's json module.
py::object to_python(const nlohmann::json& j);
std::string to_json_text(py::handle obj);

void bind_quantizer(py::module_& m);
void bind_index(py::module_& m);
void bind_trie(py::module_& m);
void bind_storage(py::module_& m);

}  // namespace semid::python
