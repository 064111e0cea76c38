// /healthz, /readyz and /metrics (with the per-collection gauges).
#include "http/impl/api_impl.h"

namespace semid::http {

// ---- health and metrics ---------------------------------------------------------------------

json Api::Impl::healthz(Call&) { return {{"status", "ok"}}; }

json Api::Impl::readyz(Call&) {
  const Readiness state = readiness.load();
  if (state != Readiness::kReady) throw_not_ready(state);
  return {{"status", "ready"}};
}

json Api::Impl::prometheus(Call& call) {
  call.text = metrics.render();
  return nullptr;
}

void Api::Impl::collection_gauges(std::string& out) {
  if (readiness.load() != Readiness::kReady) return;
  auto names = manager.list();
  if (!names) return;
  std::string items, used, collisions, disk;
  for (const std::string& name : *names) {
    auto collection = manager.get(name);
    if (!collection) continue;
    auto stats = (*collection)->stats();
    if (!stats) continue;
    const std::string label = "collection=\"" + prometheus_label(name) + "\"";
    items += fmt::format("semid_collection_items{{{}}} {}\n", label, stats->items);
    for (std::size_t l = 0; l < stats->codes.levels.size(); ++l) {
      used += fmt::format("semid_collection_level_used_fraction{{{},level=\"{}\"}} {}\n", label,
                          l + 1, stats->codes.levels[l].used_fraction);
    }
    collisions += fmt::format("semid_collection_collision_rate{{{}}} {}\n", label,
                              stats->codes.collision_rate);
    disk += fmt::format("semid_collection_disk_bytes{{{}}} {}\n", label, stats->disk_bytes);
  }
  out +=
      "# HELP semid_collection_items Items stored in the collection.\n"
      "# TYPE semid_collection_items gauge\n" +
      items;
  out +=
      "# HELP semid_collection_level_used_fraction Share of a level's codes used by at least one "
      "item.\n"
      "# TYPE semid_collection_level_used_fraction gauge\n" +
      used;
  out +=
      "# HELP semid_collection_collision_rate Share of items whose full SID another item shares.\n"
      "# TYPE semid_collection_collision_rate gauge\n" +
      collisions;
  out +=
      "# HELP semid_collection_disk_bytes Bytes of the collection's files.\n"
      "# TYPE semid_collection_disk_bytes gauge\n" +
      disk;
}

}  // namespace semid::http
