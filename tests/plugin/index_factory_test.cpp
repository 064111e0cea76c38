#include "plugin/index_factory.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "plugin/IndexRQVAE.h"

namespace semid {
namespace {

std::unique_ptr<faiss::Index> make(int d, const std::string& description,
                                   faiss::MetricType metric = faiss::METRIC_INNER_PRODUCT) {
  return std::unique_ptr<faiss::Index>(index_factory(d, description.c_str(), metric));
}

TEST(IndexFactory, BuildsAnUntrainedIndexRQVAE) {
  auto index = make(64, "RQVAE3x8");
  auto* rqvae = dynamic_cast<IndexRQVAE*>(index.get());
  ASSERT_NE(rqvae, nullptr);
  EXPECT_FALSE(rqvae->is_trained);
  EXPECT_EQ(rqvae->d, 64);
  EXPECT_EQ(rqvae->levels(), 3);
  EXPECT_EQ(rqvae->codebook_size(), 256);
  EXPECT_EQ(rqvae->sa_code_size(), 3u);
  EXPECT_EQ(rqvae->metric_type, faiss::METRIC_INNER_PRODUCT);
  EXPECT_EQ(rqvae->config().hidden, (std::vector<int>{512}));
  EXPECT_EQ(rqvae->config().architecture, RqVaeArchitecture::kResidual);
  auto wide = make(16, "RQVAE2x12", faiss::METRIC_L2);
  EXPECT_EQ(dynamic_cast<IndexRQVAE&>(*wide).sa_code_size(), 4u);
  EXPECT_EQ(wide->metric_type, faiss::METRIC_L2);
}

TEST(IndexFactory, ReadsModelAndTrainingOptions) {
  auto index = make(32,
                    "RQVAE4x6,latent=16,hidden=64-32,epochs=7,warmup=2,batch=128,lr=0.01,"
                    "seed=5,threads=1,time=30");
  const auto& rqvae = dynamic_cast<IndexRQVAE&>(*index);
  EXPECT_EQ(rqvae.levels(), 4);
  EXPECT_EQ(rqvae.codebook_size(), 64);
  EXPECT_EQ(rqvae.config().latent_dim, 16);
  EXPECT_EQ(rqvae.config().hidden, (std::vector<int>{64, 32}));
  EXPECT_EQ(rqvae.train_options.epochs, 7);
  EXPECT_EQ(rqvae.train_options.warmup_epochs, 2);
  EXPECT_EQ(rqvae.train_options.batch_size, 128);
  EXPECT_DOUBLE_EQ(rqvae.train_options.learning_rate, 0.01);
  EXPECT_EQ(rqvae.train_options.seed, 5u);
  EXPECT_DOUBLE_EQ(rqvae.train_options.time_budget_seconds, 30);
  auto bare = make(32, "RQVAE2x4,hidden=none");
  EXPECT_TRUE(dynamic_cast<IndexRQVAE&>(*bare).config().hidden.empty());
}

TEST(IndexFactory, ComposesWithIdMaps) {
  auto map = make(16, "IDMap,RQVAE2x4,latent=8");
  auto* wrapper = dynamic_cast<faiss::IndexIDMap*>(map.get());
  ASSERT_NE(wrapper, nullptr);
  EXPECT_EQ(dynamic_cast<faiss::IndexIDMap2*>(map.get()), nullptr);
  EXPECT_TRUE(wrapper->own_fields);
  EXPECT_NE(dynamic_cast<IndexRQVAE*>(wrapper->index), nullptr);
  auto map2 = make(16, "IDMap2,RQVAE2x4");
  EXPECT_NE(dynamic_cast<faiss::IndexIDMap2*>(map2.get()), nullptr);
}

TEST(IndexFactory, DelegatesEverythingElseToFaiss) {
  auto flat = make(8, "Flat");
  EXPECT_NE(dynamic_cast<faiss::IndexFlat*>(flat.get()), nullptr);
  auto ivf = make(8, "IDMap,Flat", faiss::METRIC_L2);
  EXPECT_NE(dynamic_cast<faiss::IndexIDMap*>(ivf.get()), nullptr);
  EXPECT_THROW(make(8, "NoSuchIndex"), faiss::FaissException);
}

TEST(IndexFactory, RejectsBadDescriptions) {
  for (const char* bad : {"RQVAE3", "RQVAE3x0", "RQVAE3x17", "RQVAE0x8", "RQVAE3x8,latent=abc",
                          "RQVAE3x8,latent=8,latent=9", "RQVAE3x8,colour=red", "RQVAE3x8,Flat",
                          "PCA16,RQVAE3x8", "RQVAE3x8,epochs=-1", "RQVAE3x8,hidden=64-"}) {
    EXPECT_THROW(make(32, bad), faiss::FaissException) << bad;
  }
  EXPECT_THROW(make(32, "RQVAE3x8", faiss::METRIC_L1), faiss::FaissException);
}

}  // namespace
}  // namespace semid
