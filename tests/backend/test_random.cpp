// backend/Random.h: Philox against the Random123 known-answer vectors, and the accuracy of the
// libm-free normal (documented in Random.h).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>

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

TEST_CASE("random call sites map onto Philox calls and words as documented") {
  // float32: two sites per call (words 0-1 and 2-3); float64: one site per call.
  CHECK(rng::site_slot(0, false).call == 0);
  CHECK(rng::site_slot(0, false).word == 0);
  CHECK(rng::site_slot(1, false).call == 0);
  CHECK(rng::site_slot(1, false).word == 2);
  CHECK(rng::site_slot(2, false).call == 1);
  CHECK(rng::site_slot(2, false).word == 0);
  CHECK(rng::site_slot(5, true).call == 5);
  CHECK(rng::site_slot(5, true).word == 0);

  const rng::Key key{0x0123456789abcdefull, 77, 3};
  // The counter of a call, written out from the documented layout.
  auto words = [&](uint32_t call, uint32_t member, uint32_t element) {
    return rng::philox4x32_10(element, member, 77, (3u << 16) | call, 0x89abcdefu, 0x01234567u);
  };
  for (uint32_t e : {0u, 1u, 4096u, 0xFFFFFFFFu}) {
    auto c0 = words(0, 2, e), c1 = words(1, 2, e);
    CHECK(rng::draw_f32(key, 0, false, 2, e) == float(c0.r[0] >> 8) * 0x1p-24f);
    CHECK(rng::draw_f32(key, 1, false, 2, e) == float(c0.r[2] >> 8) * 0x1p-24f);
    CHECK(rng::draw_f32(key, 2, false, 2, e) == float(c1.r[0] >> 8) * 0x1p-24f);
    CHECK(rng::draw_f32(key, 1, true, 2, e) == rng::normal_f32(c0, 2));
    CHECK(rng::draw_f32(key, 3, true, 2, e) == rng::normal_f32(c1, 2));
    CHECK(rng::draw_f64(key, 1, true, 2, e) == rng::normal_f64(c1));
    CHECK(rng::draw_f64(key, 1, false, 2, e) ==
          double(((uint64_t(c1.r[0]) << 32) | c1.r[1]) >> 11) * 0x1p-53);
  }
  // Sites sharing a call are still different numbers.
  int same = 0;
  for (uint32_t e = 0; e < 10000; ++e)
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 1, false, 0, e);
  CHECK(same < 5);
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
