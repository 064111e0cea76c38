// semid::write_index / semid::read_index: FAISS's index I/O, extended to IndexRQVAE.
//
// Any index that does not hold an IndexRQVAE is written and read by FAISS itself, byte for byte
// in FAISS's format (faiss::read_index can read it). An IndexRQVAE, and the FAISS wrappers listed
// below when they hold one, are written as semid records (FAISS 1.7.3 cannot serialise an index
// type it does not know, even inside its own wrappers). Supported compositions, nestable:
//   IndexRQVAE
//   IndexIDMap / IndexIDMap2        over a supported composition
//   IndexPreTransform               over a supported composition (any FAISS VectorTransform chain)
//   IndexRefine / IndexRefineFlat   with a supported composition as base_index (any FAISS refine
//                                   index)
// Other wrappers that hold an IndexRQVAE (IndexShards, IndexReplicas, ...) are rejected with an
// exception; write their sub-indexes one by one.
//
// A semid record (all integers little-endian):
//   fourcc      4 bytes: "SdRV" IndexRQVAE, "SdIM" IndexIDMap, "SdI2" IndexIDMap2,
//               "SdPT" IndexPreTransform, "SdRF" IndexRefine(Flat)
//   version     u32, currently 1
//   size        u64, bytes of the payload
//   payload     size bytes (below)
//   checksum    u32, CRC-32C (index/checksum.h) of every byte above, fourcc included
// Payloads. "header" is FAISS's index header: i64 d, i64 ntotal, u8 is_trained, u32 metric_type,
// f32 metric_arg. A "blob" is a u64 length then that many bytes of a nested index (a semid record
// or a FAISS index) or of a FAISS VectorTransform.
//   SdRV: u32 metric_type, i64 d, i32 levels, i32 codebook_size, i64 ntotal, u8 has_ids,
//         u64 model_size, the model file (model_file.h: safetensors with the config and content
//         hash), codes (ntotal * code_size bytes: packed SIDs, sid.h), ids (ntotal * i64, only when
//         has_ids)
//   SdIM, SdI2: header, i64 count, count * i64 ids, blob(sub-index)
//   SdPT: header, u32 chain length, that many blob(VectorTransform), blob(sub-index)
//   SdRF: header, f32 k_factor, u8 is_refine_flat, blob(base_index), blob(refine_index)
// IndexRQVAE's train_options are not stored (they only matter before training); an untrained
// IndexRQVAE has no model and cannot be written.
//
// Reading treats the bytes as hostile: a record's payload is read in bounded chunks (a corrupt size
// cannot allocate more than the bytes present), its checksum is verified before anything is
// parsed, and every size is checked against the bytes left. Truncation, a bad fourcc, an unknown
// version, a checksum mismatch or an inconsistent payload throw a faiss::FaissException that says
// which.
//
// Call these qualified (semid::write_index): they share FAISS's names and argument types, so an
// unqualified call finds faiss::write_index too (argument-dependent lookup) and is ambiguous.
//
// Thread safety: as FAISS's: concurrent reads of different files are fine; writing an index while
// another thread modifies it is not.
#pragma once

#include <faiss/Index.h>
#include <faiss/impl/io.h>

namespace semid {

// Writes `index` to `path` crash-safely: temporary file, fsync, rename, fsync of the directory
// (write_file_atomically), so `path` holds either its old content or the whole new index.
void write_index(const faiss::Index* index, const char* path);
// Writes `index` to `writer` (no atomicity beyond the writer's own).
void write_index(const faiss::Index* index, faiss::IOWriter* writer);

// Reads an index written by semid::write_index or faiss::write_index; the caller owns the result.
// io_flags are FAISS's (faiss/index_io.h) and apply to the parts FAISS reads.
faiss::Index* read_index(const char* path, int io_flags = 0);
faiss::Index* read_index(faiss::IOReader* reader, int io_flags = 0);

}  // namespace semid
