#include "index/train.h"

#include <chrono>
#include <string>

namespace semid {

Result<QuantizerKind> parse_quantizer_kind(std::string_view name) {
  if (name == "rqvae") return QuantizerKind::kRqVae;
  if (name == "rqkmeans") return QuantizerKind::kRqKMeans;
  return Status::invalid_argument("kind = '" + std::string(name) +
                                  "'; expected 'rqvae' or 'rqkmeans'");
}

const char* quantizer_kind_name(QuantizerKind kind) {
  return kind == QuantizerKind::kRqVae ? "rqvae" : "rqkmeans";
}

Result<TrainedQuantizer> train_quantizer(const QuantizerTraining& request, std::size_t n,
                                         std::size_t d, const float* x,
                                         const ProgressCallback& progress) {
  if (d == 0 || d > static_cast<std::size_t>(1 << 20)) {
    return Status::invalid_argument("training data of dimension " + std::to_string(d));
  }
  const auto start = std::chrono::steady_clock::now();
  TrainedQuantizer out;
  if (request.kind == QuantizerKind::kRqVae) {
    RqVaeConfig config = request.rqvae;
    config.dim = static_cast<int>(d);
    config.levels = request.levels;
    config.codebook_size = request.codebook_size;
    config.metric = request.metric;
    config.beam_size = request.beam_size;
    SEMID_ASSIGN_OR_RETURN(TrainResult result,
                           train_rqvae(config, request.rqvae_options, n, x, progress));
    out.report = result.report.to_json();
    out.report["options"] = request.rqvae_options.to_json();
    out.model = std::move(result.model);
  } else {
    const RqKMeansConfig config{.dim = static_cast<int>(d),
                                .levels = request.levels,
                                .codebook_size = request.codebook_size,
                                .beam_size = request.beam_size,
                                .metric = request.metric};
    SEMID_ASSIGN_OR_RETURN(out.model, RqKMeans::train(config, request.rqkmeans_options, n, x));
    SEMID_ASSIGN_OR_RETURN(const auto health, evaluate_health(*out.model, n, x));
    out.report = {{"codes", health.first.to_json()}, {"reconstruction", health.second.to_json()}};
  }
  out.report["train_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.report["items"] = n;
  out.report["kind"] = out.model->kind();
  out.report["config"] = out.model->config_json();
  out.report["content_hash"] = out.model->content_hash();
  return out;
}

}  // namespace semid
