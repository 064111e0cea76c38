// The Python face of a trained model: semid.Quantizer holds a shared, immutable Quantizer (an
// RQ-VAE or residual k-means), so indexes and collections built from it share one model.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "index/quantizer.h"

namespace semid::python {

struct PyQuantizer {
  std::shared_ptr<const Quantizer> model;
  nlohmann::json report;  // what training reported (empty for a loaded model)
};

}  // namespace semid::python
