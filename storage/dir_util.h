// File-system steps that storage/ makes durable (internal to storage/).
//
// Directory entries (creations, renames) only survive power loss once their parent directory is
// fsynced; copied files once they are. These helpers do both, and name the path on any error.
#pragma once

#include <cstdint>
#include <string>

#include "index/status.h"

namespace semid::storage {

// fsyncs the directory `dir` (its entries: creations, renames, removals).
Status fsync_directory(const std::string& dir);

// Copies the regular files of `from` (recursively) into `to`, which must not exist, fsyncing every
// file and directory created. On error the partial copy is removed.
Status copy_directory_durably(const std::string& from, const std::string& to);

// Renames `from` to `to` (same file system) and fsyncs the parent directories.
Status rename_durably(const std::string& from, const std::string& to);

// Removes `path` and everything under it (OK when it does not exist).
Status remove_tree(const std::string& path);

// `error` (not OK) with a failed clean-up after it noted in its message, so that neither failure is
// lost: "cleaning up also failed (<cleanup>): <error>", same code as `error`; `error` itself when
// the clean-up succeeded.
Status with_cleanup(const Status& error, const Status& cleanup);

// Bytes of the regular files under `dir`.
Result<std::uint64_t> directory_bytes(const std::string& dir);

// A name component unlikely to collide with another process's or call's: "<pid>-<random hex>".
std::string unique_token();

}  // namespace semid::storage
