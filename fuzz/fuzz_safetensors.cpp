// safetensors::Archive::parse on arbitrary bytes: a clear Status or a valid archive whose every
// tensor can be read, never a crash, an overread or a hang.
#include <cstddef>
#include <cstdint>
#include <span>

#include "index/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace semid::safetensors;
  ParseLimits limits;
  limits.max_header_bytes = 1 << 20;
  auto archive = Archive::parse(std::span<const std::uint8_t>(data, size), limits);
  if (!archive) return 0;
  for (const std::string& name : archive->names()) {
    auto view = archive->tensor(name);
    if (view && view->dtype == DType::kF32) (void)archive->floats(name);
  }
  return 0;
}
