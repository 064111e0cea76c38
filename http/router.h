// Router: matches (method, path) against route patterns such as "/v1/collections/{name}/search".
//
// A pattern is '/'-separated segments, each a literal or a `{param}` that matches any one
// non-empty segment. When several patterns match a path, the most specific wins: segments are
// compared left to right and a literal beats a parameter (so "/items/delete" beats
// "/items/{id}"). Matching is exact otherwise: no trailing slash, no percent-decoding (semid's
// names and ids never need it), the query string must already be split off.
//
// Outcomes: kFound (the route and its parameters), kNotFound (no pattern matches the path: 404),
// kMethodNotAllowed (the most specific pattern exists, but not for this method: 405, with `allow`
// listing its methods for the Allow header).
//
// The router only matches: each route carries a caller-chosen `tag` (an index into the caller's
// table of handlers). Thread safety: add() before use; match() is const and may run from many
// threads at once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_types.h"

namespace semid::http {

// (name, value) of each `{param}` of the matched pattern, in pattern order.
using PathParams = std::vector<std::pair<std::string, std::string>>;

class Router {
 public:
  struct Route {
    Verb method = Verb::get;
    std::string pattern;
    std::size_t tag = 0;
  };

  struct Match {
    enum class Outcome { kFound, kNotFound, kMethodNotAllowed };
    Outcome outcome = Outcome::kNotFound;
    // kFound: the route; kMethodNotAllowed: the matched pattern's first route. Null for kNotFound.
    const Route* route = nullptr;
    PathParams params;
    // kMethodNotAllowed: the pattern's methods, "GET, PUT".
    std::string allow;

    // The value of parameter `name` ("" when the pattern has none).
    const std::string& param(std::string_view name) const;
  };

  // Registers a route. `pattern` starts with '/'; a method may appear once per pattern (a
  // duplicate, or a malformed pattern, is a programming error: it asserts).
  void add(Verb method, std::string pattern, std::size_t tag);

  // `path`: the request target without its query string.
  Match match(Verb method, std::string_view path) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  struct Segment {
    std::string text;  // literal text, or the parameter's name
    bool is_param = false;
  };
  struct Pattern {
    std::vector<Segment> segments;
  };
  // Whether `segments` match `path_segments`; fills `params` when they do.
  static bool matches(const Pattern& pattern, const std::vector<std::string_view>& path_segments,
                      PathParams* params);
  // True when a is more specific than b (both match the same path).
  static bool more_specific(const Pattern& a, const Pattern& b);

  std::vector<Route> routes_;
  std::vector<Pattern> patterns_;  // patterns_[i] is routes_[i].pattern, parsed
};

// Splits "a/b/c" on '/' (the leading '/' dropped); "" segments are kept so that "//" and a
// trailing '/' never match a pattern.
std::vector<std::string_view> split_path(std::string_view path);

}  // namespace semid::http
