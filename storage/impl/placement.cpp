#include "storage/impl/placement.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "index/relocate.h"

namespace semid::storage::impl {
namespace {

// The largest collision suffix (2 bytes).
constexpr std::uint32_t kMaxSuffix = 65535;

// Next free suffixes of one collision group: the suffixes other members hold, and a cursor.
class SuffixAllocator {
 public:
  explicit SuffixAllocator(std::vector<std::uint16_t> used) : used_(std::move(used)) {
    std::sort(used_.begin(), used_.end());
  }
  // The smallest suffix that neither a member nor an earlier call holds; nullopt when all 65,536
  // are taken.
  std::optional<std::uint16_t> next() {
    for (;;) {
      while (at_ < used_.size() && used_[at_] < candidate_) ++at_;
      if (at_ < used_.size() && used_[at_] == candidate_) {
        ++candidate_;
        continue;
      }
      break;
    }
    if (candidate_ > kMaxSuffix) return std::nullopt;
    return static_cast<std::uint16_t>(candidate_++);
  }

 private:
  std::vector<std::uint16_t> used_;
  std::size_t at_ = 0;
  std::uint32_t candidate_ = 0;
};

// The batch's view of which SIDs hold items: the state's, minus the batch's leaving items, plus
// what the batch has placed so far.
class Occupancy {
 public:
  Occupancy(const State& state, const std::unordered_set<std::uint64_t>& leaving)
      : state_(state), leaving_(leaving) {}

  void leave(const std::string& sid) { --delta_[sid]; }

  // Whether any item is on `codes` (packed as `sid`).
  bool taken(std::span<const std::int32_t> codes, const std::string& sid) const {
    const auto count = state_.trie().count(codes);
    std::int64_t held = count.is_ok() ? static_cast<std::int64_t>(*count) : 0;
    if (const auto d = delta_.find(sid); d != delta_.end()) held += d->second;
    return held > 0;
  }

  // A suffix on `sid` for one more item (the group's smallest free one).
  Result<std::uint16_t> claim(std::span<const std::int32_t> codes, const std::string& sid,
                              std::uint64_t id) {
    auto group = groups_.find(sid);
    if (group == groups_.end()) {
      members_.clear();
      SEMID_RETURN_IF_ERROR(state_.trie().append_items(codes, &members_));
      std::vector<std::uint16_t> used;
      used.reserve(members_.size());
      for (std::uint64_t position : members_) {
        const std::uint64_t member = state_.id_at(position);
        if (!leaving_.contains(member)) used.push_back(state_.locations.at(member).suffix);
      }
      group = groups_.emplace(sid, SuffixAllocator(std::move(used))).first;
    }
    const auto suffix = group->second.next();
    if (!suffix) {
      return Status::invalid_argument("id " + std::to_string(id) + " encodes to SID " +
                                      sid_text(codes) +
                                      ", which already holds 65,536 items (the most one SID can)");
    }
    ++delta_[sid];
    return *suffix;
  }

 private:
  const State& state_;
  const std::unordered_set<std::uint64_t>& leaving_;
  std::unordered_map<std::string, std::int64_t> delta_;
  std::unordered_map<std::string, SuffixAllocator> groups_;
  std::vector<std::uint64_t> members_;
};

}  // namespace

Result<std::vector<Placement>> place_batch(const State& state, CollisionPolicy policy,
                                           std::span<const std::uint64_t> ids,
                                           std::span<std::int32_t> codes, const float* vectors) {
  const State& s = state;
  const auto L = static_cast<std::size_t>(s.codec.levels());
  const std::size_t n = ids.size();
  std::vector<Placement> placements(n);
  std::unordered_set<std::uint64_t> leaving;  // batch ids leaving their current place
  for (std::size_t i = 0; i < n; ++i) {
    Placement& p = placements[i];
    p.sid = s.pack(codes.data() + i * L);
    const auto found = s.locations.find(ids[i]);
    if (found == s.locations.end()) continue;
    p.old = &found->second;
    p.keeps_place = p.old->sid == p.sid;
    if (p.keeps_place) {
      p.suffix = p.old->suffix;
    } else {
      leaving.insert(ids[i]);
    }
  }
  Occupancy occupancy(s, leaving);
  for (const Placement& p : placements) {
    if (p.old && !p.keeps_place) occupancy.leave(p.old->sid);
  }

  if (policy == CollisionPolicy::kRelocate) {
    // The batch's collisions are settled jointly (SidRelocator::place_batch): the items that
    // move are those that lose least by moving. Items keeping their place are in `state`.
    std::vector<std::size_t> movers;
    for (std::size_t i = 0; i < n; ++i) {
      if (!placements[i].keeps_place) movers.push_back(i);
    }
    std::vector<std::int32_t> moved(movers.size() * L);
    for (std::size_t r = 0; r < movers.size(); ++r) {
      std::copy_n(codes.data() + movers[r] * L, L, moved.data() + r * L);
    }
    const auto d = static_cast<std::size_t>(s.model->dim());
    const SidRelocator::LatentsOf latents_of = [&](std::span<const std::size_t> items, float* out) {
      std::vector<float> rows(items.size() * d);
      for (std::size_t r = 0; r < items.size(); ++r) {
        std::copy_n(vectors + movers[items[r]] * d, d, rows.data() + r * d);
      }
      return s.model->encode_latent(items.size(), rows.data(), out);
    };
    const SidRelocator relocator(*s.model);
    SEMID_ASSIGN_OR_RETURN(const auto levels,
                           relocator.place_batch(movers.size(), moved.data(), latents_of,
                                                 [&](std::span<const std::int32_t> candidate) {
                                                   return occupancy.taken(candidate,
                                                                          s.pack(candidate.data()));
                                                 }));
    for (std::size_t r = 0; r < movers.size(); ++r) {
      if (!levels[r] || static_cast<std::size_t>(*levels[r]) == L) continue;
      Placement& p = placements[movers[r]];
      std::copy_n(moved.data() + r * L, L, codes.data() + movers[r] * L);
      p.sid = s.pack(codes.data() + movers[r] * L);
      p.relocated = true;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    Placement& p = placements[i];
    if (p.keeps_place) continue;
    // Under kSuffix, or where relocation found no free SID: a collision suffix.
    SEMID_ASSIGN_OR_RETURN(p.suffix, occupancy.claim(codes.subspan(i * L, L), p.sid, ids[i]));
    // Back on its own place (e.g. a relocated item upserted again): nothing moves.
    if (p.old && p.old->sid == p.sid && p.old->suffix == p.suffix) p.keeps_place = true;
  }
  return placements;
}

}  // namespace semid::storage::impl
