#include "index/checkpoint_import.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "index/file_util.h"
#include "index/model_file.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"
#include "index/safetensors.h"
#include "index/torch_pickle.h"

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

std::string known_formats() {
  return "residual-quantizer, res-kmeans, lc-rec, vector-quantize, rqvae-recommender";
}

std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 12; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 12) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out.empty() ? "(none)" : out;
}

// semid's codebooks take a power of two in [2, 65536] codes per level.
Status check_codebook_size(std::int64_t K, const std::string& file) {
  if (K >= 2 && (K & (K - 1)) == 0 && K <= 65536) return Status::ok();
  return Status::invalid_argument(file + ": " + std::to_string(K) +
                                  " codes per level; semid's codebooks take a power of two in "
                                  "[2, 65536]");
}

// An RQ-VAE with `config` and `tensors` under semid's parameter names, checked as a model file
// is when it loads (every parameter present, shapes, NaN/Inf).
Result<std::unique_ptr<Quantizer>> rqvae_from_tensors(
    const RqVaeConfig& config, const std::map<std::string, safetensors::Tensor>& tensors,
    const std::string& file) {
  SEMID_RETURN_IF_ERROR(config.validate().with_context(file));
  SEMID_ASSIGN_OR_RETURN(std::string bytes,
                         model_file::serialize("rqvae", config.to_json(), tensors));
  auto model = RqVae::from_bytes(bytes);
  if (!model) {
    // The bytes were just built: what the model-file checks call corruption (NaN weights, say)
    // is bad input here.
    const Status& s = model.status();
    return (s.code() == Status::Code::kCorruption ? Status::invalid_argument(s.message()) : s)
        .with_context(file);
  }
  return std::unique_ptr<Quantizer>(std::move(model).value());
}

// LC-Rec's RQVAE (index/models/rqvae.py there): encoder and decoder are MLPLayers, a Sequential of
// (Dropout, Linear, ReLU) per layer and (Dropout, Linear) for the last, so the Linear layers sit at
// indices 1, 4, 7, ...; rq.vq_layers.{l}.embedding.weight [K, e] are the codebooks, searched by
// squared L2 on the encoder's output residual (its get_indices: use_sk=False). That is semid's
// kMlp architecture with ReLU, the L2 metric and beam 1.
bool is_lc_rec_name(const std::string& name) {
  return name.starts_with("encoder.mlp_layers.") || name.starts_with("decoder.mlp_layers.") ||
         name.starts_with("rq.vq_layers.");
}

struct LinearLayer {
  std::string weight, bias;
  std::int64_t in = 0, out = 0;
};

// The Linear layers of `part` ("encoder" or "decoder") in module order; every name under it must
// be one of them.
Result<std::vector<LinearLayer>> lc_rec_layers(const safetensors::Archive& archive,
                                               const std::vector<std::string>& names,
                                               const std::string& part, const std::string& file) {
  const std::string prefix = part + ".mlp_layers.";
  std::map<int, LinearLayer> by_index;
  for (const std::string& name : names) {
    if (!name.starts_with(prefix)) continue;
    const std::string rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    const std::string digits = rest.substr(0, dot);
    const std::string field = dot == std::string::npos ? "" : rest.substr(dot + 1);
    if (digits.empty() || digits.size() > 4 ||
        digits.find_first_not_of("0123456789") != std::string::npos ||
        (field != "weight" && field != "bias")) {
      return Status::invalid_argument(
          file + ": tensor '" + name + "' is not a Linear layer's weight or bias" +
          (field == "running_mean" || field == "running_var" || field == "num_batches_tracked"
               ? " (batch-norm layers, LC-Rec's bn=True, are not supported)"
               : ""));
    }
    LinearLayer& layer = by_index[std::stoi(digits)];
    (field == "weight" ? layer.weight : layer.bias) = name;
  }
  std::vector<LinearLayer> layers;
  int expected = 1;
  for (auto& [index, layer] : by_index) {
    if (index != expected || layer.weight.empty() || layer.bias.empty()) {
      return Status::invalid_argument(
          file + ": " + prefix +
          "* must be Linear layers (weight and bias) at 1, 4, 7, ... "
          "(Dropout, Linear, ReLU per layer); found one at " +
          std::to_string(index) +
          (layer.weight.empty() || layer.bias.empty() ? " without both weight and bias" : "") +
          " (batch norm or another activation layout is not supported)");
    }
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView w, archive.tensor(layer.weight));
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView b, archive.tensor(layer.bias));
    if (w.dtype != safetensors::DType::kF32 || w.shape.size() != 2 ||
        b.dtype != safetensors::DType::kF32 || b.shape.size() != 1 || b.shape[0] != w.shape[0]) {
      return Status::invalid_argument(file + ": " + layer.weight + " must be F32 [out, in] and " +
                                      layer.bias + " F32 [out]");
    }
    layer.out = w.shape[0];
    layer.in = w.shape[1];
    if (!layers.empty() && layers.back().out != layer.in) {
      return Status::invalid_argument(
          file + ": " + layer.weight + " takes " + std::to_string(layer.in) +
          " inputs; the layer before gives " + std::to_string(layers.back().out));
    }
    layers.push_back(layer);
    expected += 3;
  }
  if (layers.empty()) return Status::invalid_argument(file + ": no " + prefix + "* layers");
  return layers;
}

// The decoder mirrors the encoder, as semid's mlp architecture builds it.
Status check_mirrored(const std::vector<LinearLayer>& encoder,
                      const std::vector<LinearLayer>& decoder, const std::string& file) {
  if (decoder.size() != encoder.size()) {
    return Status::invalid_argument(file + ": the decoder has " + std::to_string(decoder.size()) +
                                    " layers, the encoder " + std::to_string(encoder.size()) +
                                    "; semid's decoder mirrors its encoder");
  }
  for (std::size_t j = 0; j < encoder.size(); ++j) {
    const LinearLayer& e = encoder[j];
    const LinearLayer& d = decoder[decoder.size() - 1 - j];
    if (d.in != e.out || d.out != e.in) {
      return Status::invalid_argument(file + ": " + d.weight + " is [" + std::to_string(d.out) +
                                      ", " + std::to_string(d.in) + "]; mirroring " + e.weight +
                                      " it must be [" + std::to_string(e.in) + ", " +
                                      std::to_string(e.out) + "]");
    }
  }
  return Status::ok();
}

// `layers` under semid's mlp parameter names (`part`.0, `part`.2, ...: Linear layers with an
// activation between); a layer without a bias tensor gets a zero bias.
Status copy_mlp(const safetensors::Archive& archive, const std::vector<LinearLayer>& layers,
                const std::string& part, std::map<std::string, safetensors::Tensor>& tensors) {
  for (std::size_t j = 0; j < layers.size(); ++j) {
    const LinearLayer& layer = layers[j];
    const std::string semid_name = part + "." + std::to_string(2 * j);
    SEMID_ASSIGN_OR_RETURN(std::vector<float> w, archive.floats(layer.weight));
    std::vector<float> b(static_cast<std::size_t>(layer.out));
    if (!layer.bias.empty()) {
      SEMID_ASSIGN_OR_RETURN(b, archive.floats(layer.bias));
    }
    tensors.emplace(semid_name + ".weight",
                    safetensors::Tensor::from_floats({layer.out, layer.in}, w));
    tensors.emplace(semid_name + ".bias", safetensors::Tensor::from_floats({layer.out}, b));
  }
  return Status::ok();
}

// semid's mlp architecture with `encoder`'s layer sizes (the decoder mirrors it), L levels of K
// codes, the nearest codeword by L2 per level (beam 1).
RqVaeConfig mlp_config(const std::vector<LinearLayer>& encoder, int L, std::int64_t K,
                       Activation activation) {
  RqVaeConfig config;
  config.dim = static_cast<int>(encoder.front().in);
  config.architecture = RqVaeArchitecture::kMlp;
  config.hidden.clear();
  for (std::size_t j = 0; j + 1 < encoder.size(); ++j) {
    config.hidden.push_back(static_cast<int>(encoder[j].out));
  }
  config.activation = activation;
  config.latent_dim = static_cast<int>(encoder.back().out);
  config.beam_size = 1;
  config.levels = L;
  config.codebook_size = static_cast<int>(K);
  config.codebook_distance = CodebookDistance::kL2;
  return config;
}

// The codebook levels found (level -> tensor name) are 0..L-1 without gaps; returns L.
Result<int> contiguous_levels(const std::map<int, std::string>& books, const char* what,
                              const std::string& file) {
  if (books.empty()) return Status::invalid_argument(file + ": no " + what + " codebooks");
  const int L = static_cast<int>(books.size());
  if (books.begin()->first != 0 || books.rbegin()->first != L - 1) {
    return Status::invalid_argument(file + ": the codebook levels must be 0.." +
                                    std::to_string(L - 1) + " without gaps");
  }
  return L;
}

// A level's codebook is F32 [K, e], e the encoder's output size, with the K of the levels
// before (K < 0 for the first).
Status check_book(const safetensors::TensorView& view, const std::string& name, std::int64_t e,
                  std::int64_t K, const std::string& file) {
  if (view.dtype == safetensors::DType::kF32 && view.shape.size() == 2 && view.shape[1] == e &&
      (K < 0 || view.shape[0] == K)) {
    return Status::ok();
  }
  return Status::invalid_argument(file + ": " + name + " must be F32 [K, " + std::to_string(e) +
                                  "] (the encoder's output size), with the same K at every level");
}

// The L2 norm of row r of a [rows, cols] matrix.
double row_norm(const std::vector<float>& m, std::int64_t r, std::int64_t cols) {
  double sum = 0;
  for (std::int64_t j = 0; j < cols; ++j) sum += double(m[r * cols + j]) * m[r * cols + j];
  return std::sqrt(sum);
}

// Rows of a [rows, cols] matrix scaled to unit L2 norm (zero rows stay zero).
void normalize_rows_in_place(std::vector<float>& m, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const double norm = row_norm(m, r, cols);
    const auto scale = static_cast<float>(norm > 0 ? 1.0 / norm : 0.0);
    for (std::int64_t j = 0; j < cols; ++j) m[r * cols + j] *= scale;
  }
}

Result<std::unique_ptr<Quantizer>> import_lc_rec(const safetensors::Archive& archive,
                                                 const std::vector<std::string>& names,
                                                 const std::string& file, nlohmann::json source) {
  std::vector<std::string> strangers;
  std::map<int, std::string> books;
  const Layout vq{CheckpointFormat::kLcRec, "rq.vq_layers.", ".embedding.weight"};
  for (const std::string& name : names) {
    if (auto level = level_of(name, vq)) {
      books[*level] = name;
    } else if (!name.starts_with("encoder.mlp_layers.") &&
               !name.starts_with("decoder.mlp_layers.")) {
      strangers.push_back(name);
    }
  }
  if (!strangers.empty()) {
    return Status::invalid_argument(
        file + ": tensors that are not part of an lc-rec checkpoint: " + listed(strangers));
  }
  const nlohmann::json& args = source["config"];
  if (args.is_object() && args.value("bn", false) == true) {
    return Status::invalid_argument(file +
                                    ": the model has batch norm (args.bn = true), which "
                                    "semid's MLP does not have");
  }
  SEMID_ASSIGN_OR_RETURN(auto encoder, lc_rec_layers(archive, names, "encoder", file));
  SEMID_ASSIGN_OR_RETURN(auto decoder, lc_rec_layers(archive, names, "decoder", file));
  SEMID_RETURN_IF_ERROR(check_mirrored(encoder, decoder, file));
  const std::int64_t latent = encoder.back().out;
  SEMID_ASSIGN_OR_RETURN(const int L, contiguous_levels(books, "rq.vq_layers.<l>", file));
  std::map<std::string, safetensors::Tensor> tensors;
  std::int64_t K = -1;
  for (const auto& [level, name] : books) {
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView view, archive.tensor(name));
    SEMID_RETURN_IF_ERROR(check_book(view, name, latent, K, file));
    K = view.shape[0];
    SEMID_ASSIGN_OR_RETURN(std::vector<float> values, archive.floats(name));
    tensors.emplace("codebook_" + std::to_string(level),
                    safetensors::Tensor::from_floats(view.shape, values));
  }
  SEMID_RETURN_IF_ERROR(copy_mlp(archive, encoder, "encoder", tensors));
  SEMID_RETURN_IF_ERROR(copy_mlp(archive, decoder, "decoder", tensors));
  SEMID_RETURN_IF_ERROR(check_codebook_size(K, file));
  // get_indices takes the nearest codeword (L2) per level.
  RqVaeConfig config = mlp_config(encoder, L, K, Activation::kReLU);
  config.metric = Metric::kL2;  // no input normalisation, no output normalisation
  config.source = std::move(source);
  return rqvae_from_tensors(config, tensors, file);
}

// EdoardoBotta's RQ-VAE-Recommender RqVae (modules/rqvae.py there): encoder.mlp.{0,2,4,...} and
// decoder.mlp... are Linear layers without bias with SiLU between; the encoder's output is
// L2-normalised with codebook_normalize, the decoder's always. layers.{l}.embedding.weight [K, e]
// are the codebooks, seen through out_proj: SimVQ's Linear (layers.{l}.out_proj.0.weight [e, e],
// optional) and, at level 0 with codebook_normalize, an L2 normalisation; the nearest effective
// codeword by squared L2 is taken and subtracted (its get_semantic_ids in eval mode).
// Its encoder and decoder, the names that tell the layout apart ("layers." is also ResidualVQ's).
bool is_rqvae_recommender_mlp_name(const std::string& name) {
  return name.starts_with("encoder.mlp.") || name.starts_with("decoder.mlp.");
}

bool is_rqvae_recommender_name(const std::string& name) {
  return is_rqvae_recommender_mlp_name(name) ||
         (name.starts_with("layers.") &&
          (name.ends_with(".embedding.weight") || name.ends_with(".out_proj.0.weight")));
}

// The bias-free Linear layers of `part` at 0, 2, 4, ... (SiLU between).
Result<std::vector<LinearLayer>> bias_free_layers(const safetensors::Archive& archive,
                                                  const std::vector<std::string>& names,
                                                  const std::string& part,
                                                  const std::string& file) {
  const std::string prefix = part + ".mlp.";
  std::map<int, std::string> by_index;
  for (const std::string& name : names) {
    if (!name.starts_with(prefix)) continue;
    const std::string rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    const std::string digits = rest.substr(0, dot);
    if (digits.empty() || digits.size() > 4 ||
        digits.find_first_not_of("0123456789") != std::string::npos || dot == std::string::npos ||
        rest.substr(dot + 1) != "weight") {
      return Status::invalid_argument(file + ": tensor '" + name +
                                      "' is not a bias-free Linear layer's weight");
    }
    by_index[std::stoi(digits)] = name;
  }
  std::vector<LinearLayer> layers;
  int expected = 0;
  for (const auto& [index, name] : by_index) {
    if (index != expected) {
      return Status::invalid_argument(file + ": " + prefix +
                                      "* must be Linear layers at 0, 2, 4, ... (SiLU between); "
                                      "found one at " +
                                      std::to_string(index));
    }
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView w, archive.tensor(name));
    if (w.dtype != safetensors::DType::kF32 || w.shape.size() != 2) {
      return Status::invalid_argument(file + ": " + name + " must be F32 [out, in]");
    }
    LinearLayer layer{name, "", w.shape[1], w.shape[0]};
    if (!layers.empty() && layers.back().out != layer.in) {
      return Status::invalid_argument(file + ": " + name + " takes " + std::to_string(layer.in) +
                                      " inputs; the layer before gives " +
                                      std::to_string(layers.back().out));
    }
    layers.push_back(layer);
    expected += 2;
  }
  if (layers.empty()) return Status::invalid_argument(file + ": no " + prefix + "* layers");
  return layers;
}

Result<std::unique_ptr<Quantizer>> import_rqvae_recommender(const safetensors::Archive& archive,
                                                            const std::vector<std::string>& names,
                                                            const std::string& file,
                                                            nlohmann::json source) {
  std::vector<std::string> strangers;
  for (const std::string& name : names) {
    if (!is_rqvae_recommender_name(name)) strangers.push_back(name);
  }
  if (!strangers.empty()) {
    return Status::invalid_argument(
        file +
        ": tensors that are not part of an rqvae-recommender checkpoint: " + listed(strangers));
  }
  // codebook_normalize lives in the model's config (the hub folder's config.json, or the
  // torch.save file's "model_config").
  const nlohmann::json& config_json = source["config"];
  const nlohmann::json* model_config = &config_json;
  if (config_json.is_object() && config_json.contains("model_config")) {
    model_config = &config_json["model_config"];
  }
  const bool normalize =
      model_config->is_object() && model_config->value("codebook_normalize", false) == true;
  SEMID_ASSIGN_OR_RETURN(auto encoder, bias_free_layers(archive, names, "encoder", file));
  SEMID_ASSIGN_OR_RETURN(auto decoder, bias_free_layers(archive, names, "decoder", file));
  SEMID_RETURN_IF_ERROR(check_mirrored(encoder, decoder, file));
  const std::int64_t e = encoder.back().out;
  const Layout books_layout{CheckpointFormat::kRqVaeRecommender, "layers.", ".embedding.weight"};
  std::map<int, std::string> books;
  for (const std::string& name : names) {
    if (auto level = level_of(name, books_layout)) books[*level] = name;
  }
  SEMID_ASSIGN_OR_RETURN(const int L,
                         contiguous_levels(books, "layers.<l>.embedding.weight", file));
  std::map<std::string, safetensors::Tensor> tensors;
  std::int64_t K = -1;
  for (const auto& [level, name] : books) {
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView view, archive.tensor(name));
    SEMID_RETURN_IF_ERROR(check_book(view, name, e, K, file));
    K = view.shape[0];
    SEMID_ASSIGN_OR_RETURN(std::vector<float> book, archive.floats(name));
    // The effective codebook: SimVQ's projection, then level 0's normalisation.
    const std::string projection = "layers." + std::to_string(level) + ".out_proj.0.weight";
    if (auto found = archive.tensor(projection); found.is_ok()) {
      if (found->dtype != safetensors::DType::kF32 ||
          found->shape != std::vector<std::int64_t>{e, e}) {
        return Status::invalid_argument(file + ": " + projection + " must be F32 [" +
                                        std::to_string(e) + ", " + std::to_string(e) + "]");
      }
      SEMID_ASSIGN_OR_RETURN(std::vector<float> w, archive.floats(projection));
      std::vector<float> projected(book.size(), 0.0f);
      for (std::int64_t k = 0; k < K; ++k) {
        for (std::int64_t i = 0; i < e; ++i) {
          double sum = 0;
          for (std::int64_t j = 0; j < e; ++j) sum += double(w[i * e + j]) * book[k * e + j];
          projected[k * e + i] = static_cast<float>(sum);
        }
      }
      book = std::move(projected);
    }
    if (level == 0 && normalize) normalize_rows_in_place(book, K, e);
    tensors.emplace("codebook_" + std::to_string(level),
                    safetensors::Tensor::from_floats({K, e}, book));
  }
  SEMID_RETURN_IF_ERROR(check_codebook_size(K, file));
  SEMID_RETURN_IF_ERROR(copy_mlp(archive, encoder, "encoder", tensors));
  SEMID_RETURN_IF_ERROR(copy_mlp(archive, decoder, "decoder", tensors));
  RqVaeConfig config = mlp_config(encoder, L, K, Activation::kSiLU);
  // Its decoder's output is a unit vector: a cosine model, fed the raw input.
  config.metric = Metric::kCosine;
  config.input_normalization = false;
  config.output_normalization = true;
  config.normalize_latent = normalize;
  config.source = std::move(source);
  return rqvae_from_tensors(config, tensors, file);
}

// lucidrains' ResidualVQ (vector_quantize_pytorch/residual_vq.py there): layers.{l}._codebook.embed
// [1, K, e]; the codebook's training state (embed_avg, cluster_size, initted, ...) is ignored.
bool is_vector_quantize_name(const std::string& name) {
  return name.starts_with("layers.") && name.find("._codebook.") != std::string::npos;
}

Result<std::unique_ptr<Quantizer>> import_vector_quantize(const safetensors::Archive& archive,
                                                          const std::vector<std::string>& names,
                                                          const std::string& file,
                                                          nlohmann::json source, bool cosine) {
  std::map<int, std::string> books;
  std::vector<std::string> strangers;
  const Layout vq{CheckpointFormat::kVectorQuantize, "layers.", "._codebook.embed"};
  bool projected = false;
  for (const std::string& name : names) {
    if (auto level = level_of(name, vq)) {
      books[*level] = name;
    } else if (name.starts_with("project_in.") || name.starts_with("project_out.")) {
      projected = true;
    } else if (!is_vector_quantize_name(name)) {
      strangers.push_back(name);
    }
  }
  if (!strangers.empty()) {
    return Status::invalid_argument(
        file + ": tensors that are not part of a vector-quantize ResidualVQ: " + listed(strangers));
  }
  if (books.empty()) return Status::invalid_argument(file + ": no layers.<l>._codebook.embed");
  const int L = static_cast<int>(books.size());
  if (books.begin()->first != 0 || books.rbegin()->first != L - 1) {
    return Status::invalid_argument(file + ": the levels must be 0.." + std::to_string(L - 1) +
                                    " without gaps");
  }
  std::int64_t K = -1, e = -1;
  std::vector<std::vector<float>> values;
  for (const auto& [level, name] : books) {
    SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView view, archive.tensor(name));
    std::vector<std::int64_t> shape = view.shape;
    if (shape.size() == 3 && shape[0] == 1) shape.erase(shape.begin());  // one codebook head
    if (view.dtype != safetensors::DType::kF32 || shape.size() != 2 ||
        (K >= 0 && (shape[0] != K || shape[1] != e))) {
      return Status::invalid_argument(file + ": " + name +
                                      " must be F32 [1, K, e] with the same K and e at every level "
                                      "(multi-head codebooks are not supported)");
    }
    K = shape[0];
    e = shape[1];
    SEMID_ASSIGN_OR_RETURN(std::vector<float> book, archive.floats(name));
    if (cosine) normalize_rows_in_place(book, K, e);  // use_cosine_sim keeps unit codewords
    values.push_back(std::move(book));
  }
  SEMID_RETURN_IF_ERROR(check_codebook_size(K, file));
  if (!projected && !cosine) {
    std::vector<float> flat;
    for (const auto& book : values) flat.insert(flat.end(), book.begin(), book.end());
    RqKMeansConfig config;
    config.dim = static_cast<int>(e);
    config.levels = L;
    config.codebook_size = static_cast<int>(K);
    config.beam_size = 1;
    config.metric = Metric::kL2;
    config.source = std::move(source);
    auto model = RqKMeans::from_codebooks(config, std::move(flat));
    if (!model) return model.status().with_context(file);
    return std::unique_ptr<Quantizer>(std::move(model).value());
  }
  // project_in [e, d] + bias [e] and project_out [d, e] + bias [d], or the identity (d = e).
  std::map<std::string, safetensors::Tensor> tensors;
  std::int64_t d = e;
  if (projected) {
    const auto linear =
        [&](const std::string& part, std::int64_t out,
            std::int64_t in) -> Result<std::pair<std::vector<float>, std::vector<float>>> {
      auto found_w = archive.tensor(part + ".weight");
      auto found_b = archive.tensor(part + ".bias");
      if (!found_w || !found_b) {
        return Status::invalid_argument(file + ": " + part + " needs both " + part +
                                        ".weight and " + part +
                                        ".bias (project_in and project_out come together)");
      }
      const safetensors::TensorView& w = *found_w;
      const safetensors::TensorView& b = *found_b;
      if (w.dtype != safetensors::DType::kF32 || w.shape.size() != 2 ||
          (out > 0 && w.shape[0] != out) || (in > 0 && w.shape[1] != in) || b.shape.size() != 1 ||
          b.shape[0] != w.shape[0]) {
        return Status::invalid_argument(file + ": " + part + " must be a Linear with bias, [" +
                                        (out > 0 ? std::to_string(out) : std::string("?")) + ", " +
                                        (in > 0 ? std::to_string(in) : std::string("?")) + "]");
      }
      SEMID_ASSIGN_OR_RETURN(std::vector<float> wv, archive.floats(part + ".weight"));
      SEMID_ASSIGN_OR_RETURN(std::vector<float> bv, archive.floats(part + ".bias"));
      return std::make_pair(std::move(wv), std::move(bv));
    };
    auto found_in = archive.tensor("project_in.weight");
    if (!found_in || found_in->shape.size() != 2) {
      return Status::invalid_argument(file +
                                      ": project_in.weight is missing or not [e, d] (project_in "
                                      "and project_out come together)");
    }
    d = found_in->shape[1];
    SEMID_ASSIGN_OR_RETURN(auto in, linear("project_in", e, d));
    SEMID_ASSIGN_OR_RETURN(auto out, linear("project_out", d, e));
    tensors.emplace("encoder.0.weight", safetensors::Tensor::from_floats({e, d}, in.first));
    tensors.emplace("encoder.0.bias", safetensors::Tensor::from_floats({e}, in.second));
    tensors.emplace("decoder.0.weight", safetensors::Tensor::from_floats({d, e}, out.first));
    tensors.emplace("decoder.0.bias", safetensors::Tensor::from_floats({d}, out.second));
  } else {
    std::vector<float> identity(static_cast<std::size_t>(e * e), 0.0f);
    for (std::int64_t j = 0; j < e; ++j) identity[j * e + j] = 1.0f;
    const std::vector<float> zero(static_cast<std::size_t>(e), 0.0f);
    for (const char* part : {"encoder.0", "decoder.0"}) {
      tensors.emplace(std::string(part) + ".weight",
                      safetensors::Tensor::from_floats({e, e}, identity));
      tensors.emplace(std::string(part) + ".bias", safetensors::Tensor::from_floats({e}, zero));
    }
  }
  for (int l = 0; l < L; ++l) {
    tensors.emplace("codebook_" + std::to_string(l),
                    safetensors::Tensor::from_floats({K, e}, values[static_cast<std::size_t>(l)]));
  }
  RqVaeConfig config;
  config.dim = static_cast<int>(d);
  config.architecture = RqVaeArchitecture::kMlp;
  config.hidden.clear();
  config.latent_dim = static_cast<int>(e);
  config.beam_size = 1;
  config.levels = L;
  config.codebook_size = static_cast<int>(K);
  config.codebook_distance = cosine ? CodebookDistance::kCosine : CodebookDistance::kL2;
  config.metric = Metric::kL2;
  config.source = std::move(source);
  return rqvae_from_tensors(config, tensors, file);
}

// A temporary file name for the converted pickle (mkstemp: created empty, ours alone).
Result<std::string> temporary_path() {
  std::string name = (fs::temp_directory_path() / "semid-import-XXXXXX").string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) return Status::io_error("cannot create a temporary file in " + name);
  ::close(fd);
  return name;
}

}  // namespace

Result<CheckpointFormat> parse_checkpoint_format(std::string_view name) {
  if (name == "auto") return CheckpointFormat::kAuto;
  if (name == "residual-quantizer") return CheckpointFormat::kResidualQuantizer;
  if (name == "res-kmeans") return CheckpointFormat::kResKMeans;
  if (name == "lc-rec") return CheckpointFormat::kLcRec;
  if (name == "vector-quantize") return CheckpointFormat::kVectorQuantize;
  if (name == "rqvae-recommender") return CheckpointFormat::kRqVaeRecommender;
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
    case CheckpointFormat::kLcRec:
      return "lc-rec";
    case CheckpointFormat::kVectorQuantize:
      return "vector-quantize";
    case CheckpointFormat::kRqVaeRecommender:
      return "rqvae-recommender";
  }
  return "auto";
}

namespace {

// The config.json beside `weights` (null when there is none); InvalidArgument when it is not a
// JSON object.
Result<nlohmann::json> config_beside(const std::string& weights) {
  const fs::path path = fs::path(weights).parent_path() / "config.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return nlohmann::json(nullptr);
  SEMID_ASSIGN_OR_RETURN(const std::string text, read_file(path.string()));
  nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return Status::invalid_argument(path.string() + " is not a JSON object");
  }
  return config;
}

}  // namespace

Result<std::unique_ptr<Quantizer>> import_checkpoint(const std::string& source,
                                                     CheckpointFormat format,
                                                     const ImportOptions& options) {
  std::error_code ec;
  const bool folder = fs::is_directory(source, ec);
  const std::string weights = folder ? (fs::path(source) / "model.safetensors").string() : source;
  std::string bytes, sha256;
  nlohmann::json extras = nullptr;
  if (is_torch_pickle(weights)) {
    SEMID_ASSIGN_OR_RETURN(const std::string original, read_file(weights));
    sha256 = model_file::sha256_hex(
        {reinterpret_cast<const std::uint8_t*>(original.data()), original.size()});
    SEMID_ASSIGN_OR_RETURN(const std::string converted, temporary_path());
    const Status status = convert_torch_pickle(weights, converted, options.trust_pickle);
    auto read = status.is_ok() ? read_file(converted) : Result<std::string>(status);
    fs::remove(converted, ec);
    if (!read) return read.status();
    bytes = std::move(read).value();
  } else {
    SEMID_ASSIGN_OR_RETURN(bytes, read_file(weights));
    sha256 =
        model_file::sha256_hex({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  auto parsed = safetensors::Archive::parse({data, bytes.size()});
  if (!parsed) return parsed.status().with_context(weights);
  if (const auto it = parsed->metadata().find(kPickleExtrasKey); it != parsed->metadata().end()) {
    extras = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (extras.is_discarded()) extras = nullptr;
  }
  const safetensors::Archive& archive = *parsed;
  const std::vector<std::string> names = archive.names();
  // A hub folder's config.json (PyTorchModelHubMixin writes the model's init arguments there).
  nlohmann::json folder_config = nullptr;
  if (folder) {
    SEMID_ASSIGN_OR_RETURN(folder_config, config_beside(weights));
  }
  const nlohmann::json base_source = {{"format", checkpoint_format_name(format)},
                                      {"file", fs::path(weights).filename().string()},
                                      {"sha256", sha256},
                                      {"config", folder_config.is_null() ? extras : folder_config}};
  if (format == CheckpointFormat::kRqVaeRecommender ||
      (format == CheckpointFormat::kAuto &&
       std::any_of(names.begin(), names.end(), is_rqvae_recommender_mlp_name))) {
    nlohmann::json source = base_source;
    source["format"] = "rqvae-recommender";
    return import_rqvae_recommender(archive, names, weights, std::move(source));
  }
  if (format == CheckpointFormat::kVectorQuantize ||
      (format == CheckpointFormat::kAuto &&
       std::any_of(names.begin(), names.end(), is_vector_quantize_name))) {
    nlohmann::json source = base_source;
    source["format"] = "vector-quantize";
    source["cosine_codebook"] = options.cosine_codebook;
    return import_vector_quantize(archive, names, weights, std::move(source),
                                  options.cosine_codebook);
  }
  if (format == CheckpointFormat::kLcRec ||
      (format == CheckpointFormat::kAuto &&
       std::any_of(names.begin(), names.end(), is_lc_rec_name))) {
    // LC-Rec keeps its training options in the checkpoint's "args".
    nlohmann::json args = extras.is_object() && extras.contains("args") ? extras["args"] : extras;
    return import_lc_rec(archive, names, weights,
                         {{"format", "lc-rec"},
                          {"file", fs::path(weights).filename().string()},
                          {"sha256", sha256},
                          {"config", args}});
  }

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

  // The seed project reads config.json beside the weights, also when given the file itself.
  nlohmann::json source_config = nullptr;
  if (format == CheckpointFormat::kResidualQuantizer) {
    if (folder) {
      source_config = folder_config;
    } else {
      SEMID_ASSIGN_OR_RETURN(source_config, config_beside(weights));
    }
  }
  const fs::path config_path = fs::path(weights).parent_path() / "config.json";
  if (format == CheckpointFormat::kResidualQuantizer && !source_config.is_null()) {
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
  SEMID_RETURN_IF_ERROR(check_codebook_size(K, weights));
  RqKMeansConfig config;
  config.dim = static_cast<int>(d);
  config.levels = L;
  config.codebook_size = static_cast<int>(K);
  config.beam_size = 1;  // the nearest codeword per level, as the source projects encode
  config.metric = Metric::kL2;
  config.source = {{"format", checkpoint_format_name(format)},
                   {"file", fs::path(weights).filename().string()},
                   {"sha256", sha256},
                   {"config", source_config.is_null() ? extras : source_config}};
  auto model = RqKMeans::from_codebooks(config, std::move(books));
  if (!model) return model.status().with_context(weights);
  return std::unique_ptr<Quantizer>(std::move(model).value());
}

namespace {

Status create_out_dir(const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::io_error("cannot create " + out_dir + ": " + ec.message());
  return Status::ok();
}

// RQ-VAE-Recommender's RqVae as a hub folder: model.safetensors with its parameter names and
// config.json with its constructor's arguments. Only what its code computes exports: the mlp
// architecture with SiLU and zero biases, the raw input, a unit-norm output, L2 codebooks, beam 1,
// and (with the latent normalised, its codebook_normalize) a unit-norm level-0 codebook.
Status export_rqvae_recommender(const Quantizer& model, const std::string& out_dir) {
  const auto refuse = [](const std::string& why) {
    return Status::failed_precondition(
        why +
        ", which RQ-VAE-Recommender's RqVae does not compute; import a model of that layout "
        "(semid import --format rqvae-recommender) to export it back");
  };
  const auto* vae = dynamic_cast<const RqVae*>(&model);
  if (vae == nullptr) {
    return refuse("a '" + model.kind() + "' model has no encoder or decoder");
  }
  const RqVaeConfig& c = vae->config();
  if (c.residual()) return refuse("the model has the residual architecture (identity plus MLP)");
  if (c.activation != Activation::kSiLU) return refuse("the model's MLPs use ReLU");
  if (c.normalizes_input()) return refuse("the model normalises its input");
  if (!c.normalizes_output()) return refuse("the model's output is not L2-normalised");
  if (c.codebook_distance != CodebookDistance::kL2) return refuse("the model has cosine codebooks");
  if (c.beam_size != 1) return refuse("the model encodes with beam " + std::to_string(c.beam_size));
  SEMID_ASSIGN_OR_RETURN(std::string bytes, model.to_bytes());
  SEMID_ASSIGN_OR_RETURN(const model_file::Parsed parsed, model_file::parse(std::move(bytes)));
  const int depth = static_cast<int>(c.hidden.size()) + 1;  // Linear layers per MLP
  std::map<std::string, safetensors::Tensor> tensors;
  for (const char* part : {"encoder", "decoder"}) {
    for (int j = 0; j < depth; ++j) {
      const std::string name = std::string(part) + "." + std::to_string(2 * j);
      SEMID_ASSIGN_OR_RETURN(const std::vector<float> bias, parsed.archive.floats(name + ".bias"));
      if (std::any_of(bias.begin(), bias.end(), [](float b) { return b != 0.0f; })) {
        return refuse("the model's " + name + " has a bias");
      }
      SEMID_ASSIGN_OR_RETURN(const safetensors::TensorView w,
                             parsed.archive.tensor(name + ".weight"));
      SEMID_ASSIGN_OR_RETURN(const std::vector<float> values,
                             parsed.archive.floats(name + ".weight"));
      tensors.emplace(std::string(part) + ".mlp." + std::to_string(2 * j) + ".weight",
                      safetensors::Tensor::from_floats(w.shape, values));
    }
  }
  const std::int64_t K = c.codebook_size, e = c.latent();
  for (int l = 0; l < c.levels; ++l) {
    const std::vector<float> book = model.codebook(l);
    if (l == 0 && c.normalize_latent) {
      // RqVae normalises level 0's codebook with codebook_normalize; it must already be unit.
      for (std::int64_t k = 0; k < K; ++k) {
        if (const double norm = row_norm(book, k, e); std::abs(norm - 1.0) > 1e-4) {
          return refuse("level 0's codeword " + std::to_string(k) + " has norm " +
                        std::to_string(norm) + " with the latent normalised");
        }
      }
    }
    tensors.emplace("layers." + std::to_string(l) + ".embedding.weight",
                    safetensors::Tensor::from_floats({K, e}, book));
  }
  SEMID_RETURN_IF_ERROR(create_out_dir(out_dir));
  SEMID_RETURN_IF_ERROR(safetensors::write((fs::path(out_dir) / "model.safetensors").string(),
                                           tensors, {{"format", "pt"}}));
  const nlohmann::json config = {{"input_dim", c.dim},
                                 {"embed_dim", e},
                                 {"hidden_dims", c.hidden},
                                 {"codebook_size", K},
                                 {"codebook_kmeans_init", false},
                                 {"codebook_normalize", c.normalize_latent},
                                 {"codebook_sim_vq", false},
                                 {"n_layers", c.levels},
                                 {"commitment_weight", c.beta},
                                 {"n_cat_features", 0}};
  return write_file_atomically((fs::path(out_dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace

Status export_checkpoint(const Quantizer& model, CheckpointFormat format,
                         const std::string& out_dir) {
  if (format == CheckpointFormat::kRqVaeRecommender)
    return export_rqvae_recommender(model, out_dir);
  if (format != CheckpointFormat::kResidualQuantizer && format != CheckpointFormat::kResKMeans) {
    return Status::invalid_argument(
        "export writes residual-quantizer, res-kmeans or rqvae-recommender, not '" +
        std::string(checkpoint_format_name(format)) + "'");
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
  SEMID_RETURN_IF_ERROR(create_out_dir(out_dir));
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
