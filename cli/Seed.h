// Parsing a seed given on the command line or to the REPL's :seed (no CLI11 here: the REPL's
// translation unit does not need it).
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>

namespace nyto::cli {

/// Why `s` is not a seed (a decimal integer from 0 to 2^64 - 1), or "" if it is one. strtoull
/// and CLI11's conversion to uint64_t alone would wrap "-1" to 2^64 - 1 and saturate larger
/// numbers without a word.
inline std::string seed_error(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    return "expected a non-negative integer, got '" + s + "'";
  errno = 0;
  std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return "'" + s + "' is larger than 18446744073709551615";
  return "";
}

}  // namespace nyto::cli
