// Philox4x32-10 known answers and the uniform / normal conversions of backend/Random.h.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "backend/Random.h"

using namespace nyto::rng;

static void check_kat(Philox4 p, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  CHECK(p.r[0] == a);
  CHECK(p.r[1] == b);
  CHECK(p.r[2] == c);
  CHECK(p.r[3] == d);
}

// Known-answer vectors of Random123 (kat_vectors, philox4x32 10 rounds), the same ones ATen's
// PhiloxRNGEngine is tested with. philox4x32_10 takes (c0, c1, c2, c3, k0, k1).
TEST_CASE("philox4x32_10 Random123 known answers") {
  check_kat(philox4x32_10(0, 0, 0, 0, 0, 0), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
  check_kat(philox4x32_10(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff),
            0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
  check_kat(philox4x32_10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0),
            0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

TEST_CASE("site_call lays out the counter and key as documented") {
  Key k{0x0123456789abcdefull, 0x1111222233334444ull, 7};
  Philox4 a = site_call(k, 5, 9, 1000);
  Philox4 b = philox4x32_10(1000, 9, 0x33334444u, (7u << 16) | 5u, 0x89abcdefu, 0x01234567u);
  check_kat(a, b.r[0], b.r[1], b.r[2], b.r[3]);
}

TEST_CASE("uniform draws lie in [0, 1) with mean 1/2") {
  const int n = 1 << 20;
  double sum32 = 0, sum64 = 0;
  float lo32 = 1, hi32 = 0;
  double lo64 = 1, hi64 = 0;
  Key k{42, 3, 0};
  for (int i = 0; i < n; ++i) {
    Philox4 p = site_call(k, 0, 0, uint32_t(i));
    float u = uniform_f32(p);
    double d = uniform_f64(p);
    sum32 += u, sum64 += d;
    lo32 = std::fmin(lo32, u), hi32 = std::fmax(hi32, u);
    lo64 = std::fmin(lo64, d), hi64 = std::fmax(hi64, d);
  }
  // The standard error of the mean is sqrt(1/12 / n) = 2.8e-4; 0.002 is 7 of them.
  CHECK(std::fabs(sum32 / n - 0.5) < 0.002);
  CHECK(std::fabs(sum64 / n - 0.5) < 0.002);
  CHECK(lo32 >= 0.0f);
  CHECK(hi32 < 1.0f);
  CHECK(lo64 >= 0.0);
  CHECK(hi64 < 1.0);
  CHECK(lo32 < 1e-4f);  // and they do cover the interval
  CHECK(hi32 > 1 - 1e-4f);
  // The extremes of the conversions are exact: all-zero bits give 0, all-one bits the largest
  // value below 1.
  Philox4 zero{{0, 0, 0, 0}}, ones{{~0u, ~0u, ~0u, ~0u}};
  CHECK(uniform_f32(zero) == 0.0f);
  CHECK(uniform_f64(zero) == 0.0);
  CHECK(uniform_f32(ones) == 1.0f - 0x1p-24f);
  CHECK(uniform_f64(ones) == 1.0 - 0x1p-53);
}

TEST_CASE("normal draws have mean 0 and standard deviation 1") {
  const int n = 1 << 20;
  double s32 = 0, q32 = 0, s64 = 0, q64 = 0;
  bool finite = true;
  Key k{7, 0, 1};
  for (int i = 0; i < n; ++i) {
    Philox4 p = site_call(k, 2, 3, uint32_t(i));
    double a = normal_f32(p), b = normal_f64(p);
    finite = finite && std::isfinite(a) && std::isfinite(b);
    s32 += a, q32 += a * a, s64 += b, q64 += b * b;
  }
  CHECK(finite);
  // Standard error of the mean 1/sqrt(n) = 1e-3, of the variance sqrt(2/n) = 1.4e-3.
  CHECK(std::fabs(s32 / n) < 0.005);
  CHECK(std::fabs(s64 / n) < 0.005);
  CHECK(std::fabs(std::sqrt(q32 / n - (s32 / n) * (s32 / n)) - 1) < 0.005);
  CHECK(std::fabs(std::sqrt(q64 / n - (s64 / n) * (s64 / n)) - 1) < 0.005);
  // u1 = 1 (all-one bits) gives log(1) = 0: exactly zero, never NaN or inf.
  Philox4 ones{{~0u, ~0u, ~0u, ~0u}};
  CHECK(std::isfinite(normal_f32(ones)));
  CHECK(std::isfinite(normal_f64(ones)));
  Philox4 zero{{0, 0, 0, 0}};  // u1 smallest: the largest |z|, still finite
  CHECK(std::isfinite(normal_f32(zero)));
  CHECK(std::isfinite(normal_f64(zero)));
}
