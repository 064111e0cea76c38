// Importing the PyTorch tokenizers users already have, as semid models that give exactly their
// SIDs. Layouts (auto-detected from tensor names; see issue 12 and each project's own code):
//  - residual-quantizer (the seed model card's ResidualQuantizer, a PyTorchModelHubMixin folder):
//    model.safetensors with quantizers.{l}.embedding.weight [K, d] and config.json
//    {"commitment_cost", "embedding_dim", "num_embeddings", "num_layers"}; no encoder or decoder:
//    the nearest codeword (squared L2) per level on the raw input residual.
//  - res-kmeans (OpenOneRec): centroids.{l} [K, d], levels = the number of keys; the same rule.
// Both become an RQ-KMeans model with the L2 metric and beam 1 (greedy), which is that rule.
//  - lc-rec (LC-Rec's RQVAE, also MiniOneRec's): encoder.mlp_layers.{1,4,7..}.{weight,bias}
//    (Dropout, Linear, ReLU per layer), the mirrored decoder.mlp_layers..., and
//    rq.vq_layers.{l}.embedding.weight [K, e]; usually a torch.save({"args", "state_dict", ...})
//    .pth. It becomes an RQ-VAE with the kMlp architecture, ReLU, the L2 metric and beam 1 (the
//    nearest codeword per level of the encoder's output, as its get_indices).
//  - vector-quantize (lucidrains' ResidualVQ state dict): layers.{l}._codebook.embed [1, K, e]
//    (embed_avg, cluster_size, initted and the like are training state, ignored), optional
//    project_in / project_out (Linear with bias, when codebook_dim != dim). Euclidean codebooks
//    by default; ImportOptions::cosine_codebook for use_cosine_sim (the layout cannot tell). With
//    neither projection nor cosine it is RQ-KMeans (L2, beam 1); otherwise an RQ-VAE with the
//    kMlp architecture and no hidden layer: project_in as the encoder (the identity when absent),
//    project_out as the decoder, the cosine or L2 nearest codeword, beam 1.
//  - rqvae-recommender (EdoardoBotta/RQ-VAE-Recommender's RqVae, a hub folder or the
//    torch.save({"iter", "model", "model_config"}) file): encoder.mlp.{0,2,..}.weight and
//    decoder.mlp... (Linear without bias, SiLU between), layers.{l}.embedding.weight [K, e],
//    optional SimVQ layers.{l}.out_proj.0.weight [e, e]; codebook_normalize (from the config)
//    L2-normalises the encoder output and level 0's codebook; the decoder output always is. It
//    becomes an RQ-VAE with the kMlp architecture (zero biases, SiLU), the effective codebooks
//    (projection and normalisation applied), the raw input, unit-norm output, L2 and beam 1.
// A torch pickle (.pt, .pth, .ckpt, .bin) is never unpickled in C++: index/torch_pickle.h converts
// it in Debian's python3-torch first (weights only, unless the caller trusts the file).
// The model records where it came from in its config's "source" (format, file, SHA-256, the
// source's config.json).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "index/quantizer.h"
#include "index/status.h"

namespace semid {

enum class CheckpointFormat {
  kAuto,
  kResidualQuantizer,
  kResKMeans,
  kLcRec,
  kVectorQuantize,
  kRqVaeRecommender
};

// "auto", "residual-quantizer", "res-kmeans", "lc-rec", "vector-quantize" or "rqvae-recommender"
// (InvalidArgument listing them otherwise).
Result<CheckpointFormat> parse_checkpoint_format(std::string_view name);
const char* checkpoint_format_name(CheckpointFormat format);

struct ImportOptions {
  // Unpickle a torch pickle's Python objects (LC-Rec's argparse "args" need it; only for files
  // you trust, see torch_pickle.h). Default: false.
  bool trust_pickle = false;
  // vector-quantize: the codebooks were trained with use_cosine_sim (nearest codeword by cosine,
  // unit-norm codewords). Default: false (Euclidean, lucidrains' default).
  bool cosine_codebook = false;
};

// `source`: a safetensors file, a torch pickle, or a folder holding model.safetensors (and
// config.json). Errors
// name the file and what is wrong: an unknown layout lists the tensor names found and the formats
// known; missing levels, wrong shapes, mixed layouts, NaN/Inf weights, a config.json that
// disagrees with the tensors, a codebook size that is not a power of two, a truncated file.
Result<std::unique_ptr<Quantizer>> import_checkpoint(const std::string& source,
                                                     CheckpointFormat format,
                                                     const ImportOptions& options = {});

// Writes `model` in a source project's layout, so that its loader gives the same SIDs:
// residual-quantizer writes `out_dir`/model.safetensors (quantizers.{l}.embedding.weight) and
// config.json ({"commitment_cost", "embedding_dim", "num_embeddings", "num_layers"}), res-kmeans
// writes `out_dir`/model.safetensors with centroids.{l}. Only a model those layouts can express
// exports: residual k-means with the L2 metric and beam 1 (greedy nearest codeword per level);
// anything else is FailedPrecondition saying why (an RQ-VAE's encoder and decoder, a cosine
// model's input normalisation, a beam the layouts' greedy rule does not search).
Status export_checkpoint(const Quantizer& model, CheckpointFormat format,
                         const std::string& out_dir);

}  // namespace semid
