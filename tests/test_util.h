// Helpers shared by the test programs.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace semid::testing {

// ../shared/datasets (override with SEMID_SHARED_DIR in the environment).
inline std::filesystem::path datasets_dir() {
  if (const char* env = std::getenv("SEMID_SHARED_DIR"))
    return std::filesystem::path(env) / "datasets";
  return std::filesystem::path(SEMID_SHARED_DIR) / "datasets";
}

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("semid_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace semid::testing

// Skips the test when a shared dataset is missing (CI always has ../shared beside the clone).
#define SEMID_REQUIRE_DATASET(path)                                                    \
  do {                                                                                 \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "dataset missing: " << (path); \
  } while (0)
