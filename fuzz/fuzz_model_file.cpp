// model_file::parse (the model-file reader behind RqVae/RqKMeans::load and every PUT {c} with a
// model): format keys, config JSON, dtypes, shapes, offsets and the content hash on arbitrary
// bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "index/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = semid::model_file::parse(std::string(reinterpret_cast<const char*>(data), size));
  if (parsed) (void)parsed->config.dump();
  return 0;
}
