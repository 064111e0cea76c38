#include "index/quantizer.h"

#include <cmath>
#include <vector>

#include "index/model_file.h"
#include "index/rq_kmeans.h"
#include "index/rqvae.h"

namespace semid {

Status Quantizer::reconstruct(std::size_t n, const float* x, float* out) const {
  std::vector<std::int32_t> codes(n * static_cast<std::size_t>(levels()));
  SEMID_RETURN_IF_ERROR(encode(n, x, codes.data()));
  return decode(n, codes.data(), out);
}

Status check_finite(std::size_t n, std::size_t d, const float* x) {
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < d; ++j) {
      if (!std::isfinite(x[i * d + j])) {
        return Status::invalid_argument("vector " + std::to_string(i) +
                                        " has a non-finite value (" + std::to_string(x[i * d + j]) +
                                        ") at dimension " + std::to_string(j));
      }
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<Quantizer>> load_quantizer(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto parsed, model_file::read(path));
  Result<std::unique_ptr<Quantizer>> model = Status::internal("unreachable");
  if (parsed.kind == "rqvae") {
    auto m = RqVae::from_parsed(parsed);
    if (m)
      model = std::unique_ptr<Quantizer>(std::move(m).value());
    else
      model = m.status();
  } else if (parsed.kind == "rqkmeans") {
    auto m = RqKMeans::from_parsed(parsed);
    if (m)
      model = std::unique_ptr<Quantizer>(std::move(m).value());
    else
      model = m.status();
  } else {
    return Status::invalid_argument("model file '" + path + "' holds an unknown model kind '" +
                                    parsed.kind + "'");
  }
  if (!model) return model.status().with_context("model file '" + path + "'");
  return model;
}

}  // namespace semid
