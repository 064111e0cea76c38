// The semid model file: a safetensors file (readable by Python's `safetensors` package) whose
// `__metadata__` carries
//   "semid.format"       = "semid-model"
//   "semid.version"      = "1"
//   "semid.kind"         = "rqvae" | "rqkmeans"
//   "semid.config"       = the model config as JSON
//   "semid.content_hash" = hex SHA-256 over kind, config and every tensor (name, dtype, shape,
//                          bytes, in name order)
// Loading recomputes the hash, so a flipped byte anywhere in the tensors or config is caught as
// Corruption, and a store can tell models apart by hash alone.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "index/safetensors.h"
#include "index/status.h"

namespace semid::model_file {

inline constexpr int kVersion = 1;

// Hex SHA-256 of `bytes` (what an imported model records of its source file).
std::string sha256_hex(std::span<const std::uint8_t> bytes);

// The content hash of a model given its parts (hex SHA-256).
std::string content_hash(std::string_view kind, const nlohmann::json& config,
                         const std::map<std::string, safetensors::TensorView>& tensors);

std::string content_hash(std::string_view kind, const nlohmann::json& config,
                         const std::map<std::string, safetensors::Tensor>& tensors);

// The bytes of a model file; also returns the content hash through `hash_out` when not null.
Result<std::string> serialize(std::string_view kind, const nlohmann::json& config,
                              const std::map<std::string, safetensors::Tensor>& tensors,
                              std::string* hash_out = nullptr);

// A parsed model file. Tensor views point into `bytes`, which the object owns.
struct Parsed {
  std::string kind;
  nlohmann::json config;
  std::string hash;
  std::shared_ptr<const std::string> bytes;
  safetensors::Archive archive;
};

// Parses and verifies a model file's bytes: safetensors layout, format/version keys, config JSON,
// and the content hash. Corruption or InvalidArgument with a message naming what is wrong.
Result<Parsed> parse(std::string bytes);
// Reads `path` and parses it; errors are prefixed with the path.
Result<Parsed> read(const std::string& path);

}  // namespace semid::model_file
