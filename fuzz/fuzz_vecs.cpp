// The vector-file readers (.fvecs, .ivecs, .bvecs, .npy; memory-mapped, layout validated at open)
// on arbitrary bytes: the first byte picks the format, the rest is the file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "index/vecs_io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* const kExtensions[] = {".fvecs", ".ivecs", ".bvecs", ".npy"};
  const std::string path =
      "/dev/shm/semid_fuzz_vecs_" + std::to_string(getpid()) + kExtensions[data[0] % 4];
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data + 1, 1, size - 1, f);
    std::fclose(f);
  } else {
    return 0;
  }
  if (auto file = semid::VectorFile::open(path)) {
    semid::ReadOptions options;
    options.max_rows = 64;
    (void)file->read_floats(options);
    (void)file->read_int32(options);
    (void)file->read_int64(options);
  }
  (void)semid::read_shape(path);
  std::remove(path.c_str());
  return 0;
}
