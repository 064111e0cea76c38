#include "http/router.h"

#include <gtest/gtest.h>

namespace semid::http {
namespace {

using Outcome = Router::Match::Outcome;

Router test_router() {
  Router router;
  router.add(Verb::get, "/v1/collections", 0);
  router.add(Verb::get, "/v1/collections/{name}", 1);
  router.add(Verb::put, "/v1/collections/{name}", 2);
  router.add(Verb::get, "/v1/collections/{name}/items/{id}", 3);
  router.add(Verb::delete_, "/v1/collections/{name}/items/{id}", 4);
  router.add(Verb::post, "/v1/collections/{name}/items/delete", 5);
  return router;
}

TEST(Router, MatchesLiteralsAndParameters) {
  const Router router = test_router();
  const auto m = router.match(Verb::get, "/v1/collections/docs/items/42");
  ASSERT_EQ(m.outcome, Outcome::kFound);
  EXPECT_EQ(m.route->tag, 3u);
  EXPECT_EQ(m.route->pattern, "/v1/collections/{name}/items/{id}");
  EXPECT_EQ(m.param("name"), "docs");
  EXPECT_EQ(m.param("id"), "42");
  EXPECT_EQ(m.param("other"), "");
  EXPECT_EQ(router.match(Verb::put, "/v1/collections/docs").route->tag, 2u);
  EXPECT_EQ(router.match(Verb::get, "/v1/collections").route->tag, 0u);
}

TEST(Router, UnknownPathsAreNotFound) {
  const Router router = test_router();
  for (const char* path : {"/", "", "/v1", "/v1/collections/", "/v1/collections//items/1",
                           "/v1/collections/docs/items", "/v1/collections/docs/items/1/x"}) {
    const auto m = router.match(Verb::get, path);
    EXPECT_EQ(m.outcome, Outcome::kNotFound) << path;
    EXPECT_EQ(m.route, nullptr) << path;
  }
}

TEST(Router, KnownPathWithAnotherMethodListsTheAllowedOnes) {
  const Router router = test_router();
  const auto m = router.match(Verb::post, "/v1/collections/docs");
  ASSERT_EQ(m.outcome, Outcome::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, PUT");
  EXPECT_EQ(m.route->pattern, "/v1/collections/{name}");
}

TEST(Router, ALiteralSegmentBeatsAParameter) {
  const Router router = test_router();
  const auto post = router.match(Verb::post, "/v1/collections/docs/items/delete");
  ASSERT_EQ(post.outcome, Outcome::kFound);
  EXPECT_EQ(post.route->tag, 5u);
  const auto get = router.match(Verb::get, "/v1/collections/docs/items/delete");
  EXPECT_EQ(get.outcome, Outcome::kMethodNotAllowed);
  EXPECT_EQ(get.allow, "POST");
  EXPECT_EQ(router.match(Verb::delete_, "/v1/collections/docs/items/7").route->tag, 4u);
}

TEST(Router, SplitPathKeepsEmptySegments) {
  EXPECT_EQ(split_path("/a/b"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(split_path("/a/"), (std::vector<std::string_view>{"a", ""}));
  EXPECT_EQ(split_path("/"), (std::vector<std::string_view>{""}));
}

}  // namespace
}  // namespace semid::http
