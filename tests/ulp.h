// Distance in ulps between two values of one floating type, for the tests that bound one
// implementation against another.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace nyto::test {

/// 0 for equal values (and NaN against NaN); ±0 are 1 apart; NaN against a number, the maximum.
template <class T>
int64_t ulp_distance(T a, T b) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<int64_t>::max();
  if (a == b) return std::signbit(a) == std::signbit(b) ? 0 : 1;
  I ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  // Map to a monotonic integer line (negative floats reversed).
  auto key = [](I v) -> int64_t { return v < 0 ? int64_t(std::numeric_limits<I>::min()) - int64_t(v) : int64_t(v); };
  int64_t d = key(ia) - key(ib);
  return d < 0 ? -d : d;
}

}  // namespace nyto::test
