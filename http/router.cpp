#include "http/router.h"

#include <cassert>

namespace semid::http {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (true) {
    const std::size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

const std::string& Router::Match::param(std::string_view name) const {
  static const std::string kEmpty;
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return kEmpty;
}

void Router::add(Verb method, std::string pattern, std::size_t tag) {
  assert(!pattern.empty() && pattern.front() == '/');
  Pattern parsed;
  for (std::string_view segment : split_path(pattern)) {
    assert(!segment.empty());
    const bool is_param = segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
    parsed.segments.push_back(
        {std::string(is_param ? segment.substr(1, segment.size() - 2) : segment), is_param});
  }
  for ([[maybe_unused]] const Route& route : routes_) {
    assert(!(route.method == method && route.pattern == pattern) && "duplicate route");
  }
  routes_.push_back({method, std::move(pattern), tag});
  patterns_.push_back(std::move(parsed));
}

bool Router::matches(const Pattern& pattern, const std::vector<std::string_view>& path_segments,
                     PathParams* params) {
  if (pattern.segments.size() != path_segments.size()) return false;
  for (std::size_t i = 0; i < path_segments.size(); ++i) {
    const Segment& segment = pattern.segments[i];
    if (segment.is_param ? path_segments[i].empty() : segment.text != path_segments[i]) {
      return false;
    }
  }
  if (params != nullptr) {
    params->clear();
    for (std::size_t i = 0; i < path_segments.size(); ++i) {
      if (pattern.segments[i].is_param) {
        params->emplace_back(pattern.segments[i].text, std::string(path_segments[i]));
      }
    }
  }
  return true;
}

bool Router::more_specific(const Pattern& a, const Pattern& b) {
  for (std::size_t i = 0; i < a.segments.size() && i < b.segments.size(); ++i) {
    if (a.segments[i].is_param != b.segments[i].is_param) return !a.segments[i].is_param;
  }
  return false;
}

Router::Match Router::match(Verb method, std::string_view path) const {
  Match match;
  const std::vector<std::string_view> segments = split_path(path);
  const Pattern* best = nullptr;
  const std::string* best_text = nullptr;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    if (!matches(patterns_[i], segments, nullptr)) continue;
    if (best == nullptr || more_specific(patterns_[i], *best)) {
      best = &patterns_[i];
      best_text = &routes_[i].pattern;
    }
  }
  if (best == nullptr) return match;
  for (const Route& route : routes_) {
    if (route.pattern != *best_text) continue;
    if (route.method == method) {
      match.outcome = Match::Outcome::kFound;
      match.route = &route;
      matches(*best, segments, &match.params);
      return match;
    }
    if (match.route == nullptr) match.route = &route;
    if (!match.allow.empty()) match.allow += ", ";
    match.allow += std::string(beast_http::to_string(route.method));
  }
  match.outcome = Match::Outcome::kMethodNotAllowed;
  return match;
}

}  // namespace semid::http
