// Numbers given on the command line (--seed, --set) or to the REPL (:seed, :set, :new seed=),
// parsed one way everywhere. No CLI11 here: the REPL's translation unit does not need it.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace nyto::cli {

/// Parses `s` as a seed (a decimal integer from 0 to 2^64 - 1) into `*out`; returns why it is not
/// one, or "". strtoull and CLI11's conversion to uint64_t alone would wrap "-1" to 2^64 - 1 and
/// saturate larger numbers without a word.
inline std::string seed_error(const std::string& s, unsigned long long* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    return "expected a non-negative integer, got '" + s + "'";
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return "'" + s + "' is larger than 18446744073709551615";
  *out = v;
  return "";
}

/// Parses `s` as a double (decimal or hexadecimal, inf, nan) into `*out`; returns why it is not
/// one, or "". A value beyond double's range is an error rather than a silent infinity; one
/// below the smallest normal rounds (to a subnormal or zero), as strtod does.
inline std::string number_error(const std::string& s, double* out) {
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end == s.c_str() || *end != '\0') return "'" + s + "' is not a number";
  if (errno == ERANGE && std::isinf(d)) return "'" + s + "' is beyond the range of a double";
  *out = d;
  return "";
}

}  // namespace nyto::cli
