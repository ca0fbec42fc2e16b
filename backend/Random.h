// Counter-based random numbers shared by every backend, so draws agree bit for bit.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011), as in ATen's PhiloxRNGEngine.h. Every draw is a pure function of
//   key     = seed (k0 = low 32 bits, k1 = high 32 bits)
//   counter = (c0 = element index in the member's flat storage group,
//              c1 = member index in the swarm (0 for a particle),
//              c2 = low 32 bits of the invocation number,
//              c3 = (storage group << 16) | random call site)
// so nothing depends on thread count, chunking or vector width.
#pragma once

#include <cmath>
#include <cstdint>

namespace nyto::rng {

struct Philox4 {
  uint32_t r[4];
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

inline Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                             uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kPhiloxM0) * c0;
    uint64_t p1 = uint64_t(kPhiloxM1) * c2;
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return {{c0, c1, c2, c3}};
}

struct Key {
  uint64_t seed;
  uint64_t invocation;
  uint32_t group;
};

inline Philox4 draw(const Key& k, uint32_t site, uint32_t member, uint32_t element) {
  return philox4x32_10(element, member, uint32_t(k.invocation), (k.group << 16) | site,
                       uint32_t(k.seed), uint32_t(k.seed >> 32));
}

// Uniform [0, 1): 24 (float) or 53 (double) random bits, exact in the target type.
inline float uniform_f32(const Philox4& p) { return float(p.r[0] >> 8) * 0x1p-24f; }
inline double uniform_f64(const Philox4& p) {
  return double(((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) * 0x1p-53;
}

// Standard normal by Box-Muller on the first two (float) or four (double) words. u1 is in (0, 1]
// so the logarithm is finite.
inline float normal_f32(const Philox4& p) {
  float u1 = float((p.r[0] >> 8) + 1) * 0x1p-24f;
  float u2 = float(p.r[1] >> 8) * 0x1p-24f;
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864769f * u2);
}
inline double normal_f64(const Philox4& p) {
  double u1 = double((((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) + 1) * 0x1p-53;
  double u2 = double(((uint64_t(p.r[2]) << 32) | p.r[3]) >> 11) * 0x1p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

}  // namespace nyto::rng
