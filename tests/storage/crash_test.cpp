// The crash test: a child process (crash_child.cpp) upserts and removes batches and reports each
// acknowledged one; this test SIGKILLs it at random moments — during its start-up and WAL replay,
// between batches, inside them — reopens the collection after every kill and checks that
//  - every acknowledged item is there with its exact SID, collision suffix, vector and payload,
//    and nothing else is (no phantom or duplicate items);
//  - the batch in flight at the kill is wholly applied or not at all;
//  - the items and sids families, the counters, the index and the trie agree (verify()).
// The expected state is a reference model of the collection written independently here
// (TIGER's smallest-free-suffix rule included), fed with the acknowledged batches.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "storage/collection.h"
#include "tests/storage/crash_workload.h"
#include "tests/storage/storage_test_util.h"
#include "tests/test_util.h"

namespace semid::storage {
namespace {

using namespace semid::testing::crash;
using testing::Row;

struct Batch {
  char op = 'U';  // 'U' upsert, 'R' remove
  std::uint64_t number = 0;
  std::vector<std::uint64_t> ids;
};

// What the collection must hold after a sequence of acknowledged batches.
class Reference {
 public:
  explicit Reference(std::shared_ptr<const Quantizer> model) : model_(std::move(model)) {}

  void apply(const Batch& batch) {
    if (batch.op == 'R') {
      for (std::uint64_t id : batch.ids) items_.erase(id);
      return;
    }
    const auto L = static_cast<std::size_t>(model_->levels());
    std::vector<float> x;
    for (std::uint64_t id : batch.ids) {
      const auto v = item_vector(id, batch.number);
      x.insert(x.end(), v.begin(), v.end());
    }
    std::vector<std::int32_t> codes(batch.ids.size() * L);
    ASSERT_TRUE(model_->encode(batch.ids.size(), x.data(), codes.data()).is_ok());
    // TIGER: an item keeping its SID keeps its suffix; items leaving a SID free theirs; new places
    // take, in batch order, the smallest suffix no remaining member and no earlier place holds.
    std::set<std::uint64_t> leaving;
    std::vector<bool> keeps(batch.ids.size());
    for (std::size_t i = 0; i < batch.ids.size(); ++i) {
      const std::vector<std::int32_t> sid(codes.begin() + i * L, codes.begin() + (i + 1) * L);
      const auto found = items_.find(batch.ids[i]);
      keeps[i] = found != items_.end() && found->second.sid == sid;
      if (found != items_.end() && !keeps[i]) leaving.insert(batch.ids[i]);
    }
    std::map<std::vector<std::int32_t>, std::set<std::uint16_t>> placed;
    for (std::size_t i = 0; i < batch.ids.size(); ++i) {
      const std::uint64_t id = batch.ids[i];
      const std::vector<std::int32_t> sid(codes.begin() + i * L, codes.begin() + (i + 1) * L);
      std::uint16_t suffix = keeps[i] ? items_.at(id).suffix : 0;
      if (!keeps[i]) {
        std::set<std::uint16_t> used = placed[sid];
        for (const auto& [other, item] : items_) {
          if (item.sid == sid && !leaving.contains(other)) used.insert(item.suffix);
        }
        while (used.contains(suffix)) ++suffix;
        placed[sid].insert(suffix);
      }
      items_[id] = {sid, suffix, item_vector(id, batch.number), item_payload(id, batch.number)};
    }
  }

  std::vector<Row> rows() const {
    std::vector<Row> rows;
    for (const auto& [id, item] : items_) {
      rows.push_back({id, item.sid, item.suffix, testing::bits_of(item.vector), item.payload});
    }
    return rows;
  }
  std::size_t size() const { return items_.size(); }

 private:
  struct Item {
    std::vector<std::int32_t> sid;
    std::uint16_t suffix;
    std::vector<float> vector;
    std::string payload;
  };
  std::shared_ptr<const Quantizer> model_;
  std::map<std::uint64_t, Item> items_;
};

off_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

pid_t spawn_child(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

TEST(CrashTest, AcknowledgedBatchesSurviveSigkillAtRandomMoments) {
  constexpr int kRounds = 60;
  testing::TempDir tmp;
  const std::string dir = tmp.file("collection");
  const std::string report = tmp.file("report.txt");
  // 2 levels of 4 codes: 16 SIDs for up to 240 items, so every batch meets collision groups.
  const auto model = testing::kmeans_model(kDim, 2, 4, 5);
  ASSERT_TRUE(Collection::create(dir, model).is_ok());
  std::ofstream(report).flush();

  Reference reference(model);
  std::mt19937_64 rng(2024);
  std::uint64_t next_batch = 0;
  off_t consumed = 0;
  int kills = 0, in_flight_applied = 0, in_flight_lost = 0;
  std::size_t acknowledged = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < kRounds; ++round) {
    const off_t size_at_spawn = file_size(report);
    const pid_t pid = spawn_child(
        {SEMID_CRASH_CHILD, dir, report, "77", std::to_string(next_batch), round % 2 ? "1" : "0"});
    ASSERT_GT(pid, 0);
    if (round % 6 == 0) {
      // Early: during start-up, WAL replay and the rebuild.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 80000));
    } else {
      // Once the child works, after a random moment within its next few batches.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (file_size(report) == size_at_spawn && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 15000));
    }
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int wait_status = 0;
    ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "the child ended on its own (exit " << WEXITSTATUS(wait_status) << ") in round "
        << round;
    ++kills;

    // New complete lines; a torn last line is cut off so the next child starts a fresh line.
    std::string text;
    {
      std::ifstream in(report, std::ios::binary);
      in.seekg(consumed);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    text.resize(complete);
    consumed += static_cast<off_t>(complete);
    ASSERT_EQ(::truncate(report.c_str(), consumed), 0);
    std::optional<Batch> in_flight;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      char op = 0;
      std::uint64_t number = 0;
      words >> op >> number;
      ASSERT_NE(op, 'E') << line;
      next_batch = std::max(next_batch, number + 1);
      if (op == 'A') {
        ASSERT_TRUE(in_flight && in_flight->number == number) << line;
        reference.apply(*in_flight);
        in_flight.reset();
        ++acknowledged;
        continue;
      }
      in_flight = Batch{op, number, {}};
      for (std::uint64_t id; words >> id;) in_flight->ids.push_back(id);
    }

    auto opened = Collection::open(dir);
    ASSERT_TRUE(opened.is_ok()) << "round " << round << ": " << opened.status().to_string();
    auto& collection = **opened;
    ASSERT_TRUE(collection.verify().is_ok()) << collection.verify().to_string();
    const std::vector<Row> actual = testing::dump(collection);
    if (actual != reference.rows()) {
      ASSERT_TRUE(in_flight.has_value())
          << "round " << round << ": the collection differs from its acknowledged batches";
      reference.apply(*in_flight);
      ASSERT_EQ(actual, reference.rows())
          << "round " << round << ": batch " << in_flight->number << " was applied in part";
      ++in_flight_applied;
    } else if (in_flight) {
      ++in_flight_lost;
    }
    ASSERT_EQ(collection.size(), reference.size());
    ASSERT_EQ(*collection.count({}), reference.size());
    auto roots = collection.next_tokens({{}});
    ASSERT_TRUE(roots.is_ok());
    std::uint64_t under_roots = 0;
    for (const auto& child : (*roots)[0]) under_roots += child.count;
    ASSERT_EQ(under_roots, reference.size());
    ASSERT_TRUE(collection.close().is_ok());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(kills, 50);
  EXPECT_GE(acknowledged, 100u);
  std::printf(
      "crash test: %d kills, %zu acknowledged batches, in-flight batch applied %d / lost %d "
      "times, %zu items at the end, %.1f s\n",
      kills, acknowledged, in_flight_applied, in_flight_lost, reference.size(), seconds);
}

}  // namespace
}  // namespace semid::storage
