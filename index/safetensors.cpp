#include "index/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

namespace semid::safetensors {
namespace {

// Data bytes are handed out and taken in as they lie in memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::size_t kLengthPrefixBytes = 8;
constexpr std::string_view kMetadataKey = "__metadata__";
// A valid header nests three deep (root -> tensor -> shape); unknown fields may add a little.
constexpr std::size_t kMaxHeaderNesting = 64;
// Names from hostile files can be huge; messages quote at most this many characters of them.
constexpr std::size_t kMaxQuotedChars = 128;

constexpr std::array<DType, 11> kAllDTypes = {DType::kF32, DType::kF64,  DType::kI32, DType::kI64,
                                              DType::kU8,  DType::kI8,   DType::kI16, DType::kU16,
                                              DType::kF16, DType::kBF16, DType::kBool};

// The Python package's Dtype enum order, "increasing alignment"; its writer lays tensors out by
// descending rank, then name. Matching it makes our files byte-identical to its.
int python_layout_rank(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return 0;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 2;
    case DType::kI16:
      return 5;
    case DType::kU16:
      return 6;
    case DType::kF16:
      return 7;
    case DType::kBF16:
      return 8;
    case DType::kI32:
      return 9;
    case DType::kF32:
      return 11;
    case DType::kF64:
      return 12;
    case DType::kI64:
      return 13;
  }
  return 0;
}

std::string quote(std::string_view text) {
  if (text.size() <= kMaxQuotedChars) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, kMaxQuotedChars)) + "...' (" +
         std::to_string(text.size()) + " chars)";
}

// A JSON value as text for an error message, cut short like quote().
std::string brief(const Json& value) {
  std::string text = value.dump();
  if (text.size() > kMaxQuotedChars) text = text.substr(0, kMaxQuotedChars) + "...";
  return text;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

std::string supported_dtype_names() {
  std::string text;
  for (DType dtype : kAllDTypes) {
    if (!text.empty()) text += ", ";
    text += dtype_name(dtype);
  }
  return text;
}

// Product of the dimensions, or nullopt when one is negative or the product (or any partial
// product, so that TensorView::numel() can multiply in the same order) exceeds int64.
std::optional<std::int64_t> checked_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t numel = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(numel, dim, &numel)) return std::nullopt;
  }
  return numel;
}

// numel * dtype_size, or nullopt on overflow of int64.
std::optional<std::uint64_t> checked_byte_size(const std::vector<std::int64_t>& shape,
                                               DType dtype) {
  const std::optional<std::int64_t> numel = checked_numel(shape);
  std::int64_t bytes = 0;
  if (!numel ||
      __builtin_mul_overflow(*numel, static_cast<std::int64_t>(dtype_size(dtype)), &bytes)) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(bytes);
}

// ---------------------------------------------------------------------------------------------
// Reading.

struct HeaderRejected {
  std::string message;
};

// Parses the header text as JSON, rejecting what nlohmann::json would silently accept: a NUL byte
// (it ends the input early) and duplicate keys (the last would win), plus absurd nesting.
Result<Json> parse_header_json(std::string_view text) {
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    return Status::corruption("header holds a NUL byte at header offset " + std::to_string(nul));
  }
  std::vector<std::set<std::string>> open_scopes;  // keys seen, one set per open object or array
  const Json::parser_callback_t reject_duplicates = [&](int, Json::parse_event_t event,
                                                        Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (open_scopes.size() >= kMaxHeaderNesting) {
          throw HeaderRejected{"header nests deeper than " + std::to_string(kMaxHeaderNesting) +
                               " levels"};
        }
        open_scopes.emplace_back();
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        open_scopes.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_scopes.back().insert(parsed.get<std::string>()).second) {
          throw HeaderRejected{"header has duplicate key " + quote(parsed.get<std::string>())};
        }
        break;
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), reject_duplicates);
  } catch (const HeaderRejected& rejected) {
    return Status::corruption(rejected.message);
  } catch (const Json::exception& e) {
    return Status::corruption(std::string("header is not valid JSON: ") + e.what());
  }
}

Result<std::map<std::string, std::string>> parse_metadata(const Json& value) {
  if (!value.is_object()) {
    return Status::corruption("__metadata__ must be an object of strings, got " + brief(value));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return Status::corruption("__metadata__[" + quote(key) + "] must be a string, got " +
                                brief(item));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// A non-negative integer that fits `max`, or an error built from `what`.
Result<std::uint64_t> parse_count(const Json& value, const std::string& what, std::uint64_t max) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > max) {
    return Status::corruption(what + " must be an integer in [0, " + std::to_string(max) +
                              "], got " + brief(value));
  }
  return value.get<std::uint64_t>();
}

struct ParsedTensor {
  TensorView view;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

Result<ParsedTensor> parse_tensor(const std::string& name, const Json& info,
                                  std::span<const std::uint8_t> buffer) {
  const std::string where = "tensor " + quote(name);
  if (!info.is_object())
    return Status::corruption(where + " must be an object, got " + brief(info));
  auto field = [&](const char* key) -> const Json* {
    const auto it = info.find(key);
    return it == info.end() ? nullptr : &*it;
  };
  const Json* dtype = field("dtype");
  const Json* shape = field("shape");
  const Json* offsets = field("data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    return Status::corruption(where + " needs fields 'dtype', 'shape' and 'data_offsets', got " +
                              brief(info));
  }

  ParsedTensor parsed;
  if (!dtype->is_string()) {
    return Status::corruption(where + ": dtype must be a string, got " + brief(*dtype));
  }
  auto parsed_dtype = parse_dtype(dtype->get<std::string>());
  if (!parsed_dtype.is_ok())
    return Status::corruption(where + ": " + parsed_dtype.status().message());
  parsed.view.dtype = *parsed_dtype;

  if (!shape->is_array()) {
    return Status::corruption(where + ": shape must be an array, got " + brief(*shape));
  }
  for (std::size_t i = 0; i < shape->size(); ++i) {
    SEMID_ASSIGN_OR_RETURN(
        std::uint64_t dim,
        parse_count((*shape)[i], where + ": shape[" + std::to_string(i) + "]",
                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
    parsed.view.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const std::optional<std::uint64_t> expected_bytes =
      checked_byte_size(parsed.view.shape, parsed.view.dtype);
  if (!expected_bytes) {
    return Status::corruption(where + ": shape " + shape_string(parsed.view.shape) + " of " +
                              dtype_name(parsed.view.dtype) + " overflows 64-bit sizes");
  }

  if (!offsets->is_array() || offsets->size() != 2) {
    return Status::corruption(where + ": data_offsets must be [begin, end], got " +
                              brief(*offsets));
  }
  const std::uint64_t buffer_size = buffer.size();
  SEMID_ASSIGN_OR_RETURN(parsed.begin,
                         parse_count((*offsets)[0], where + ": data_offsets begin", buffer_size));
  SEMID_ASSIGN_OR_RETURN(parsed.end, parse_count((*offsets)[1],
                                                 where +
                                                     ": data_offsets end (the data buffer"
                                                     " has " +
                                                     std::to_string(buffer_size) + " bytes)",
                                                 buffer_size));
  const std::string offsets_text =
      "[" + std::to_string(parsed.begin) + ", " + std::to_string(parsed.end) + "]";
  if (parsed.end < parsed.begin) {
    return Status::corruption(where + ": data_offsets " + offsets_text + " are not ascending");
  }
  if (parsed.end - parsed.begin != *expected_bytes) {
    return Status::corruption(
        where + ": data_offsets " + offsets_text + " span " +
        std::to_string(parsed.end - parsed.begin) + " bytes but " + dtype_name(parsed.view.dtype) +
        " " + shape_string(parsed.view.shape) + " needs " + std::to_string(*expected_bytes));
  }
  parsed.view.data = buffer.subspan(parsed.begin, parsed.end - parsed.begin);
  return parsed;
}

// The Python package's rule: sorted by offsets, the tensors tile [0, buffer size) exactly.
Status check_contiguous(std::vector<std::pair<const std::string*, const ParsedTensor*>> layout,
                        std::uint64_t buffer_size) {
  std::sort(layout.begin(), layout.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, tensor] : layout) {
    if (tensor->begin < covered) {
      return Status::corruption("tensor " + quote(*name) + " at data_offsets [" +
                                std::to_string(tensor->begin) + ", " + std::to_string(tensor->end) +
                                "] overlaps tensor " + quote(*previous) + " ending at " +
                                std::to_string(covered));
    }
    if (tensor->begin > covered) {
      return Status::corruption(
          "data bytes [" + std::to_string(covered) + ", " + std::to_string(tensor->begin) +
          ") belong to no tensor (a hole before tensor " + quote(*name) + ")");
    }
    covered = tensor->end;
    previous = name;
  }
  if (covered != buffer_size) {
    return Status::corruption("data bytes [" + std::to_string(covered) + ", " +
                              std::to_string(buffer_size) +
                              ") after the last tensor belong to no tensor");
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Writing.

Status check_utf8(const std::string& text, const std::string& what) {
  try {
    (void)Json(text).dump();
  } catch (const Json::type_error&) {
    return Status::invalid_argument(what + " " + quote(text) + " is not valid UTF-8");
  }
  return Status::ok();
}

using NamedTensor = std::pair<const std::string, Tensor>;

// The length prefix plus the padded header, and the order in which the data follows it.
struct Layout {
  std::string header;
  std::vector<const NamedTensor*> order;
  std::uint64_t data_bytes = 0;
};

Result<Layout> plan_layout(const std::map<std::string, Tensor>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  Layout layout;
  for (const NamedTensor& named : tensors) {
    const auto& [name, tensor] = named;
    const std::string where = "tensor " + quote(name);
    if (name == kMetadataKey) {
      return Status::invalid_argument("a tensor may not be named '__metadata__' (reserved key)");
    }
    SEMID_RETURN_IF_ERROR(check_utf8(name, "tensor name"));
    const std::optional<std::uint64_t> bytes = checked_byte_size(tensor.shape, tensor.dtype);
    if (!bytes) {
      return Status::invalid_argument(where + ": shape " + shape_string(tensor.shape) +
                                      " has a negative dimension or overflows 64-bit sizes");
    }
    if (*bytes != tensor.data.size()) {
      return Status::invalid_argument(
          where + ": " + dtype_name(tensor.dtype) + " " + shape_string(tensor.shape) + " needs " +
          std::to_string(*bytes) + " bytes, data holds " + std::to_string(tensor.data.size()));
    }
    layout.order.push_back(&named);
  }
  for (const auto& [key, value] : metadata) {
    SEMID_RETURN_IF_ERROR(check_utf8(key, "metadata key"));
    SEMID_RETURN_IF_ERROR(check_utf8(value, "metadata value of " + quote(key) + ":"));
  }
  std::stable_sort(
      layout.order.begin(), layout.order.end(), [](const NamedTensor* a, const NamedTensor* b) {
        return python_layout_rank(a->second.dtype) > python_layout_rank(b->second.dtype);
      });  // stable: names stay sorted within a rank, as std::map gave them

  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  for (const NamedTensor* named : layout.order) {
    const Tensor& tensor = named->second;
    const std::uint64_t begin = layout.data_bytes;
    layout.data_bytes += tensor.data.size();
    OrderedJson info = OrderedJson::object();
    info["dtype"] = dtype_name(tensor.dtype);
    info["shape"] = tensor.shape;
    info["data_offsets"] = OrderedJson::array({begin, layout.data_bytes});
    header[named->first] = std::move(info);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::uint64_t length = json.size();
  layout.header.resize(kLengthPrefixBytes);
  for (std::size_t i = 0; i < kLengthPrefixBytes; ++i) {
    layout.header[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  }
  layout.header += json;
  return layout;
}

template <typename T>
Tensor tensor_from(DType dtype, std::vector<std::int64_t> shape, std::span<const T> values) {
  Tensor tensor{dtype, std::move(shape), std::vector<std::uint8_t>(values.size_bytes())};
  if (!values.empty()) std::memcpy(tensor.data.data(), values.data(), values.size_bytes());
  return tensor;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kI16:
    case DType::kU16:
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kU8:
    case DType::kI8:
    case DType::kBool:
      return 1;
  }
  return 1;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
    case DType::kI8:
      return "I8";
    case DType::kI16:
      return "I16";
    case DType::kU16:
      return "U16";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kBool:
      return "BOOL";
  }
  return "?";
}

Result<DType> parse_dtype(std::string_view name) {
  for (DType dtype : kAllDTypes) {
    if (name == dtype_name(dtype)) return dtype;
  }
  return Status::invalid_argument("unknown dtype " + quote(name) +
                                  " (supported: " + supported_dtype_names() + ")");
}

std::int64_t TensorView::numel() const {
  std::int64_t numel = 1;
  for (std::int64_t dim : shape) numel *= dim;
  return numel;
}

Tensor Tensor::from_floats(std::vector<std::int64_t> shape, std::span<const float> values) {
  return tensor_from(DType::kF32, std::move(shape), values);
}

Tensor Tensor::from_int64s(std::vector<std::int64_t> shape, std::span<const std::int64_t> values) {
  return tensor_from(DType::kI64, std::move(shape), values);
}

Tensor Tensor::from_int32s(std::vector<std::int64_t> shape, std::span<const std::int32_t> values) {
  return tensor_from(DType::kI32, std::move(shape), values);
}

Result<Archive> Archive::parse(std::span<const std::uint8_t> bytes, const ParseLimits& limits) {
  if (bytes.size() < kLengthPrefixBytes) {
    return Status::corruption("file has " + std::to_string(bytes.size()) +
                              " bytes, fewer than the 8-byte header length");
  }
  std::uint64_t header_bytes = 0;
  for (std::size_t i = 0; i < kLengthPrefixBytes; ++i) {
    header_bytes |= static_cast<std::uint64_t>(bytes[i]) << (8 * i);
  }
  if (header_bytes > limits.max_header_bytes) {
    return Status::corruption("header length " + std::to_string(header_bytes) +
                              " exceeds the limit " + std::to_string(limits.max_header_bytes) +
                              " (ParseLimits::max_header_bytes)");
  }
  if (header_bytes > bytes.size() - kLengthPrefixBytes) {
    return Status::corruption(
        "header length " + std::to_string(header_bytes) + " runs past the end of the file (8 + " +
        std::to_string(header_bytes) + " > " + std::to_string(bytes.size()) + " bytes)");
  }
  const auto header_text = std::string_view(
      reinterpret_cast<const char*>(bytes.data() + kLengthPrefixBytes), header_bytes);
  const std::span<const std::uint8_t> buffer = bytes.subspan(kLengthPrefixBytes + header_bytes);

  SEMID_ASSIGN_OR_RETURN(const Json header, parse_header_json(header_text));
  if (!header.is_object()) {
    return Status::corruption(std::string("header must be a JSON object, got a ") +
                              header.type_name());
  }
  const std::size_t tensor_count = header.size() - header.count(std::string(kMetadataKey));
  if (tensor_count > limits.max_tensors) {
    return Status::corruption("header lists " + std::to_string(tensor_count) +
                              " tensors, over the limit " + std::to_string(limits.max_tensors) +
                              " (ParseLimits::max_tensors)");
  }

  std::map<std::string, std::string> metadata;
  std::map<std::string, ParsedTensor> tensors;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      SEMID_ASSIGN_OR_RETURN(metadata, parse_metadata(info));
      continue;
    }
    SEMID_ASSIGN_OR_RETURN(ParsedTensor tensor, parse_tensor(name, info, buffer));
    tensors.emplace(name, std::move(tensor));
  }

  std::vector<std::pair<const std::string*, const ParsedTensor*>> layout;
  layout.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) layout.emplace_back(&name, &tensor);
  SEMID_RETURN_IF_ERROR(check_contiguous(std::move(layout), buffer.size()));

  std::map<std::string, TensorView> views;
  for (auto& [name, tensor] : tensors) views.emplace(name, std::move(tensor.view));
  return Archive(std::move(views), std::move(metadata));
}

std::vector<std::string> Archive::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

Result<TensorView> Archive::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) return Status::not_found("no tensor " + quote(name) + " in the file");
  return it->second;
}

Result<TensorView> Archive::tensor(const std::string& name, DType expected_dtype,
                                   const std::vector<std::int64_t>& expected_shape) const {
  SEMID_ASSIGN_OR_RETURN(TensorView view, tensor(name));
  if (view.dtype != expected_dtype || view.shape != expected_shape) {
    return Status::corruption("tensor " + quote(name) + ": expected " + dtype_name(expected_dtype) +
                              " " + shape_string(expected_shape) + ", got " +
                              dtype_name(view.dtype) + " " + shape_string(view.shape));
  }
  return view;
}

Result<std::vector<float>> Archive::floats(const std::string& name) const {
  SEMID_ASSIGN_OR_RETURN(TensorView view, tensor(name));
  if (view.dtype != DType::kF32) {
    return Status::invalid_argument("tensor " + quote(name) + " is " + dtype_name(view.dtype) +
                                    ", not F32");
  }
  std::vector<float> values(static_cast<std::size_t>(view.numel()));
  if (!values.empty()) std::memcpy(values.data(), view.data.data(), view.data.size());
  return values;
}

Result<File> File::open(const std::string& path, const ParseLimits& limits) {
  SEMID_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::open(path));
  auto archive = Archive::parse(mapped->bytes(), limits);
  if (!archive.is_ok()) return archive.status().with_context("'" + path + "'");
  return File(std::move(mapped), std::move(archive).value());
}

Result<std::string> serialize(const std::map<std::string, Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  SEMID_ASSIGN_OR_RETURN(Layout layout, plan_layout(tensors, metadata));
  std::string out = std::move(layout.header);
  out.reserve(out.size() + layout.data_bytes);
  for (const NamedTensor* named : layout.order) {
    const std::vector<std::uint8_t>& data = named->second.data;
    out.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  return out;
}

Status write(const std::string& path, const std::map<std::string, Tensor>& tensors,
             const std::map<std::string, std::string>& metadata) {
  SEMID_ASSIGN_OR_RETURN(const Layout layout, plan_layout(tensors, metadata));
  return write_file_atomically(path, [&](const ByteSink& sink) {
    // A failed sink call is remembered by write_file_atomically, which reports it as IOError.
    if (!sink(layout.header.data(), layout.header.size())) return Status::ok();
    for (const NamedTensor* named : layout.order) {
      const std::vector<std::uint8_t>& data = named->second.data;
      if (!data.empty() && !sink(data.data(), data.size())) break;
    }
    return Status::ok();
  });
}

}  // namespace semid::safetensors
