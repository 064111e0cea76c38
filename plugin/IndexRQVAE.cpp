#include "plugin/IndexRQVAE.h"

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <typeinfo>

#include "index/rq_kmeans.h"
#include "plugin/impl/common.h"
#include "plugin/impl/search.h"

namespace semid {
using namespace impl;  // NOLINT: shared with the search engine
namespace {

faiss::MetricType metric_of(Metric metric) {
  return metric == Metric::kCosine ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
}

const Quantizer& require_model(const std::shared_ptr<const Quantizer>& model) {
  FAISS_THROW_IF_NOT_MSG(model, "IndexRQVAE: the model is null");
  return *model;
}

RqVaeConfig checked_config(idx_t d, RqVaeConfig config, faiss::MetricType metric) {
  FAISS_THROW_IF_NOT_FMT(
      metric == faiss::METRIC_INNER_PRODUCT || metric == faiss::METRIC_L2,
      "IndexRQVAE: metric %d is not supported (METRIC_INNER_PRODUCT or METRIC_L2)",
      static_cast<int>(metric));
  config.dim = static_cast<int>(d);
  config.metric = metric == faiss::METRIC_INNER_PRODUCT ? Metric::kCosine : Metric::kL2;
  check(config.validate(), "invalid RQ-VAE config");
  return config;
}

// The shape an RQ-KMeans model would have as an RQ-VAE config (levels, K, dim and metric are what
// the index uses of it).
RqVaeConfig config_of(const Quantizer& model) {
  if (const auto* vae = dynamic_cast<const RqVae*>(&model)) return vae->config();
  RqVaeConfig config;
  config.dim = model.dim();
  config.levels = model.levels();
  config.codebook_size = model.codebook_size();
  config.metric = model.metric();
  return config;
}

SidKeyCodec make_codec(const RqVaeConfig& config) {
  auto codec = SidKeyCodec::create(config.levels, config.codebook_size);
  if (!codec) throw_status("SID codec", codec.status());
  return *codec;
}

SidTrie make_trie(const SidKeyCodec& codec) {
  auto trie = SidTrie::create(codec.levels(), codec.codebook_size());
  if (!trie) throw_status("trie", trie.status());
  return std::move(trie).value();
}

}  // namespace

// ---- construction, training, adding ------------------------------------------------------------

IndexRQVAE::IndexRQVAE(idx_t d, const RqVaeConfig& config, faiss::MetricType metric)
    : faiss::IndexFlatCodes(0, d, metric),
      config_(checked_config(d, config, metric)),
      codec_(make_codec(config_)),
      trie_(make_trie(codec_)),
      reconstructions_(static_cast<std::size_t>(d), codec_.sid_bytes()) {
  code_size = codec_.sid_bytes();
  is_trained = false;
  clear_item_index();
}

IndexRQVAE::IndexRQVAE(std::shared_ptr<const Quantizer> model)
    : faiss::IndexFlatCodes(0, require_model(model).dim(), metric_of(model->metric())),
      config_(config_of(*model)),
      codec_(make_codec(config_)),
      trie_(make_trie(codec_)),
      reconstructions_(static_cast<std::size_t>(d), codec_.sid_bytes()) {
  code_size = codec_.sid_bytes();
  clear_item_index();
  set_model(std::move(model));
}

void IndexRQVAE::set_model(std::shared_ptr<const Quantizer> model) {
  FAISS_THROW_IF_NOT_FMT(
      model->dim() == d && model->levels() == levels() &&
          model->codebook_size() == codebook_size() && metric_of(model->metric()) == metric_type,
      "IndexRQVAE: model (dim %d, %dx%d, %s) does not fit the index (d %" PRId64
      ", %dx%d, metric %d)",
      model->dim(), model->levels(), model->codebook_size(), metric_name(model->metric()), d,
      levels(), codebook_size(), static_cast<int>(metric_type));
  // The scan works in the space the codebooks live in: the RQ-VAE's latent space, or for RQ-KMeans
  // the (normalised) input space itself.
  latent_dim_ = model->latent_dim();
  codebooks_.clear();
  for (int l = 0; l < levels(); ++l) {
    std::vector<float> book = model->codebook(l);
    codebooks_.insert(codebooks_.end(), book.begin(), book.end());
  }
  config_ = config_of(*model);
  model_ = std::move(model);
  reconstructions_.clear();  // rows of the previous model
  is_trained = true;
}

void IndexRQVAE::train(idx_t n, const float* x) {
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::train: n = %" PRId64 " must be >= 0", n);
  FAISS_THROW_IF_NOT_FMT(ntotal == 0,
                         "IndexRQVAE::train: the index holds %" PRId64
                         " items whose codes would go stale; reset() first",
                         ntotal);
  FAISS_THROW_IF_NOT_FMT(!model_ || model_->kind() == "rqvae",
                         "IndexRQVAE::train: the index holds a '%s' model; train it with its own "
                         "trainer and build the index from it",
                         model_->kind().c_str());
  ProgressCallback progress;
  if (verbose) {
    progress = [](const TrainProgress& p) {
      std::printf("IndexRQVAE::train epoch %d/%d%s loss %.5g val %.5g (%.1f s)\n", p.epoch,
                  p.epochs, p.warmup ? " warm-up" : "", p.train_loss, p.validation_loss,
                  p.elapsed_seconds);
      return true;
    };
  }
  auto trained = train_rqvae(config_, train_options, static_cast<std::size_t>(n), x, progress);
  if (!trained) throw_status("training failed", trained.status());
  set_model(std::shared_ptr<const Quantizer>(std::move(trained->model)));
}

void IndexRQVAE::sa_encode(idx_t n, const float* x, std::uint8_t* bytes) const {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::sa_encode: the index is not trained");
  const auto L = static_cast<std::size_t>(levels());
  std::vector<std::int32_t> sids(static_cast<std::size_t>(n) * L);
  check(model_->encode(static_cast<std::size_t>(n), x, sids.data()), "encoding");
  for (idx_t i = 0; i < n; ++i) codec_.pack(sids.data() + i * L, bytes + i * code_size);
}

void IndexRQVAE::sa_decode(idx_t n, const std::uint8_t* bytes, float* x) const {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::sa_decode: the index is not trained");
  const auto L = static_cast<std::size_t>(levels());
  std::vector<std::int32_t> sids(static_cast<std::size_t>(n) * L);
  for (idx_t i = 0; i < n; ++i) codec_.unpack(bytes + i * code_size, sids.data() + i * L);
  check(model_->decode(static_cast<std::size_t>(n), sids.data(), x), "decoding");
}

void IndexRQVAE::add(idx_t n, const float* x) { encode_and_append(n, x, nullptr); }

void IndexRQVAE::add_with_ids(idx_t n, const float* x, const idx_t* xids) {
  FAISS_THROW_IF_NOT_MSG(xids, "IndexRQVAE::add_with_ids: xids is null (use add())");
  encode_and_append(n, x, xids);
}

void IndexRQVAE::encode_and_append(idx_t n, const float* x, const idx_t* xids) {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::add: the index is not trained");
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::add: n = %" PRId64 " must be >= 0", n);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n) * code_size);
  sa_encode(n, x, bytes.data());
  append_items(n, bytes.data(), xids);
}

void IndexRQVAE::add_codes(idx_t n, const std::uint8_t* codes_in, const idx_t* xids) {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::add_codes: the index is not trained");
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::add_codes: n = %" PRId64 " must be >= 0", n);
  std::vector<std::int32_t> sid(static_cast<std::size_t>(levels()));
  for (idx_t i = 0; i < n; ++i) {
    codec_.unpack(codes_in + i * code_size, sid.data());
    for (int l = 0; l < levels(); ++l) {
      FAISS_THROW_IF_NOT_FMT(sid[l] < codebook_size(),
                             "IndexRQVAE::add_codes: item %" PRId64
                             " has code %d at level %d, "
                             "outside [0, %d)",
                             i, sid[l], l, codebook_size());
    }
  }
  append_items(n, codes_in, xids);
}

void IndexRQVAE::append_items(idx_t n, const std::uint8_t* codes_in, const idx_t* xids) {
  if (n == 0) return;
  const bool with_ids = xids != nullptr;
  FAISS_THROW_IF_NOT_FMT(ntotal == 0 || with_ids == has_ids_,
                         "IndexRQVAE: the index holds %s labels; it cannot take items %s them "
                         "(reset() first)",
                         has_ids_ ? "caller-id" : "positional",
                         with_ids ? "with ids among" : "without ids among");
  FAISS_THROW_IF_NOT_FMT(ntotal + n <= kMaxItems,
                         "IndexRQVAE: %" PRId64 " + %" PRId64 " items exceed the limit of %" PRId64,
                         ntotal, n, kMaxItems);
  has_ids_ = with_ids;
  const auto L = static_cast<std::size_t>(levels());
  const auto K = static_cast<std::size_t>(codebook_size());
  const auto latent = static_cast<std::size_t>(latent_dim_);
  codes.insert(codes.end(), codes_in, codes_in + static_cast<std::size_t>(n) * code_size);
  if (with_ids) ids_.insert(ids_.end(), xids, xids + n);
  // A batch that is a good part of the index is grouped by one sort instead of one insertion each.
  const bool bulk = n >= kBulkGrouping && n * 4 >= ntotal + n;
  std::vector<std::int32_t> sid(L);
  std::vector<float> sum(latent);
  for (idx_t i = 0; i < n; ++i) {
    codec_.unpack(codes_in + i * code_size, sid.data());
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (std::size_t l = 0; l < L; ++l) {
      const float* word = codebooks_.data() + (l * K + static_cast<std::size_t>(sid[l])) * latent;
      for (std::size_t j = 0; j < latent; ++j) sum[j] += word[j];
    }
    item_norms_.push_back(faiss::fvec_norm_L2sqr(sum.data(), latent));
    index_item(static_cast<std::size_t>(ntotal + i), sid.data(), /*group=*/!bulk);
  }
  ntotal += n;
  if (bulk) groups_.build(static_cast<std::size_t>(ntotal), codes.data(), item_norms_.data());
  reconstructions_.resize(static_cast<std::size_t>(ntotal), reconstruction_cache_bytes_);
}

void IndexRQVAE::set_reconstruction_cache_bytes(std::size_t bytes) {
  reconstruction_cache_bytes_ = bytes;
  reconstructions_.resize(static_cast<std::size_t>(ntotal), bytes);
}

std::size_t IndexRQVAE::prefetch_reconstructions(idx_t begin, idx_t count) const {
  if (!reconstructions_.enabled() || begin < 0 || count <= 0 || begin >= ntotal) return 0;
  const idx_t end = std::min(ntotal, begin + count);
  std::vector<std::uint64_t> positions;
  for (idx_t p = begin; p < end; ++p) {
    if (!reconstructions_.contains(codes.data() + p * code_size)) {
      positions.push_back(static_cast<std::uint64_t>(p));
    }
  }
  // One position per distinct SID (items sharing a SID share its entry).
  const auto sid_less = [this](std::uint64_t a, std::uint64_t b) {
    const int c =
        std::memcmp(codes.data() + a * code_size, codes.data() + b * code_size, code_size);
    return c != 0 ? c < 0 : a < b;
  };
  const auto sid_equal = [this](std::uint64_t a, std::uint64_t b) {
    return std::memcmp(codes.data() + a * code_size, codes.data() + b * code_size, code_size) == 0;
  };
  std::sort(positions.begin(), positions.end(), sid_less);
  positions.erase(std::unique(positions.begin(), positions.end(), sid_equal), positions.end());
  if (positions.empty()) return 0;
  const RqvaeSearch search(*this, nullptr, 1);
  std::vector<float> rows(positions.size() * static_cast<std::size_t>(d));
  search.decode_for_ranking(positions.size(), positions.data(), rows.data(), /*cached=*/false);
  for (std::size_t i = 0; i < positions.size(); ++i) {
    reconstructions_.put(codes.data() + positions[i] * code_size,
                         rows.data() + i * static_cast<std::size_t>(d));
  }
  return positions.size();
}

void IndexRQVAE::index_item(std::size_t position, const std::int32_t* sid, bool group) {
  check(trie_.insert({sid, static_cast<std::size_t>(levels())}, position), "trie insert");
  if (group) {
    groups_.insert(static_cast<std::uint32_t>(position), codes.data() + position * code_size,
                   item_norms_[position]);
  }
  if (has_ids_ && distinct_ids_ && !positions_.emplace(ids_[position], position).second) {
    distinct_ids_ = false;  // a repeated id: removal compacts, ties go by position
    positions_.clear();
  }
}

void IndexRQVAE::clear_item_index() {
  trie_.clear();
  groups_.reset(static_cast<std::size_t>(codebook_size()), static_cast<std::size_t>(levels()),
                codec_.bytes_per_level());
  positions_.clear();
  distinct_ids_ = true;
}

void IndexRQVAE::rebuild_item_index() {
  clear_item_index();
  std::vector<std::int32_t> sid(static_cast<std::size_t>(levels()));
  for (idx_t i = 0; i < ntotal; ++i) {
    codec_.unpack(codes.data() + i * code_size, sid.data());
    index_item(static_cast<std::size_t>(i), sid.data(), /*group=*/false);
  }
  groups_.build(static_cast<std::size_t>(ntotal), codes.data(), item_norms_.data());
}

void IndexRQVAE::remove_position(std::size_t position) {
  const auto L = static_cast<std::size_t>(levels());
  const auto last = static_cast<std::size_t>(ntotal - 1);
  std::array<std::int32_t, SidKeyCodec::kMaxLevels> sid{};
  codec_.unpack(codes.data() + position * code_size, sid.data());
  check(trie_.erase({sid.data(), L}, position), "trie erase");
  groups_.remove(static_cast<std::uint32_t>(position), codes.data() + position * code_size,
                 static_cast<std::uint32_t>(last), codes.data() + last * code_size);
  // The last item moves into the freed position.
  if (position != last) {
    codec_.unpack(codes.data() + last * code_size, sid.data());
    check(trie_.erase({sid.data(), L}, last), "trie erase");
    check(trie_.insert({sid.data(), L}, position), "trie insert");
    std::memcpy(codes.data() + position * code_size, codes.data() + last * code_size, code_size);
    item_norms_[position] = item_norms_[last];
    if (has_ids_) {
      ids_[position] = ids_[last];
      if (distinct_ids_) positions_[ids_[position]] = position;
    }
  }
  codes.resize(last * code_size);
  item_norms_.pop_back();
  if (has_ids_) ids_.pop_back();
  ntotal = static_cast<idx_t>(last);
}

// ---- maintenance --------------------------------------------------------------------------------

void IndexRQVAE::reconstruct(idx_t key, float* recons) const {
  idx_t position = key;
  if (distinct_ids()) {
    const auto it = positions_.find(key);
    FAISS_THROW_IF_NOT_FMT(it != positions_.end(),
                           "IndexRQVAE::reconstruct: id %" PRId64 " not found", key);
    position = static_cast<idx_t>(it->second);
  } else if (has_ids_) {
    auto it = std::find(ids_.begin(), ids_.end(), key);
    FAISS_THROW_IF_NOT_FMT(it != ids_.end(), "IndexRQVAE::reconstruct: id %" PRId64 " not found",
                           key);
    position = it - ids_.begin();
  }
  FAISS_THROW_IF_NOT_FMT(position >= 0 && position < ntotal,
                         "IndexRQVAE::reconstruct: key %" PRId64 " outside [0, %" PRId64 ")", key,
                         ntotal);
  sa_decode(1, codes.data() + position * code_size, recons);
}

std::size_t IndexRQVAE::remove_ids(const faiss::IDSelector& sel) {
  if (!distinct_ids()) return compact(sel);
  // The selectors that list their ids: O(levels) per id, whatever ntotal is.
  if (const auto* batch = dynamic_cast<const faiss::IDSelectorBatch*>(&sel)) {
    const std::vector<idx_t> listed(batch->set.begin(), batch->set.end());
    return remove_labels(static_cast<idx_t>(listed.size()), listed.data());
  }
  if (const auto* array = dynamic_cast<const faiss::IDSelectorArray*>(&sel)) {
    return remove_labels(static_cast<idx_t>(array->n), array->ids);
  }
  std::vector<idx_t> members;
  for (idx_t id : ids_) {
    if (sel.is_member(id)) members.push_back(id);
  }
  return remove_labels(static_cast<idx_t>(members.size()), members.data());
}

std::size_t IndexRQVAE::remove_labels(idx_t n, const idx_t* xids) {
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::remove_labels: n = %" PRId64 " must be >= 0", n);
  if (n == 0) return 0;
  FAISS_THROW_IF_NOT_MSG(xids, "IndexRQVAE::remove_labels: xids is null");
  if (!distinct_ids()) {
    const faiss::IDSelectorBatch selector(static_cast<std::size_t>(n), xids);
    return compact(selector);
  }
  std::size_t removed = 0;
  for (idx_t i = 0; i < n; ++i) {
    const auto it = positions_.find(xids[i]);
    if (it == positions_.end()) continue;  // not held, or listed twice
    const std::size_t position = it->second;
    positions_.erase(it);
    remove_position(position);
    ++removed;
  }
  return removed;
}

std::size_t IndexRQVAE::compact(const faiss::IDSelector& sel) {
  idx_t kept = 0;
  for (idx_t i = 0; i < ntotal; ++i) {
    if (sel.is_member(label(static_cast<std::size_t>(i)))) continue;
    if (kept < i) {
      std::memmove(codes.data() + kept * code_size, codes.data() + i * code_size, code_size);
      item_norms_[kept] = item_norms_[i];
      if (has_ids_) ids_[kept] = ids_[i];
    }
    ++kept;
  }
  const auto removed = static_cast<std::size_t>(ntotal - kept);
  if (removed == 0) return 0;
  ntotal = kept;
  codes.resize(static_cast<std::size_t>(kept) * code_size);
  item_norms_.resize(static_cast<std::size_t>(kept));
  if (has_ids_) ids_.resize(static_cast<std::size_t>(kept));
  rebuild_item_index();
  return removed;
}

void IndexRQVAE::reset() {
  faiss::IndexFlatCodes::reset();
  item_norms_.clear();
  ids_.clear();
  has_ids_ = false;
  clear_item_index();
}

void IndexRQVAE::check_compatible_for_merge(const faiss::Index& other) const {
  const auto* o = dynamic_cast<const IndexRQVAE*>(&other);
  FAISS_THROW_IF_NOT_MSG(o, "IndexRQVAE::merge_from: the other index is not an IndexRQVAE");
  FAISS_THROW_IF_NOT_MSG(model_ && o->model_,
                         "IndexRQVAE::merge_from: both indexes must be trained");
  FAISS_THROW_IF_NOT_FMT(model_->content_hash() == o->model_->content_hash(),
                         "IndexRQVAE::merge_from: the models differ (content hash %s vs %s)",
                         model_->content_hash().c_str(), o->model_->content_hash().c_str());
  FAISS_THROW_IF_NOT_FMT(ntotal == 0 || o->ntotal == 0 || has_ids_ == o->has_ids_,
                         "IndexRQVAE::merge_from: cannot merge %s labels into %s labels",
                         o->has_ids_ ? "caller-id" : "positional",
                         has_ids_ ? "caller-id" : "positional");
}

void IndexRQVAE::merge_from(faiss::Index& other, idx_t add_id) {
  check_compatible_for_merge(other);
  auto& o = dynamic_cast<IndexRQVAE&>(other);
  std::vector<idx_t> shifted;
  if (o.has_ids_) {
    shifted.reserve(o.ids_.size());
    for (idx_t id : o.ids_) shifted.push_back(id + add_id);
  }
  append_items(o.ntotal, o.codes.data(), o.has_ids_ ? shifted.data() : nullptr);
  o.reset();
}

void IndexRQVAE::search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                        const faiss::SearchParameters* params) const {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::search: the index is not trained");
  FAISS_THROW_IF_NOT_FMT(k > 0, "IndexRQVAE::search: k = %" PRId64 " must be > 0", k);
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::search: n = %" PRId64 " must be >= 0", n);
  const RqvaeSearch search(*this, params, k);
  if (n == 0) return;
  if (search.mode == SearchMode::kExhaustive) {
    search.exhaustive(n, x, distances, labels);
  } else {
    search.shortlisted(n, x, distances, labels);
  }
}

void IndexRQVAE::range_search(idx_t n, const float* x, float radius,
                              faiss::RangeSearchResult* result,
                              const faiss::SearchParameters* params) const {
  FAISS_THROW_IF_NOT_MSG(model_, "IndexRQVAE::range_search: the index is not trained");
  FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexRQVAE::range_search: n = %" PRId64 " must be >= 0", n);
  const auto* p = dynamic_cast<const SearchParametersRQVAE*>(params);
  FAISS_THROW_IF_NOT_MSG(
      !p || (p->mode != SearchMode::kPrefix && p->shortlist == 0 && p->beam == 0),
      "IndexRQVAE::range_search ranks every candidate exactly: the prefix mode, "
      "shortlist and beam do not apply");
  const RqvaeSearch search(*this, params, 1);
  search.range(n, x, radius, result);
}

}  // namespace semid
