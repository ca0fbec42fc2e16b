// The persistent kernel cache: each kernel's machine code in a file, so that a second process
// gets a kernel it compiled before without compiling it (docs/kernel-cache.md).
//
// An entry is keyed by everything that changes the machine code: the nyto IR and binding of the
// kernel (kernel_key), its code shape (vector width, masking), the code generator's sources (a
// hash taken at build time), the LLVM version, and the target triple, CPU and features. A file
// holds its full key: a file whose key differs (a hash collision), whose length or checksum is
// wrong, or that cannot be read is not trusted: the kernel is compiled again and the file
// rewritten. Files are written to a temporary name and renamed into place, so two processes
// writing one entry at once leave one whole file.
//
// This header includes no LLVM header; the llvm::ObjectCache is in backend/llvm/Internal.h.
#pragma once

#include <cstdint>
#include <string>

namespace nyto::llvm_backend {

/// The directory the kernel cache uses when none is given: $NYTO_KERNEL_CACHE_DIR if set (set
/// and empty: no cache), else $NYTO_CACHE_DIR/kernels, else $XDG_CACHE_HOME/nyto/kernels, else
/// $HOME/.cache/nyto/kernels (the directories of nyto's data cache, README "Training"); "" (no
/// cache) when none of these is set.
std::string default_cache_dir();

/// Counts of one engine's disk cache since it was created.
struct DiskCacheStats {
  uint64_t hits = 0;      // kernels loaded from a file
  uint64_t misses = 0;    // kernels compiled (no file, or a file not trusted)
  uint64_t rejected = 0;  // files found but not trusted (corrupt, another key)
  uint64_t written = 0;   // files written
  uint64_t write_failures = 0;  // files that could not be written (the kernel still runs)
};

}  // namespace nyto::llvm_backend
