// RqvaeSearch: one search call of IndexRQVAE — its resolved parameters and the machinery of every
// mode (the lookup-table scan over level-1 groups, beam candidates from the trie, the prefix
// groups, exhaustive and range search over decoded chunks, and the exact rerank). IndexRQVAE.cpp
// is the FAISS face; this is what its search and range_search run.
#pragma once

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "plugin/IndexRQVAE.h"
#include "plugin/impl/kernels.h"

namespace semid {

using impl::ScanHeap;

// One search call: its resolved parameters and the machinery of every mode.
struct RqvaeSearch {
  using idx_t = faiss::Index::idx_t;

  // Per query q: count[q] shortlisted positions at positions[q * capacity ...], each with the
  // number of leading codes its SID shares with the query's (kPrefix; 0 otherwise).
  struct Shortlists {
    std::size_t capacity = 0;
    std::vector<idx_t> positions;
    std::vector<std::int8_t> shared;
    std::vector<std::size_t> count;
  };

  // Per-thread buffers of the lookup-table scan (allocated once per block, not per item).
  struct ScanBuffers {
    std::vector<float> lut;
    std::vector<float> heap_scores;
    std::vector<idx_t> heap_keys;
    std::vector<std::uint64_t> candidates;
    std::vector<std::int32_t> sid;
    std::vector<std::pair<float, std::uint32_t>> groups;  // (bound, level-1 code)
  };

  const IndexRQVAE& index;
  const std::size_t levels;         // L
  const std::size_t codebook_size;  // K
  const std::size_t dim;
  const std::size_t latent_dim;
  const bool inner_product;
  SearchMode mode = SearchMode::kCosine;
  idx_t k = 1;
  std::size_t shortlist = 0;  // resolved: in [k, max(ntotal, k)]
  int beam = 0;
  int min_prefix = 0;
  std::vector<std::int32_t> prefix;
  const faiss::IDSelector* sel = nullptr;

  RqvaeSearch(const IndexRQVAE& index, const faiss::SearchParameters* params, idx_t k);

  bool admits(idx_t position) const {
    return !sel || sel->is_member(index.label(static_cast<std::size_t>(position)));
  }
  std::vector<float> exact_queries(idx_t n, const float* x) const;
  std::vector<float> query_latents(idx_t n, const float* x) const;
  void lookup_table(const float* latent, float* lut) const;
  // The prefix filter's positions; `all` is set (and the list empty) when there is no filter.
  std::vector<std::uint64_t> filtered_positions(bool* all) const;
  // Decodes the items at positions[0..count) into out (count * d), normalised for the inner
  // product: what exact ranking compares queries with. Calls the model: never in a parallel region.
  // With `cached`, rows come from the index's reconstruction cache where it holds them, and the
  // decoded ones go into it (the rerank; the exhaustive modes stream every item past it).
  void decode_for_ranking(std::size_t count, const std::uint64_t* positions, float* out,
                          bool cached) const;
  // Decodes every admitted candidate, kDecodeChunk at a time, and hands each chunk (rows, labels)
  // to fn, which may parallelise over queries.
  void for_each_decoded_chunk(
      const std::function<void(std::size_t, const float*, const idx_t*)>& fn) const;

  void exhaustive(idx_t n, const float* x, float* distances, idx_t* labels) const;
  void shortlisted(idx_t n, const float* x, float* distances, idx_t* labels) const;
  void range(idx_t n, const float* x, float radius, faiss::RangeSearchResult* result) const;

  void shortlist_block(idx_t n, const float* latents, const std::int32_t* query_sids,
                       Shortlists* out) const;
  // Fills one query's shortlist; returns the number of entries.
  std::size_t shortlist_cosine(const float* latent, const std::vector<std::uint64_t>& filtered,
                               bool all, ScanBuffers& buffers, idx_t* slots) const;
  std::size_t shortlist_prefix(const std::int32_t* query_sid, ScanBuffers& buffers, idx_t* slots,
                               std::int8_t* shared) const;
  // Scans every item, level-1 group by group, best bound first, and stops at the first group whose
  // bound cannot beat the shortlist: a group's items score at most lut[0][c] + the best entry of
  // every other level's table - the group's smallest norm term. Inside a group, a run of one
  // level-2 code is skipped when lut[0][c] + lut[1][c2] + the best entries of levels 3..L - the
  // run's smallest norm term cannot beat it.
  void scan_groups(const float* lut, ScanBuffers& buffers, ScanHeap& heap) const;
  // The items under the `beam` best full SIDs (trie beam search from the prefix filter down).
  void beam_candidates(const float* latent, std::vector<std::uint64_t>* out) const;
  void rerank_block(idx_t n, const float* queries, const Shortlists& shortlists, float* distances,
                    idx_t* labels) const;

  // The lookup-table kernel. For i < count, candidate(i, &score, &code, &position) returns false
  // to skip the candidate, or sets the score so far (its norm term, and the tables of the levels
  // before first_level), its codes from level first_level on, and its position. The levels' table
  // entries are added and the candidate offered to the heap if it can enter.
  template <std::size_t kBytes, std::size_t kLevels, class Candidate>
  void scan_with(const float* lut, std::size_t count, std::size_t first_level,
                 const Candidate& candidate, ScanHeap& heap) const {
    const std::size_t level_count = kLevels > 0 ? kLevels : levels;
    const auto admit = [this](std::uint64_t position) {
      return admits(static_cast<idx_t>(position));
    };
    for (std::size_t i = 0; i < count; ++i) {
      float score;
      const std::uint8_t* code;
      std::uint64_t position;
      if (!candidate(i, &score, &code, &position)) continue;
      for (std::size_t l = first_level; l < level_count; ++l, code += kBytes) {
        const unsigned c = kBytes == 1 ? code[0] : (static_cast<unsigned>(code[0]) << 8 | code[1]);
        score += lut[l * codebook_size + c];
      }
      if (score >= heap.threshold()) {
        const idx_t key = index.order_key(position);
        heap.offer(score, key, position, admit);
      }
    }
  }
  template <class Candidate>
  void scan(const float* lut, std::size_t count, std::size_t first_level,
            const Candidate& candidate, ScanHeap& heap) const {
    // A compile-time level count lets the compiler unroll the lookups: 1.7x faster for 3x8 SIDs.
    if (index.codec_.bytes_per_level() == 2) {
      return scan_with<2, 0>(lut, count, first_level, candidate, heap);
    }
    switch (levels) {
      case 1:
        return scan_with<1, 1>(lut, count, first_level, candidate, heap);
      case 2:
        return scan_with<1, 2>(lut, count, first_level, candidate, heap);
      case 3:
        return scan_with<1, 3>(lut, count, first_level, candidate, heap);
      case 4:
        return scan_with<1, 4>(lut, count, first_level, candidate, heap);
      case 5:
        return scan_with<1, 5>(lut, count, first_level, candidate, heap);
      case 6:
        return scan_with<1, 6>(lut, count, first_level, candidate, heap);
      case 8:
        return scan_with<1, 8>(lut, count, first_level, candidate, heap);
      default:
        return scan_with<1, 0>(lut, count, first_level, candidate, heap);
    }
  }
  // Scans the items at list[0..count) that keep() accepts.
  template <class Keep>
  void scan_list(const float* lut, const std::uint64_t* list, std::size_t count, const Keep& keep,
                 ScanHeap& heap) const {
    const std::uint8_t* base = index.codes.data();
    const float* norms = index.item_norms_.data();
    const std::size_t code_size = index.code_size;
    scan(
        lut, count, 0,
        [&](std::size_t i, float* score, const std::uint8_t** code, std::uint64_t* position) {
          *position = list[i];
          if (!keep(*position)) return false;
          *score = -norms[*position];
          *code = base + *position * code_size;
          return true;
        },
        heap);
  }
};

}  // namespace semid
