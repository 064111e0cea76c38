// {c}/snapshots: create, list, restore, delete.
#include "http/impl/api_impl.h"

namespace semid::http {

// ---- snapshots --------------------------------------------------------------------------------

json Api::Impl::create_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string id = value_or_throw(manager.create_snapshot(name));
  spdlog::info("snapshot '{}' of collection '{}' created", id, name);
  call.status = HttpStatus::created;
  return {{"snapshot", id}};
}

json Api::Impl::list_snapshots(Call& call) {
  const std::string name = collection_name(call);
  if (!manager.exists(name)) {
    throw_api_error(HttpStatus::not_found, "not_found", "collection '" + name + "' does not exist");
  }
  return {{"snapshots", value_or_throw(manager.list_snapshots(name))}};
}

json Api::Impl::restore_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string& snapshot = call.match.param("snapshot");
  ok_or_throw(manager.restore_snapshot(name, snapshot));
  spdlog::info("collection '{}' restored from snapshot '{}'", name, snapshot);
  return {{"restored", snapshot}, {"items", collection(call)->size()}};
}

json Api::Impl::delete_snapshot(Call& call) {
  const std::string name = collection_name(call);
  const std::string& snapshot = call.match.param("snapshot");
  ok_or_throw(manager.drop_snapshot(name, snapshot));
  return {{"deleted", snapshot}};
}

}  // namespace semid::http
