// API keys: which access a request's key grants, compared in constant time.
//
// A key comes in the `api-key` header (as Qdrant's clients send it) or as
// `Authorization: Bearer <key>`. With no key configured every request has full access. Keys are
// kept only as SHA-256 digests and compared with CRYPTO_memcmp, so neither the comparison time
// nor its length depends on how much of a guess is right; they are never logged.
//
// Thread safety: immutable after construction; grant() may run on many threads at once.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "http/http_types.h"

namespace semid::http {

class KeyChecker {
 public:
  // What a request may do.
  enum class Grant {
    kMissing,  // keys are configured and the request sent none (401)
    kInvalid,  // it sent a key that is neither (403)
    kRead,     // the read-only key
    kWrite,    // the api key, or no key is configured
  };

  // An empty key is "not configured".
  KeyChecker(const std::string& api_key, const std::string& read_only_key);

  bool enabled() const { return api_digest_.has_value() || read_only_digest_.has_value(); }
  Grant grant(const Request& request) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest digest(std::string_view key);
  static bool equal(const Digest& a, const std::optional<Digest>& b);

  std::optional<Digest> api_digest_;
  std::optional<Digest> read_only_digest_;
};

}  // namespace semid::http
