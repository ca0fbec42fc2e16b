// Warnings about risky particle structures (the seeds' "Particle" chapter) and root queries.
#pragma once

#include <functional>
#include <string>

namespace torch::nn {
class Module;
}

namespace nyto {

/// Receives every warning nyto gives (a module moved between particles, a root module referenced
/// from its own submodule). The default prints "nyto: warning: <message>" to stderr; nullptr
/// silences warnings. Returns the previous handler. Thread-safe.
using WarningHandler = std::function<void(const std::string&)>;
WarningHandler set_warning_handler(WarningHandler handler);

/// Whether `module` is the root module of a live particle (the module the particle was made
/// from or cloned to). A submodule of a particle, or a module in no particle, is not a root.
bool is_root(const torch::nn::Module& module);

}  // namespace nyto
