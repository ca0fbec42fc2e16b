// Numbers given on the command line (--seed, --set) or to the REPL (:seed, :set, :new seed=),
// parsed one way everywhere, and numbers written back as text that parser reads. No CLI11 here:
// the REPL's translation unit does not need it.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace nyto::cli {

/// Whether `s` begins with `prefix` (std::string::starts_with is C++20).
inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

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

/// Parses `s` as one number or, when it holds a comma, as comma-separated numbers (a per-member
/// vector: "3,1,4,2"; spaces around a number are ignored), each read as number_error reads one,
/// into `*out` (one element for a single number); returns why it is not, naming the bad part
/// ("'x' (value 2 of 3) is not a number"), or "". `*vector` says whether a comma was given.
inline std::string numbers_error(const std::string& s, std::vector<double>* out, bool* vector) {
  std::vector<double> values;
  *vector = s.find(',') != std::string::npos;
  if (!*vector) {
    double d = 0;
    if (std::string why = number_error(s, &d); !why.empty()) return why;
    *out = {d};
    return "";
  }
  const size_t count = size_t(std::count(s.begin(), s.end(), ',')) + 1;
  size_t begin = 0;
  for (size_t i = 1; i <= count; ++i) {
    size_t end = std::min(s.find(',', begin), s.size());
    std::string part = s.substr(begin, end - begin);
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    const std::string nth = "value " + std::to_string(i) + " of " + std::to_string(count);
    double d = 0;
    if (part.empty()) return nth + " is empty";
    if (std::string why = number_error(part, &d); !why.empty())  // "'x' is not a number"
      return "'" + part + "' (" + nth + ")" + why.substr(part.size() + 2);
    values.push_back(d);
    begin = end + 1;
  }
  *out = std::move(values);
  return "";
}

/// The shortest text that number_error reads back to `v` exactly: 0.1, 2050 (not 2.05e+03),
/// 1e+300, inf, -inf, nan.
inline std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  int p = 1;
  for (; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // 2050, not 2.05e+03: enough digits for %g to stay positional up to 1e17.
  double mag = std::fabs(v);
  if (std::strchr(buf, 'e') && mag >= 1 && mag < 1e17)
    std::snprintf(buf, sizeof buf, "%.*g", std::max(p, int(std::floor(std::log10(mag))) + 1), v);
  return buf;
}

/// `values` as number_text writes each, joined by `separator` (",": what numbers_error reads).
inline std::string numbers_text(const std::vector<double>& values, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i ? separator : "") + number_text(values[i]);
  return out;
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
