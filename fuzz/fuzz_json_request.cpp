// The JSON request readers: parse_json_object (depth, NUL bytes, repeated keys) on arbitrary
// bytes, then the typed readers a search, an upsert and a trie call apply to the body. Every
// rejection must be an ApiError (a 4xx), never another exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/json_fields.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace semid::http;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json body = parse_json_object(text, 64);
    Fields fields(body, "");
    std::vector<float> vectors;
    bool batch = false;
    if (fields.find("vector") != nullptr || fields.find("vectors") != nullptr) {
      (void)read_vectors(fields, 4, 100, vectors, batch);
    }
    (void)fields.integer("k", 10, 1, 1000);
    (void)fields.boolean("with_payload", true);
    (void)fields.string("cursor", "");
    (void)fields.number("min_score", 0, -1, 1);
    if (const auto* prefix = fields.find("prefix")) (void)read_codes(*prefix, "prefix", 3, 256);
    if (const auto* ids = fields.find("ids")) (void)read_ids(*ids, "ids", 1000, 1ull << 63);
    if (const auto* items = fields.find("items")) {
      const nlohmann::json& list = read_array(*items, "items", 100);
      for (const auto& item : list) {
        Fields f(item, "items[]");
        (void)read_unsigned(f.require("id"), "items[].id", 1ull << 63);
        std::vector<float> v;
        read_vector(f.require("vector"), "items[].vector", 4, v);
        (void)json_floats(v.data(), v.size()).dump();
      }
    }
    fields.reject_unknown();
  } catch (const ApiError&) {
  }
  return 0;
}
