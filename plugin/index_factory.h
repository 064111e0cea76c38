// semid::index_factory: faiss::index_factory, extended with IndexRQVAE.
//
// Grammar (components separated by commas, as in FAISS):
//   [IDMap | IDMap2 ,] RQVAE<L>x<B> [, option=value]...
// builds an IndexRQVAE with L levels of 2^B codes each (B in [1, 16]: code_size L bytes for
// B <= 8, else 2L), untrained: call train(). IDMap / IDMap2 wrap it in faiss::IndexIDMap /
// IndexIDMap2 (owning it). Options (each at most once):
//   arch=residual      RqVaeConfig::architecture (residual or mlp)
//   latent=0           RqVaeConfig::latent_dim; a latent size without arch= selects arch=mlp
//   hidden=512         RqVaeConfig::hidden, layer sizes joined by '-' ("none": no hidden layer)
//   beam=5             RqVaeConfig::beam_size        sim=5       TrainOptions::similarity_weight
//   epochs=0           TrainOptions::epochs (0: automatic)  warmup=20   TrainOptions::warmup_epochs
//   batch=1024         TrainOptions::batch_size      lr=0.001    TrainOptions::learning_rate
//   seed=42            TrainOptions::seed            threads=1   TrainOptions::threads
//   time=0             TrainOptions::time_budget_seconds (0: no limit)
// (defaults shown are those of RqVaeConfig and TrainOptions). Example:
//   "IDMap,RQVAE3x8,latent=32,hidden=256-128,epochs=40"
// Any description without an RQVAE component goes to faiss::index_factory unchanged.
//
// metric: METRIC_INNER_PRODUCT (cosine: vectors normalised on the way in) or METRIC_L2 for RQVAE;
// anything FAISS accepts otherwise. The default is FAISS's (METRIC_L2).
// Errors: faiss::FaissException naming the bad component or option.
#pragma once

#include <faiss/Index.h>

namespace semid {

// The caller owns the result.
faiss::Index* index_factory(int d, const char* description,
                            faiss::MetricType metric = faiss::METRIC_L2);

}  // namespace semid
