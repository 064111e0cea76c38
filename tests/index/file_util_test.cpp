#include "index/file_util.h"

#include <gtest/gtest.h>

#include <filesystem>

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

}  // namespace
}  // namespace semid
