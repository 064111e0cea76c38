#include "index/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace semid {
namespace {

std::string os_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

// Closes a descriptor on scope exit unless released.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

Status fsync_directory(const std::string& dir) {
  FdGuard guard{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (guard.fd < 0) return Status::io_error(os_error("cannot open directory", dir));
  if (::fsync(guard.fd) != 0) return Status::io_error(os_error("cannot fsync directory", dir));
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; fstat below refuses
  // anything that is not a regular file, and regular files ignore the flag.
  FdGuard guard{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (guard.fd < 0) {
    if (errno == ENOENT) return Status::not_found("no such file '" + path + "'");
    return Status::io_error(os_error("cannot open", path));
  }
  struct stat st {};
  if (::fstat(guard.fd, &st) != 0) return Status::io_error(os_error("cannot stat", path));
  if (!S_ISREG(st.st_mode)) return Status::invalid_argument("'" + path + "' is not a regular file");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) return std::unique_ptr<MappedFile>(new MappedFile(path, nullptr, 0));
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, guard.fd, 0);
  if (data == MAP_FAILED) return Status::io_error(os_error("cannot mmap", path));
  ::madvise(data, size, MADV_SEQUENTIAL);
  return std::unique_ptr<MappedFile>(
      new MappedFile(path, static_cast<const std::uint8_t*>(data), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

Status write_file_atomically(const std::string& path,
                             const std::function<Status(const ByteSink& sink)>& produce) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::random_device rd;
  std::string tmp_name = ".";
  tmp_name.append(target.filename().string())
      .append(".tmp.")
      .append(std::to_string(::getpid()))
      .append(".")
      .append(std::to_string(rd()));
  const std::string tmp = (dir / tmp_name).string();
  FdGuard guard{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
  if (guard.fd < 0) return Status::io_error(os_error("cannot create temporary file", tmp));

  auto fail = [&](Status status) {
    ::close(guard.fd);
    guard.fd = -1;
    ::unlink(tmp.c_str());
    return status;
  };
  bool write_failed = false;
  int write_errno = 0;
  ByteSink sink = [&](const void* data, std::size_t size) {
    if (write_failed) return false;
    if (!write_all(guard.fd, data, size)) {
      write_failed = true;
      write_errno = errno;
    }
    return !write_failed;
  };
  Status produced = produce(sink);
  if (!produced.is_ok()) return fail(produced);
  if (write_failed) {
    errno = write_errno;
    return fail(Status::io_error(os_error("cannot write", tmp)));
  }
  if (::fsync(guard.fd) != 0) return fail(Status::io_error(os_error("cannot fsync", tmp)));
  if (::close(guard.fd) != 0) {
    guard.fd = -1;
    ::unlink(tmp.c_str());
    return Status::io_error(os_error("cannot close", tmp));
  }
  guard.fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status status = Status::io_error(os_error("cannot rename temporary file onto", path));
    ::unlink(tmp.c_str());
    return status;
  }
  return fsync_directory(dir.string());
}

Status write_file_atomically(const std::string& path, std::string_view content) {
  return write_file_atomically(path, [&](const ByteSink& sink) {
    if (!content.empty()) sink(content.data(), content.size());
    return Status::ok();
  });
}

Result<std::string> read_file(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  auto bytes = mapped->bytes();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace semid
