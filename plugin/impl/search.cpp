#include "plugin/impl/search.h"

#include <faiss/utils/distances.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstring>
#include <numeric>
#include <span>
#include <typeinfo>

namespace semid {

using namespace impl;  // NOLINT: the engine's own helpers

RqvaeSearch::RqvaeSearch(const IndexRQVAE& index, const faiss::SearchParameters* params, idx_t k)
    : index(index),
      levels(static_cast<std::size_t>(index.levels())),
      codebook_size(static_cast<std::size_t>(index.codebook_size())),
      dim(static_cast<std::size_t>(index.d)),
      latent_dim(static_cast<std::size_t>(index.latent_dim_)),
      inner_product(index.metric_type == faiss::METRIC_INNER_PRODUCT),
      k(k) {
  idx_t requested_shortlist = 0;
  if (params) {
    sel = params->sel;
    const auto* p = dynamic_cast<const SearchParametersRQVAE*>(params);
    FAISS_THROW_IF_NOT_FMT(p || typeid(*params) == typeid(faiss::SearchParameters),
                           "IndexRQVAE: search parameters of type %s are not supported (use "
                           "SearchParametersRQVAE or faiss::SearchParameters)",
                           typeid(*params).name());
    if (p) {
      mode = p->mode;
      check(p->validate(index.codec_), "search parameters");
      requested_shortlist = p->shortlist;
      beam = p->beam;
      min_prefix = p->min_prefix;
      prefix = p->prefix;
    }
  }
  if (requested_shortlist == 0) {
    requested_shortlist = std::max(IndexRQVAE::kShortlistPerK * k, IndexRQVAE::kMinShortlist);
  }
  shortlist = static_cast<std::size_t>(
      std::min(std::max(requested_shortlist, k), std::max(index.ntotal, k)));
}

std::vector<float> RqvaeSearch::exact_queries(idx_t n, const float* x) const {
  const auto count = static_cast<std::size_t>(n);
  check(check_finite(count, dim, x), "queries");
  std::vector<float> queries(x, x + count * dim);
  if (inner_product) faiss::fvec_renorm_L2(dim, count, queries.data());
  return queries;
}

std::vector<float> RqvaeSearch::query_latents(idx_t n, const float* x) const {
  const auto count = static_cast<std::size_t>(n);
  std::vector<float> latents(count * latent_dim);
  check(index.model_->encode_latent(count, x, latents.data()), "encoding queries");
  return latents;
}

void RqvaeSearch::lookup_table(const float* latent, float* lut) const {
  // Score = 2 <z, s> - ||s||^2: the factor 2 goes into the table, once per entry.
  const float* word = index.codebooks_.data();
  for (std::size_t i = 0; i < codebook_size * levels; ++i, word += latent_dim) {
    lut[i] = 2.0f * dot(latent, word, latent_dim);
  }
}

std::vector<std::uint64_t> RqvaeSearch::filtered_positions(bool* all) const {
  std::vector<std::uint64_t> positions;
  *all = prefix.empty();
  if (!*all) check(index.trie_.append_items(prefix, &positions), "prefix filter");
  return positions;
}

void RqvaeSearch::decode_for_ranking(std::size_t count, const std::uint64_t* positions, float* out,
                                     bool cached) const {
  const ReconstructionCache& cache = index.reconstructions_;
  const auto sid_bytes = [&](std::size_t i) {
    return index.codes.data() + positions[i] * index.code_size;
  };
  std::vector<std::size_t> missing;  // rows to decode
  if (cached && cache.enabled()) {
    for (std::size_t i = 0; i < count; ++i) {
      if (!cache.find(sid_bytes(i), out + i * dim)) missing.push_back(i);
    }
    if (missing.empty()) return;
  } else {
    missing.resize(count);
    std::iota(missing.begin(), missing.end(), std::size_t{0});
  }
  const std::size_t m = missing.size();
  std::vector<std::int32_t> sids(m * levels);
  for (std::size_t j = 0; j < m; ++j) {
    index.codec_.unpack(sid_bytes(missing[j]), sids.data() + j * levels);
  }
  const bool in_place = m == count;  // every row missing: decode straight into out
  std::vector<float> decoded(in_place ? 0 : m * dim);
  float* rows = in_place ? out : decoded.data();
  check(index.model_->decode(m, sids.data(), rows), "decoding");
  if (inner_product) faiss::fvec_renorm_L2(dim, m, rows);
  for (std::size_t j = 0; j < m; ++j) {
    const std::size_t i = missing[j];
    if (!in_place) std::copy_n(rows + j * dim, dim, out + i * dim);
    if (cached) cache.put(sid_bytes(i), out + i * dim);
  }
}

void RqvaeSearch::for_each_decoded_chunk(
    const std::function<void(std::size_t, const float*, const idx_t*)>& fn) const {
  bool all = false;
  std::vector<std::uint64_t> filtered = filtered_positions(&all);
  if (index.has_ids_) {
    // Chunks in label order, so that equal distances resolve alike wherever the items sit.
    if (all) {
      filtered.resize(static_cast<std::size_t>(index.ntotal));
      std::iota(filtered.begin(), filtered.end(), std::uint64_t{0});
      all = false;
    }
    std::sort(filtered.begin(), filtered.end(), [this](std::uint64_t a, std::uint64_t b) {
      const idx_t la = index.ids_[a], lb = index.ids_[b];
      return la != lb ? la < lb : a < b;
    });
  }
  const std::size_t candidates = all ? static_cast<std::size_t>(index.ntotal) : filtered.size();
  std::vector<std::uint64_t> positions;
  std::vector<idx_t> labels;
  std::vector<float> decoded(kDecodeChunk * dim);
  for (std::size_t next = 0; next < candidates;) {
    positions.clear();
    labels.clear();
    for (; next < candidates && positions.size() < kDecodeChunk; ++next) {
      const std::uint64_t position = all ? next : filtered[next];
      if (!admits(static_cast<idx_t>(position))) continue;
      positions.push_back(position);
      labels.push_back(index.label(position));
    }
    if (positions.empty()) break;
    decode_for_ranking(positions.size(), positions.data(), decoded.data(), /*cached=*/false);
    fn(positions.size(), decoded.data(), labels.data());
  }
}

void RqvaeSearch::exhaustive(idx_t n, const float* x, float* distances, idx_t* labels) const {
  const std::vector<float> queries = exact_queries(n, x);
  if (inner_product)
    init_heaps<MaxKeeper>(n, k, distances, labels);
  else
    init_heaps<MinKeeper>(n, k, distances, labels);
  const auto nq = static_cast<std::size_t>(n);
  std::vector<float> chunk_distances(nq * static_cast<std::size_t>(k));
  std::vector<idx_t> chunk_rows(nq * static_cast<std::size_t>(k));
  for_each_decoded_chunk([&](std::size_t m, const float* rows, const idx_t* row_labels) {
    // FAISS's blocked BLAS k-NN over the chunk, then a merge into the running top-k.
    if (inner_product) {
      faiss::knn_inner_product(queries.data(), rows, dim, nq, m, static_cast<std::size_t>(k),
                               chunk_distances.data(), chunk_rows.data());
    } else {
      faiss::knn_L2sqr(queries.data(), rows, dim, nq, m, static_cast<std::size_t>(k),
                       chunk_distances.data(), chunk_rows.data());
    }
#pragma omp parallel for
    for (idx_t q = 0; q < n; ++q) {
      float* D = distances + q * k;
      idx_t* I = labels + q * k;
      for (idx_t r = 0; r < k; ++r) {
        const idx_t row = chunk_rows[static_cast<std::size_t>(q * k + r)];
        if (row < 0) break;
        const float distance = chunk_distances[static_cast<std::size_t>(q * k + r)];
        if (inner_product) {
          if (distance > D[0])
            faiss::heap_replace_top<MaxKeeper>(k, D, I, distance, row_labels[row]);
        } else if (distance < D[0]) {
          faiss::heap_replace_top<MinKeeper>(k, D, I, distance, row_labels[row]);
        }
      }
    }
  });
  if (inner_product)
    finish_heaps<MaxKeeper>(n, k, distances, labels);
  else
    finish_heaps<MinKeeper>(n, k, distances, labels);
}

void RqvaeSearch::range(idx_t n, const float* x, float radius,
                        faiss::RangeSearchResult* result) const {
  const std::vector<float> queries = exact_queries(n, x);
  std::vector<std::vector<std::pair<idx_t, float>>> hits(static_cast<std::size_t>(n));
  for_each_decoded_chunk([&](std::size_t m, const float* rows, const idx_t* row_labels) {
#pragma omp parallel
    {
      std::vector<float> scores(m);
#pragma omp for
      for (idx_t q = 0; q < n; ++q) {
        const float* query = queries.data() + static_cast<std::size_t>(q) * dim;
        auto& out = hits[static_cast<std::size_t>(q)];
        if (inner_product) {
          faiss::fvec_inner_products_ny(scores.data(), query, rows, dim, m);
          for (std::size_t j = 0; j < m; ++j) {
            if (scores[j] > radius) out.emplace_back(row_labels[j], scores[j]);
          }
        } else {
          faiss::fvec_L2sqr_ny(scores.data(), query, rows, dim, m);
          for (std::size_t j = 0; j < m; ++j) {
            if (scores[j] < radius) out.emplace_back(row_labels[j], scores[j]);
          }
        }
      }
    }
  });
  for (idx_t q = 0; q < n; ++q) result->lims[q] = hits[static_cast<std::size_t>(q)].size();
  result->do_allocation();
  for (idx_t q = 0; q < n; ++q) {
    std::size_t at = result->lims[q];
    for (const auto& [label, distance] : hits[static_cast<std::size_t>(q)]) {
      result->labels[at] = label;
      result->distances[at] = distance;
      ++at;
    }
  }
}

void RqvaeSearch::shortlisted(idx_t n, const float* x, float* distances, idx_t* labels) const {
  Shortlists shortlists;
  // kPrefix keeps a shortlist per shared length (levels + 1 of them at most).
  shortlists.capacity = shortlist * (mode == SearchMode::kPrefix ? levels + 1 : 1);
  const std::size_t block = std::clamp<std::size_t>(kRerankFloats / (shortlists.capacity * dim), 1,
                                                    static_cast<std::size_t>(n));
  std::vector<std::int32_t> query_sids;
  for (idx_t b0 = 0; b0 < n; b0 += static_cast<idx_t>(block)) {
    const idx_t nb = std::min(static_cast<idx_t>(block), n - b0);
    const float* xb = x + b0 * index.d;
    // The model runs here, once for the whole block, outside any parallel region.
    const std::vector<float> latents = query_latents(nb, xb);
    if (mode == SearchMode::kPrefix) {
      query_sids.resize(static_cast<std::size_t>(nb) * levels);
      check(index.model_->encode(static_cast<std::size_t>(nb), xb, query_sids.data()),
            "encoding queries");
    }
    shortlist_block(nb, latents.data(), query_sids.data(), &shortlists);
    const std::vector<float> queries = exact_queries(nb, xb);
    rerank_block(nb, queries.data(), shortlists, distances + b0 * k, labels + b0 * k);
  }
}

void RqvaeSearch::shortlist_block(idx_t n, const float* latents, const std::int32_t* query_sids,
                                  Shortlists* out) const {
  const std::size_t cap = out->capacity;
  out->positions.assign(static_cast<std::size_t>(n) * cap, -1);
  out->shared.assign(static_cast<std::size_t>(n) * cap, 0);
  out->count.assign(static_cast<std::size_t>(n), 0);
  bool all = false;
  const std::vector<std::uint64_t> filtered = mode == SearchMode::kCosine && beam == 0
                                                  ? filtered_positions(&all)
                                                  : std::vector<std::uint64_t>{};
#pragma omp parallel
  {
    ScanBuffers buffers;
    buffers.lut.resize(levels * codebook_size);
    buffers.heap_scores.resize(shortlist);
    buffers.heap_keys.resize(shortlist);
    buffers.sid.resize(levels);
    // Dynamic: pruning makes the work per query uneven.
#pragma omp for schedule(dynamic, 4)
    for (idx_t q = 0; q < n; ++q) {
      const auto qi = static_cast<std::size_t>(q);
      lookup_table(latents + qi * latent_dim, buffers.lut.data());
      idx_t* slots = out->positions.data() + qi * cap;
      out->count[qi] =
          mode == SearchMode::kPrefix
              ? shortlist_prefix(query_sids + qi * levels, buffers, slots,
                                 out->shared.data() + qi * cap)
              : shortlist_cosine(latents + qi * latent_dim, filtered, all, buffers, slots);
    }
  }
}

std::size_t RqvaeSearch::shortlist_cosine(const float* latent,
                                          const std::vector<std::uint64_t>& filtered, bool all,
                                          ScanBuffers& buffers, idx_t* slots) const {
  ScanHeap heap(shortlist, buffers.heap_scores.data(), buffers.heap_keys.data());
  const auto keep_all = [](std::uint64_t) { return true; };
  const float* lut = buffers.lut.data();
  if (beam > 0) {
    beam_candidates(latent, &buffers.candidates);
    scan_list(lut, buffers.candidates.data(), buffers.candidates.size(), keep_all, heap);
  } else if (all) {
    scan_groups(lut, buffers, heap);
  } else {
    scan_list(lut, filtered.data(), filtered.size(), keep_all, heap);
  }
  const std::size_t kept = heap.finish();
  for (std::size_t i = 0; i < kept; ++i) {
    slots[i] = static_cast<idx_t>(index.position_of_key(buffers.heap_keys[i]));
  }
  return kept;
}

void RqvaeSearch::scan_groups(const float* lut, ScanBuffers& buffers, ScanHeap& heap) const {
  // rest[l]: the best table entries of levels l..L-1 summed, what no item's codes there can beat.
  std::array<float, SidKeyCodec::kMaxLevels + 1> rest{};
  for (std::size_t l = levels; l-- > 1;) {
    const float* table = lut + l * codebook_size;
    rest[l] = rest[l + 1] + *std::max_element(table, table + codebook_size);
  }
  const CodeGroups& groups = index.groups_;
  auto& order = buffers.groups;
  order.clear();
  for (std::size_t c = 0; c < codebook_size; ++c) {
    const CodeGroups::Group& group = groups.group(c);
    if (!group.positions.empty()) {
      order.emplace_back(lut[c] + rest[1] - group.min_norm, static_cast<std::uint32_t>(c));
    }
  }
  std::sort(order.begin(), order.end(), std::greater<>());
  const std::size_t tail_size = groups.tail_bytes();
  const std::size_t level_bytes = groups.bytes_per_level();
  const float* level2 = lut + codebook_size;
  for (const auto& [bound, code] : order) {
    if (bound < heap.threshold()) break;
    const CodeGroups::Group& group = groups.group(code);
    const float head = lut[code];
    // Scans entries [begin, end) of the group from level first_level on, each starting at `base`.
    const auto scan_entries = [&](std::size_t begin, std::size_t end, std::size_t first_level,
                                  float base) {
      scan(
          lut, end - begin, first_level,
          [&](std::size_t i, float* score, const std::uint8_t** tail, std::uint64_t* position) {
            const std::size_t entry = begin + i;
            *score = base - group.norms[entry];
            *tail = group.tails.data() + entry * tail_size + (first_level - 1) * level_bytes;
            *position = group.positions[entry];
            return true;
          },
          heap);
    };
    if (group.runs.empty()) {  // one-level SIDs
      scan_entries(0, group.positions.size(), 1, head);
      continue;
    }
    // A run's items score at most head + its level-2 entry + rest[2] - the run's smallest norm.
    std::size_t begin = 0;
    for (const CodeGroups::Run& run : group.runs) {
      const float base = head + level2[run.code];
      if (base + rest[2] - run.min_norm >= heap.threshold()) {
        scan_entries(begin, run.end, 2, base);
      }
      begin = run.end;
    }
  }
}

std::size_t RqvaeSearch::shortlist_prefix(const std::int32_t* query_sid, ScanBuffers& buffers,
                                          idx_t* slots, std::int8_t* shared) const {
  const std::size_t f = prefix.size();
  const int agreed = shared_levels(prefix.data(), query_sid, static_cast<int>(f));
  std::vector<std::uint64_t>& candidates = buffers.candidates;
  std::size_t count = 0;
  // Scans the items under query_sid[0..depth) (or under the filter) whose SID shares exactly
  // `length` codes with the query's, into the shortlist.
  auto take_group = [&](std::span<const std::int32_t> under, int length) {
    candidates.clear();
    expect_ok(index.trie_.append_items(under, &candidates));
    ScanHeap heap(shortlist, buffers.heap_scores.data(), buffers.heap_keys.data());
    const auto exactly = [&](std::uint64_t position) {
      index.codec_.unpack(index.codes.data() + position * index.code_size, buffers.sid.data());
      return shared_levels(buffers.sid.data(), query_sid, static_cast<int>(levels)) == length;
    };
    scan_list(buffers.lut.data(), candidates.data(), candidates.size(), exactly, heap);
    const std::size_t kept = heap.finish();
    for (std::size_t i = 0; i < kept; ++i) {
      slots[count + i] = static_cast<idx_t>(index.position_of_key(buffers.heap_keys[i]));
    }
    std::fill_n(shared + count, kept, static_cast<std::int8_t>(length));
    count += kept;
  };
  if (static_cast<std::size_t>(agreed) < f) {
    // The query's SID leaves the filter's subtree at level `agreed`: every item under the filter
    // shares exactly that many codes with it.
    if (agreed >= min_prefix) take_group(prefix, agreed);
    return count;
  }
  auto deepest = index.trie_.longest_shared_prefix({query_sid, levels});
  expect_ok(deepest.status());
  const int lowest = std::max(static_cast<int>(f), min_prefix);
  for (int depth = *deepest; depth >= lowest && count < static_cast<std::size_t>(k); --depth) {
    take_group({query_sid, static_cast<std::size_t>(depth)}, depth);
  }
  return count;
}

void RqvaeSearch::beam_candidates(const float* latent, std::vector<std::uint64_t>* out) const {
  const std::size_t f = prefix.size();
  const auto width = static_cast<std::size_t>(beam);
  // Live prefixes: codes (levels each, the first `depth` meaningful) and codeword sums
  // (latent_dim).
  std::vector<std::int32_t> codes(levels);
  std::copy(prefix.begin(), prefix.end(), codes.begin());
  std::vector<float> sums(latent_dim, 0.0f);
  for (std::size_t l = 0; l < f; ++l) {
    const float* word = index.codebooks_.data() +
                        (l * codebook_size + static_cast<std::size_t>(prefix[l])) * latent_dim;
    for (std::size_t j = 0; j < latent_dim; ++j) sums[j] += word[j];
  }
  struct Expansion {
    float score;
    std::uint32_t parent;
    std::int32_t code;
  };
  std::vector<Expansion> expansions;
  std::vector<float> sum(latent_dim);
  for (std::size_t depth = f; depth < levels; ++depth) {
    expansions.clear();
    const std::size_t live = codes.size() / levels;
    for (std::size_t b = 0; b < live; ++b) {
      auto children = index.trie_.children({codes.data() + b * levels, depth});
      expect_ok(children.status());
      for (const SidTrie::Child& child : *children) {
        const float* word =
            index.codebooks_.data() +
            (depth * codebook_size + static_cast<std::size_t>(child.code)) * latent_dim;
        for (std::size_t j = 0; j < latent_dim; ++j) sum[j] = sums[b * latent_dim + j] + word[j];
        // The scan's score of the partial sum: 2 <z, s> - ||s||^2 (= ||z||^2 - ||z - s||^2).
        const float score =
            2.0f * dot(latent, sum.data(), latent_dim) - dot(sum.data(), sum.data(), latent_dim);
        expansions.push_back({score, static_cast<std::uint32_t>(b), child.code});
      }
    }
    if (expansions.size() > width) {
      std::nth_element(expansions.begin(), expansions.begin() + static_cast<std::ptrdiff_t>(width),
                       expansions.end(),
                       [](const Expansion& a, const Expansion& b) { return a.score > b.score; });
      expansions.resize(width);
    }
    std::vector<std::int32_t> next_codes(expansions.size() * levels);
    std::vector<float> next_sums(expansions.size() * latent_dim);
    for (std::size_t e = 0; e < expansions.size(); ++e) {
      const Expansion& x = expansions[e];
      std::copy_n(codes.data() + x.parent * levels, depth, next_codes.data() + e * levels);
      next_codes[e * levels + depth] = x.code;
      const float* word = index.codebooks_.data() +
                          (depth * codebook_size + static_cast<std::size_t>(x.code)) * latent_dim;
      for (std::size_t j = 0; j < latent_dim; ++j) {
        next_sums[e * latent_dim + j] = sums[x.parent * latent_dim + j] + word[j];
      }
    }
    codes = std::move(next_codes);
    sums = std::move(next_sums);
  }
  out->clear();
  for (std::size_t b = 0; b < codes.size() / levels; ++b) {
    expect_ok(index.trie_.append_items({codes.data() + b * levels, levels}, out));
  }
}

void RqvaeSearch::rerank_block(idx_t n, const float* queries, const Shortlists& shortlists,
                               float* distances, idx_t* labels) const {
  // Distinct SIDs across the block's shortlists: each is decoded once.
  const std::size_t cap = shortlists.capacity;
  std::vector<std::uint32_t> entries;
  for (std::size_t q = 0; q < static_cast<std::size_t>(n); ++q) {
    for (std::size_t e = 0; e < shortlists.count[q]; ++e) {
      entries.push_back(static_cast<std::uint32_t>(q * cap + e));
    }
  }
  const std::uint8_t* base = index.codes.data();
  const std::size_t code_size = index.code_size;
  const auto sid_of = [&](std::uint32_t entry) {
    return base + static_cast<std::size_t>(shortlists.positions[entry]) * code_size;
  };
  std::sort(entries.begin(), entries.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::memcmp(sid_of(a), sid_of(b), code_size) < 0;
  });
  std::vector<std::uint32_t> row_of(static_cast<std::size_t>(n) * cap);
  std::vector<std::uint64_t> row_positions;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i == 0 || std::memcmp(sid_of(entries[i - 1]), sid_of(entries[i]), code_size) != 0) {
      row_positions.push_back(static_cast<std::uint64_t>(shortlists.positions[entries[i]]));
    }
    row_of[entries[i]] = static_cast<std::uint32_t>(row_positions.size() - 1);
  }
  std::vector<float> rows(row_positions.size() * dim);
  decode_for_ranking(row_positions.size(), row_positions.data(), rows.data(), /*cached=*/true);

  const bool by_prefix = mode == SearchMode::kPrefix;
#pragma omp parallel
  {
    struct Ranked {
      int shared;
      float distance;
      idx_t label;
    };
    std::vector<Ranked> ranked;
#pragma omp for
    for (idx_t q = 0; q < n; ++q) {
      const auto qi = static_cast<std::size_t>(q);
      const float* query = queries + qi * dim;
      ranked.clear();
      for (std::size_t e = 0; e < shortlists.count[qi]; ++e) {
        const std::size_t entry = qi * cap + e;
        const float* row = rows.data() + static_cast<std::size_t>(row_of[entry]) * dim;
        const float distance = inner_product ? dot(query, row, dim) : l2sqr(query, row, dim);
        ranked.push_back({by_prefix ? shortlists.shared[entry] : 0, distance,
                          index.label(static_cast<std::size_t>(shortlists.positions[entry]))});
      }
      // Longer shared prefix first (kPrefix), then closer; ties by label for determinism.
      const auto closer = [this](const Ranked& a, const Ranked& b) {
        if (a.shared != b.shared) return a.shared > b.shared;
        if (a.distance != b.distance) {
          return inner_product ? a.distance > b.distance : a.distance < b.distance;
        }
        return a.label < b.label;
      };
      const std::size_t kept = std::min(ranked.size(), static_cast<std::size_t>(k));
      std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(kept),
                        ranked.end(), closer);
      float* D = distances + q * k;
      idx_t* I = labels + q * k;
      for (std::size_t r = 0; r < static_cast<std::size_t>(k); ++r) {
        D[r] = r < kept ? ranked[r].distance
                        : (inner_product ? MaxKeeper::neutral() : MinKeeper::neutral());
        I[r] = r < kept ? ranked[r].label : -1;
      }
    }
  }
}

}  // namespace semid
