#include "plugin/index_io.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexShards.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "index/file_util.h"
#include "index/rq_kmeans.h"
#include "tests/plugin/plugin_test_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

using testing::idx_t;
using testing::Results;
using testing::search;

std::vector<std::uint8_t> to_bytes(const faiss::Index& index) {
  faiss::VectorIOWriter writer;
  semid::write_index(&index, &writer);
  return writer.data;
}

std::unique_ptr<faiss::Index> from_bytes(const std::vector<std::uint8_t>& bytes) {
  faiss::VectorIOReader reader;
  reader.data = bytes;
  return std::unique_ptr<faiss::Index>(semid::read_index(&reader));
}

std::string read_error(const std::vector<std::uint8_t>& bytes) {
  try {
    from_bytes(bytes);
  } catch (const faiss::FaissException& e) {
    return e.what();
  }
  return "";
}

// An IndexRQVAE over a random model with 120 items, caller ids when `with_ids`.
std::unique_ptr<IndexRQVAE> sample_index(bool with_ids, int codebook_size = 16) {
  auto index = std::make_unique<IndexRQVAE>(testing::random_model(12, 3, codebook_size));
  const auto x = testing::random_vectors(120, 12, 31);
  if (with_ids) {
    std::vector<idx_t> ids(120);
    for (std::size_t i = 0; i < 120; ++i) ids[i] = 50000 + 7 * static_cast<idx_t>(i);
    index->add_with_ids(120, x.data(), ids.data());
  } else {
    index->add(120, x.data());
  }
  return index;
}

void expect_round_trip(const faiss::Index& index) {
  const auto queries = testing::random_vectors(6, static_cast<std::size_t>(index.d), 32);
  const Results before = search(index, queries, 15);
  const auto bytes = to_bytes(index);
  auto back = from_bytes(bytes);
  ASSERT_EQ(typeid(*back), typeid(index));
  EXPECT_EQ(back->ntotal, index.ntotal);
  EXPECT_EQ(back->d, index.d);
  EXPECT_EQ(back->metric_type, index.metric_type);
  EXPECT_TRUE(back->is_trained);
  EXPECT_EQ(search(*back, queries, 15), before);
  EXPECT_EQ(to_bytes(*back), bytes);  // writing what was read gives the same bytes
}

TEST(IndexIo, RoundTripsGiveIdenticalResults) {
  expect_round_trip(*sample_index(false));
  expect_round_trip(*sample_index(true));
  expect_round_trip(*sample_index(false, 300));  // 2 bytes per level
  auto read_back = from_bytes(to_bytes(*sample_index(true)));
  const auto& rqvae = dynamic_cast<const IndexRQVAE&>(*read_back);
  EXPECT_TRUE(rqvae.has_ids());
  EXPECT_EQ(rqvae.ids().front(), 50000);
  EXPECT_EQ(*rqvae.trie().count({}), 120u);
}

TEST(IndexIo, RoundTripsTheSupportedWrappers) {
  const auto x = testing::random_vectors(120, 12, 33);
  std::vector<idx_t> ids(120);
  for (std::size_t i = 0; i < 120; ++i) ids[i] = 9 * static_cast<idx_t>(i) + 1;
  auto model = testing::random_model(12, 2, 16);
  {
    faiss::IndexIDMap map(new IndexRQVAE(model));
    map.own_fields = true;
    map.add_with_ids(120, x.data(), ids.data());
    expect_round_trip(map);
  }
  {
    faiss::IndexIDMap2 map2(new IndexRQVAE(model));
    map2.own_fields = true;
    map2.add_with_ids(120, x.data(), ids.data());
    expect_round_trip(map2);
    auto back = from_bytes(to_bytes(map2));
    std::vector<float> a(12), b(12);
    back->reconstruct(10, a.data());
    map2.reconstruct(10, b.data());
    EXPECT_EQ(a, b);
  }
  {
    auto* rotation = new faiss::RandomRotationMatrix(12, 12);
    rotation->init(3);
    faiss::IndexPreTransform pre(rotation, new IndexRQVAE(model));
    pre.own_fields = true;
    pre.add(120, x.data());
    expect_round_trip(pre);
  }
  {
    faiss::IndexRefineFlat refine(new IndexRQVAE(model));
    refine.own_fields = true;
    refine.k_factor = 4;
    refine.add(120, x.data());
    expect_round_trip(refine);
  }
  {
    // Nested: IDMap over PreTransform over IndexRQVAE.
    auto* rotation = new faiss::RandomRotationMatrix(12, 12);
    rotation->init(4);
    auto* pre = new faiss::IndexPreTransform(rotation, new IndexRQVAE(model));
    pre->own_fields = true;
    faiss::IndexIDMap map(pre);
    map.own_fields = true;
    map.add_with_ids(120, x.data(), ids.data());
    expect_round_trip(map);
  }
}

TEST(IndexIo, RqKMeansModelsRoundTrip) {
  const auto& set = testing::clustered_set();
  RqKMeansConfig config;
  config.dim = 32;
  config.levels = 2;
  config.codebook_size = 16;
  auto model = RqKMeans::train(config, {.iterations = 3}, set.base.rows, set.base.data.data());
  ASSERT_TRUE(model.is_ok());
  IndexRQVAE index(std::shared_ptr<const Quantizer>(std::move(model).value()));
  index.add(300, set.base.data.data());
  expect_round_trip(index);
}

TEST(IndexIo, OtherIndexesStayInFaissFormat) {
  faiss::IndexFlatIP flat(8);
  const auto x = testing::random_vectors(20, 8, 34);
  flat.add(20, x.data());
  const auto ours = to_bytes(flat);
  faiss::VectorIOWriter theirs;
  faiss::write_index(&flat, &theirs);
  EXPECT_EQ(ours, theirs.data);
  expect_round_trip(flat);
  testing::TempDir dir;
  const std::string path = dir.file("flat.faiss");
  semid::write_index(&flat, path.c_str());
  std::unique_ptr<faiss::Index> by_faiss(faiss::read_index(path.c_str()));
  EXPECT_EQ(by_faiss->ntotal, 20);
  std::unique_ptr<faiss::Index> by_semid(semid::read_index(path.c_str()));
  EXPECT_EQ(by_semid->ntotal, 20);
}

TEST(IndexIo, FilesAreWrittenAtomicallyAndReadBack) {
  testing::TempDir dir;
  const std::string path = dir.file("index.semid");
  auto index = sample_index(true);
  semid::write_index(index.get(), path.c_str());
  std::unique_ptr<faiss::Index> back(semid::read_index(path.c_str()));
  EXPECT_EQ(back->ntotal, 120);
  // A write that fails part-way (an untrained index has no model) leaves the old file whole.
  const auto before = read_file(path);
  IndexRQVAE untrained(32, testing::tiny_config());
  EXPECT_THROW(semid::write_index(&untrained, path.c_str()), faiss::FaissException);
  EXPECT_EQ(*read_file(path), *before);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string(), "index.semid") << "temporary file left behind";
  }
  EXPECT_THROW(semid::write_index(index.get(), dir.file("no/such/dir/x").c_str()),
               faiss::FaissException);
  EXPECT_THROW(semid::read_index(dir.file("missing").c_str()), faiss::FaissException);
}

TEST(IndexIo, UnsupportedCompositionsAreRejectedOnWrite) {
  auto model = testing::random_model(12, 2, 16);
  IndexRQVAE a(model), b(model);
  faiss::IndexShards shards(12);
  shards.add_shard(&a);
  shards.add_shard(&b);
  faiss::VectorIOWriter writer;
  try {
    semid::write_index(&shards, &writer);
    FAIL() << "no exception";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be written"), std::string::npos) << e.what();
  }
}

TEST(IndexIo, TruncationAtAnyOffsetIsAClearError) {
  faiss::IndexIDMap map(new IndexRQVAE(testing::random_model(12, 2, 16)));
  map.own_fields = true;
  const auto x = testing::random_vectors(60, 12, 35);
  std::vector<idx_t> ids(60);
  for (std::size_t i = 0; i < 60; ++i) ids[i] = static_cast<idx_t>(i) * 2;
  map.add_with_ids(60, x.data(), ids.data());
  const auto bytes = to_bytes(map);
  const std::size_t step = std::max<std::size_t>(1, bytes.size() / 300);
  for (std::size_t size = 0; size < bytes.size(); size += (size < 64 ? 1 : step)) {
    const std::vector<std::uint8_t> cut(bytes.begin(),
                                        bytes.begin() + static_cast<std::ptrdiff_t>(size));
    const std::string error = read_error(cut);
    EXPECT_NE(error.find("truncated"), std::string::npos) << "size " << size << ": " << error;
  }
  // Through a file as well, with the file named.
  testing::TempDir dir;
  const std::string path = dir.file("cut.semid");
  ASSERT_TRUE(
      write_file_atomically(
          path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size() - 5))
          .is_ok());
  try {
    semid::read_index(path.c_str());
    FAIL() << "no exception";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(IndexIo, BadFourccVersionAndChecksumAreClearErrors) {
  const auto bytes = to_bytes(*sample_index(true));
  auto bad_fourcc = bytes;
  bad_fourcc[0] = 'X';
  EXPECT_NE(read_error(bad_fourcc), "");  // not ours: FAISS reports an unknown index type
  auto bad_version = bytes;
  bad_version[4] = 2;
  EXPECT_NE(read_error(bad_version).find("version 2"), std::string::npos)
      << read_error(bad_version);
  auto huge = bytes;
  huge[15] = 0x7f;  // payload size ~ 2^62
  EXPECT_NE(read_error(huge).find("absurd"), std::string::npos) << read_error(huge);
  // Any flipped bit after the header: the checksum catches it before anything is parsed.
  const std::size_t step = std::max<std::size_t>(1, bytes.size() / 400);
  for (std::size_t at = 16; at < bytes.size(); at += step) {
    auto flipped = bytes;
    flipped[at] ^= 0x10;
    const std::string error = read_error(flipped);
    EXPECT_NE(error.find("checksum"), std::string::npos) << "offset " << at << ": " << error;
  }
  auto last = bytes;
  last.back() ^= 1;
  EXPECT_NE(read_error(last).find("checksum"), std::string::npos);
  // Trailing bytes after a record in a file.
  testing::TempDir dir;
  const std::string path = dir.file("long.semid");
  std::string content(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSERT_TRUE(write_file_atomically(path, content + "junk").is_ok());
  EXPECT_THROW(semid::read_index(path.c_str()), faiss::FaissException);
}

}  // namespace
}  // namespace semid
