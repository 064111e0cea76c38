#include "storage/dir_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

namespace semid::storage {
namespace {

namespace fs = std::filesystem;

Status os_error(const std::string& what, const std::string& path, int error) {
  return Status::io_error(what + " " + path + ": " + std::strerror(error));
}

Status fs_error(const std::string& what, const std::string& path, const std::error_code& ec) {
  return Status::io_error(what + " " + path + ": " + ec.message());
}

Status fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return os_error("cannot open", path, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return os_error("cannot fsync", path, error);
  return Status::ok();
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

Status copy_tree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::create_directory(to, ec) || ec) return fs_error("cannot create", to.string(), ec);
  for (const fs::directory_entry& entry : fs::directory_iterator(from, ec)) {
    const fs::path target = to / entry.path().filename();
    if (entry.is_directory()) {
      SEMID_RETURN_IF_ERROR(copy_tree(entry.path(), target));
    } else if (entry.is_regular_file()) {
      if (!fs::copy_file(entry.path(), target, ec) || ec) {
        return fs_error("cannot copy to", target.string(), ec);
      }
      SEMID_RETURN_IF_ERROR(fsync_path(target.string(), O_RDONLY));
    }
  }
  if (ec) return fs_error("cannot list", from.string(), ec);
  return fsync_directory(to.string());
}

}  // namespace

Status fsync_directory(const std::string& dir) { return fsync_path(dir, O_RDONLY | O_DIRECTORY); }

Status copy_directory_durably(const std::string& from, const std::string& to) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return Status::not_found("no directory " + from);
  if (fs::exists(to, ec)) return Status::already_exists(to + " already exists");
  Status status = copy_tree(from, to);
  if (!status.is_ok()) {
    fs::remove_all(to, ec);
    return status;
  }
  return fsync_directory(parent_of(to));
}

Status rename_durably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return os_error("cannot rename " + from + " to", to, errno);
  }
  SEMID_RETURN_IF_ERROR(fsync_directory(parent_of(to)));
  if (parent_of(from) != parent_of(to)) SEMID_RETURN_IF_ERROR(fsync_directory(parent_of(from)));
  return Status::ok();
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return fs_error("cannot remove", path, ec);
  return Status::ok();
}

Result<std::uint64_t> directory_bytes(const std::string& dir) {
  std::error_code ec;
  std::uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    // Files may vanish under a running database (compactions): skip what cannot be sized.
    std::error_code size_error;
    if (it->is_regular_file(size_error)) {
      const auto size = it->file_size(size_error);
      if (!size_error) total += size;
    }
  }
  if (ec) return fs_error("cannot list", dir, ec);
  return total;
}

std::string unique_token() {
  std::random_device device;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%d-%08x", static_cast<int>(::getpid()), device());
  return buffer;
}

Status with_cleanup(const Status& error, const Status& cleanup) {
  if (cleanup.is_ok()) return error;
  return error.with_context("cleaning up also failed (" + cleanup.to_string() + ")");
}

}  // namespace semid::storage
