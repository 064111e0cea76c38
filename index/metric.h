// The similarity a search ranks by, shared by exact search, the index and the tools.
//
// - kInnerProduct: larger <x, y> is closer.
// - kL2: smaller squared Euclidean distance is closer.
// - kCosine: larger <x/|x|, y/|y|> is closer (an inner product on L2-normalised copies; a zero
//   vector stays zero and so has similarity 0 to everything).
// Names on the command line and in files: "ip", "l2", "cosine".
#pragma once

#include <string>
#include <string_view>

#include "index/status.h"

namespace semid {

enum class Metric { kInnerProduct, kL2, kCosine };

inline const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::kInnerProduct:
      return "ip";
    case Metric::kL2:
      return "l2";
    case Metric::kCosine:
      return "cosine";
  }
  return "?";
}

// "ip", "l2" or "cosine" (exactly); InvalidArgument naming the value otherwise.
inline Result<Metric> parse_metric(std::string_view name) {
  for (Metric metric : {Metric::kInnerProduct, Metric::kL2, Metric::kCosine}) {
    if (name == metric_name(metric)) return metric;
  }
  return Status::invalid_argument("unknown metric '" + std::string(name) +
                                  "' (expected cosine, ip or l2)");
}

// True when a larger score means closer (ip, cosine); false for l2.
inline bool higher_is_closer(Metric metric) { return metric != Metric::kL2; }

}  // namespace semid
