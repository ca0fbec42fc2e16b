// Reading LibTorch archives (TorchScript modules, nyto checkpoints, torch::serialize archives,
// values saved by torch.save)
// from files a user gives us, which may be corrupt or hostile. LibTorch's loader trusts a file's
// declared tensor shapes, strides, offsets and storage sizes, so a malformed file yields tensors
// that reach outside their data; these functions load a file and check every tensor in it
// before anything reads one.
#pragma once

#include <string>

namespace c10 {
struct IValue;
}
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

/// Whether `path` is a LibTorch zip archive of one pickled value, as Python's torch.save and
/// torch::pickle_save write it (a data.pkl record and no TorchScript code): what
/// load_pickle_checked reads. False for anything else: a TorchScript archive or nyto checkpoint,
/// a directory, a missing or unreadable file, a file that is no such archive. Never throws.
bool is_pickle_archive(const std::string& path);

/// torch::pickle_load of `path` (a value saved by torch.save in Python or torch::pickle_save) with
/// its tensors on the CPU, then the check of every tensor in the value (nested containers
/// included; a tensor saved alone is named 'data'). Throws as load_module_checked.
c10::IValue load_pickle_checked(const std::string& path, const std::string& not_what);

}  // namespace nyto
