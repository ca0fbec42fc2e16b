// FNV-1a (Fowler, Noll, Vo), the one hash of cli/: the rule and data identities in a training
// checkpoint's settings, the checkpoint digest, the name of a data cache directory. Not for
// security: it detects accidents (a changed file, a flipped digit), not an adversary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nyto::cli {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

/// FNV-1a of `n` bytes at `p`, continuing from `h`.
inline uint64_t fnv1a(const void* p, size_t n, uint64_t h = kFnvOffset) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * kFnvPrime;
  return h;
}

inline uint64_t fnv1a(const std::string& s, uint64_t h = kFnvOffset) { return fnv1a(s.data(), s.size(), h); }

}  // namespace nyto::cli
