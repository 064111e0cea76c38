// The SID key codec: decode_key on arbitrary keys for a codec shape taken from the input, and
// encode_key -> decode_key round trips of what decodes (key order is trie order; a key that
// decodes must encode back to the same bytes).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "index/sid.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int levels = 1 + data[0] % semid::SidKeyCodec::kMaxLevels;
  const int codebook_size = 2 << (data[1] % 16);  // 2 .. 65536
  auto codec = semid::SidKeyCodec::create(levels, codebook_size);
  if (!codec) std::abort();  // every such shape is valid
  const std::string key(reinterpret_cast<const char*>(data + 2), size - 2);
  auto decoded = codec->decode_key(key);
  if (decoded) {
    auto again = codec->encode_key(decoded->codes, decoded->collision_suffix, decoded->item_id);
    if (!again || *again != key) std::abort();
  }
  (void)codec->validate_prefix({});
  return 0;
}
