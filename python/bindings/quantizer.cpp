// semid.Quantizer, semid.train, semid.load_quantizer.
#include "python/bindings/quantizer.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <set>

#include "index/checkpoint_import.h"
#include "index/rqvae.h"
#include "index/train.h"
#include "python/bindings/arrays.h"

namespace semid::python {
namespace {

// Applies keyword options to the request; an unknown name is a TypeError listing the known ones.
void apply_options(QuantizerTraining& r, const py::kwargs& options) {
  TrainOptions& o = r.rqvae_options;
  RqKMeansTrainOptions& k = r.rqkmeans_options;
  const bool vae = r.kind == QuantizerKind::kRqVae;
  const std::set<std::string> rqvae_names = {"epochs",
                                             "max_steps",
                                             "time_budget_seconds",
                                             "batch_size",
                                             "learning_rate",
                                             "weight_decay",
                                             "patience",
                                             "seed",
                                             "threads",
                                             "warmup_epochs",
                                             "kmeans_iterations",
                                             "decoder_refine_epochs",
                                             "similarity_weight",
                                             "codebook_lr_ratio",
                                             "train_encoder",
                                             "architecture",
                                             "latent_dim",
                                             "hidden",
                                             "activation"};
  const std::set<std::string> kmeans_names = {
      "kmeans_iterations", "iterations", "seed", "threads", "max_points_per_code", "refine_rounds"};
  const std::set<std::string>& known = vae ? rqvae_names : kmeans_names;
  for (const auto& [key, value] : options) {
    const std::string name = key.cast<std::string>();
    if (!known.contains(name)) {
      std::string list;
      for (const std::string& n : known) list += (list.empty() ? "" : ", ") + n;
      throw py::type_error("semid.train(kind='" + std::string(quantizer_kind_name(r.kind)) +
                           "') got an unexpected option '" + name + "'; options: " + list);
    }
    if (!vae) {
      if (name == "iterations" || name == "kmeans_iterations") k.iterations = value.cast<int>();
      if (name == "seed") k.seed = value.cast<std::uint64_t>();
      if (name == "threads") k.threads = value.cast<int>();
      if (name == "max_points_per_code") k.max_points_per_code = value.cast<int>();
      if (name == "refine_rounds") k.refine_rounds = value.cast<int>();
      continue;
    }
    if (name == "epochs") o.epochs = value.cast<int>();
    if (name == "max_steps") o.max_steps = value.cast<std::int64_t>();
    if (name == "time_budget_seconds") o.time_budget_seconds = value.cast<double>();
    if (name == "batch_size") o.batch_size = value.cast<int>();
    if (name == "learning_rate") o.learning_rate = value.cast<double>();
    if (name == "weight_decay") o.weight_decay = value.cast<double>();
    if (name == "patience") o.patience = value.cast<int>();
    if (name == "seed") o.seed = value.cast<std::uint64_t>();
    if (name == "threads") o.threads = value.cast<int>();
    if (name == "warmup_epochs") o.warmup_epochs = value.cast<int>();
    if (name == "kmeans_iterations") o.kmeans_iterations = value.cast<int>();
    if (name == "decoder_refine_epochs") o.decoder_refine_epochs = value.cast<int>();
    if (name == "similarity_weight") o.similarity_weight = value.cast<double>();
    if (name == "codebook_lr_ratio") o.codebook_lr_ratio = value.cast<double>();
    if (name == "train_encoder") o.train_encoder = value.cast<bool>();
    if (name == "architecture") {
      r.rqvae.architecture = value_or_raise(parse_architecture(value.cast<std::string>()));
    }
    if (name == "latent_dim") r.rqvae.latent_dim = value.cast<int>();
    if (name == "hidden") r.rqvae.hidden = value.cast<std::vector<int>>();
    if (name == "activation") {
      r.rqvae.activation = value_or_raise(parse_activation(value.cast<std::string>()));
    }
  }
  // As the CLI and the server: a latent size asks for the bottleneck architecture.
  if (vae && options.contains("latent_dim") && !options.contains("architecture")) {
    r.rqvae.architecture = RqVaeArchitecture::kMlp;
  }
}

PyQuantizer train(py::handle x_in, const std::string& kind, int levels, int codebook_size,
                  const std::string& metric, int beam_size, bool verbose, py::object progress,
                  const py::kwargs& options) {
  const auto x = as_array<float>(x_in, "x", 2);
  QuantizerTraining request;
  request.kind = value_or_raise(parse_quantizer_kind(kind));
  request.levels = levels;
  request.codebook_size = codebook_size;
  request.metric = value_or_raise(parse_metric(metric));
  request.beam_size = beam_size;
  apply_options(request, options);
  // Progress: the callable (or, with verbose, a line on stderr) sees each epoch as a dict; a
  // callable returning False stops training (the best model so far is kept).
  ProgressCallback callback;
  if (!progress.is_none() || verbose) {
    callback = [progress, verbose](const TrainProgress& p) {
      py::gil_scoped_acquire gil;
      if (verbose) {
        py::print(py::str("semid.train epoch {}/{}{} loss {:.5f} val {:.5f} ({:.1f} s)")
                      .format(p.epoch, p.epochs, p.warmup ? " warm-up" : "", p.train_loss,
                              p.validation_loss, p.elapsed_seconds),
                  py::arg("file") = py::module_::import("sys").attr("stderr"));
      }
      if (progress.is_none()) return true;
      py::object answer = progress(to_python(p.to_json()));
      return answer.is_none() || answer.cast<bool>();
    };
  }
  Result<TrainedQuantizer> trained = Status::internal("not trained");
  {
    py::gil_scoped_release release;
    trained = train_quantizer(request, static_cast<std::size_t>(x.shape(0)),
                              static_cast<std::size_t>(x.shape(1)), x.data(), callback);
  }
  TrainedQuantizer t = value_or_raise(std::move(trained));
  return PyQuantizer{std::shared_ptr<const Quantizer>(std::move(t.model)), std::move(t.report)};
}

py::array_t<std::int32_t> encode(const PyQuantizer& q, py::handle x_in) {
  const auto x = as_array<float>(x_in, "x", 2, q.model->dim());
  const auto n = x.shape(0);
  auto codes = new_matrix<std::int32_t>(n, q.model->levels());
  Status status;
  {
    py::gil_scoped_release release;
    status = q.model->encode(static_cast<std::size_t>(n), x.data(), codes.mutable_data());
  }
  check(status);
  return codes;
}

py::array_t<float> decode(const PyQuantizer& q, py::handle codes_in) {
  const auto codes = as_array<std::int32_t>(codes_in, "codes", 2, q.model->levels());
  const auto n = codes.shape(0);
  auto out = new_matrix<float>(n, q.model->dim());
  Status status;
  {
    py::gil_scoped_release release;
    status = q.model->decode(static_cast<std::size_t>(n), codes.data(), out.mutable_data());
  }
  check(status);
  return out;
}

}  // namespace

void bind_quantizer(py::module_& m) {
  py::class_<PyQuantizer>(m, "Quantizer",
                          "A trained semantic-ID model (RQ-VAE or residual k-means), immutable and "
                          "shared by the indexes and collections built from it.")
      .def_property_readonly("kind", [](const PyQuantizer& q) { return q.model->kind(); })
      .def_property_readonly("dim", [](const PyQuantizer& q) { return q.model->dim(); })
      .def_property_readonly("levels", [](const PyQuantizer& q) { return q.model->levels(); })
      .def_property_readonly("codebook_size",
                             [](const PyQuantizer& q) { return q.model->codebook_size(); })
      .def_property_readonly("metric",
                             [](const PyQuantizer& q) { return metric_name(q.model->metric()); })
      .def_property_readonly("content_hash",
                             [](const PyQuantizer& q) { return q.model->content_hash(); })
      .def_property_readonly("config",
                             [](const PyQuantizer& q) { return to_python(q.model->config_json()); })
      .def_property_readonly(
          "report", [](const PyQuantizer& q) { return to_python(q.report); },
          "What training reported (health, epochs, time); {} for a loaded model.")
      .def("encode", &encode, py::arg("x"),
           "Semantic IDs of x (n x dim floats): int32 [n, levels].")
      .def("decode", &decode, py::arg("codes"),
           "Reconstructions of SIDs (int32 [n, levels]): float32 [n, dim].")
      .def(
          "save", [](const PyQuantizer& q, const std::string& path) { check(q.model->save(path)); },
          py::arg("path"), "Writes the model file (safetensors; semid train writes the same).")
      .def(
          "export",
          [](const PyQuantizer& q, const std::string& out_dir, const std::string& format) {
            check(export_checkpoint(*q.model, value_or_raise(parse_checkpoint_format(format)),
                                    out_dir));
          },
          py::arg("out_dir"), py::arg("format") = "residual-quantizer",
          "Writes the model in a PyTorch project's layout: 'residual-quantizer', 'res-kmeans' or "
          "'rqvae-recommender' (see semid.import_checkpoint); a model the layout cannot express "
          "is refused, saying why.")
      .def("__repr__", [](const PyQuantizer& q) {
        return "<semid.Quantizer " + q.model->kind() + " " + std::to_string(q.model->levels()) +
               "x" + std::to_string(q.model->codebook_size()) + " dim " +
               std::to_string(q.model->dim()) + " " + metric_name(q.model->metric()) + ">";
      });

  m.def("train", &train, py::arg("x"), py::kw_only(), py::arg("kind") = "rqvae",
        py::arg("levels") = 3, py::arg("codebook_size") = 256, py::arg("metric") = "cosine",
        py::arg("beam_size") = 5, py::arg("verbose") = false, py::arg("progress") = py::none(),
        "Trains a Quantizer on x (n x d). kind: 'rqvae' (default) or 'rqkmeans'; further keyword "
        "options as `semid train` takes them (epochs, time_budget_seconds, seed, threads, ...). "
        "progress(dict) is called after every RQ-VAE epoch; returning False stops training.");
  m.def(
      "load_quantizer",
      [](const std::string& path) {
        return PyQuantizer{std::shared_ptr<const Quantizer>(value_or_raise(load_quantizer(path))),
                           nlohmann::json::object()};
      },
      py::arg("path"), "Loads a model file written by semid train or Quantizer.save.");
  m.def(
      "import_checkpoint",
      [](const std::string& source, const std::string& format, bool trust_pickle,
         bool cosine_codebook) {
        const CheckpointFormat parsed = value_or_raise(parse_checkpoint_format(format));
        std::unique_ptr<Quantizer> model;
        {
          py::gil_scoped_release release;  // a pickle is converted in a python3-torch process
          auto imported = import_checkpoint(source, parsed, {trust_pickle, cosine_codebook});
          py::gil_scoped_acquire acquire;
          model = value_or_raise(std::move(imported));
        }
        return PyQuantizer{std::shared_ptr<const Quantizer>(std::move(model)),
                           nlohmann::json::object()};
      },
      py::arg("source"), py::arg("format") = "auto", py::kw_only(), py::arg("trust_pickle") = false,
      py::arg("cosine_codebook") = false,
      "A PyTorch tokenizer checkpoint (a safetensors file, a torch pickle, or a hub folder) as a "
      "Quantizer with exactly its SIDs: 'residual-quantizer' (the seed model card), 'res-kmeans', "
      "'lc-rec', 'vector-quantize' or 'rqvae-recommender'; 'auto' detects the layout from the "
      "tensor names "
      "(index/checkpoint_import.h). trust_pickle: unpickle a pickle's Python objects (only for "
      "files you trust); cosine_codebook: vector-quantize codebooks trained with use_cosine_sim.");
  m.def(
      "set_threads", [](int threads) { RqVae::set_threads(threads); }, py::arg("threads"),
      "LibTorch intra-op threads for the RQ-VAE's encoder and decoder.");
}

}  // namespace semid::python
