// backend/Random.h: Philox against the Random123 known-answer vectors, and the accuracy of the
// libm-free normal (documented in Random.h).
#include <doctest/doctest.h>

#include <cmath>

#include "backend/Random.h"

using namespace nyto;

TEST_CASE("philox4x32-10 known-answer vectors (Random123 kat_vectors)") {
  auto p = rng::philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(p.r[0] == 0x6627e8d5u);
  CHECK(p.r[1] == 0xe169c58du);
  CHECK(p.r[2] == 0xbc57ac4cu);
  CHECK(p.r[3] == 0x9b00dbd8u);
  auto q = rng::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(q.r[0] == 0xd16cfe09u);
  CHECK(q.r[1] == 0x94fdccebu);
  CHECK(q.r[2] == 0x5001e420u);
  CHECK(q.r[3] == 0x24126ea1u);
}

TEST_CASE("libm-free log, cos(2 pi u) and normal are accurate") {
  double max_log32 = 0, max_cos32 = 0, max_n32 = 0, max_log64 = 0, max_cos64 = 0, max_n64 = 0;
  double sum = 0, sum2 = 0;
  const int n = 1 << 20;
  for (uint32_t i = 0; i < uint32_t(n); ++i) {
    auto p = rng::philox4x32_10(i, 0, 0, 0, 42, 43);
    float u1 = float((p.r[0] >> 8) + 1) * 0x1p-24f, u2 = float(p.r[1] >> 8) * 0x1p-24f;
    max_log32 = std::max(max_log32, std::fabs(double(rng::log_f32(u1)) - std::log(double(u1))) /
                                        std::max(1e-30, std::fabs(std::log(double(u1)))));
    max_cos32 = std::max(max_cos32, std::fabs(double(rng::cos2pi_f32(u2)) - std::cos(6.283185307179586 * u2)));
    double zr = std::sqrt(-2 * std::log(double(u1))) * std::cos(6.283185307179586 * u2);
    max_n32 = std::max(max_n32, std::fabs(rng::normal_f32(p) - zr));
    double d1 = double((((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) + 1) * 0x1p-53;
    double d2 = double(((uint64_t(p.r[2]) << 32) | p.r[3]) >> 11) * 0x1p-53;
    if (d1 != 1.0)
      max_log64 = std::max(max_log64, std::fabs(rng::log_f64(d1) - std::log(d1)) / std::fabs(std::log(d1)));
    max_cos64 = std::max(max_cos64, std::fabs(rng::cos2pi_f64(d2) - std::cos(6.283185307179586476925 * d2)));
    double z64 = std::sqrt(-2 * std::log(d1)) * std::cos(6.283185307179586476925 * d2);
    max_n64 = std::max(max_n64, std::fabs(rng::normal_f64(p) - z64));
    double z = rng::normal_f64(p);
    sum += z, sum2 += z * z;
  }
  MESSAGE("max rel err log f32 " << max_log32 << ", f64 " << max_log64 << "; max abs err cos f32 "
                                 << max_cos32 << ", f64 " << max_cos64 << "; normal f32 " << max_n32
                                 << ", f64 " << max_n64);
  CHECK(max_log32 < 3e-7);
  CHECK(max_log64 < 1e-15);
  CHECK(max_cos32 < 3e-7);
  CHECK(max_cos64 < 1e-15);
  CHECK(max_n32 < 2e-6);
  CHECK(max_n64 < 1e-14);
  double mean = sum / n, var = sum2 / n - mean * mean;
  CHECK(std::fabs(mean) < 5e-3);
  CHECK(std::fabs(var - 1) < 5e-3);
}
