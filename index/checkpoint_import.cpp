#include "index/checkpoint_import.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "index/file_util.h"
#include "index/model_file.h"
#include "index/rq_kmeans.h"
#include "index/safetensors.h"

namespace semid {
namespace {

namespace fs = std::filesystem;

struct Layout {
  CheckpointFormat format;
  const char* prefix;  // tensor name = prefix + level + suffix
  const char* suffix;
};

constexpr Layout kLayouts[] = {
    {CheckpointFormat::kResidualQuantizer, "quantizers.", ".embedding.weight"},
    {CheckpointFormat::kResKMeans, "centroids.", ""},
};

const Layout& layout_of(CheckpointFormat format) {
  for (const Layout& l : kLayouts) {
    if (l.format == format) return l;
  }
  return kLayouts[0];
}

// The level a tensor name stands for in `layout`, if it is one of its names.
std::optional<int> level_of(const std::string& name, const Layout& layout) {
  const std::string_view prefix = layout.prefix, suffix = layout.suffix;
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 4 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoi(digits);
}

std::string known_formats() { return "residual-quantizer, res-kmeans"; }

std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 12; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 12) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out.empty() ? "(none)" : out;
}

}  // namespace

Result<CheckpointFormat> parse_checkpoint_format(std::string_view name) {
  if (name == "auto") return CheckpointFormat::kAuto;
  if (name == "residual-quantizer") return CheckpointFormat::kResidualQuantizer;
  if (name == "res-kmeans") return CheckpointFormat::kResKMeans;
  return Status::invalid_argument("checkpoint format '" + std::string(name) + "'; known: auto, " +
                                  known_formats());
}

const char* checkpoint_format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kAuto:
      return "auto";
    case CheckpointFormat::kResidualQuantizer:
      return "residual-quantizer";
    case CheckpointFormat::kResKMeans:
      return "res-kmeans";
  }
  return "auto";
}

Result<std::unique_ptr<Quantizer>> import_checkpoint(const std::string& source,
                                                     CheckpointFormat format) {
  std::error_code ec;
  const bool folder = fs::is_directory(source, ec);
  const std::string weights = folder ? (fs::path(source) / "model.safetensors").string() : source;
  for (const char* pickle : {".pt", ".pth", ".ckpt", ".bin"}) {
    if (weights.ends_with(pickle)) {
      return Status::invalid_argument(
          weights +
          " is a torch pickle, which semid does not unpickle: save its state_dict as "
          "safetensors first");
    }
  }
  SEMID_ASSIGN_OR_RETURN(const std::string bytes, read_file(weights));
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  auto parsed = safetensors::Archive::parse({data, bytes.size()});
  if (!parsed) return parsed.status().with_context(weights);
  const safetensors::Archive& archive = *parsed;
  const std::vector<std::string> names = archive.names();

  // Which layouts the names speak for: exactly one (or the one asked for).
  std::map<CheckpointFormat, std::map<int, std::string>> found;
  std::vector<std::string> strangers;
  for (const std::string& name : names) {
    bool known = false;
    for (const Layout& l : kLayouts) {
      if (auto level = level_of(name, l)) {
        found[l.format][*level] = name;
        known = true;
      }
    }
    if (!known) strangers.push_back(name);
  }
  if (format == CheckpointFormat::kAuto) {
    if (found.size() != 1) {
      return Status::invalid_argument(
          weights + ": " +
          (found.empty() ? std::string("no known layout") : std::string("a mix of layouts")) +
          " among its tensors (" + listed(names) + "); formats known: " + known_formats());
    }
    format = found.begin()->first;
  }
  const Layout& layout = layout_of(format);
  const std::map<int, std::string>& levels = found[format];
  if (levels.empty()) {
    return Status::invalid_argument(weights + " holds no " + checkpoint_format_name(format) +
                                    " tensors (" + layout.prefix + "<l>" + layout.suffix +
                                    "); found: " + listed(names));
  }
  if (!strangers.empty() || found.size() > 1) {
    std::vector<std::string> other = strangers;
    for (const auto& [f, tensors] : found) {
      if (f == format) continue;
      for (const auto& [l, name] : tensors) other.push_back(name);
    }
    return Status::invalid_argument(weights + ": tensors that are not part of a " +
                                    checkpoint_format_name(format) +
                                    " checkpoint: " + listed(other));
  }
  const int L = static_cast<int>(levels.size());
  if (levels.begin()->first != 0 || levels.rbegin()->first != L - 1) {
    return Status::invalid_argument(
        weights + ": the levels must be 0.." + std::to_string(L - 1) + " without gaps; found " +
        std::to_string(levels.begin()->first) + ".." + std::to_string(levels.rbegin()->first));
  }
  std::int64_t K = -1, d = -1;
  std::vector<float> books;
  for (const auto& [level, name] : levels) {
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView view, archive.tensor(name));
    if (view.dtype != safetensors::DType::kF32 || view.shape.size() != 2) {
      return Status::invalid_argument(weights + ": tensor '" + name +
                                      "' must be F32 [K, d] (convert the checkpoint to float32)");
    }
    if (K < 0) {
      K = view.shape[0];
      d = view.shape[1];
    } else if (view.shape[0] != K || view.shape[1] != d) {
      return Status::invalid_argument(weights + ": tensor '" + name + "' is [" +
                                      std::to_string(view.shape[0]) + ", " +
                                      std::to_string(view.shape[1]) + "], level 0 is [" +
                                      std::to_string(K) + ", " + std::to_string(d) + "]");
    }
    SEMID_ASSIGN_OR_RETURN(std::vector<float> values, archive.floats(name));
    books.insert(books.end(), values.begin(), values.end());
  }

  nlohmann::json source_config = nullptr;
  const fs::path config_path = fs::path(weights).parent_path() / "config.json";
  if (format == CheckpointFormat::kResidualQuantizer && fs::exists(config_path, ec)) {
    SEMID_ASSIGN_OR_RETURN(const std::string text, read_file(config_path.string()));
    source_config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (source_config.is_discarded() || !source_config.is_object()) {
      return Status::invalid_argument(config_path.string() + " is not a JSON object");
    }
    for (const auto& [key, expected] : {std::pair<const char*, std::int64_t>{"num_layers", L},
                                        {"num_embeddings", K},
                                        {"embedding_dim", d}}) {
      if (source_config.contains(key) && source_config[key] != expected) {
        return Status::invalid_argument(config_path.string() + ": " + key + " = " +
                                        source_config[key].dump() + ", the tensors say " +
                                        std::to_string(expected));
      }
    }
  }
  if (K < 2 || (K & (K - 1)) != 0 || K > 65536) {
    return Status::invalid_argument(weights + ": " + std::to_string(K) +
                                    " codes per level; semid's residual codebooks take a power of "
                                    "two in [2, 65536]");
  }
  RqKMeansConfig config;
  config.dim = static_cast<int>(d);
  config.levels = L;
  config.codebook_size = static_cast<int>(K);
  config.beam_size = 1;  // the nearest codeword per level, as the source projects encode
  config.metric = Metric::kL2;
  config.source = {{"format", checkpoint_format_name(format)},
                   {"file", fs::path(weights).filename().string()},
                   {"sha256", model_file::sha256_hex({data, bytes.size()})},
                   {"config", source_config}};
  auto model = RqKMeans::from_codebooks(config, std::move(books));
  if (!model) return model.status().with_context(weights);
  return std::unique_ptr<Quantizer>(std::move(model).value());
}

Status export_checkpoint(const Quantizer& model, CheckpointFormat format,
                         const std::string& out_dir) {
  if (format == CheckpointFormat::kAuto) {
    return Status::invalid_argument("export needs a format: " + known_formats());
  }
  const std::string name = checkpoint_format_name(format);
  if (model.kind() != "rqkmeans") {
    return Status::failed_precondition("a '" + model.kind() +
                                       "' model has an encoder and decoder, which the " + name +
                                       " layout cannot hold (it is residual codebooks alone)");
  }
  if (model.metric() != Metric::kL2) {
    return Status::failed_precondition(
        "a cosine model normalises its inputs, which the " + name +
        " layout does not: train or import it with the L2 metric to export it");
  }
  const auto* kmeans = dynamic_cast<const RqKMeans*>(&model);
  if (kmeans == nullptr || kmeans->config().beam_size != 1) {
    return Status::failed_precondition(
        "the model encodes with beam " + std::to_string(kmeans ? kmeans->config().beam_size : 0) +
        "; the " + name +
        " layout's loader takes the nearest codeword per level (beam 1), so its SIDs would differ");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::io_error("cannot create " + out_dir + ": " + ec.message());
  const Layout& layout = layout_of(format);
  std::map<std::string, safetensors::Tensor> tensors;
  for (int l = 0; l < model.levels(); ++l) {
    tensors.emplace(
        std::string(layout.prefix) + std::to_string(l) + layout.suffix,
        safetensors::Tensor::from_floats({model.codebook_size(), model.dim()}, model.codebook(l)));
  }
  SEMID_RETURN_IF_ERROR(safetensors::write((fs::path(out_dir) / "model.safetensors").string(),
                                           tensors, {{"format", "pt"}}));
  if (format != CheckpointFormat::kResidualQuantizer) return Status::ok();
  const nlohmann::json config = {{"commitment_cost", 0.25},
                                 {"embedding_dim", model.dim()},
                                 {"num_embeddings", model.codebook_size()},
                                 {"num_layers", model.levels()}};
  return write_file_atomically((fs::path(out_dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace semid
