// `semid train`, `semid encode`, `semid eval`: training semantic-ID models and measuring them.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "index/checkpoint_import.h"
#include "index/exact_knn.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"
#include "index/train.h"
#include "index/trainer.h"
#include "index/vecs_io.h"
#include "tools/commands.h"

namespace semid::tools {
namespace {

struct TrainArgs {
  std::string data, out, report, codes, kind = "rqvae";
  std::string metric = "cosine", distance = "l2", optimizer = "adamw", codebook_update = "gradient";
  std::string architecture = "residual", activation = "silu";
  RqKMeansTrainOptions kmeans;
  RqVaeConfig config;
  TrainOptions options;
  int beam = 5;
  bool quiet = false;
};

// One status line per epoch; redrawn in place on a terminal, logged every 10 epochs otherwise.
void show_progress(const TrainProgress& p, bool tty) {
  std::string usage;
  for (double u : p.used_fraction) usage += fmt::format("{:.2f} ", u);
  const std::string line = fmt::format(
      "epoch {:>4}/{} {} loss {:.4f} (rec {:.4f} commit {:.4f}) val {:.4f} usage [{}] "
      "collisions {:.3f} restarts {} {:.0f}s eta {:.0f}s",
      p.epoch, p.epochs, p.warmup ? "warm-up" : "rq-vae ", p.train_loss, p.reconstruction_loss,
      p.commitment_loss, p.validation_loss, usage.empty() ? "-" : usage.substr(0, usage.size() - 1),
      p.codes.collision_rate, p.dead_codes_restarted, p.elapsed_seconds, p.eta_seconds);
  if (tty) {
    const int width = 30;
    const int filled = p.epochs > 0 ? width * p.epoch / p.epochs : width;
    std::fprintf(stderr, "\r[%s%s] %s\x1b[K", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), line.c_str());
  } else if (p.epoch % 10 == 0 || p.epoch == 1) {
    spdlog::info("{}", line);
  }
}

void run_train(TrainArgs& args) {
  auto data = value_or_throw(read_float_vectors(args.data));
  spdlog::info("training {} on {} vectors of dimension {} from {}", args.kind, data.rows, data.cols,
               args.data);
  QuantizerTraining request;
  request.kind = value_or_throw(parse_quantizer_kind(args.kind));
  request.levels = args.config.levels;
  request.codebook_size = args.config.codebook_size;
  request.metric = value_or_throw(parse_metric(args.metric));
  request.beam_size = args.beam;
  request.rqvae = args.config;
  request.rqvae.codebook_distance = value_or_throw(parse_codebook_distance(args.distance));
  request.rqvae.architecture = value_or_throw(parse_architecture(args.architecture));
  request.rqvae.activation = value_or_throw(parse_activation(args.activation));
  request.rqvae_options = args.options;
  request.rqvae_options.optimizer = value_or_throw(parse_optimizer(args.optimizer));
  request.rqvae_options.codebook_update =
      value_or_throw(parse_codebook_update(args.codebook_update));
  request.rqkmeans_options = args.kmeans;
  request.rqkmeans_options.iterations = args.options.kmeans_iterations;
  request.rqkmeans_options.seed = args.options.seed;
  request.rqkmeans_options.threads = args.options.threads;
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !args.quiet;
  TrainedQuantizer trained = value_or_throw(
      train_quantizer(request, data.rows, data.cols, data.data.data(), [&](const TrainProgress& p) {
        if (!args.quiet) show_progress(p, tty);
        return true;
      }));
  if (tty && request.kind == QuantizerKind::kRqVae) std::fprintf(stderr, "\n");
  const std::unique_ptr<Quantizer>& model = trained.model;
  const nlohmann::json& report = trained.report;
  throw_if_error(model->save(args.out));
  if (!args.codes.empty()) {
    // The in-memory model's SIDs, to compare with `semid encode` from the saved file.
    Int32Matrix codes(data.rows, static_cast<std::size_t>(model->levels()));
    throw_if_error(model->encode(data.rows, data.data.data(), codes.data.data()));
    throw_if_error(write_ivecs(args.codes, codes));
  }
  const auto& codes = report["codes"];
  std::string usage;
  for (const auto& level : codes["levels"])
    usage += fmt::format("{:.3f} ", level["used_fraction"].get<double>());
  spdlog::info(
      "saved {} ({:.1f}s): used_fraction per level [{}] collision_rate {:.4f} "
      "mean_cosine {:.4f}",
      args.out, report["train_seconds"].get<double>(), usage, codes["collision_rate"].get<double>(),
      report["reconstruction"]["mean_cosine"].get<double>());
  if (!args.report.empty()) {
    std::ofstream(args.report) << report.dump(2) << "\n";
    spdlog::info("report written to {}", args.report);
  }
}

void run_encode(const std::string& model_path, const std::string& data_path,
                const std::string& out) {
  auto model = value_or_throw(load_quantizer(model_path));
  auto data = value_or_throw(read_float_vectors(data_path));
  if (data.cols != static_cast<std::size_t>(model->dim())) {
    throw std::runtime_error(fmt::format("{} has dimension {}, the model expects {}", data_path,
                                         data.cols, model->dim()));
  }
  Int32Matrix codes(data.rows, static_cast<std::size_t>(model->levels()));
  throw_if_error(model->encode(data.rows, data.data.data(), codes.data.data()));
  if (out.size() > 4 && out.substr(out.size() - 4) == ".tsv") {
    std::ofstream file(out);
    for (std::size_t i = 0; i < codes.rows; ++i) {
      file << i;
      for (std::size_t l = 0; l < codes.cols; ++l) file << '\t' << codes.row(i)[l];
      file << '\n';
    }
    if (!file) throw std::runtime_error("cannot write " + out);
  } else {
    throw_if_error(write_ivecs(out, codes));
  }
  spdlog::info("encoded {} vectors to {}", data.rows, out);
}

void run_eval(const std::string& model_path, const std::string& base_path,
              const std::string& query_path, const std::string& gt_path, int k, bool json) {
  auto model = value_or_throw(load_quantizer(model_path));
  auto base = value_or_throw(read_float_vectors(base_path));
  auto queries = value_or_throw(read_float_vectors(query_path));
  auto gt = value_or_throw(read_int32_vectors(gt_path));
  const auto d = static_cast<std::size_t>(model->dim());
  if (base.cols != d || queries.cols != d) {
    throw std::runtime_error(fmt::format("dimensions differ: model {}, base {}, queries {}", d,
                                         base.cols, queries.cols));
  }
  if (gt.rows != queries.rows || gt.cols < static_cast<std::size_t>(k)) {
    throw std::runtime_error(fmt::format("ground truth is {} x {}, need {} rows and >= {} columns",
                                         gt.rows, gt.cols, queries.rows, k));
  }
  const auto start = std::chrono::steady_clock::now();
  Int32Matrix codes(base.rows, static_cast<std::size_t>(model->levels()));
  throw_if_error(model->encode(base.rows, base.data.data(), codes.data.data()));
  FloatMatrix decoded(base.rows, d);
  throw_if_error(model->decode(base.rows, codes.data.data(), decoded.data.data()));
  // Exhaustive: every item ranked by the exact metric between the query and its reconstruction.
  const Metric metric = model->metric() == Metric::kCosine ? Metric::kCosine : Metric::kL2;
  auto knn = value_or_throw(exact_knn(decoded, queries, k, metric));
  const double recall = recall_at_k(knn.ids, gt, k);
  auto health = value_or_throw(evaluate_health(*model, base.rows, base.data.data()));
  nlohmann::json out = {
      {"model", model_path},
      {"kind", model->kind()},
      {"k", k},
      {"queries", queries.rows},
      {"items", base.rows},
      {"recall_at_k", recall},
      {"codes", health.first.to_json()},
      {"reconstruction", health.second.to_json()},
      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("recall@%d %.4f  collision_rate %.4f  unique_sids %zu  mean_cosine %.4f\n", k,
                recall, health.first.collision_rate, health.first.unique_sids,
                health.second.mean_cosine);
    for (std::size_t l = 0; l < health.first.levels.size(); ++l) {
      const auto& u = health.first.levels[l];
      std::printf("level %zu: used_fraction %.3f perplexity %.1f top_code_share %.4f\n", l + 1,
                  u.used_fraction, u.perplexity, u.top_code_share);
    }
  }
}

}  // namespace

void register_model_commands(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand("train", "Train a semantic-ID model (RQ-VAE or RQ-KMeans)");
  train->add_option("--data", args->data, "Training vectors (.fvecs, .bvecs or .npy)")->required();
  train->add_option("--out", args->out, "Model file to write (.safetensors)")->required();
  train->add_option("--report", args->report, "Write the training report (JSON) here");
  train->add_option("--codes", args->codes, "Write the training data's SIDs (.ivecs) here");
  train->add_option("--kind", args->kind, "rqvae or rqkmeans")->capture_default_str();
  train->add_option("--metric", args->metric, "cosine or l2")->capture_default_str();
  train->add_option("--levels", args->config.levels, "Levels L")->capture_default_str();
  train->add_option("--codebook-size", args->config.codebook_size, "Codes per level K")
      ->capture_default_str();
  train
      ->add_option("--architecture", args->architecture,
                   "RQ-VAE network: residual (identity plus learned corrections, starts at "
                   "residual k-means) or mlp (TIGER's bottleneck)")
      ->capture_default_str();
  train->add_option("--activation", args->activation, "silu or relu")->capture_default_str();
  train
      ->add_option("--latent-dim", args->config.latent_dim,
                   "Latent size (0 = automatic: d for residual, 32 for mlp)")
      ->capture_default_str();
  train
      ->add_option("--hidden", args->config.hidden,
                   "Hidden layer sizes (residual: of the correction MLPs; mlp: of the encoder)")
      ->capture_default_str();
  train->add_flag("--shared-codebook", args->config.shared_codebook, "One codebook for all levels");
  train->add_option("--codebook-distance", args->distance, "l2 or cosine")->capture_default_str();
  train->add_option("--beta", args->config.beta, "Commitment weight")->capture_default_str();
  train->add_option("--beam", args->beam, "Beam width of encoding (both kinds)")
      ->capture_default_str();
  train
      ->add_option("--kmeans-points-per-code", args->kmeans.max_points_per_code,
                   "RQ-KMeans: train on a sample of K times this many rows (0 = all)")
      ->capture_default_str();
  train
      ->add_option("--kmeans-progressive-floats", args->kmeans.progressive_dim_max_floats,
                   "RQ-KMeans: FAISS's progressive-dim k-means when rows x dim <= this (0 = never)")
      ->capture_default_str();
  train
      ->add_option("--kmeans-refine-rounds", args->kmeans.refine_rounds,
                   "RQ-KMeans: full-data codebook refinement passes after the sample")
      ->capture_default_str();
  auto& o = args->options;
  train->add_option("--epochs", o.epochs, "Epochs (0 = automatic: 20 residual, 200 mlp)")
      ->capture_default_str();
  train
      ->add_option("--similarity-weight", o.similarity_weight,
                   "Residual: weight of in-batch similarity matching")
      ->capture_default_str();
  train
      ->add_option("--codebook-lr-ratio", o.codebook_lr_ratio,
                   "Residual: codebook learning rate / lr")
      ->capture_default_str();
  train->add_flag("--train-encoder", o.train_encoder,
                  "Residual: also train the encoder correction");
  train->add_option("--max-steps", o.max_steps, "Stop after this many steps (0 = no limit)")
      ->capture_default_str();
  train
      ->add_option("--time-budget", o.time_budget_seconds,
                   "Stop after this many seconds (0 = no limit)")
      ->capture_default_str();
  train->add_option("--batch-size", o.batch_size, "Batch size")->capture_default_str();
  train->add_option("--optimizer", args->optimizer, "adamw, adam or adagrad")
      ->capture_default_str();
  train->add_option("--lr", o.learning_rate, "Peak learning rate")->capture_default_str();
  train->add_option("--weight-decay", o.weight_decay, "Weight decay")->capture_default_str();
  train->add_option("--lr-warmup-steps", o.lr_warmup_steps, "Linear learning-rate warm-up")
      ->capture_default_str();
  train->add_option("--grad-clip", o.grad_clip, "Gradient-norm clipping (0 = off)")
      ->capture_default_str();
  train->add_option("--validation", o.validation_fraction, "Validation share")
      ->capture_default_str();
  train->add_option("--patience", o.patience, "Early-stopping patience in epochs")
      ->capture_default_str();
  train->add_option("--seed", o.seed, "Seed")->capture_default_str();
  train->add_option("--threads", o.threads, "Threads")->capture_default_str();
  train->add_option("--warmup-epochs", o.warmup_epochs, "Autoencoder-only epochs")
      ->capture_default_str();
  train->add_option("--codebook-update", args->codebook_update, "gradient or ema")
      ->capture_default_str();
  train->add_option("--ema-decay", o.ema_decay, "EMA decay")->capture_default_str();
  train->add_option("--kmeans-iterations", o.kmeans_iterations, "k-means iterations per level")
      ->capture_default_str();
  train
      ->add_option("--dead-code-steps", o.dead_code_steps,
                   "Restart codes unused this many steps (0 = never)")
      ->capture_default_str();
  train
      ->add_option("--decoder-refine-epochs", o.decoder_refine_epochs,
                   "Decoder-only epochs on the final SIDs")
      ->capture_default_str();
  train->add_flag("--quiet", args->quiet, "No progress output");
  train->callback([args] { run_train(*args); });

  auto encode_args = std::make_shared<std::array<std::string, 3>>();
  auto* encode = app.add_subcommand("encode", "Encode vectors to semantic IDs");
  encode->add_option("--model", (*encode_args)[0], "Model file")->required();
  encode->add_option("--data", (*encode_args)[1], "Vectors")->required();
  encode->add_option("--out", (*encode_args)[2], "Codes (.ivecs or .tsv)")->required();
  encode->callback(
      [encode_args] { run_encode((*encode_args)[0], (*encode_args)[1], (*encode_args)[2]); });

  auto import_args = std::make_shared<std::array<std::string, 3>>();
  (*import_args)[2] = "auto";
  auto import_options = std::make_shared<ImportOptions>();
  auto* importer = app.add_subcommand(
      "import",
      "Import a PyTorch tokenizer checkpoint (safetensors or a torch pickle) as a semid "
      "model");
  importer
      ->add_option("source", (*import_args)[0],
                   "A safetensors file, a torch pickle (.pt/.pth/.ckpt/.bin, converted with "
                   "python3-torch), or a folder with model.safetensors (and config.json)")
      ->required();
  importer->add_flag("--cosine-codebook", import_options->cosine_codebook,
                     "vector-quantize: the codebooks were trained with use_cosine_sim");
  importer->add_flag("--trust-pickle", import_options->trust_pickle,
                     "Unpickle the Python objects of a torch pickle (LC-Rec's args need it); only "
                     "for files you trust: unpickling can run code");
  importer->add_option("--out", (*import_args)[1], "Model file to write")->required();
  importer
      ->add_option(
          "--format", (*import_args)[2],
          "auto, residual-quantizer, res-kmeans, lc-rec, vector-quantize or rqvae-recommender "
          "(index/checkpoint_import.h)")
      ->capture_default_str();
  importer->callback([import_args, import_options] {
    const CheckpointFormat format = value_or_throw(parse_checkpoint_format((*import_args)[2]));
    const auto model =
        value_or_throw(import_checkpoint((*import_args)[0], format, *import_options));
    throw_if_error(model->save((*import_args)[1]));
    const nlohmann::json out = {{"model", (*import_args)[1]},
                                {"kind", model->kind()},
                                {"config", model->config_json()},
                                {"content_hash", model->content_hash()}};
    std::printf("%s\n", out.dump(2).c_str());
  });

  auto export_args = std::make_shared<std::array<std::string, 3>>();
  auto* exporter =
      app.add_subcommand("export", "Write a semid model in a PyTorch project's checkpoint layout");
  exporter->add_option("model", (*export_args)[0], "Model file")->required();
  exporter
      ->add_option("--format", (*export_args)[1],
                   "residual-quantizer, res-kmeans or rqvae-recommender")
      ->required();
  exporter->add_option("--out", (*export_args)[2], "Folder to write (model.safetensors, ...)")
      ->required();
  exporter->callback([export_args] {
    const auto model = value_or_throw(load_quantizer((*export_args)[0]));
    const CheckpointFormat format = value_or_throw(parse_checkpoint_format((*export_args)[1]));
    throw_if_error(export_checkpoint(*model, format, (*export_args)[2]));
    spdlog::info("wrote {} in the {} layout", (*export_args)[2], checkpoint_format_name(format));
  });

  struct EvalArgs {
    std::string model, base, query, gt;
    int k = 10;
    bool json = false;
  };
  auto eval_args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval", "Recall of exhaustive reconstructed-vector search, and model health");
  eval->add_option("--model", eval_args->model, "Model file")->required();
  eval->add_option("--base", eval_args->base, "Base vectors")->required();
  eval->add_option("--query", eval_args->query, "Query vectors")->required();
  eval->add_option("--gt", eval_args->gt, "Ground truth (.ivecs)")->required();
  eval->add_option("--k", eval_args->k, "k")->capture_default_str()->check(CLI::Range(1, 1000));
  eval->add_flag("--json", eval_args->json, "Print JSON");
  eval->callback([eval_args] {
    run_eval(eval_args->model, eval_args->base, eval_args->query, eval_args->gt, eval_args->k,
             eval_args->json);
  });
}

}  // namespace semid::tools
