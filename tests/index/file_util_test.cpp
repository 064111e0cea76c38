#include "index/file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/test_util.h"

namespace semid {
namespace {

TEST(FileUtil, AtomicWriteThenReadBack) {
  testing::TempDir dir;
  const std::string path = dir.file("a.bin");
  ASSERT_TRUE(write_file_atomically(path, "hello").is_ok());
  auto content = read_file(path);
  ASSERT_TRUE(content.is_ok());
  EXPECT_EQ(*content, "hello");
  ASSERT_TRUE(write_file_atomically(path, "replaced").is_ok());
  EXPECT_EQ(*read_file(path), "replaced");
}

TEST(FileUtil, FailedProducerLeavesOldFileAndNoTemporary) {
  testing::TempDir dir;
  const std::string path = dir.file("a.bin");
  ASSERT_TRUE(write_file_atomically(path, "original").is_ok());
  Status s = write_file_atomically(path, [](const ByteSink& sink) {
    sink("partial", 7);
    return Status::internal("producer gave up");
  });
  EXPECT_EQ(s.code(), Status::Code::kInternal);
  EXPECT_EQ(*read_file(path), "original");
  std::size_t files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
}

TEST(FileUtil, MissingFileIsNotFoundAndNamesThePath) {
  auto r = MappedFile::open("/nonexistent/semid/file.fvecs");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/semid/file.fvecs"), std::string::npos);
}

TEST(FileUtil, WriteIntoMissingDirectoryIsIOError) {
  Status s = write_file_atomically("/nonexistent/semid/dir/x.bin", "x");
  EXPECT_EQ(s.code(), Status::Code::kIOError);
}

TEST(FileUtil, EmptyFileMapsToEmptySpan) {
  testing::TempDir dir;
  ASSERT_TRUE(write_file_atomically(dir.file("e"), "").is_ok());
  auto r = MappedFile::open(dir.file("e"));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)->size(), 0u);
}

TEST(FileUtil, AFifoIsRefusedAtOnceNotWaitedOn) {
  // A FIFO given as a model or data path used to block the reader until a writer came (issue 13:
  // two such requests stopped every server worker).
  testing::TempDir dir;
  const std::string fifo = dir.file("pipe.fvecs");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::atomic<bool> done{false}, had_to_unblock{false};
  // Should open() block after all, a writer unblocks it after 5 s, so the test fails, not hangs.
  std::thread unblocker([&] {
    for (int i = 0; i < 50 && !done.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (done.load()) return;
    had_to_unblock = true;
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  const auto r = MappedFile::open(fifo);
  done = true;
  unblocker.join();
  EXPECT_FALSE(had_to_unblock.load());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace semid
