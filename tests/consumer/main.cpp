// Uses semid through its installed CMake package only.
#include <cstdio>
#include <filesystem>

#include "index/vecs_io.h"

int main() {
  semid::FloatMatrix m(2, 3);
  for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<float>(i) * 0.5f;
  const std::string path =
      (std::filesystem::temp_directory_path() / "semid_consumer.fvecs").string();
  if (auto s = semid::write_fvecs(path, m); !s) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  auto back = semid::read_float_vectors(path);
  std::filesystem::remove(path);
  if (!back || back->rows != 2 || back->cols != 3 || back->data != m.data) {
    std::fprintf(stderr, "round trip failed\n");
    return 1;
  }
  std::printf("semid consumer ok: %zux%zu\n", back->rows, back->cols);
  return 0;
}
