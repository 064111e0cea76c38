// CRC-32C (Castagnoli), the checksum of semid's own file formats (index files, snapshots).
//
// The same polynomial as iSCSI, ext4 and RocksDB's block checksums; crc32c("123456789") is
// 0xE3069283. Streaming: crc32c(crc32c(0, a), b) == crc32c(0, a + b).
// Thread safety: a pure function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace semid {

// Extends `crc` (0 to start) with `size` bytes at `data`.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size);

}  // namespace semid
