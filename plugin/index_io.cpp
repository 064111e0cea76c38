#include "plugin/index_io.h"

#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexShards.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "index/checksum.h"
#include "index/file_util.h"
#include "index/model_file.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"
#include "plugin/IndexRQVAE.h"

namespace semid {
namespace {

using idx_t = faiss::Index::idx_t;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 4 + 4 + 8;
// Payloads beyond 1 TiB are taken as corruption, not data.
constexpr std::uint64_t kMaxPayload = std::uint64_t{1} << 40;
// A payload is read this many bytes at a time, so a corrupt size allocates no more than is there.
constexpr std::size_t kReadChunk = std::size_t{16} << 20;

constexpr std::string_view kRqvae = "SdRV";
constexpr std::string_view kIdMap = "SdIM";
constexpr std::string_view kIdMap2 = "SdI2";
constexpr std::string_view kPreTransform = "SdPT";
constexpr std::string_view kRefine = "SdRF";
constexpr std::array<std::string_view, 5> kFourccs = {kRqvae, kIdMap, kIdMap2, kPreTransform,
                                                      kRefine};

// ---- byte-level helpers
// --------------------------------------------------------------------------

// Builds a payload: little-endian scalars, raw byte runs and length-prefixed blobs.
class PayloadWriter {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    put_bytes(&value, sizeof(T));
  }
  void put_bytes(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  void put_blob(const Bytes& blob) {
    put<std::uint64_t>(blob.size());
    put_bytes(blob.data(), blob.size());
  }
  void put_header(const faiss::Index& index) {
    put<std::int64_t>(index.d);
    put<std::int64_t>(index.ntotal);
    put<std::uint8_t>(index.is_trained ? 1 : 0);
    put<std::uint32_t>(static_cast<std::uint32_t>(index.metric_type));
    put<float>(index.metric_arg);
  }
  Bytes& bytes() { return bytes_; }

 private:
  Bytes bytes_;
};

// FAISS's index header, as PayloadWriter::put_header writes it.
struct IndexHeader {
  idx_t d = 0;
  idx_t ntotal = 0;
  bool is_trained = false;
  faiss::MetricType metric_type = faiss::METRIC_L2;
  float metric_arg = 0;
  void apply_to(faiss::Index* index) const {
    index->d = d;
    index->ntotal = ntotal;
    index->is_trained = is_trained;
    index->metric_type = metric_type;
    index->metric_arg = metric_arg;
  }
};

// Reads a payload with every size checked against the bytes left; throws naming the field.
class PayloadReader {
 public:
  PayloadReader(std::span<const std::uint8_t> bytes, std::string_view record)
      : bytes_(bytes), record_(record) {}

  std::span<const std::uint8_t> take(std::uint64_t size, const char* field) {
    FAISS_THROW_IF_NOT_FMT(size <= bytes_.size() - at_,
                           "semid::read_index: %.4s record is corrupt: %s needs %" PRIu64
                           " bytes, %zu left",
                           record_.data(), field, size, bytes_.size() - at_);
    auto out = bytes_.subspan(at_, static_cast<std::size_t>(size));
    at_ += static_cast<std::size_t>(size);
    return out;
  }
  template <class T>
  T get(const char* field) {
    T value;
    std::memcpy(&value, take(sizeof(T), field).data(), sizeof(T));
    return value;
  }
  std::span<const std::uint8_t> blob(const char* field) {
    return take(get<std::uint64_t>(field), field);
  }
  IndexHeader header() {
    IndexHeader h;
    h.d = get<std::int64_t>("d");
    h.ntotal = get<std::int64_t>("ntotal");
    h.is_trained = get<std::uint8_t>("is_trained") != 0;
    h.metric_type = static_cast<faiss::MetricType>(get<std::uint32_t>("metric_type"));
    h.metric_arg = get<float>("metric_arg");
    return h;
  }
  void expect(bool condition, const char* what) const {
    FAISS_THROW_IF_NOT_FMT(condition, "semid::read_index: %.4s record is corrupt: %s",
                           record_.data(), what);
  }
  void finish() const {
    FAISS_THROW_IF_NOT_FMT(at_ == bytes_.size(),
                           "semid::read_index: %.4s record is corrupt: %zu unexplained bytes at "
                           "the end of its payload",
                           record_.data(), bytes_.size() - at_);
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string_view record_;
  std::size_t at_ = 0;
};

// An IOReader over bytes in memory.
struct SpanReader : faiss::IOReader {
  explicit SpanReader(std::span<const std::uint8_t> bytes) : bytes(bytes) {}
  std::size_t operator()(void* ptr, std::size_t size, std::size_t nitems) override {
    if (size == 0) return nitems;
    const std::size_t items = std::min(nitems, (bytes.size() - at) / size);
    std::memcpy(ptr, bytes.data() + at, items * size);
    at += items * size;
    return items;
  }
  std::span<const std::uint8_t> bytes;
  std::size_t at = 0;
};

// Serves bytes already taken from `inner` (the fourcc we peeked at), then `inner`'s.
struct PrefixedReader : faiss::IOReader {
  PrefixedReader(faiss::IOReader* inner, std::span<const std::uint8_t> prefix)
      : inner(inner), prefix(prefix.begin(), prefix.end()) {}
  std::size_t operator()(void* ptr, std::size_t size, std::size_t nitems) override {
    if (size == 0 || nitems == 0) return nitems;
    auto* out = static_cast<std::uint8_t*>(ptr);
    const std::size_t wanted = size * nitems;
    const std::size_t from_prefix = std::min(wanted, prefix.size() - at);
    std::memcpy(out, prefix.data() + at, from_prefix);
    at += from_prefix;
    std::size_t got = from_prefix;
    if (got < wanted) got += (*inner)(out + got, 1, wanted - got);
    return got / size;
  }
  faiss::IOReader* inner;
  Bytes prefix;
  std::size_t at = 0;
};

// An IOWriter into write_file_atomically's sink.
struct SinkWriter : faiss::IOWriter {
  explicit SinkWriter(const ByteSink& sink) : sink(sink) {}
  std::size_t operator()(const void* ptr, std::size_t size, std::size_t nitems) override {
    return sink(ptr, size * nitems) ? nitems : 0;
  }
  const ByteSink& sink;
};

void write_exactly(faiss::IOWriter* writer, const void* data, std::size_t size) {
  FAISS_THROW_IF_NOT_FMT((*writer)(data, 1, size) == size,
                         "semid::write_index: write error (%zu bytes)", size);
}

std::size_t read_up_to(faiss::IOReader* reader, void* data, std::size_t size) {
  return size == 0 ? 0 : (*reader)(data, 1, size);
}

// ---- records
// ----------------------------------------------------------------------------------------

void write_record(faiss::IOWriter* writer, std::string_view fourcc, const Bytes& payload) {
  std::array<std::uint8_t, kHeaderBytes> header{};
  std::memcpy(header.data(), fourcc.data(), 4);
  const std::uint64_t size = payload.size();
  std::memcpy(header.data() + 4, &kVersion, 4);
  std::memcpy(header.data() + 8, &size, 8);
  std::uint32_t crc = crc32c(0, header.data(), header.size());
  crc = crc32c(crc, payload.data(), payload.size());
  write_exactly(writer, header.data(), header.size());
  write_exactly(writer, payload.data(), payload.size());
  write_exactly(writer, &crc, sizeof(crc));
}

bool holds_rqvae(const faiss::Index* index) {
  if (index == nullptr) return false;
  if (dynamic_cast<const IndexRQVAE*>(index)) return true;
  if (const auto* m = dynamic_cast<const faiss::IndexIDMap*>(index)) return holds_rqvae(m->index);
  if (const auto* t = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    return holds_rqvae(t->index);
  }
  if (const auto* r = dynamic_cast<const faiss::IndexRefine*>(index)) {
    return holds_rqvae(r->base_index) || holds_rqvae(r->refine_index);
  }
  if (const auto* s = dynamic_cast<const faiss::IndexShards*>(index)) {
    for (int i = 0; i < s->count(); ++i) {
      if (holds_rqvae(s->at(i))) return true;
    }
  }
  if (const auto* r = dynamic_cast<const faiss::IndexReplicas*>(index)) {
    for (int i = 0; i < r->count(); ++i) {
      if (holds_rqvae(r->at(i))) return true;
    }
  }
  return false;
}

Bytes index_bytes(const faiss::Index* index) {
  faiss::VectorIOWriter writer;
  semid::write_index(index, &writer);
  return std::move(writer.data);
}

Bytes rqvae_payload(const IndexRQVAE& index) {
  FAISS_THROW_IF_NOT_MSG(index.model(),
                         "semid::write_index: an untrained IndexRQVAE has no model to write");
  const Quantizer& model = *index.model();
  Result<std::string> model_bytes = model.to_bytes();
  FAISS_THROW_IF_NOT_FMT(model_bytes.is_ok(), "semid::write_index: cannot serialise the model: %s",
                         model_bytes.status().to_string().c_str());
  PayloadWriter out;
  out.put<std::uint32_t>(static_cast<std::uint32_t>(index.metric_type));
  out.put<std::int64_t>(index.d);
  out.put<std::int32_t>(index.levels());
  out.put<std::int32_t>(index.codebook_size());
  out.put<std::int64_t>(index.ntotal);
  out.put<std::uint8_t>(index.has_ids() ? 1 : 0);
  out.put_blob(Bytes(model_bytes->begin(), model_bytes->end()));
  out.put_bytes(index.codes.data(), index.codes.size());
  if (index.has_ids()) out.put_bytes(index.ids().data(), index.ids().size() * sizeof(idx_t));
  return std::move(out.bytes());
}

Bytes idmap_payload(const faiss::IndexIDMap& index) {
  PayloadWriter out;
  out.put_header(index);
  out.put<std::int64_t>(static_cast<std::int64_t>(index.id_map.size()));
  out.put_bytes(index.id_map.data(), index.id_map.size() * sizeof(idx_t));
  out.put_blob(index_bytes(index.index));
  return std::move(out.bytes());
}

Bytes pretransform_payload(const faiss::IndexPreTransform& index) {
  PayloadWriter out;
  out.put_header(index);
  out.put<std::uint32_t>(static_cast<std::uint32_t>(index.chain.size()));
  for (const faiss::VectorTransform* transform : index.chain) {
    faiss::VectorIOWriter writer;
    faiss::write_VectorTransform(transform, &writer);
    out.put_blob(writer.data);
  }
  out.put_blob(index_bytes(index.index));
  return std::move(out.bytes());
}

Bytes refine_payload(const faiss::IndexRefine& index) {
  PayloadWriter out;
  out.put_header(index);
  out.put<float>(index.k_factor);
  out.put<std::uint8_t>(dynamic_cast<const faiss::IndexRefineFlat*>(&index) ? 1 : 0);
  out.put_blob(index_bytes(index.base_index));
  out.put_blob(index_bytes(index.refine_index));
  return std::move(out.bytes());
}

// ---- reading records
// ------------------------------------------------------------------------------

std::unique_ptr<faiss::Index> index_from_blob(std::span<const std::uint8_t> blob, int io_flags,
                                              const PayloadReader& payload) {
  SpanReader reader(blob);
  std::unique_ptr<faiss::Index> index(semid::read_index(&reader, io_flags));
  payload.expect(reader.at == blob.size(), "a nested index does not fill its blob");
  return index;
}

std::unique_ptr<faiss::Index> read_rqvae(PayloadReader& in) {
  const auto metric = static_cast<faiss::MetricType>(in.get<std::uint32_t>("metric_type"));
  const auto d = in.get<std::int64_t>("d");
  const auto levels = in.get<std::int32_t>("levels");
  const auto codebook_size = in.get<std::int32_t>("codebook_size");
  const auto ntotal = in.get<std::int64_t>("ntotal");
  const auto has_ids = in.get<std::uint8_t>("has_ids");
  in.expect(has_ids <= 1, "has_ids is neither 0 nor 1");
  in.expect(ntotal >= 0, "negative ntotal");
  const std::span<const std::uint8_t> model_bytes = in.blob("model");
  auto parsed = quantizer_from_bytes(std::string(model_bytes.begin(), model_bytes.end()));
  FAISS_THROW_IF_NOT_FMT(parsed.is_ok(), "semid::read_index: SdRV record holds a bad model: %s",
                         parsed.status().to_string().c_str());
  std::shared_ptr<const Quantizer> model = std::move(parsed).value();
  in.expect(model->dim() == d && model->levels() == levels &&
                model->codebook_size() == codebook_size &&
                (model->metric() == Metric::kCosine) == (metric == faiss::METRIC_INNER_PRODUCT),
            "the header's d, levels, codebook_size or metric differ from the model's");
  auto index = std::make_unique<IndexRQVAE>(std::move(model));
  const auto n = static_cast<std::uint64_t>(ntotal);
  in.expect(n <= kMaxPayload / index->code_size, "ntotal is absurd");
  const std::span<const std::uint8_t> codes = in.take(n * index->code_size, "codes");
  std::vector<idx_t> ids;
  if (has_ids) {
    const std::span<const std::uint8_t> raw = in.take(n * sizeof(idx_t), "ids");
    ids.resize(n);
    std::memcpy(ids.data(), raw.data(), raw.size());
  }
  in.finish();
  index->add_codes(ntotal, codes.data(), has_ids ? ids.data() : nullptr);
  return index;
}

std::unique_ptr<faiss::Index> read_idmap(PayloadReader& in, bool with_reverse_map, int io_flags) {
  std::unique_ptr<faiss::IndexIDMap> index;
  if (with_reverse_map) {
    index = std::make_unique<faiss::IndexIDMap2>();
  } else {
    index = std::make_unique<faiss::IndexIDMap>();
  }
  in.header().apply_to(index.get());
  const auto count = in.get<std::int64_t>("count");
  in.expect(count >= 0 && count == index->ntotal, "id count differs from ntotal");
  in.expect(static_cast<std::uint64_t>(count) <= kMaxPayload / sizeof(idx_t), "id count is absurd");
  const std::span<const std::uint8_t> raw =
      in.take(static_cast<std::uint64_t>(count) * sizeof(idx_t), "ids");
  index->id_map.resize(static_cast<std::size_t>(count));
  std::memcpy(index->id_map.data(), raw.data(), raw.size());
  auto sub = index_from_blob(in.blob("sub-index"), io_flags, in);
  in.finish();
  in.expect(sub->ntotal == count && sub->d == index->d, "the sub-index's ntotal or d differ");
  index->index = sub.release();
  index->own_fields = true;
  if (with_reverse_map) static_cast<faiss::IndexIDMap2&>(*index).construct_rev_map();
  return index;
}

std::unique_ptr<faiss::Index> read_pretransform(PayloadReader& in, int io_flags) {
  auto index = std::make_unique<faiss::IndexPreTransform>();
  index->own_fields = true;
  in.header().apply_to(index.get());
  const auto length = in.get<std::uint32_t>("chain length");
  for (std::uint32_t i = 0; i < length; ++i) {
    const std::span<const std::uint8_t> blob = in.blob("vector transform");
    SpanReader reader(blob);
    index->chain.push_back(faiss::read_VectorTransform(&reader));
    in.expect(reader.at == blob.size(), "a vector transform does not fill its blob");
  }
  index->index = index_from_blob(in.blob("sub-index"), io_flags, in).release();
  in.finish();
  bool chained = index->chain.empty() || index->chain.front()->d_in == index->d;
  for (std::size_t i = 1; i < index->chain.size(); ++i) {
    chained = chained && index->chain[i - 1]->d_out == index->chain[i]->d_in;
  }
  const int d_out = index->chain.empty() ? index->d : index->chain.back()->d_out;
  in.expect(chained && index->index->d == d_out && index->index->ntotal == index->ntotal,
            "the transforms' and the sub-index's dimensions or ntotal do not fit together");
  return index;
}

std::unique_ptr<faiss::Index> read_refine(PayloadReader& in, int io_flags) {
  const IndexHeader header = in.header();
  std::unique_ptr<faiss::IndexRefine> index;
  const auto k_factor = in.get<float>("k_factor");
  const auto is_flat = in.get<std::uint8_t>("is_refine_flat");
  in.expect(is_flat <= 1, "is_refine_flat is neither 0 nor 1");
  if (is_flat) {
    index = std::make_unique<faiss::IndexRefineFlat>();
  } else {
    index = std::make_unique<faiss::IndexRefine>();
  }
  header.apply_to(index.get());
  index->k_factor = k_factor;
  index->own_fields = true;
  index->own_refine_index = true;
  index->base_index = index_from_blob(in.blob("base index"), io_flags, in).release();
  index->refine_index = index_from_blob(in.blob("refine index"), io_flags, in).release();
  in.finish();
  in.expect(index->base_index->ntotal == index->ntotal &&
                index->refine_index->ntotal == index->ntotal && index->base_index->d == index->d &&
                index->refine_index->d == index->d,
            "the base and refine indexes' ntotal or d differ");
  return index;
}

}  // namespace

void write_index(const faiss::Index* index, faiss::IOWriter* writer) {
  FAISS_THROW_IF_NOT_MSG(index, "semid::write_index: the index is null");
  if (!holds_rqvae(index)) {
    faiss::write_index(index, writer);
    return;
  }
  if (const auto* rqvae = dynamic_cast<const IndexRQVAE*>(index)) {
    write_record(writer, kRqvae, rqvae_payload(*rqvae));
  } else if (const auto* map2 = dynamic_cast<const faiss::IndexIDMap2*>(index)) {
    write_record(writer, kIdMap2, idmap_payload(*map2));
  } else if (const auto* map = dynamic_cast<const faiss::IndexIDMap*>(index)) {
    write_record(writer, kIdMap, idmap_payload(*map));
  } else if (const auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    write_record(writer, kPreTransform, pretransform_payload(*pre));
  } else if (const auto* refine = dynamic_cast<const faiss::IndexRefine*>(index);
             refine && !holds_rqvae(refine->refine_index)) {
    write_record(writer, kRefine, refine_payload(*refine));
  } else {
    FAISS_THROW_FMT(
        "semid::write_index: a %s holding an IndexRQVAE cannot be written (supported: "
        "IndexIDMap, IndexIDMap2, IndexPreTransform, IndexRefine(Flat) with it as "
        "base; write sub-indexes one by one)",
        typeid(*index).name());
  }
}

void write_index(const faiss::Index* index, const char* path) {
  std::string error;
  const Status status = write_file_atomically(path, [&](const ByteSink& sink) {
    SinkWriter writer(sink);
    try {
      semid::write_index(index, &writer);
    } catch (const faiss::FaissException& e) {
      error = e.what();
      return Status::invalid_argument(error);
    }
    return Status::ok();
  });
  FAISS_THROW_IF_NOT_FMT(status.is_ok(), "semid::write_index: cannot write '%s': %s", path,
                         status.to_string().c_str());
}

faiss::Index* read_index(faiss::IOReader* reader, int io_flags) {
  std::array<std::uint8_t, kHeaderBytes> header{};
  const std::size_t got = read_up_to(reader, header.data(), 4);
  FAISS_THROW_IF_NOT_FMT(got == 4,
                         "semid::read_index: truncated: %zu bytes where a fourcc "
                         "should be",
                         got);
  const std::string_view fourcc(reinterpret_cast<const char*>(header.data()), 4);
  if (std::find(kFourccs.begin(), kFourccs.end(), fourcc) == kFourccs.end()) {
    PrefixedReader prefixed(reader, {header.data(), 4});
    return faiss::read_index(&prefixed, io_flags);
  }
  FAISS_THROW_IF_NOT_FMT(read_up_to(reader, header.data() + 4, 12) == 12,
                         "semid::read_index: %.4s record is truncated in its header",
                         fourcc.data());
  std::uint32_t version = 0;
  std::uint64_t size = 0;
  std::memcpy(&version, header.data() + 4, 4);
  std::memcpy(&size, header.data() + 8, 8);
  FAISS_THROW_IF_NOT_FMT(version == kVersion,
                         "semid::read_index: %.4s record has version %u; this build reads "
                         "version %u",
                         fourcc.data(), version, kVersion);
  FAISS_THROW_IF_NOT_FMT(size <= kMaxPayload,
                         "semid::read_index: %.4s record declares an absurd payload of %" PRIu64
                         " bytes",
                         fourcc.data(), size);
  Bytes payload;
  while (payload.size() < size) {
    const std::size_t chunk = std::min<std::uint64_t>(kReadChunk, size - payload.size());
    const std::size_t old = payload.size();
    payload.resize(old + chunk);
    FAISS_THROW_IF_NOT_FMT(read_up_to(reader, payload.data() + old, chunk) == chunk,
                           "semid::read_index: %.4s record is truncated: its payload has %" PRIu64
                           " bytes, fewer are there",
                           fourcc.data(), size);
  }
  std::uint32_t stored_crc = 0;
  FAISS_THROW_IF_NOT_FMT(read_up_to(reader, &stored_crc, 4) == 4,
                         "semid::read_index: %.4s record is truncated before its checksum",
                         fourcc.data());
  const std::uint32_t crc =
      crc32c(crc32c(0, header.data(), header.size()), payload.data(), payload.size());
  FAISS_THROW_IF_NOT_FMT(crc == stored_crc,
                         "semid::read_index: %.4s record is corrupt: checksum %08x, stored %08x",
                         fourcc.data(), crc, stored_crc);
  PayloadReader in(payload, fourcc);
  std::unique_ptr<faiss::Index> index;
  if (fourcc == kRqvae) {
    index = read_rqvae(in);
  } else if (fourcc == kIdMap || fourcc == kIdMap2) {
    index = read_idmap(in, fourcc == kIdMap2, io_flags);
  } else if (fourcc == kPreTransform) {
    index = read_pretransform(in, io_flags);
  } else {
    index = read_refine(in, io_flags);
  }
  return index.release();
}

faiss::Index* read_index(const char* path, int io_flags) {
  auto file = MappedFile::open(path);
  FAISS_THROW_IF_NOT_FMT(file.is_ok(), "semid::read_index: %s", file.status().to_string().c_str());
  const std::span<const std::uint8_t> bytes = (*file)->bytes();
  const bool ours =
      bytes.size() >= 4 &&
      std::find(kFourccs.begin(), kFourccs.end(),
                std::string_view(reinterpret_cast<const char*>(bytes.data()), 4)) != kFourccs.end();
  // FAISS reads its own files itself, so that its io_flags (memory mapping) keep working.
  if (!ours) return faiss::read_index(path, io_flags);
  SpanReader reader(bytes);
  try {
    std::unique_ptr<faiss::Index> index(semid::read_index(&reader, io_flags));
    FAISS_THROW_IF_NOT_FMT(reader.at == bytes.size(),
                           "semid::read_index: %zu unexplained bytes after the index",
                           bytes.size() - reader.at);
    return index.release();
  } catch (const faiss::FaissException& e) {
    FAISS_THROW_FMT("%s (file '%s')", e.what(), path);
  }
}

}  // namespace semid
