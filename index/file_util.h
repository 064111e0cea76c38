// Small, careful file primitives shared by every on-disk format in semid.
//
// - MappedFile: a read-only memory map of a whole file (empty files map to an empty span).
// - write_file_atomically: temp file -> fsync -> rename -> fsync of the directory, so a reader
//   sees either the old file or the complete new one, never a torn write (RocksDB's habit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "index/status.h"

namespace semid {

class MappedFile {
 public:
  // Maps `path` read-only. Errors: NotFound (no such file), IOError (anything else), both naming
  // the path and the OS error.
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const std::uint8_t* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Receives bytes to append to the file being written; returns false after a write error.
using ByteSink = std::function<bool(const void* data, std::size_t size)>;

// Writes `path` atomically: `produce` streams the content into a temporary file beside `path`,
// which is fsynced and renamed over `path`; then the directory is fsynced. If `produce` returns a
// non-OK Status or any step fails, the temporary file is removed and `path` is left untouched.
Status write_file_atomically(const std::string& path,
                             const std::function<Status(const ByteSink& sink)>& produce);

// Convenience: the whole content at once.
Status write_file_atomically(const std::string& path, std::string_view content);

// Reads a whole file into a string (for small files: configs, headers, tests).
Result<std::string> read_file(const std::string& path);

}  // namespace semid
