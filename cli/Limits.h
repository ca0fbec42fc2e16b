// Bounds on the sizes a user may ask for (zoo model widths, swarm sizes), shared by `nyto train`
// and the REPL. No LibTorch here: cmd_train.cpp's flag wiring includes it.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "cli/Parse.h"

namespace nyto::cli {

/// The widest hidden layer of the zoo's mlp (784*65536 float32 weights: about 200 MB a member).
constexpr int64_t kMaxHidden = 65536;
/// The most members of a swarm made by `nyto train --particles` or `:new ... swarm=N`.
constexpr int64_t kMaxMembers = 100000;

/// Why `bytes` of parameters for `what` cannot be allocated, or "": more than this machine's
/// physical memory is refused before LibTorch tries (and fails with its own message, or swaps).
inline std::string memory_error(double bytes, const std::string& what) {
  double pages = double(::sysconf(_SC_PHYS_PAGES)), page = double(::sysconf(_SC_PAGE_SIZE));
  if (pages <= 0 || page <= 0 || bytes <= pages * page) return "";
  return what + " would need " + short_number(bytes / 1e9) + " GB for its parameters, more than the " +
         "memory of this machine";
}

}  // namespace nyto::cli
