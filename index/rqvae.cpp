#include "index/rqvae.h"

#include <cstring>
#include <map>

#include "index/file_util.h"
#include "index/model_file.h"
#include "index/rqvae_impl.h"

namespace semid {
namespace {

torch::nn::Sequential make_mlp(int in, const std::vector<int>& hidden, int out,
                               Activation activation, bool zero_last) {
  torch::nn::Sequential mlp;
  int width = in;
  for (int h : hidden) {
    mlp->push_back(torch::nn::Linear(width, h));
    if (activation == Activation::kSiLU)
      mlp->push_back(torch::nn::SiLU());
    else
      mlp->push_back(torch::nn::ReLU());
    width = h;
  }
  torch::nn::Linear last(width, out);
  if (zero_last) {
    // A correction that starts at zero: the network starts as the identity.
    torch::NoGradGuard no_grad;
    last->weight.zero_();
    last->bias.zero_();
  }
  mlp->push_back(last);
  return mlp;
}

std::vector<int> reversed(std::vector<int> v) { return {v.rbegin(), v.rend()}; }

}  // namespace

// ---- config ----------------------------------------------------------------------------------

const char* to_string(CodebookDistance distance) {
  return distance == CodebookDistance::kL2 ? "l2" : "cosine";
}

Result<CodebookDistance> parse_codebook_distance(const std::string& name) {
  if (name == "l2") return CodebookDistance::kL2;
  if (name == "cosine") return CodebookDistance::kCosine;
  return Status::invalid_argument("codebook_distance must be 'l2' or 'cosine', got '" + name + "'");
}

const char* to_string(RqVaeArchitecture architecture) {
  return architecture == RqVaeArchitecture::kResidual ? "residual" : "mlp";
}

Result<RqVaeArchitecture> parse_architecture(const std::string& name) {
  if (name == "residual") return RqVaeArchitecture::kResidual;
  if (name == "mlp") return RqVaeArchitecture::kMlp;
  return Status::invalid_argument("architecture must be 'residual' or 'mlp', got '" + name + "'");
}

const char* to_string(Activation activation) {
  return activation == Activation::kSiLU ? "silu" : "relu";
}

Result<Activation> parse_activation(const std::string& name) {
  if (name == "silu") return Activation::kSiLU;
  if (name == "relu") return Activation::kReLU;
  return Status::invalid_argument("activation must be 'silu' or 'relu', got '" + name + "'");
}

Status RqVaeConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& rule) {
    return Status::invalid_argument(field + " = " + value + ": " + rule);
  };
  if (dim < 1 || dim > (1 << 20)) return bad("dim", std::to_string(dim), "must be in [1, 1048576]");
  for (int h : hidden) {
    if (h < 1 || h > (1 << 16))
      return bad("hidden", std::to_string(h), "sizes must be in [1, 65536]");
  }
  if (latent_dim < 0 || latent_dim > 4096) {
    return bad("latent_dim", std::to_string(latent_dim), "must be in [0, 4096] (0 = automatic)");
  }
  if (residual() && latent_dim != 0 && latent_dim != dim) {
    return bad("latent_dim", std::to_string(latent_dim),
               "the residual architecture quantises in the input space, so it must be 0 or dim (" +
                   std::to_string(dim) + "); use architecture 'mlp' for a bottleneck");
  }
  if (beam_size < 1 || beam_size > 256) {
    return bad("beam_size", std::to_string(beam_size), "must be in [1, 256]");
  }
  if (residual() && (codebook_size & (codebook_size - 1)) != 0) {
    return bad(
        "codebook_size", std::to_string(codebook_size),
        "the residual architecture starts from residual k-means, which needs a power of two");
  }
  if (residual() && normalize_latent) {
    return bad("normalize_latent", "true", "the residual architecture quantises the input space");
  }
  if (residual() && (input_normalization || output_normalization)) {
    return bad("normalize_input/normalize_output", "set",
               "the residual architecture follows the metric");
  }
  if (residual() && shared_codebook) {
    return bad("shared_codebook", "true", "the residual architecture has one codebook per level");
  }
  if (levels < 1 || levels > 16) return bad("levels", std::to_string(levels), "must be in [1, 16]");
  if (codebook_size < 2 || codebook_size > 65536) {
    return bad("codebook_size", std::to_string(codebook_size), "must be in [2, 65536]");
  }
  if (!(beta >= 0.0f && beta <= 100.0f)) {
    return bad("beta", std::to_string(beta), "must be in [0, 100]");
  }
  if (metric != Metric::kCosine && metric != Metric::kL2) {
    return bad("metric", metric_name(metric), "must be 'cosine' or 'l2'");
  }
  return Status::ok();
}

nlohmann::json RqVaeConfig::to_json() const {
  nlohmann::json j = {{"dim", dim},
                      {"architecture", semid::to_string(architecture)},
                      {"activation", semid::to_string(activation)},
                      {"beam_size", beam_size},
                      {"hidden", hidden},
                      {"latent_dim", latent()},
                      {"levels", levels},
                      {"codebook_size", codebook_size},
                      {"shared_codebook", shared_codebook},
                      {"codebook_distance", semid::to_string(codebook_distance)},
                      {"beta", beta},
                      {"metric", metric_name(metric)}};
  if (input_normalization) j["normalize_input"] = *input_normalization;
  if (output_normalization) j["normalize_output"] = *output_normalization;
  if (normalize_latent) j["normalize_latent"] = true;
  if (!source.is_null()) j["source"] = source;
  return j;
}

Result<RqVaeConfig> RqVaeConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return Status::invalid_argument("RQ-VAE config must be a JSON object");
  RqVaeConfig c;
  if (!j.contains("architecture")) {
    // A model file from before the residual architecture: TIGER's MLP, ReLU, greedy encoding.
    c.architecture = RqVaeArchitecture::kMlp;
    c.activation = Activation::kReLU;
    c.beam_size = 1;
    c.hidden = {512, 256, 128};
  }
  try {
    for (const auto& [key, value] : j.items()) {
      if (key == "dim")
        c.dim = value.get<int>();
      else if (key == "architecture") {
        SEMID_ASSIGN_OR_RETURN(c.architecture, parse_architecture(value.get<std::string>()));
      } else if (key == "activation") {
        SEMID_ASSIGN_OR_RETURN(c.activation, parse_activation(value.get<std::string>()));
      } else if (key == "beam_size")
        c.beam_size = value.get<int>();
      else if (key == "hidden")
        c.hidden = value.get<std::vector<int>>();
      else if (key == "latent_dim")
        c.latent_dim = value.get<int>();
      else if (key == "levels")
        c.levels = value.get<int>();
      else if (key == "codebook_size")
        c.codebook_size = value.get<int>();
      else if (key == "shared_codebook")
        c.shared_codebook = value.get<bool>();
      else if (key == "codebook_distance") {
        SEMID_ASSIGN_OR_RETURN(c.codebook_distance,
                               parse_codebook_distance(value.get<std::string>()));
      } else if (key == "beta")
        c.beta = value.get<float>();
      else if (key == "metric") {
        SEMID_ASSIGN_OR_RETURN(c.metric, parse_metric(value.get<std::string>()));
      } else if (key == "source") {
        c.source = value;
      } else if (key == "normalize_input") {
        c.input_normalization = value.get<bool>();
      } else if (key == "normalize_output") {
        c.output_normalization = value.get<bool>();
      } else if (key == "normalize_latent") {
        c.normalize_latent = value.get<bool>();
      } else {
        return Status::invalid_argument("unknown RQ-VAE config field '" + key + "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::invalid_argument(std::string("RQ-VAE config has a field of the wrong type: ") +
                                    e.what());
  }
  SEMID_RETURN_IF_ERROR(c.validate());
  return c;
}

// ---- network ---------------------------------------------------------------------------------

RqVaeNetImpl::RqVaeNetImpl(const RqVaeConfig& config)
    : levels(config.levels),
      beam(config.beam_size),
      normalize_output(config.normalizes_output()),
      normalize_latent(config.normalize_latent),
      shared(config.shared_codebook),
      residual(config.residual()),
      distance(config.codebook_distance) {
  const int latent = config.latent();
  if (residual) {
    encoder = register_module("encoder", make_mlp(config.dim, config.hidden, config.dim,
                                                  config.activation, /*zero_last=*/true));
    // Handles on the same tensors the module holds: loading and training write through them.
    encoder_last_ = encoder->modules(/*include_self=*/false).back()->parameters();
    decoder = register_module("decoder", make_mlp(config.dim, reversed(config.hidden), config.dim,
                                                  config.activation, /*zero_last=*/true));
    // Fixed by the trainer from the data (L2: mean and RMS norm; cosine: 0 and 1).
    input_shift = register_parameter("input_shift", torch::zeros({config.dim}), false);
    input_scale = register_parameter("input_scale", torch::ones({1}), false);
  } else {
    encoder = register_module(
        "encoder", make_mlp(config.dim, config.hidden, latent, config.activation, false));
    decoder = register_module(
        "decoder", make_mlp(latent, reversed(config.hidden), config.dim, config.activation, false));
  }
  const int books = shared ? 1 : config.levels;
  for (int l = 0; l < books; ++l) {
    // Placeholder scale; training re-initialises codebooks with k-means on real residuals.
    codebooks.push_back(register_parameter("codebook_" + std::to_string(l),
                                           torch::randn({config.codebook_size, latent}) * 0.01));
  }
}

bool RqVaeNetImpl::encoder_is_zero() {
  if (!residual) return false;
  std::int64_t version = 0;
  for (const auto& p : encoder_last_) version += static_cast<std::int64_t>(p._version());
  if (version != zero_checked_version_.load(std::memory_order_acquire)) {
    torch::NoGradGuard no_grad;
    bool zero = true;
    for (const auto& p : encoder_last_) zero = zero && !p.any().item<bool>();
    encoder_zero_.store(zero, std::memory_order_relaxed);
    zero_checked_version_.store(version, std::memory_order_release);
  }
  return encoder_zero_.load(std::memory_order_relaxed);
}

torch::Tensor RqVaeNetImpl::encode(const torch::Tensor& x) {
  if (!residual)
    return normalize_latent ? normalize_rows(encoder->forward(x)) : encoder->forward(x);
  torch::Tensor scaled = (x - input_shift) / input_scale;
  // A zero correction adds nothing; under autograd the MLP still runs, so it gets its gradient.
  if (!torch::GradMode::is_enabled() && encoder_is_zero()) return scaled;
  return scaled + encoder->forward(scaled);
}

torch::Tensor RqVaeNetImpl::decode_scaled(const torch::Tensor& s) {
  torch::Tensor y = residual ? s + decoder->forward(s) : decoder->forward(s);
  return normalize_output ? normalize_rows(y) : y;
}

torch::Tensor RqVaeNetImpl::decode(const torch::Tensor& s) {
  torch::Tensor y = decode_scaled(s);
  if (!residual || normalize_output) return y;
  return y * input_scale + input_shift;
}

torch::Tensor RqVaeNetImpl::beam_codes(const torch::Tensor& z) {
  const std::int64_t n = z.size(0);
  const std::int64_t d = z.size(1);
  // Per row: the B best partial SIDs and their residuals.
  torch::Tensor residual_b = z.unsqueeze(1);                     // [n, b, d]
  torch::Tensor codes = torch::zeros({n, 1, 0}, torch::kInt64);  // [n, b, l]
  for (int l = 0; l < levels; ++l) {
    const torch::Tensor& book = codebook(l);  // [K, d]
    const std::int64_t K = book.size(0);
    const std::int64_t b = residual_b.size(1);
    // ||r - e||^2 = ||r||^2 - 2 r.e + ||e||^2 for every (beam, code).
    torch::Tensor error = residual_b.pow(2).sum(2, true) -
                          2.0 * torch::matmul(residual_b, book.t()) + book.pow(2).sum(1);
    const std::int64_t keep = std::min<std::int64_t>(l + 1 < levels ? beam : 1, b * K);
    auto [unused_best, flat] =
        error.reshape({n, b * K}).topk(keep, 1, /*largest=*/false, /*sorted=*/true);
    torch::Tensor parent = torch::div(flat, K, "floor");
    torch::Tensor code = flat.remainder(K);
    residual_b = residual_b.gather(1, parent.unsqueeze(2).expand({n, keep, d})) -
                 book.index_select(0, code.flatten()).reshape({n, keep, d});
    codes = torch::cat(
        {codes.gather(1, parent.unsqueeze(2).expand({n, keep, codes.size(2)})), code.unsqueeze(2)},
        2);
  }
  return codes.select(1, 0);
}

torch::Tensor RqVaeNetImpl::sum_codewords(const torch::Tensor& codes) {
  torch::Tensor sum = codebook(0).index_select(0, codes.select(1, 0));
  for (int l = 1; l < levels; ++l) sum = sum + codebook(l).index_select(0, codes.select(1, l));
  return sum;
}

torch::Tensor RqVaeNetImpl::nearest(int level, const torch::Tensor& residual) {
  const torch::Tensor& book = codebook(level);
  if (distance == CodebookDistance::kCosine) {
    return torch::matmul(normalize_rows(residual), normalize_rows(book).t()).argmax(1);
  }
  // ||r - e||^2 = ||r||^2 - 2 r.e + ||e||^2; ||r||^2 does not change the argmin.
  torch::Tensor scores = book.pow(2).sum(1).unsqueeze(0) - 2.0 * torch::matmul(residual, book.t());
  return scores.argmin(1);
}

Quantized RqVaeNetImpl::quantize(const torch::Tensor& z, bool with_losses) {
  // Beam search ranks partial SIDs by squared error: an L2 rule; the cosine rule stays greedy.
  if (beam > 1 && !with_losses && distance == CodebookDistance::kL2) {
    Quantized out;
    out.codes = beam_codes(z);
    out.quantized = sum_codewords(out.codes);
    return out;
  }
  Quantized out;
  std::vector<torch::Tensor> codes, codebook_terms, commitment_terms;
  torch::Tensor residual = z;
  torch::Tensor sum = torch::zeros_like(z);
  for (int l = 0; l < levels; ++l) {
    torch::Tensor idx;
    {
      torch::NoGradGuard no_grad;
      idx = nearest(l, residual.detach());
    }
    torch::Tensor e = codebook(l).index_select(0, idx);
    out.residuals.push_back(residual.detach());
    if (with_losses) {
      codebook_terms.push_back((residual.detach() - e).pow(2).sum(1).mean());
      commitment_terms.push_back((residual - e.detach()).pow(2).sum(1).mean());
    }
    codes.push_back(idx);
    sum = sum + e;
    // Each level's codebook learns from its own term only (as in ResidualVQ implementations).
    residual = residual - e.detach();
  }
  out.codes = torch::stack(codes, 1);
  out.quantized = sum;
  if (with_losses) {
    out.codebook_loss = torch::stack(codebook_terms);
    out.commitment_loss = torch::stack(commitment_terms);
  }
  return out;
}

torch::Tensor to_tensor(std::size_t n, std::size_t d, const float* x) {
  auto t =
      torch::empty({static_cast<std::int64_t>(n), static_cast<std::int64_t>(d)}, torch::kFloat32);
  if (n * d > 0) std::memcpy(t.data_ptr<float>(), x, n * d * sizeof(float));
  return t;
}

torch::Tensor normalize_rows(const torch::Tensor& x) {
  return x / x.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace semid

// ---- RqVae -----------------------------------------------------------------------------------

namespace semid {
namespace {

// Inference works in chunks so that memory stays bounded for any n.
constexpr std::size_t kInferenceChunk = 8192;

std::map<std::string, safetensors::Tensor> export_tensors(RqVaeNet& net) {
  std::map<std::string, safetensors::Tensor> tensors;
  for (const auto& item : net->named_parameters()) {
    torch::Tensor t = item.value().detach().contiguous();
    std::vector<std::int64_t> shape(t.sizes().begin(), t.sizes().end());
    tensors.emplace(item.key(),
                    safetensors::Tensor::from_floats(
                        shape, std::span<const float>(t.data_ptr<float>(),
                                                      static_cast<std::size_t>(t.numel()))));
  }
  return tensors;
}

}  // namespace

RqVae::RqVae(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

void RqVae::set_threads(int threads) { torch::set_num_threads(std::max(1, threads)); }
int RqVae::threads() { return torch::get_num_threads(); }
RqVae::~RqVae() = default;

const RqVaeConfig& RqVae::config() const { return impl_->config; }
const std::string& RqVae::content_hash() const { return impl_->hash; }

Result<std::unique_ptr<RqVae>> RqVae::create(const RqVaeConfig& config, std::uint64_t seed) {
  SEMID_RETURN_IF_ERROR(config.validate());
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->config.latent_dim = config.latent();
  torch::manual_seed(seed);
  impl->net = RqVaeNet(config);
  impl->net->eval();
  std::unique_ptr<RqVae> model(new RqVae(std::move(impl)));
  model->refresh_content_hash();
  return model;
}

void RqVae::refresh_content_hash() {
  impl_->hash = model_file::content_hash(kind(), config().to_json(), export_tensors(impl_->net));
}

Result<std::string> RqVae::to_bytes() const {
  return model_file::serialize(kind(), config().to_json(), export_tensors(impl_->net));
}

Status RqVae::save(const std::string& path) const {
  SEMID_ASSIGN_OR_RETURN(std::string bytes, to_bytes());
  return write_file_atomically(path, bytes).with_context("saving model");
}

Result<std::unique_ptr<RqVae>> RqVae::from_bytes(std::string_view bytes) {
  SEMID_ASSIGN_OR_RETURN(auto parsed, model_file::parse(std::string(bytes)));
  return from_parsed(parsed);
}

Result<std::unique_ptr<RqVae>> RqVae::from_parsed(const model_file::Parsed& parsed) {
  if (parsed.kind != "rqvae") {
    return Status::invalid_argument("model file holds a '" + parsed.kind + "' model, not 'rqvae'");
  }
  SEMID_ASSIGN_OR_RETURN(RqVaeConfig config, RqVaeConfig::from_json(parsed.config));
  config.latent_dim = config.latent();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->net = RqVaeNet(config);
  impl->net->eval();
  auto params = impl->net->named_parameters();
  if (parsed.archive.names().size() != params.size()) {
    return Status::corruption("model file has " + std::to_string(parsed.archive.names().size()) +
                              " tensors, the config needs " + std::to_string(params.size()));
  }
  torch::NoGradGuard no_grad;
  for (auto& item : params) {
    torch::Tensor& param = item.value();
    std::vector<std::int64_t> shape(param.sizes().begin(), param.sizes().end());
    SEMID_ASSIGN_OR_RETURN(auto view,
                           parsed.archive.tensor(item.key(), safetensors::DType::kF32, shape));
    std::memcpy(param.data_ptr<float>(), view.data.data(), view.data.size());
    if (!torch::isfinite(param).all().item<bool>()) {
      return Status::corruption("model tensor '" + item.key() + "' holds NaN or Inf");
    }
  }
  impl->hash = parsed.hash;
  return std::unique_ptr<RqVae>(new RqVae(std::move(impl)));
}

Result<std::unique_ptr<RqVae>> RqVae::load(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  auto model = from_bytes(bytes);
  if (!model) return model.status().with_context("model file '" + path + "'");
  return model;
}

Status RqVae::encode_latent(std::size_t n, const float* x, float* latent) const {
  return torch_guarded("RqVae::encode_latent", [&]() -> Status {
    const int d = dim();
    SEMID_RETURN_IF_ERROR(check_finite(n, static_cast<std::size_t>(d), x));
    c10::InferenceMode guard;
    const std::size_t latent_dim = static_cast<std::size_t>(config().latent_dim);
    for (std::size_t begin = 0; begin < n; begin += kInferenceChunk) {
      const std::size_t rows = std::min(kInferenceChunk, n - begin);
      torch::Tensor input = to_tensor(rows, static_cast<std::size_t>(d), x + begin * d);
      if (config().normalizes_input()) input = normalize_rows(input);
      torch::Tensor z = impl_->network().encode(input).contiguous();
      std::memcpy(latent + begin * latent_dim, z.data_ptr<float>(),
                  rows * latent_dim * sizeof(float));
    }
    return Status::ok();
  });
}

Status RqVae::encode(std::size_t n, const float* x, std::int32_t* codes) const {
  return torch_guarded("RqVae::encode", [&]() -> Status {
    const int d = dim();
    SEMID_RETURN_IF_ERROR(check_finite(n, static_cast<std::size_t>(d), x));
    c10::InferenceMode guard;
    const std::size_t L = static_cast<std::size_t>(levels());
    for (std::size_t begin = 0; begin < n; begin += kInferenceChunk) {
      const std::size_t rows = std::min(kInferenceChunk, n - begin);
      torch::Tensor input = to_tensor(rows, static_cast<std::size_t>(d), x + begin * d);
      if (config().normalizes_input()) input = normalize_rows(input);
      torch::Tensor c = impl_->network()
                            .quantize(impl_->network().encode(input), false)
                            .codes.to(torch::kInt32)
                            .contiguous();
      std::memcpy(codes + begin * L, c.data_ptr<std::int32_t>(), rows * L * sizeof(std::int32_t));
    }
    return Status::ok();
  });
}

Status RqVae::decode(std::size_t n, const std::int32_t* codes, float* out) const {
  return torch_guarded("RqVae::decode", [&]() -> Status {
    const std::size_t L = static_cast<std::size_t>(levels());
    const int K = codebook_size();
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t l = 0; l < L; ++l) {
        const std::int32_t c = codes[i * L + l];
        if (c < 0 || c >= K) {
          return Status::invalid_argument("code " + std::to_string(c) + " at row " +
                                          std::to_string(i) + ", level " + std::to_string(l) +
                                          " is outside [0, " + std::to_string(K) + ")");
        }
      }
    }
    c10::InferenceMode guard;
    const std::size_t d = static_cast<std::size_t>(dim());
    for (std::size_t begin = 0; begin < n; begin += kInferenceChunk) {
      const std::size_t rows = std::min(kInferenceChunk, n - begin);
      torch::Tensor c =
          torch::from_blob(const_cast<std::int32_t*>(codes + begin * L),
                           {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(L)},
                           torch::kInt32)
              .to(torch::kInt64);
      torch::Tensor z = impl_->network().sum_codewords(c);
      torch::Tensor y = impl_->network().decode(z).contiguous();
      std::memcpy(out + begin * d, y.data_ptr<float>(), rows * d * sizeof(float));
    }
    return Status::ok();
  });
}

Status RqVae::decode_latent(std::size_t n, const float* latent, float* out) const {
  return torch_guarded("RqVae::decode_latent", [&]() -> Status {
    const std::size_t latent_dim = static_cast<std::size_t>(config().latent_dim);
    SEMID_RETURN_IF_ERROR(check_finite(n, latent_dim, latent));
    c10::InferenceMode guard;
    const std::size_t d = static_cast<std::size_t>(dim());
    for (std::size_t begin = 0; begin < n; begin += kInferenceChunk) {
      const std::size_t rows = std::min(kInferenceChunk, n - begin);
      torch::Tensor y = impl_->network()
                            .decode(to_tensor(rows, latent_dim, latent + begin * latent_dim))
                            .contiguous();
      std::memcpy(out + begin * d, y.data_ptr<float>(), rows * d * sizeof(float));
    }
    return Status::ok();
  });
}

std::vector<float> RqVae::codebook(int level) const {
  torch::Tensor book = impl_->network().codebook(level).detach().contiguous();
  const float* p = book.data_ptr<float>();
  return {p, p + book.numel()};
}

}  // namespace semid
