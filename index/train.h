// train_quantizer: the one training entry point behind every face — `semid train`, the server's
// `PUT {c}` with "train", and the Python binding's `semid.train` — so that either kind trains with
// the same defaults and reports the same figures wherever it is asked for.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "index/metric.h"
#include "index/quantizer.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"
#include "index/status.h"
#include "index/trainer.h"

namespace semid {

enum class QuantizerKind { kRqVae, kRqKMeans };

// "rqvae" or "rqkmeans" (InvalidArgument naming the choices otherwise).
Result<QuantizerKind> parse_quantizer_kind(std::string_view name);
const char* quantizer_kind_name(QuantizerKind kind);

struct QuantizerTraining {
  // Default: kRqVae.
  QuantizerKind kind = QuantizerKind::kRqVae;
  // Levels L, codes per level K and the metric of either kind. Defaults: 3, 256, kCosine.
  int levels = 3;
  int codebook_size = 256;
  Metric metric = Metric::kCosine;
  // Beam width of encoding (and of RQ-KMeans's training). Default: 5.
  int beam_size = 5;
  // kRqVae: the architecture; its dim, levels, codebook_size, metric and beam_size are taken from
  // the data and the fields above.
  RqVaeConfig rqvae;
  TrainOptions rqvae_options;
  // kRqKMeans: how residual k-means trains.
  RqKMeansTrainOptions rqkmeans_options;
};

struct TrainedQuantizer {
  std::unique_ptr<Quantizer> model;
  // kind, config, content_hash, items, train_seconds, codes (CodeHealth) and reconstruction over
  // the training data; an RQ-VAE adds its schedule's report (epochs_run, stop_reason, history...)
  // and options.
  nlohmann::json report;
};

// Trains on x (n * d floats, row-major). progress sees every RQ-VAE epoch (and may stop it);
// RQ-KMeans does not call it. Errors: InvalidArgument for a bad request, too few items or NaN/Inf
// in x, as the kind's trainer reports them.
Result<TrainedQuantizer> train_quantizer(const QuantizerTraining& request, std::size_t n,
                                         std::size_t d, const float* x,
                                         const ProgressCallback& progress = nullptr);

}  // namespace semid
