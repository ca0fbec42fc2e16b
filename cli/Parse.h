// Numbers given on the command line (--seed, --set) or to the REPL (:seed, :set, :new seed=),
// parsed one way everywhere. No CLI11 here: the REPL's translation unit does not need it.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdio>
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

/// The values a numeric option accepts: an interval of finite numbers, open or closed at each end,
/// and whether only integers are allowed.
struct Interval {
  double lo, hi;
  bool lo_open = false, hi_open = false;
  bool integer = false;
};

/// The integers from `lo` to `hi`.
inline Interval integers(double lo, double hi) { return {lo, hi, false, false, true}; }

/// `v` as %g would print it, without the '+' and leading zeros of an exponent: 1e30, 0.1, 1e-08.
inline std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  auto e = s.find('e');
  if (e == std::string::npos) return s;
  std::string exp = s.substr(e + 1), sign;
  if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) sign = exp[0] == '-' ? "-" : "", exp.erase(0, 1);
  while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
  return s.substr(0, e + 1) + sign + exp;
}

/// An interval as a reader expects it: "(0, 1e30]", "[1, 1024]".
inline std::string interval_text(const Interval& iv) {
  return std::string(iv.lo_open ? "(" : "[") + short_number(iv.lo) + ", " + short_number(iv.hi) +
         (iv.hi_open ? ")" : "]");
}

/// Parses `s` as a value of `iv` into `*out` (if given); returns why it is not one, or "". NaN and
/// infinities are never in an interval; an integer interval takes decimal digits only.
inline std::string interval_error(const std::string& s, const Interval& iv, double* out = nullptr) {
  std::string want = std::string(iv.integer ? "an integer" : "a number") + " in " + interval_text(iv);
  double d = 0;
  if (iv.integer) {
    size_t digits = s.size() > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (s.size() == digits || s.find_first_not_of("0123456789", digits) != std::string::npos)
      return "expected " + want + ", got '" + s + "'";
    d = std::strtod(s.c_str(), nullptr);  // digits only: exact up to 2^53, and our bounds are below
  } else if (!number_error(s, &d).empty() || std::isnan(d) || std::isinf(d)) {
    return "expected " + want + ", got '" + s + "'";
  }
  if (d < iv.lo || d > iv.hi || (iv.lo_open && d == iv.lo) || (iv.hi_open && d == iv.hi))
    return "must be " + want + ", got " + s;
  if (out) *out = d;
  return "";
}

}  // namespace nyto::cli
