// Reading request JSON strictly: typed fields with the HTTP error each mistake deserves.
//
// Every reader throws ApiError, which Api::handle turns into {"error": {"code", "message"}} at
// one place (and which batch upserts turn into per-item errors). Messages name the field by its
// path ("items[3].vector[7]") and the offending value or rule.
//
//   400 invalid_field    missing required field, unknown field, wrong JSON type
//   400 wrong_dimension  a vector of the wrong length
//   400 invalid_number   a vector value beyond float range (|x| > FLT_MAX)
//   422 invalid_value    the right type but out of range (negative id, k = 0, a code >= K, ...)
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_types.h"
#include "index/status.h"

namespace semid::http {

struct ApiError {
  HttpStatus status;
  std::string code;
  std::string message;
};

[[noreturn]] void throw_api_error(HttpStatus status, std::string code, std::string message);
// 400 invalid_field.
[[noreturn]] void throw_invalid_field(const std::string& message);
// 422 invalid_value.
[[noreturn]] void throw_invalid_value(const std::string& message);
// The ApiError a storage Status deserves: InvalidArgument -> 422 invalid_value (requests are
// type-checked before storage sees them, so what storage refuses is a value), NotFound -> 404,
// AlreadyExists and FailedPrecondition -> 409, Busy -> 503 busy, the rest -> 500.
[[noreturn]] void throw_status(const Status& status);

// True when `text` nests arrays and objects at most `max_depth` deep (a byte scan that skips
// strings; nlohmann's parser is iterative but its serialiser is recursive).
bool json_depth_within(std::string_view text, int max_depth);

// A request body as a JSON object: 400 invalid_json for text that does not parse, nests deeper
// than `max_depth`, holds a NUL byte (nlohmann stops reading there, so "{...}\0garbage" would
// parse: a differential with any proxy that reads the whole body) or repeats a key in one object
// (nlohmann keeps the last; another parser may keep the first); 400 invalid_field when it is not
// an object.
nlohmann::json parse_json_object(std::string_view text, int max_depth);

// The members of one JSON object, read by name. Each read marks the member as known;
// reject_unknown() then fails on any member nobody read (so a typo like "topk" is an error, not a
// silently ignored option).
class Fields {
 public:
  // `path`: how messages name this object ("body", "items[3]"). 400 when `object` is not one.
  Fields(const nlohmann::json& object, std::string path);

  // The member, or null when absent (a JSON null counts as absent).
  const nlohmann::json* find(const std::string& name);
  const nlohmann::json& require(const std::string& name);
  // How messages name member `name` ("items[3].id", or "k" at the top level).
  std::string path_of(const std::string& name) const;

  // Typed optional members; `fallback` when absent.
  bool boolean(const std::string& name, bool fallback);
  std::string string(const std::string& name, const std::string& fallback);
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  double number(const std::string& name, double fallback, double min, double max);

  // 400 naming the first member no read asked for.
  void reject_unknown() const;

 private:
  const nlohmann::json& object_;
  std::string path_;
  std::set<std::string> known_;
};

// An integer in [min, max]: 400 for a non-integer (a float, "3", true), 422 out of range.
std::int64_t read_integer(const nlohmann::json& value, const std::string& path, std::int64_t min,
                          std::int64_t max);
// An unsigned integer in [0, max] (the whole uint64 range when max is UINT64_MAX).
std::uint64_t read_unsigned(const nlohmann::json& value, const std::string& path,
                            std::uint64_t max);
// A finite number in [min, max].
double read_number(const nlohmann::json& value, const std::string& path, double min, double max);
bool read_bool(const nlohmann::json& value, const std::string& path);
std::string read_string(const nlohmann::json& value, const std::string& path);
// An array of at most `max_size` elements (422 beyond).
const nlohmann::json& read_array(const nlohmann::json& value, const std::string& path,
                                 std::size_t max_size);

// A vector of exactly `dim` numbers, appended to `out` as floats (400 wrong_dimension,
// invalid_field, invalid_number).
void read_vector(const nlohmann::json& value, const std::string& path, std::size_t dim,
                 std::vector<float>& out);
// One vector ("vector": [...]) or a batch ("vectors": [[...], ...]), exactly one of the two.
// Returns the number of rows; `out` receives rows * dim floats. `batch` tells which form it was.
std::size_t read_vectors(Fields& fields, std::size_t dim, std::size_t max_rows,
                         std::vector<float>& out, bool& batch);
// SID codes: at most `max_levels` integers, each in [0, codebook_size) (422 otherwise).
std::vector<std::int32_t> read_codes(const nlohmann::json& value, const std::string& path,
                                     int max_levels, int codebook_size);
// Item ids: at most `max_count` unsigned integers, each <= max_id.
std::vector<std::uint64_t> read_ids(const nlohmann::json& value, const std::string& path,
                                    std::size_t max_count, std::uint64_t max_id);

// A float as the JSON number with the fewest digits that reads back as the same float ("0.1",
// not "0.10000000149011612").
nlohmann::json json_float(float value);
nlohmann::json json_floats(const float* values, std::size_t n);

}  // namespace semid::http
