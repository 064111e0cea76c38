#include "index/rqvae.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "index/file_util.h"
#include "index/model_file.h"
#include "index/trainer.h"
#include "tests/index/model_test_util.h"
#include "tests/test_util.h"

namespace semid {
namespace {

RqVaeConfig small_config(int dim = 16) {
  RqVaeConfig c;
  c.dim = dim;
  c.hidden = {32, 32};
  c.latent_dim = 8;
  c.architecture = RqVaeArchitecture::kMlp;
  c.activation = Activation::kReLU;
  c.beam_size = 1;
  c.levels = 2;
  c.codebook_size = 16;
  return c;
}

TEST(RqVaeConfig, ValidatesEveryField) {
  RqVaeConfig c = small_config();
  EXPECT_TRUE(c.validate().is_ok());
  c.dim = 0;
  EXPECT_NE(c.validate().message().find("dim"), std::string::npos);
  c = small_config();
  c.codebook_size = 70000;
  EXPECT_NE(c.validate().message().find("codebook_size"), std::string::npos);
  c = small_config();
  c.levels = 0;
  EXPECT_NE(c.validate().message().find("levels"), std::string::npos);
  c = small_config();
  c.hidden = {32, 0};
  EXPECT_EQ(c.validate().code(), Status::Code::kInvalidArgument);
}

TEST(RqVaeConfig, JsonRoundTripAndErrors) {
  RqVaeConfig c = small_config();
  c.shared_codebook = true;
  c.codebook_distance = CodebookDistance::kCosine;
  c.metric = Metric::kL2;
  auto back = RqVaeConfig::from_json(c.to_json());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->to_json(), c.to_json());
  EXPECT_FALSE(RqVaeConfig::from_json({{"dim", 4}, {"bogus", 1}}).is_ok());
  EXPECT_FALSE(RqVaeConfig::from_json({{"dim", "four"}}).is_ok());
  EXPECT_FALSE(RqVaeConfig::from_json({{"dim", 4}, {"metric", "hamming"}}).is_ok());
}

TEST(RqVae, EncodeDecodeShapesRangesAndDeterminism) {
  auto model = RqVae::create(small_config(), 7);
  ASSERT_TRUE(model.is_ok());
  auto x = testing::clustered_data(50, 16, 5, 1);
  std::vector<std::int32_t> a(100), b(100);
  ASSERT_TRUE((*model)->encode(50, x.data.data(), a.data()).is_ok());
  ASSERT_TRUE((*model)->encode(50, x.data.data(), b.data()).is_ok());
  EXPECT_EQ(a, b);
  for (auto c : a) {
    EXPECT_GE(c, 0);
    EXPECT_LT(c, 16);
  }
  std::vector<float> out(50 * 16);
  ASSERT_TRUE((*model)->decode(50, a.data(), out.data()).is_ok());
  std::vector<float> latent(50 * 8);
  ASSERT_TRUE((*model)->encode_latent(50, x.data.data(), latent.data()).is_ok());
  EXPECT_EQ((*model)->codebook(1).size(), 16u * 8u);
}

TEST(RqVae, RejectsNonFiniteInputAndOutOfRangeCodes) {
  auto model = RqVae::create(small_config(), 7);
  ASSERT_TRUE(model.is_ok());
  std::vector<float> x(16, 0.5f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::int32_t> codes(2);
  Status s = (*model)->encode(1, x.data(), codes.data());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("dimension 3"), std::string::npos);
  std::vector<std::int32_t> bad = {1, 16};
  std::vector<float> out(16);
  s = (*model)->decode(1, bad.data(), out.data());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("level 1"), std::string::npos);
}

TEST(RqVae, SaveLoadGivesIdenticalCodesAndHash) {
  testing::TempDir dir;
  auto x = testing::clustered_data(400, 16, 20, 3);
  TrainOptions o;
  o.epochs = 6;
  o.warmup_epochs = 2;
  o.batch_size = 128;
  auto trained = train_rqvae(small_config(), o, x.rows, x.data.data());
  ASSERT_TRUE(trained.is_ok()) << trained.status().to_string();
  const auto& model = *trained->model;
  const std::string path = dir.file("m.safetensors");
  ASSERT_TRUE(model.save(path).is_ok());
  auto loaded = load_quantizer(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->kind(), "rqvae");
  EXPECT_EQ((*loaded)->content_hash(), model.content_hash());
  std::vector<std::int32_t> a(400 * 2), b(400 * 2);
  ASSERT_TRUE(model.encode(400, x.data.data(), a.data()).is_ok());
  ASSERT_TRUE((*loaded)->encode(400, x.data.data(), b.data()).is_ok());
  EXPECT_EQ(a, b);
  std::vector<float> ra(400 * 16), rb(400 * 16);
  ASSERT_TRUE(model.decode(400, a.data(), ra.data()).is_ok());
  ASSERT_TRUE((*loaded)->decode(400, a.data(), rb.data()).is_ok());
  EXPECT_EQ(ra, rb);
}

TEST(RqVae, ConcurrentReadersGetTheSameCodes) {
  auto model = RqVae::create(small_config(), 7);
  ASSERT_TRUE(model.is_ok());
  auto x = testing::clustered_data(500, 16, 10, 9);
  std::vector<std::int32_t> expected(1000);
  ASSERT_TRUE((*model)->encode(500, x.data.data(), expected.data()).is_ok());
  std::vector<std::vector<std::int32_t>> got(4, std::vector<std::int32_t>(1000));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        ASSERT_TRUE((*model)->encode(500, x.data.data(), got[t].data()).is_ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

TEST(RqVae, CorruptedModelFileIsCaughtByTheContentHash) {
  testing::TempDir dir;
  auto model = RqVae::create(small_config(), 7);
  ASSERT_TRUE(model.is_ok());
  auto bytes = (*model)->to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  std::string corrupted = *bytes;
  corrupted[corrupted.size() - 5] ^= 0x40;  // inside the last tensor's data
  auto r = RqVae::from_bytes(corrupted);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_NE(r.status().message().find("content hash mismatch"), std::string::npos);
  // Truncation anywhere is an error, never a crash.
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{7}, std::size_t{100}, bytes->size() / 2, bytes->size() - 1}) {
    EXPECT_FALSE(RqVae::from_bytes(bytes->substr(0, cut)).is_ok()) << "cut at " << cut;
  }
  EXPECT_EQ(load_quantizer(dir.file("missing.safetensors")).status().code(),
            Status::Code::kNotFound);
}

TEST(RqVae, ModelFileIsPlainSafetensorsWithSemidMetadata) {
  auto model = RqVae::create(small_config(), 7);
  ASSERT_TRUE(model.is_ok());
  auto bytes = (*model)->to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  std::span<const std::uint8_t> span(reinterpret_cast<const std::uint8_t*>(bytes->data()),
                                     bytes->size());
  auto archive = safetensors::Archive::parse(span);
  ASSERT_TRUE(archive.is_ok());
  EXPECT_EQ(archive->metadata().at("semid.kind"), "rqvae");
  EXPECT_EQ(archive->metadata().at("semid.content_hash"), (*model)->content_hash());
  EXPECT_TRUE(archive->contains("encoder.0.weight"));
  EXPECT_TRUE(archive->contains("codebook_1"));
  auto book = archive->tensor("codebook_0");
  ASSERT_TRUE(book.is_ok());
  EXPECT_EQ(book->shape, (std::vector<std::int64_t>{16, 8}));
}

}  // namespace
}  // namespace semid
