#include "index/model_file.h"

#include <openssl/evp.h>

#include <cstdio>

#include "index/file_util.h"

namespace semid::model_file {
namespace {

constexpr const char* kFormatKey = "semid.format";
constexpr const char* kFormatValue = "semid-model";
constexpr const char* kVersionKey = "semid.version";
constexpr const char* kKindKey = "semid.kind";
constexpr const char* kConfigKey = "semid.config";
constexpr const char* kHashKey = "semid.content_hash";

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size) { EVP_DigestUpdate(ctx_, data, size); }
  // Length-prefixed, so that ("ab","c") and ("a","bc") hash differently.
  void update_field(std::string_view s) {
    const std::uint64_t size = s.size();
    update(&size, sizeof(size));
    update(s.data(), s.size());
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx_, digest, &length);
    std::string out;
    char buf[3];
    for (unsigned int i = 0; i < length; ++i) {
      std::snprintf(buf, sizeof(buf), "%02x", digest[i]);
      out += buf;
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex();
}

std::string content_hash(std::string_view kind, const nlohmann::json& config,
                         const std::map<std::string, safetensors::TensorView>& tensors) {
  Sha256 sha;
  sha.update_field(kind);
  sha.update_field(config.dump());
  for (const auto& [name, view] : tensors) {
    sha.update_field(name);
    sha.update_field(safetensors::dtype_name(view.dtype));
    for (std::int64_t dim : view.shape) sha.update(&dim, sizeof(dim));
    sha.update_field(
        std::string_view(reinterpret_cast<const char*>(view.data.data()), view.data.size()));
  }
  return sha.hex();
}

std::string content_hash(std::string_view kind, const nlohmann::json& config,
                         const std::map<std::string, safetensors::Tensor>& tensors) {
  std::map<std::string, safetensors::TensorView> views;
  for (const auto& [name, tensor] : tensors) {
    views.emplace(name, safetensors::TensorView{
                            tensor.dtype, tensor.shape, {tensor.data.data(), tensor.data.size()}});
  }
  return content_hash(kind, config, views);
}

Result<std::string> serialize(std::string_view kind, const nlohmann::json& config,
                              const std::map<std::string, safetensors::Tensor>& tensors,
                              std::string* hash_out) {
  std::string hash = content_hash(kind, config, tensors);
  std::map<std::string, std::string> metadata = {
      {kFormatKey, kFormatValue},
      {kVersionKey, std::to_string(kVersion)},
      {kKindKey, std::string(kind)},
      {kConfigKey, config.dump()},
      {kHashKey, hash},
  };
  if (hash_out != nullptr) *hash_out = hash;
  return safetensors::serialize(tensors, metadata);
}

Result<Parsed> parse(std::string bytes) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  std::span<const std::uint8_t> span(reinterpret_cast<const std::uint8_t*>(owned->data()),
                                     owned->size());
  SEMID_ASSIGN_OR_RETURN(auto archive, safetensors::Archive::parse(span));
  const auto& meta = archive.metadata();
  auto get = [&](const char* key) -> Result<std::string> {
    auto it = meta.find(key);
    if (it == meta.end()) {
      return Status::corruption(std::string("not a semid model file: metadata key '") + key +
                                "' is missing");
    }
    return it->second;
  };
  SEMID_ASSIGN_OR_RETURN(std::string format, get(kFormatKey));
  if (format != kFormatValue) {
    return Status::corruption("not a semid model file: semid.format is '" + format + "'");
  }
  SEMID_ASSIGN_OR_RETURN(std::string version, get(kVersionKey));
  if (version != std::to_string(kVersion)) {
    return Status::invalid_argument("unsupported model file version '" + version +
                                    "' (this build reads version " + std::to_string(kVersion) +
                                    ")");
  }
  Parsed parsed{.kind = "", .config = {}, .hash = "", .bytes = owned, .archive = archive};
  SEMID_ASSIGN_OR_RETURN(parsed.kind, get(kKindKey));
  SEMID_ASSIGN_OR_RETURN(std::string config_text, get(kConfigKey));
  parsed.config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (parsed.config.is_discarded() || !parsed.config.is_object()) {
    return Status::corruption("semid.config is not a JSON object");
  }
  SEMID_ASSIGN_OR_RETURN(parsed.hash, get(kHashKey));
  std::map<std::string, safetensors::TensorView> views;
  for (const auto& name : archive.names()) {
    SEMID_ASSIGN_OR_RETURN(auto view, archive.tensor(name));
    views.emplace(name, view);
  }
  const std::string actual = content_hash(parsed.kind, parsed.config, views);
  if (actual != parsed.hash) {
    return Status::corruption("content hash mismatch: metadata says " + parsed.hash +
                              ", tensors and config hash to " + actual);
  }
  return parsed;
}

Result<Parsed> read(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  auto parsed = parse(std::move(bytes));
  if (!parsed) return parsed.status().with_context("model file '" + path + "'");
  return parsed;
}

}  // namespace semid::model_file
