#include "http/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/beast/core/string.hpp>

namespace semid::http {

KeyChecker::KeyChecker(const std::string& api_key, const std::string& read_only_key) {
  if (!api_key.empty()) api_digest_ = digest(api_key);
  if (!read_only_key.empty()) read_only_digest_ = digest(read_only_key);
}

KeyChecker::Digest KeyChecker::digest(std::string_view key) {
  Digest out{};
  unsigned int size = 0;
  EVP_Digest(key.data(), key.size(), out.data(), &size, EVP_sha256(), nullptr);
  return out;
}

bool KeyChecker::equal(const Digest& a, const std::optional<Digest>& b) {
  return b.has_value() && CRYPTO_memcmp(a.data(), b->data(), a.size()) == 0;
}

KeyChecker::Grant KeyChecker::grant(const Request& request) const {
  if (!enabled()) return Grant::kWrite;
  boost::beast::string_view key;
  const auto api_key = request.find("api-key");
  if (api_key != request.end()) {
    key = api_key->value();
  } else if (const auto authorization = request.find(beast_http::field::authorization);
             authorization != request.end()) {
    constexpr boost::beast::string_view kBearer = "bearer ";
    const boost::beast::string_view value = authorization->value();
    if (value.size() > kBearer.size() &&
        boost::beast::iequals(value.substr(0, kBearer.size()), kBearer)) {
      key = value.substr(kBearer.size());
    }
  }
  if (key.empty()) return Grant::kMissing;
  const Digest given = digest(std::string_view(key.data(), key.size()));
  // Both comparisons always run: the time does not tell which key (if any) matched.
  const bool is_api_key = equal(given, api_digest_);
  const bool is_read_only_key = equal(given, read_only_digest_);
  if (is_api_key) return Grant::kWrite;
  if (is_read_only_key) return Grant::kRead;
  return Grant::kInvalid;
}

}  // namespace semid::http
