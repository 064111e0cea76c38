#include "index/status.h"

namespace semid {

const char* Status::code_name(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kNotFound:
      return "NotFound";
    case Code::kCorruption:
      return "Corruption";
    case Code::kIOError:
      return "IOError";
    case Code::kBusy:
      return "Busy";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Code::kInternal:
      return "Internal";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto escape = [&out](unsigned char byte) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
        escape(byte);
      } else {
        out += static_cast<char>(byte);
      }
      ++i;
      continue;
    }
    // The length of a well-formed UTF-8 sequence starting here (RFC 3629), or 0.
    std::size_t length = 0;
    if (byte >= 0xc2 && byte <= 0xdf) length = 2;
    if (byte >= 0xe0 && byte <= 0xef) length = 3;
    if (byte >= 0xf0 && byte <= 0xf4) length = 4;
    bool ok = length > 0 && i + length <= text.size();
    for (std::size_t j = 1; ok && j < length; ++j) {
      ok = (static_cast<unsigned char>(text[i + j]) & 0xc0) == 0x80;
    }
    if (ok && length >= 3) {
      const auto second = static_cast<unsigned char>(text[i + 1]);
      // Overlong forms, surrogates and code points past U+10FFFF.
      if ((byte == 0xe0 && second < 0xa0) || (byte == 0xed && second > 0x9f) ||
          (byte == 0xf0 && second < 0x90) || (byte == 0xf4 && second > 0x8f)) {
        ok = false;
      }
    }
    if (!ok) {
      escape(byte);
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace semid
