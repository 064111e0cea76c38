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

namespace {

Result<std::unique_ptr<Quantizer>> from_parsed(const model_file::Parsed& parsed) {
  if (parsed.kind == "rqvae") {
    SEMID_ASSIGN_OR_RETURN(auto model, RqVae::from_parsed(parsed));
    return std::unique_ptr<Quantizer>(std::move(model));
  }
  if (parsed.kind == "rqkmeans") {
    SEMID_ASSIGN_OR_RETURN(auto model, RqKMeans::from_parsed(parsed));
    return std::unique_ptr<Quantizer>(std::move(model));
  }
  return Status::invalid_argument("unknown model kind '" + parsed.kind + "' (rqvae or rqkmeans)");
}

}  // namespace

Result<std::unique_ptr<Quantizer>> load_quantizer(const std::string& path) {
  SEMID_ASSIGN_OR_RETURN(auto parsed, model_file::read(path));
  auto model = from_parsed(parsed);
  if (!model) return model.status().with_context("model file '" + path + "'");
  return model;
}

Result<std::unique_ptr<Quantizer>> quantizer_from_bytes(std::string bytes) {
  SEMID_ASSIGN_OR_RETURN(auto parsed, model_file::parse(std::move(bytes)));
  return from_parsed(parsed);
}

}  // namespace semid
