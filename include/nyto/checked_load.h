// Reading LibTorch archives (TorchScript modules, nyto checkpoints, torch::serialize archives)
// from files a user gives us, which may be corrupt or hostile. LibTorch's loader trusts a file's
// declared tensor shapes, strides, offsets and storage sizes, so a malformed file yields tensors
// that reach outside their data; these functions load a file and check every tensor in it
// before anything reads one.
#pragma once

#include <string>

namespace torch::jit {
struct Module;
}
namespace torch::serialize {
class InputArchive;
}

namespace nyto {

/// torch::jit::load of `path` on the CPU, then every tensor reachable from the module (parameters,
/// buffers, other attributes, nested containers and objects, and the constants of its code, which
/// is compiled here) is checked against the data the file holds for it. Throws IOError naming
/// `path`: for a missing or unreadable file, for any failure inside LibTorch's loading ("'path' is
/// `not_what` (corrupt, truncated or another format): reason", where `not_what` says what the
/// file failed to be, e.g. "not a readable nyto particle file"), and for a tensor whose
/// size, strides, storage offset and dtype reach beyond its storage, or whose storage claims more
/// bytes than the file holds (naming the tensor by its attribute path).
torch::jit::Module load_module_checked(const std::string& path, const std::string& not_what);

/// The same for a torch::serialize archive: `ar`.load_from(path) on the CPU, then the check of
/// every tensor under every key (nested archives included). Throws as load_module_checked.
void load_archive_checked(torch::serialize::InputArchive& ar, const std::string& path,
                          const std::string& not_what);

}  // namespace nyto
