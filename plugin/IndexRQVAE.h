// semid::IndexRQVAE: a FAISS index whose codes are semantic IDs.
//
// The index holds one trained Quantizer (an RQ-VAE, or residual k-means) and, per item, its SID
// packed as in sid.h: `levels` codes of 1 byte each (codebook_size <= 256) or 2 bytes big-endian,
// so code_size = sa_code_size() = L or 2L bytes. It derives from faiss::IndexFlatCodes as FAISS's
// own additive-quantizer indexes do, and works inside FAISS's wrappers (IndexIDMap, IndexIDMap2,
// IndexShards, IndexRefineFlat, IndexPreTransform).
//
// Metric: the model's. A cosine model gives METRIC_INNER_PRODUCT: inputs and queries are
// L2-normalised on the way in, reconstructions are compared by cosine (distances are cosine
// similarities, larger is closer). An L2 model gives METRIC_L2: squared Euclidean distance between
// the raw query and the reconstruction (smaller is closer).
//
// Labels: after add() items are labelled by position 0..ntotal-1 and remove_ids() shifts later
// labels down (FAISS's IndexFlatCodes semantics, which IndexIDMap relies on). After
// add_with_ids() items are labelled by the caller's ids, kept in ids(); remove_ids() then keeps
// every other item's label. One index holds one kind of label: mixing add() and add_with_ids()
// throws (reset() first). IDSelectors (SearchParameters::sel, remove_ids) see these labels.
//
// Removal with caller ids (all distinct, as storage/ keeps them): O(levels) per item, not O(ntotal)
// — the last item moves into the freed position (one trie path and one level-1 group entry
// change), every other item stays put; reconstruct() finds an id by hash. Results never depend on
// where items sit: equal scores are broken by label, so an index rebuilt in another order (a
// restart) answers alike. Positional labels (and repeated caller ids) compact instead, as FAISS's
// IndexFlatCodes does.
//
// Search modes (SearchParametersRQVAE::mode):
//  - kCosine (default): the query is encoded to the latent once; every candidate item is scored by
//    a per-level lookup table, score = 2 <z, s> - ||s||^2 = ||z||^2 - ||z - s||^2 where z is the
//    query latent and s the sum of the item's codewords (||s||^2 is kept per item at add time) —
//    no decoding in the scan. Without a filter the scan goes by first-level code, groups with the
//    best score bound first, and skips the groups whose bound cannot reach the shortlist (the
//    same shortlist as a full scan, with about 30% of the items scored on GloVe). The `shortlist`
//    best items per query are decoded (each distinct SID once per search call) and ranked by the
//    exact metric between the query and the reconstruction. With `beam` = B > 0 the scan is
//    restricted to the items under the B best SIDs found by a beam search over the trie, level by
//    level (sub-linear in ntotal).
//  - kPrefix: the items sharing the longest SID prefix with the query's SID, ranked by shared
//    length (longer first) and then by the exact metric (the shortlist picks, within each
//    shared length, the items the lookup table ranks best); deeper groups fill the k results
//    first, then shallower ones down to `min_prefix`. Distances are the exact metric values, so
//    they are not monotone across groups.
//  - kExhaustive: every candidate is decoded and ranked exactly: the reference the fast modes are
//    measured against, and what range_search always does.
//  In every mode `prefix` (a SID prefix filter) and `sel` restrict the candidates.
//
// Results follow FAISS: rows of k labels and distances sorted closest first; missing results are
// label -1 with distance -FLT_MAX (inner product) or +FLT_MAX (L2), the sentinels FAISS's own heaps
// and wrappers use; n = 0 is a no-op; k must be > 0; an untrained index throws.
//
// Errors: faiss::FaissException naming the failed condition and its values (bad arguments,
// unsupported SearchParameters types, model failures such as NaN/Inf inputs).
//
// Threads: search parallelises across queries with OpenMP; the model (LibTorch) is only called
// outside parallel regions, in batches (query latents, decoding of the shortlisted SIDs).
//
// Size: at most 2^32 - 1 items (positions are kept as uint32 in the scan's level-1 groups).
//
// Thread safety: const methods (search, range_search, reconstruct, sa_encode, sa_decode) may run
// concurrently; anything that modifies the index needs exclusive access (caller synchronises).
#pragma once

#include <faiss/IndexFlatCodes.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "index/quantizer.h"
#include "index/rqvae.h"
#include "index/sid.h"
#include "index/trainer.h"
#include "index/trie.h"
#include "plugin/impl/code_groups.h"
#include "plugin/impl/reconstruction_cache.h"
#include "plugin/search_options.h"

namespace semid {

// Search parameters of IndexRQVAE: SearchOptions (plugin/search_options.h) plus FAISS's id
// selector. A plain faiss::SearchParameters (sel only) is also accepted; any other
// SearchParameters type throws, as do options that SearchOptions::validate refuses.
struct SearchParametersRQVAE : faiss::SearchParameters, SearchOptions {};

struct IndexRQVAE : faiss::IndexFlatCodes {
  // Default shortlist: max(kShortlistPerK * k, kMinShortlist) (see SearchParametersRQVAE).
  static constexpr idx_t kShortlistPerK = 4;
  static constexpr idx_t kMinShortlist = 64;
  // Default budget of the reconstruction cache (set_reconstruction_cache_bytes).
  static constexpr std::size_t kDefaultReconstructionCacheBytes = std::size_t{256} << 20;

  // What train() passes to train_rqvae (trainer.h). Default: TrainOptions{} (200 epochs with
  // early stopping; set fewer for quick experiments).
  TrainOptions train_options;

  // An untrained index: train() fits an RQ-VAE with `config` (its dim and metric are taken from
  // d and metric). metric: METRIC_INNER_PRODUCT (cosine) or METRIC_L2; anything else throws, as
  // does an invalid config.
  IndexRQVAE(idx_t d, const RqVaeConfig& config,
             faiss::MetricType metric = faiss::METRIC_INNER_PRODUCT);
  // A trained index over `model` (an RqVae or RqKMeans; shared, so several indexes — e.g. shards
  // — can hold one model). d, metric and code_size follow the model.
  explicit IndexRQVAE(std::shared_ptr<const Quantizer> model);

  // The model (null until trained).
  const std::shared_ptr<const Quantizer>& model() const { return model_; }
  // The architecture train() fits (the model's own config once one is set).
  const RqVaeConfig& config() const { return config_; }
  int levels() const { return codec_.levels(); }
  int codebook_size() const { return codec_.codebook_size(); }
  const SidKeyCodec& codec() const { return codec_; }
  // Whether items are labelled by caller ids (add_with_ids) rather than positions.
  bool has_ids() const { return has_ids_; }
  // The caller ids, ntotal of them when has_ids(), else empty.
  const std::vector<idx_t>& ids() const { return ids_; }
  // The stored SIDs; item ids in the trie are positions (0..ntotal-1).
  const SidTrie& trie() const { return trie_; }

  // Trains a new RQ-VAE from `config()` and `train_options` on x (n * d). Throws when the index
  // holds items (their codes would be stale), or when training fails (too few items, NaN/Inf...).
  // With `verbose`, prints one line per epoch.
  void train(idx_t n, const float* x) override;
  // Encodes and appends n vectors (n * d floats), labelled ntotal, ntotal + 1, ...
  void add(idx_t n, const float* x) override;
  // Same, labelled xids[0..n).
  void add_with_ids(idx_t n, const float* x, const idx_t* xids) override;
  // Appends n already-encoded items: codes is n * code_size bytes (packed SIDs, every level
  // < codebook_size or it throws), xids n labels or null for positional labels. This is how
  // stored codes come back without re-encoding (read_index, storage).
  void add_codes(idx_t n, const std::uint8_t* codes, const idx_t* xids);

  // x: n * d queries. distances, labels: n * k outputs. params: null, a faiss::SearchParameters
  // (sel only) or a SearchParametersRQVAE.
  void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;
  // Every candidate within `radius` by the exact metric (inner product > radius, or L2 distance
  // < radius), unordered. params: as for search, but range_search is always exact: mode must be
  // kCosine or kExhaustive with default shortlist and beam; sel and prefix apply.
  void range_search(idx_t n, const float* x, float radius, faiss::RangeSearchResult* result,
                    const faiss::SearchParameters* params = nullptr) const override;

  // The shortlist rerank keeps the decoded reconstructions of the SIDs it ranks, so later searches
  // skip the decoder for them: up to `bytes` (0 disables it), sized to the next power of two of
  // 5/4 slots per item (d floats + the SID's bytes each; 100-d items take 404 bytes, so the
  // default 256 MiB holds ~660k; GloVe's 341k items take 524k slots, 212 MB once all are filled).
  // Results are the same with or without it. A budget that changes the table's size empties it;
  // not thread-safe (call it where add or remove would be called).
  void set_reconstruction_cache_bytes(std::size_t bytes);
  std::size_t reconstruction_cache_bytes() const { return reconstruction_cache_bytes_; }
  // Rerank rows found in the cache and decoded since the index was made.
  std::uint64_t reconstruction_cache_hits() const { return reconstructions_.hits(); }
  std::uint64_t reconstruction_cache_misses() const { return reconstructions_.misses(); }
  // Fills the cache ahead of searches, so that the first ones after a start do not pay for the
  // decoder: decodes the SIDs of the items at positions [begin, begin + count) that the cache
  // lacks (positions past ntotal are ignored) and stores them, as the rerank would. Thread-safe as
  // search is. Returns how many SIDs it decoded.
  std::size_t prefetch_reconstructions(idx_t begin, idx_t count) const;
  // How many items prefetching can usefully cover from position 0: ntotal, or the cache's slot
  // count where that is smaller (0 when the cache is off).
  idx_t prefetch_limit() const {
    return std::min(ntotal, static_cast<idx_t>(reconstructions_.slots()));
  }

  // The reconstruction of the item labelled `key` (d floats): by position after add(), by caller
  // id after add_with_ids() (hashed; a linear lookup when ids repeat).
  void reconstruct(idx_t key, float* recons) const override;
  // Removes the items whose label `sel` holds; returns how many. With distinct caller ids an
  // IDSelectorBatch or IDSelectorArray costs O(levels) per listed id, any other selector one
  // is_member call per item plus O(levels) per removed one.
  std::size_t remove_ids(const faiss::IDSelector& sel) override;
  // Removes the items labelled xids[0..n) (labels the index does not hold are skipped); returns
  // how many.
  std::size_t remove_labels(idx_t n, const idx_t* xids);
  void reset() override;
  // Moves other's items (an IndexRQVAE over a model with the same content hash, with the same
  // kind of labels) to the end of this index. Caller ids are shifted by add_id, as IndexIDMap does.
  void merge_from(faiss::Index& other, idx_t add_id = 0) override;
  void check_compatible_for_merge(const faiss::Index& other) const override;

  // x: n * d -> bytes: n * code_size (packed SIDs), and back: n * d reconstructions.
  void sa_encode(idx_t n, const float* x, std::uint8_t* bytes) const override;
  void sa_decode(idx_t n, const std::uint8_t* bytes, float* x) const override;

 private:
  friend struct RqvaeSearch;  // the search machinery (plugin/impl/search.h)

  void set_model(std::shared_ptr<const Quantizer> model);
  void encode_and_append(idx_t n, const float* x, const idx_t* xids);
  void append_items(idx_t n, const std::uint8_t* codes, const idx_t* xids);
  // Files the item at `position` (SID `sid`, norm already in item_norms_) in the trie and, with
  // `group`, in groups_ (a bulk add or rebuild groups every item at once afterwards).
  void index_item(std::size_t position, const std::int32_t* sid, bool group);
  // Batches of at least this many items (and a quarter of the index) are grouped by one sort.
  static constexpr idx_t kBulkGrouping = 1024;
  void clear_item_index();
  void rebuild_item_index();
  // Removes by compaction (positions after each removed item shift down): positional labels.
  std::size_t compact(const faiss::IDSelector& sel);
  // Removes the item at `position` in O(levels): the last item takes its place.
  void remove_position(std::size_t position);
  idx_t label(std::size_t position) const {
    return has_ids_ ? ids_[position] : static_cast<idx_t>(position);
  }
  bool distinct_ids() const { return has_ids_ && distinct_ids_; }
  // What breaks ties between equal scores: the label where labels are distinct (so results do not
  // depend on the layout), else the position. position_of_key inverts it.
  idx_t order_key(std::uint64_t position) const {
    return distinct_ids() ? ids_[position] : static_cast<idx_t>(position);
  }
  std::uint64_t position_of_key(idx_t key) const {
    return distinct_ids() ? positions_.find(key)->second : static_cast<std::uint64_t>(key);
  }

  std::shared_ptr<const Quantizer> model_;
  RqVaeConfig config_;
  SidKeyCodec codec_;
  int latent_dim_ = 0;
  // Per level l: codebook_size * latent_dim_ floats, codebooks_[(l * K + c) * latent_dim_ + j].
  std::vector<float> codebooks_;
  // ||sum of the item's codewords||^2 per item (the lookup-table scan's norm term).
  std::vector<float> item_norms_;
  bool has_ids_ = false;
  std::vector<idx_t> ids_;
  // With caller ids: label -> position, kept while every label is distinct (distinct_ids_).
  std::unordered_map<idx_t, std::size_t> positions_;
  bool distinct_ids_ = true;
  SidTrie trie_;
  // The items again, grouped by level-1 code and in runs of level-2 code
  // (plugin/impl/code_groups.h): what the full lookup-table scan streams through, best bound first,
  // skipping what cannot reach the shortlist.
  impl::CodeGroups groups_;
  std::size_t reconstruction_cache_bytes_ = kDefaultReconstructionCacheBytes;
  impl::ReconstructionCache reconstructions_;
};

}  // namespace semid
