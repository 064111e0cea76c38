// SID relocation: unique semantic IDs of exactly L codes, without a collision suffix.
//
// Two items whose vectors are near alike get the same SID. TIGER makes them unique with an extra
// token (the collision suffix); the `relocate` policy instead moves the newcomer to the nearest
// free SID: first one that differs only at the last level (the K - 1 siblings of its SID, nearest
// first), then, when its whole last-level cell is full, one under the nearest sibling prefixes a
// level up (each descended greedily, then all K last codes tried), and so on up to level 1.
// "Nearest" is the model's own codeword rule applied to the item's latent residual (what the
// levels above leave of it), so a moved item's SID stays as close to its vector as the codebooks
// allow. Items placed earlier never move: relocation only ever looks for a free place.
//
// The relocator knows nothing of storage: `taken` answers whether a SID is occupied, and the
// caller records each returned SID as taken before placing the next item (a store, an in-memory
// set, or a benchmark's hash set).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "index/quantizer.h"
#include "index/status.h"

namespace semid {

class SidRelocator {
 public:
  using Taken = std::function<bool(std::span<const std::int32_t> sid)>;

  // Sibling prefixes tried per level above the last (nearest first) before going a level higher.
  static constexpr int kDefaultSiblings = 8;

  // `model` must outlive the relocator. siblings >= 1.
  explicit SidRelocator(const Quantizer& model, int siblings = kDefaultSiblings);

  // sid: in, the model's SID of the item (levels() codes); out, the SID to store. latent: the
  // item's latent (model.encode_latent, latent_dim() floats). Returns the first level (0-based)
  // at which the stored SID differs from the model's, levels() when the SID was free and is kept,
  // or std::nullopt when no free SID was found (sid is then unchanged: the caller falls back to a
  // collision suffix).
  std::optional<int> place(const float* latent, std::int32_t* sid, const Taken& taken) const;

  // Fills `out` (items.size() x latent_dim() floats) with the latents of the given batch items
  // (indices into the batch, ascending).
  using LatentsOf = std::function<Status(std::span<const std::size_t> items, float* out)>;

  // Places n items at once (a catalogue, or one upsert batch), so that the batch's own
  // collisions are settled jointly rather than first come, first kept. Items are grouped by
  // their prefix of L - 1 codes; in a group where two items share a SID or one's SID is taken,
  // the items get the free last codes of that prefix by a minimum-cost assignment (the
  // Hungarian method, costs = the codeword rule's scores), so whoever loses least moves. Items a
  // full prefix cannot hold then go through place(), a level up. sids: n x levels() in/out.
  // `latents_of` is called once, for the members of conflicted groups only (items whose SID is
  // free stay without their latent being computed). `taken` answers for SIDs occupied before the
  // batch. Returns, per item, what place() returns; an error only from latents_of.
  Result<std::vector<std::optional<int>>> place_batch(std::size_t n, std::int32_t* sids,
                                                      const LatentsOf& latents_of,
                                                      const Taken& taken) const;
  // The same with every item's latent given: latents, n x latent_dim().
  std::vector<std::optional<int>> place_batch(std::size_t n, const float* latents,
                                              std::int32_t* sids, const Taken& taken) const;

  // The codes of `level`, best replacement first, for an item whose codes above `level` are
  // sid[0..level): the model's codeword rule on the residual latent - sum of those codewords.
  // order: codebook_size() outputs.
  void rank(const float* latent, const std::int32_t* sid, int level, std::int32_t* order) const;

 private:
  // The codeword rule's score of every code at `level` for the residual of latent under sid's
  // first `level` codes (smaller is nearer), into score[0..K).
  void scores(const float* latent, const std::int32_t* sid, int level, float* score) const;
  int levels_ = 0;
  int codebook_size_ = 0;
  std::size_t latent_dim_ = 0;
  bool cosine_ = false;
  int siblings_ = kDefaultSiblings;
  // Per level: K codewords of latent_dim_ floats, and their squared norms.
  std::vector<std::vector<float>> books_;
  std::vector<std::vector<float>> norms_;
};

}  // namespace semid
