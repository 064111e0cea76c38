// /v1/collections and {c}: list, create (from a model file or by training), describe, drop.
#include "http/impl/api_impl.h"

namespace semid::http {

// ---- collections ----------------------------------------------------------------------------

json Api::Impl::list_collections(Call&) {
  json list = json::array();
  for (const std::string& name : value_or_throw(manager.list())) {
    auto collection = manager.get(name);
    if (!collection) {
      if (collection.status().code() == Status::Code::kNotFound) continue;  // dropped meanwhile
      list.push_back({{"name", name},
                      {"error",
                       {{"code", error_code_of(collection.status().code())},
                        {"message", collection.status().message()}}}});
      continue;
    }
    const Collection& c = **collection;
    list.push_back({{"name", name},
                    {"items", c.size()},
                    {"dim", c.dim()},
                    {"levels", c.levels()},
                    {"codebook_size", c.codebook_size()},
                    {"model_kind", c.model()->kind()}});
  }
  return {{"collections", std::move(list)}};
}

json Api::Impl::create_collection(Call& call) {
  const std::string& name = call.match.param("name");
  if (Status valid = CollectionManager::validate_name(name); !valid)
    throw_invalid_value(valid.message());
  Fields fields(call.body, "");
  const json* model_path = fields.find("model");
  const json* train = fields.find("train");
  const json* policy_field = fields.find("collision_policy");
  fields.reject_unknown();
  storage::CollisionPolicy policy = storage::CollisionPolicy::kSuffix;
  if (policy_field != nullptr) {
    auto parsed = storage::parse_collision_policy(read_string(*policy_field, "collision_policy"));
    if (!parsed) throw_invalid_value("collision_policy: " + parsed.status().message());
    policy = *parsed;
  }
  if ((model_path == nullptr) == (train == nullptr)) {
    throw_invalid_field(
        "give exactly one of 'model' (a model file) and 'train' (training options)");
  }
  // Fail before a long training when the name is taken (create() checks again, atomically).
  if (manager.exists(name)) {
    throw_api_error(HttpStatus::conflict, "already_exists", "collection '" + name + "' exists");
  }
  json training;
  std::shared_ptr<const Quantizer> model;
  if (model_path != nullptr) {
    const std::string path = read_string(*model_path, "model");
    auto loaded = load_quantizer(path);
    if (!loaded) throw_invalid_value("model file '" + path + "': " + loaded.status().message());
    model = std::move(loaded).value();
  } else {
    model = train_model(*train, training);
  }
  auto collection = value_or_throw(manager.create(name, model, policy));
  spdlog::info("created collection '{}' ({} model {}, dim {}, {} levels x {} codes)", name,
               model->kind(), model->content_hash().substr(0, 12), model->dim(), model->levels(),
               model->codebook_size());
  call.status = HttpStatus::created;
  json out = describe(name, *collection);
  if (!training.is_null()) out["training"] = std::move(training);
  return out;
}

std::shared_ptr<const Quantizer> Api::Impl::train_model(const json& spec, json& report) const {
  constexpr std::int64_t kMaxInt = std::numeric_limits<std::int32_t>::max();
  Fields fields(spec, "train");
  const std::string path = read_string(fields.require("data"), "train.data");
  QuantizerTraining request;
  auto kind = parse_quantizer_kind(fields.string("kind", "rqvae"));
  if (!kind) throw_invalid_value("train." + kind.status().message());
  request.kind = *kind;
  const auto max_rows = static_cast<std::size_t>(
      fields.integer("max_rows", 0, 0, std::numeric_limits<std::int64_t>::max()));
  auto metric = parse_metric(fields.string("metric", "cosine"));
  if (!metric) throw_invalid_value("train.metric: " + metric.status().message());
  request.metric = *metric;
  request.levels = static_cast<int>(fields.integer("levels", 3, 1, 16));
  request.codebook_size = static_cast<int>(fields.integer("codebook_size", 256, 2, 65536));
  const auto seed = static_cast<std::uint64_t>(
      fields.integer("seed", 42, 0, std::numeric_limits<std::int64_t>::max()));
  const int threads = static_cast<int>(fields.integer("threads", 1, 1, 256));
  const int iterations = static_cast<int>(fields.integer("kmeans_iterations", 25, 1, 10000));
  request.beam_size = static_cast<int>(fields.integer(
      "beam_size", request.beam_size, 1, request.kind == QuantizerKind::kRqVae ? 256 : 1024));
  if (request.kind == QuantizerKind::kRqVae) {
    RqVaeConfig& config = request.rqvae;
    // A latent size asks for a bottleneck: the MLP architecture unless "architecture" says so.
    const bool has_latent = fields.find("latent_dim") != nullptr;
    const std::string architecture = fields.string("architecture", has_latent ? "mlp" : "residual");
    auto parsed_architecture = parse_architecture(architecture);
    if (!parsed_architecture) {
      throw_invalid_value("train.architecture: " + parsed_architecture.status().message());
    }
    config.architecture = *parsed_architecture;
    config.latent_dim = static_cast<int>(fields.integer("latent_dim", config.latent_dim, 0, 8192));
    if (const json* hidden = fields.find("hidden")) {
      config.hidden.clear();
      const json& sizes = read_array(*hidden, "train.hidden", 16);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        config.hidden.push_back(static_cast<int>(
            read_integer(sizes[i], "train.hidden[" + std::to_string(i) + "]", 1, 16384)));
      }
    }
    TrainOptions& o = request.rqvae_options;
    o.epochs = static_cast<int>(fields.integer("epochs", o.epochs, 0, 1000000));
    o.similarity_weight = fields.number("similarity_weight", o.similarity_weight, 0, 1e4);
    o.batch_size = static_cast<int>(fields.integer("batch_size", o.batch_size, 1, 1 << 20));
    o.learning_rate = fields.number("learning_rate", o.learning_rate, 1e-9, 100);
    o.time_budget_seconds = fields.number("time_budget_seconds", o.time_budget_seconds, 0, 1e9);
    o.patience = static_cast<int>(fields.integer("patience", o.patience, 0, kMaxInt));
    o.warmup_epochs =
        static_cast<int>(fields.integer("warmup_epochs", o.warmup_epochs, 0, kMaxInt));
    o.decoder_refine_epochs = static_cast<int>(
        fields.integer("decoder_refine_epochs", o.decoder_refine_epochs, 0, kMaxInt));
    o.kmeans_iterations = iterations;
    o.seed = seed;
    o.threads = threads;
  } else {
    request.rqkmeans_options.iterations = iterations;
    request.rqkmeans_options.seed = seed;
    request.rqkmeans_options.threads = threads;
  }
  fields.reject_unknown();

  ReadOptions read;
  read.max_rows = max_rows;
  auto data = read_float_vectors(path, read);
  if (!data) throw_invalid_value("train.data '" + path + "': " + data.status().message());
  spdlog::info("training a {} model on {} vectors of dimension {} from {}",
               quantizer_kind_name(request.kind), data->rows, data->cols, path);
  // Draining stops training after the current epoch, so shutdown waits for one epoch, not all.
  const auto keep_training = [this](const TrainProgress&) {
    return readiness.load() != Readiness::kDraining;
  };
  TrainedQuantizer trained = value_or_throw(
      train_quantizer(request, data->rows, data->cols, data->data.data(), keep_training));
  if (readiness.load() == Readiness::kDraining) {
    throw_api_error(HttpStatus::service_unavailable, "draining",
                    "training was stopped: the server is shutting down");
  }
  report = std::move(trained.report);
  report.erase("history");
  return std::shared_ptr<const Quantizer>(std::move(trained.model));
}

json Api::Impl::describe_collection(Call& call) {
  return describe(collection_name(call), *collection(call));
}

json Api::Impl::delete_collection(Call& call) {
  const std::string name = collection_name(call);
  ok_or_throw(manager.drop(name));
  spdlog::info("deleted collection '{}'", name);
  return {{"deleted", name}};
}

}  // namespace semid::http
