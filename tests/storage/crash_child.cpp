// The process the crash test kills: opens a collection and upserts and removes batches forever,
// reporting each intent and each acknowledgement (protocol in crash_workload.h).
//
// Usage: semid_storage_crash_child DIR REPORT SEED FIRST_BATCH SYNC(0|1)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "storage/collection.h"
#include "tests/storage/crash_workload.h"

namespace {

using namespace semid::testing::crash;

void write_line(int fd, const std::string& line) {
  const char* at = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, at, left);
    if (written <= 0) std::exit(4);
    at += written;
    left -= static_cast<std::size_t>(written);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s DIR REPORT SEED FIRST_BATCH SYNC\n", argv[0]);
    return 1;
  }
  const std::string dir = argv[1];
  const std::uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  const std::uint64_t first_batch = std::strtoull(argv[4], nullptr, 10);
  semid::storage::StoreOptions options;
  options.sync = std::string(argv[5]) == "1";
  auto opened = semid::storage::Collection::open(dir, options);
  if (!opened.is_ok()) {
    std::fprintf(stderr, "crash child: %s\n", opened.status().to_string().c_str());
    return 2;
  }
  auto& collection = *opened.value();
  std::vector<std::uint64_t> existing;
  std::string cursor;
  do {
    auto page = collection.prefix_scan({}, cursor, 1000);
    if (!page.is_ok()) return 2;
    for (const auto& entry : page->items) existing.push_back(entry.id);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  std::set<std::uint64_t> present(existing.begin(), existing.end());

  const int fd = ::open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 2;
  std::mt19937_64 rng(seed * 1000003ULL + first_batch);
  for (std::uint64_t batch = first_batch; batch < first_batch + 1000000; ++batch) {
    const bool remove = present.size() > 30 && rng() % 10 < 3;
    std::set<std::uint64_t> chosen;
    if (remove) {
      const std::vector<std::uint64_t> pool(present.begin(), present.end());
      const std::size_t m = 1 + rng() % 6;
      while (chosen.size() < m) chosen.insert(pool[rng() % pool.size()]);
    } else {
      const std::size_t m = 1 + rng() % 12;
      while (chosen.size() < m) chosen.insert(rng() % kIdUniverse);
    }
    // Batch order is not id order: shuffle.
    std::vector<std::uint64_t> ids(chosen.begin(), chosen.end());
    std::shuffle(ids.begin(), ids.end(), rng);
    std::string intent = remove ? "R " : "U ";
    intent += std::to_string(batch);
    for (std::uint64_t id : ids) intent.append(" ").append(std::to_string(id));
    write_line(fd, intent + "\n");
    semid::Status status;
    if (remove) {
      status = collection.remove(ids);
    } else {
      std::vector<float> vectors;
      std::vector<std::string> payloads;
      for (std::uint64_t id : ids) {
        const auto v = item_vector(id, batch);
        vectors.insert(vectors.end(), v.begin(), v.end());
        payloads.push_back(item_payload(id, batch));
      }
      status = collection.upsert(ids, vectors, payloads);
    }
    if (!status.is_ok()) {
      write_line(fd, "E " + std::to_string(batch) + " " + status.to_string() + "\n");
      return 3;
    }
    write_line(fd, "A " + std::to_string(batch) + "\n");
    for (std::uint64_t id : ids) {
      if (remove) {
        present.erase(id);
      } else {
        present.insert(id);
      }
    }
  }
  return 0;
}
