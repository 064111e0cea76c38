#include "index/torch_pickle.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "index/file_util.h"

extern char** environ;

namespace semid {
namespace {

namespace fs = std::filesystem;

// argv: pickle, out, trust ("1"/"0"). Exit codes: 0 done, 3 no torch, 4 needs trust, 5 no state
// dict, 6 other load errors (message on stderr).
constexpr const char* kConverter = R"PY(
import json, struct, sys
src, dst, trust = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
try:
    import torch
except ImportError:
    sys.stderr.write("python3-torch is missing (apt-get install python3-torch)")
    sys.exit(3)
import pickle, types

# An unpickler that builds tensors, storages and ordered dicts and no other class: what
# weights_only allows, for torches whose weights-only unpickler lacks opcodes that plain values
# use (torch 1.13 refuses BINFLOAT, so a float in a checkpoint's config fails there).
ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
           ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
           ("torch", "Size")}

class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in ALLOWED or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError("Unsupported global: " + module + "." + name)

restricted = types.SimpleNamespace(__name__="semid_restricted_pickle", Unpickler=Restricted,
                                   load=lambda f, **kw: Restricted(f, **kw).load())
try:
    try:
        obj = torch.load(src, map_location="cpu", weights_only=not trust)
    except TypeError:  # a torch without weights_only
        obj = torch.load(src, map_location="cpu", **({} if trust else {"pickle_module": restricted}))
    except Exception as e:
        if trust or "Unsupported operand" not in str(e):
            raise
        obj = torch.load(src, map_location="cpu", weights_only=False, pickle_module=restricted)
except Exception as e:
    text = str(e).strip().splitlines()
    # A class the weights-only unpickler refuses (LC-Rec's argparse.Namespace, say), as opposed
    # to bytes that are no pickle at all ("Unsupported operand").
    if not trust and any(s in str(e) for s in ("Unsupported class", "Unsupported global", "GLOBAL")):
        sys.stderr.write("it holds Python objects beyond tensors and plain values ("
                         + (text[-1] if text else type(e).__name__)
                         + "); unpickling them can run code: pass the trust option "
                           "only if you trust the file")
        sys.exit(4)
    sys.stderr.write("torch.load failed: " + (text[-1] if text else type(e).__name__))
    sys.exit(6)

def is_tensor_dict(d):
    return isinstance(d, dict) and len(d) > 0 and all(
        torch.is_tensor(v) or is_tensor_dict(v) for v in d.values())

if isinstance(obj, torch.nn.Module):
    obj = obj.state_dict()
extras = {}
if is_tensor_dict(obj):
    state = obj
elif isinstance(obj, dict):
    state = None
    for key in ("state_dict", "model"):
        if is_tensor_dict(obj.get(key)):
            state = obj[key]
            break
    if state is None:
        sys.stderr.write("no state dict: the file is a dict of " + ", ".join(map(str, list(obj)[:12]))
                         + " and none of them ('state_dict', 'model') maps names to tensors")
        sys.exit(5)
    for key, value in obj.items():
        if value is state or key in ("optimizer", "optimizer_state_dict", "scheduler"):
            continue
        if hasattr(value, "__dict__") and not torch.is_tensor(value):
            value = vars(value)
        extras[str(key)] = value
else:
    sys.stderr.write("no state dict: the file holds a " + type(obj).__name__)
    sys.exit(5)

flat = {}
def walk(prefix, d):
    for k, v in d.items():
        name = prefix + str(k)
        if torch.is_tensor(v):
            flat[name] = v
        else:
            walk(name + ".", v)
walk("", state)

def plain(v):
    if torch.is_tensor(v):
        return v.tolist() if v.numel() <= 64 else "tensor" + str(list(v.shape))
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)

names = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
         torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
header, blobs, offset = {"__metadata__": {"semid.pickle_extras": json.dumps(plain(extras))}}, [], 0
for name in sorted(flat):
    t = flat[name].detach().cpu().contiguous()
    if t.dtype.is_floating_point:
        t = t.to(torch.float32)
    if t.dtype not in names:
        sys.stderr.write("tensor '" + name + "' has dtype " + str(t.dtype) + ", which semid does not read")
        sys.exit(6)
    data = t.numpy().tobytes()
    header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                    "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for b in blobs:
        f.write(b)
)PY";

std::string interpreter() {
  if (const char* python = std::getenv("SEMID_PYTHON"); python && *python) return python;
  return "/usr/bin/python3";
}

}  // namespace

bool is_torch_pickle(const std::string& path) {
  for (const char* extension : {".pt", ".pth", ".ckpt", ".bin"}) {
    if (path.ends_with(extension)) return true;
  }
  return false;
}

Status convert_torch_pickle(const std::string& pickle, const std::string& out, bool trust) {
  std::error_code ec;
  if (!fs::is_regular_file(pickle, ec)) {
    return Status::invalid_argument(pickle + " is not a regular file");
  }
  const std::string python = interpreter();
  const std::string errors = out + ".stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errors.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> args = {python, "-c", kConverter, pickle, out, trust ? "1" : "0"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    fs::remove(errors, ec);
    return Status::failed_precondition(
        "converting the torch pickle " + pickle + " needs " + python +
        " with python3-torch (apt-get install python3 python3-torch; or set SEMID_PYTHON): " +
        std::strerror(spawned));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  auto message = read_file(errors);
  fs::remove(errors, ec);
  std::string text = message ? *message : std::string();
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::ok();
  fs::remove(out, ec);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::string what = "converting the torch pickle " + pickle + ": " + text;
  if (code == 4) what += " (semid import --trust-pickle; trust_pickle=True in Python)";
  if (code == 3) return Status::failed_precondition(what + " (interpreter " + python + ")");
  return Status::invalid_argument(what);
}

}  // namespace semid
