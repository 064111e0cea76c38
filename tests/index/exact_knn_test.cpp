#include "index/exact_knn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "tests/test_util.h"

namespace semid {
namespace {

FloatMatrix random_matrix(std::size_t rows, std::size_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  FloatMatrix m(rows, cols);
  for (float& v : m.data) v = normal(rng);
  return m;
}

// The naive reference: score every base row in double precision, sort, keep k.
std::vector<std::vector<std::int32_t>> naive_knn(const FloatMatrix& base,
                                                 const FloatMatrix& queries, int k, Metric metric) {
  auto norm = [](const float* x, std::size_t d) {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += double(x[j]) * x[j];
    return std::sqrt(s);
  };
  std::vector<std::vector<std::int32_t>> out;
  for (std::size_t q = 0; q < queries.rows; ++q) {
    std::vector<std::pair<double, std::int32_t>> scored;
    for (std::size_t i = 0; i < base.rows; ++i) {
      double score = 0;
      for (std::size_t j = 0; j < base.cols; ++j) {
        const double a = base.row(i)[j], b = queries.row(q)[j];
        score += metric == Metric::kL2 ? (a - b) * (a - b) : a * b;
      }
      if (metric == Metric::kCosine)
        score /= norm(base.row(i), base.cols) * norm(queries.row(q), base.cols);
      if (metric != Metric::kL2) score = -score;  // ascending sort puts the closest first
      scored.emplace_back(score, static_cast<std::int32_t>(i));
    }
    std::sort(scored.begin(), scored.end());
    std::vector<std::int32_t> ids;
    for (int r = 0; r < k; ++r) ids.push_back(scored[r].second);
    out.push_back(ids);
  }
  return out;
}

TEST(Metric, NamesRoundTrip) {
  for (Metric m : {Metric::kInnerProduct, Metric::kL2, Metric::kCosine}) {
    EXPECT_EQ(*parse_metric(metric_name(m)), m);
  }
  EXPECT_STREQ(metric_name(Metric::kCosine), "cosine");
  auto bad = parse_metric("euclid");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("euclid"), std::string::npos);
}

class ExactKnnMetricTest : public ::testing::TestWithParam<Metric> {};

TEST_P(ExactKnnMetricTest, MatchesANaiveLoopAcrossBatches) {
  const Metric metric = GetParam();
  FloatMatrix base = random_matrix(500, 16, 1);
  // Uneven norms, so that cosine and inner product rank differently.
  for (std::size_t i = 0; i < base.rows; ++i) {
    for (std::size_t j = 0; j < base.cols; ++j) base.row(i)[j] *= 0.5f + float(i % 7);
  }
  const FloatMatrix queries = random_matrix(37, 16, 2);
  ExactKnnOptions options;
  options.query_batch_size = 10;  // 4 batches, the last one short
  std::vector<std::size_t> progress;
  options.progress = [&](std::size_t done, std::size_t total) {
    EXPECT_EQ(total, 37u);
    progress.push_back(done);
  };
  auto r = exact_knn(base, queries, 5, metric, options);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(progress, (std::vector<std::size_t>{10, 20, 30, 37}));
  ASSERT_EQ(r->ids.rows, 37u);
  ASSERT_EQ(r->ids.cols, 5u);
  ASSERT_EQ(r->distances.rows, 37u);
  const auto expected = naive_knn(base, queries, 5, metric);
  for (std::size_t q = 0; q < queries.rows; ++q) {
    EXPECT_EQ(std::vector<std::int32_t>(r->ids.row(q), r->ids.row(q) + 5), expected[q]) << q;
    for (int rank = 1; rank < 5; ++rank) {
      if (metric == Metric::kL2) {
        EXPECT_LE(r->distances.row(q)[rank - 1], r->distances.row(q)[rank]);
      } else {
        EXPECT_GE(r->distances.row(q)[rank - 1], r->distances.row(q)[rank]);
      }
    }
  }
  if (metric == Metric::kCosine) {
    EXPECT_LE(r->distances.row(0)[0], 1.0001f);
    EXPECT_GE(r->distances.row(0)[0], -1.0001f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllMetrics, ExactKnnMetricTest,
                         ::testing::Values(Metric::kInnerProduct, Metric::kL2, Metric::kCosine),
                         [](const auto& info) { return std::string(metric_name(info.param)); });

TEST(ExactKnn, L2DistancesAreSquaredAndSelfIsFirst) {
  FloatMatrix base(3, 2);
  base.data = {0, 0, 3, 4, 1, 1};
  FloatMatrix queries(1, 2);
  queries.data = {3, 4};
  auto r = exact_knn(base, queries, 3, Metric::kL2);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->ids.data, (std::vector<std::int32_t>{1, 2, 0}));
  EXPECT_FLOAT_EQ(r->distances.data[0], 0.f);
  EXPECT_FLOAT_EQ(r->distances.data[1], 13.f);
  EXPECT_FLOAT_EQ(r->distances.data[2], 25.f);
}

TEST(ExactKnn, KBeyondTheBaseIsPaddedWithMinusOne) {
  FloatMatrix base(2, 2);
  base.data = {1, 0, 0, 1};
  FloatMatrix queries(1, 2);
  queries.data = {1, 0.1f};
  auto r = exact_knn(base, queries, 4, Metric::kCosine);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->ids.data, (std::vector<std::int32_t>{0, 1, -1, -1}));
}

TEST(ExactKnn, RejectsBadArguments) {
  const FloatMatrix base = random_matrix(4, 3, 1);
  const FloatMatrix queries = random_matrix(2, 3, 2);
  const FloatMatrix wide = random_matrix(2, 4, 3);
  auto code = [](const Result<KnnResult>& r) { return r.status().code(); };
  EXPECT_EQ(code(exact_knn(base, queries, 0, Metric::kL2)), Status::Code::kInvalidArgument);
  auto mismatch = exact_knn(base, wide, 1, Metric::kL2);
  EXPECT_EQ(code(mismatch), Status::Code::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("dimension"), std::string::npos);
  FloatMatrix broken = base;
  broken.data.pop_back();
  EXPECT_EQ(code(exact_knn(broken, queries, 1, Metric::kL2)), Status::Code::kInvalidArgument);
  ExactKnnOptions zero_batch;
  zero_batch.query_batch_size = 0;
  EXPECT_EQ(code(exact_knn(base, queries, 1, Metric::kL2, zero_batch)),
            Status::Code::kInvalidArgument);
  // No queries: an empty result of the right width.
  auto none = exact_knn(base, FloatMatrix(0, 3), 2, Metric::kL2);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->ids.rows, 0u);
  EXPECT_EQ(none->ids.cols, 2u);
}

TEST(ExactKnn, Sift5kGroundTruthFirstNeighbours) {
  const auto dir = testing::datasets_dir() / "sift5k";
  SEMID_REQUIRE_DATASET(dir);
  auto base = read_float_vectors((dir / "ngt_sift5k_base.fvecs").string());
  auto queries = read_float_vectors((dir / "ngt_sift5k_query3.fvecs").string());
  auto gt = read_int32_vectors((dir / "ngt_sift5k_query3_groundtruth.ivecs").string());
  ASSERT_TRUE(base.is_ok() && queries.is_ok() && gt.is_ok());
  auto r = exact_knn(*base, *queries, 10, Metric::kL2);
  ASSERT_TRUE(r.is_ok());
  // SIFT values are integers, so float distances are exact and the orders agree where there are
  // no ties; compare the sets of the 10 nearest.
  for (std::size_t q = 0; q < 3; ++q) {
    std::vector<std::int32_t> ours(r->ids.row(q), r->ids.row(q) + 10);
    std::vector<std::int32_t> theirs(gt->row(q), gt->row(q) + 10);
    EXPECT_EQ(ours[0], theirs[0]);
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    EXPECT_EQ(ours, theirs) << "query " << q;
  }
}

}  // namespace
}  // namespace semid
