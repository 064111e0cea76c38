// Torch pickles (.pt, .pth, .ckpt, .bin) as safetensors, without unpickling anything in C++: a
// small converter runs in Debian's python3-torch (a separate process), loads the file with
// torch.load(weights_only=True) unless the caller trusts it, and writes the tensors of its state
// dict as safetensors, with the file's other entries (a training config such as LC-Rec's "args"
// or RQ-VAE-Recommender's "model_config") as JSON in the metadata key kPickleExtrasKey.
#pragma once

#include <string>

#include "index/status.h"

namespace semid {

// Metadata key of the converted file holding the pickle's non-tensor entries, as a JSON object.
inline constexpr const char* kPickleExtrasKey = "semid.pickle_extras";

// Whether `path` names a torch pickle by its extension.
bool is_torch_pickle(const std::string& path);

// Converts `pickle` into the safetensors file `out` (replaced if present). The state dict is the
// file itself when it maps names to tensors, else its "state_dict" or "model" entry (nested dicts
// flatten to dotted names); floating tensors are written as F32. `trust`: unpickle arbitrary
// Python objects (only for files from a source you trust: unpickling can run code); without it a
// file holding more than tensors and plain values is InvalidArgument saying so. The interpreter is
// $SEMID_PYTHON, else /usr/bin/python3; without python3-torch it is FailedPrecondition naming the
// package.
Status convert_torch_pickle(const std::string& pickle, const std::string& out, bool trust);

}  // namespace semid
