// Counter-based random numbers shared by every backend, so draws agree bit for bit.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011), as in ATen's PhiloxRNGEngine.h. Every draw of a rand() / randn() site is a pure
// function of
//   key     = seed (k0 = low 32 bits, k1 = high 32 bits)
//   counter = (c0 = element block: the element index in the member's flat storage group, taken
//                   as 32 bits, divided by G = 4 (float32) or 2 (float64),
//              c1 = member index in the swarm (0 for a particle),
//              c2 = low 32 bits of the invocation number,
//              c3 = (storage group << 16) | site; sites stay below 0x8000 (at most 32,768): the
//                   upper half of the field keys the draws of language version 1,
//                   docs/language.md "Random numbers")
// so nothing depends on thread count, chunking or vector width.
//
// One Philox call gives four 32-bit words and costs ten rounds: the whole price of a draw. A
// float32 uniform needs one word (24 bits), a float64 uniform two; a Box-Muller normal needs two
// uniforms and gives two normals (r cos and r sin). So each call of a site serves G consecutive
// elements, element e taking slot s = e mod G (block_f32 / block_f64): every word is used, and a
// site costs 1/4 (float32) or 1/2 (float64) of a call per element whatever the other sites are.
// The PSO rule's two rand() cost half a call per element (one call per element when two sites
// shared a call, each taking two words).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

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

// Elements per Philox call of one site (and of a keyed draw): 4 float32 / 2 float64.
inline constexpr uint32_t per_call(bool f64) { return f64 ? 2u : 4u; }

// The Philox words of random call site `site` for element block `block` (elements G block ..
// G block + G - 1, G = per_call) of member `member`.
inline Philox4 site_block(const Key& k, uint32_t site, uint32_t member, uint32_t block) {
  return philox4x32_10(block, member, uint32_t(k.invocation), (k.group << 16) | site, uint32_t(k.seed),
                       uint32_t(k.seed >> 32));
}

// Uniform [0, 1): 24 (float) or 53 (double) random bits, exact in the target type. `word` is the
// site's first word (Slot::word).
inline float uniform_f32(const Philox4& p, int word = 0) { return float(p.r[word] >> 8) * 0x1p-24f; }
inline double uniform_f64(const Philox4& p) {
  return double(((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) * 0x1p-53;
}

// Standard normal by Box-Muller (Box & Muller 1958) on two words from `word` (float) or all four
// (double): z = sqrt(-2 log u1) * cos(2 pi u2), u1 in (0, 1] so the logarithm is finite.
//
// log and cos are NOT libm's: they are written below as a fixed sequence of IEEE + - * / sqrt,
// integer bit operations and selects, so every backend can repeat the exact same sequence and get
// the same bits (the LLVM backend emits it op for op from the coefficient tables below; libm
// differs between vector and scalar paths and between versions). Build this header without FMA
// contraction (GCC's ISO modes, -std=c++17, default to -ffp-contract=off; never add -ffast-math).
//   log(x), x = m 2^e with m in [sqrt(1/2), sqrt(2)): log m = 2 atanh(s), s = (m-1)/(m+1),
//     |s| <= 0.1716, series 2 s (1 + s^2/3 + s^4/5 + ...) truncated where the next term is below
//     2^-30 (float) / 2^-60 (double) relative.
//   cos(2 pi u) = -sin(2 pi b), b = 1/4 - |u - 1/2| in [-1/4, 1/4] (both steps exact), then the
//     Taylor series of sin on [-pi/2, pi/2] truncated below 2^-30 / 2^-62 relative.
// Measured over 2^20 draws against libm's log/cos in double on the same (u1, u2)
// (tests/backend/test_random.cpp): log max relative error 2.0e-7 (float) / 4.8e-16 (double);
// cos(2 pi u) max absolute error 1.6e-7 / 6.7e-16; the normal z max absolute error 6.3e-7 (float)
// / 2.8e-15 (double) for |z| up to 5.7 / 8.6: a few ulp of the dtype, a good standard normal.
inline constexpr float kLogCoefF32[] = {1.0f,        1.0f / 3.0f, 1.0f / 5.0f,
                                        1.0f / 7.0f, 1.0f / 9.0f, 1.0f / 11.0f};
inline constexpr double kLogCoefF64[] = {1.0,        1.0 / 3.0,  1.0 / 5.0,  1.0 / 7.0,
                                         1.0 / 9.0,  1.0 / 11.0, 1.0 / 13.0, 1.0 / 15.0,
                                         1.0 / 17.0, 1.0 / 19.0, 1.0 / 21.0, 1.0 / 23.0};
// (-1)^k / (2k+1)!
inline constexpr float kSinCoefF32[] = {1.0f,
                                        -1.0f / 6.0f,
                                        1.0f / 120.0f,
                                        -1.0f / 5040.0f,
                                        1.0f / 362880.0f,
                                        -1.0f / 39916800.0f,
                                        1.0f / 6227020800.0f,
                                        -1.0f / 1307674368000.0f};
inline constexpr double kSinCoefF64[] = {1.0,
                                         -1.0 / 6.0,
                                         1.0 / 120.0,
                                         -1.0 / 5040.0,
                                         1.0 / 362880.0,
                                         -1.0 / 39916800.0,
                                         1.0 / 6227020800.0,
                                         -1.0 / 1307674368000.0,
                                         1.0 / 355687428096000.0,
                                         -1.0 / 121645100408832000.0,
                                         1.0 / 51090942171709440000.0,
                                         -1.0 / 25852016738884976640000.0,
                                         1.0 / 15511210043330985984000000.0};
inline constexpr float kSqrt2F32 = 1.41421356237309504880f;
inline constexpr double kSqrt2F64 = 1.41421356237309504880;
inline constexpr float kLn2F32 = 0.693147180559945309417f;
inline constexpr double kLn2F64 = 0.693147180559945309417;
inline constexpr float kTwoPiF32 = 6.28318530717958647693f;
inline constexpr double kTwoPiF64 = 6.28318530717958647693;

// log(x) for positive normal x, in the fixed operation order described above.
inline float log_f32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int32_t e = int32_t(bits >> 23) - 127;
  uint32_t mbits = (bits & 0x007FFFFFu) | 0x3F800000u;
  float m;
  std::memcpy(&m, &mbits, sizeof m);
  bool big = m > kSqrt2F32;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  float f = m - 1.0f;
  float s = f / (2.0f + f);
  float z = s * s;
  constexpr int n = sizeof kLogCoefF32 / sizeof kLogCoefF32[0];
  float p = kLogCoefF32[n - 1];
  for (int i = n - 2; i >= 0; --i) p = p * z + kLogCoefF32[i];
  return float(e) * kLn2F32 + (2.0f * s) * p;
}
inline double log_f64(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int32_t e = int32_t(uint32_t(bits >> 52)) - 1023;
  uint64_t mbits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double m;
  std::memcpy(&m, &mbits, sizeof m);
  bool big = m > kSqrt2F64;
  m = big ? m * 0.5 : m;
  e = big ? e + 1 : e;
  double f = m - 1.0;
  double s = f / (2.0 + f);
  double z = s * s;
  constexpr int n = sizeof kLogCoefF64 / sizeof kLogCoefF64[0];
  double p = kLogCoefF64[n - 1];
  for (int i = n - 2; i >= 0; --i) p = p * z + kLogCoefF64[i];
  return double(e) * kLn2F64 + (2.0 * s) * p;
}
// cos(2 pi u) for u in [0, 1).
inline float cos2pi_f32(float u) {
  float b = 0.25f - std::fabs(u - 0.5f);
  float x = kTwoPiF32 * b;
  float z = x * x;
  constexpr int n = sizeof kSinCoefF32 / sizeof kSinCoefF32[0];
  float p = kSinCoefF32[n - 1];
  for (int i = n - 2; i >= 0; --i) p = p * z + kSinCoefF32[i];
  return -(x * p);
}
inline double cos2pi_f64(double u) {
  double b = 0.25 - std::fabs(u - 0.5);
  double x = kTwoPiF64 * b;
  double z = x * x;
  constexpr int n = sizeof kSinCoefF64 / sizeof kSinCoefF64[0];
  double p = kSinCoefF64[n - 1];
  for (int i = n - 2; i >= 0; --i) p = p * z + kSinCoefF64[i];
  return -(x * p);
}

inline float normal_f32(const Philox4& p, int word = 0) {
  float u1 = float((p.r[word] >> 8) + 1) * 0x1p-24f;
  float u2 = float(p.r[word + 1] >> 8) * 0x1p-24f;
  return std::sqrt(-2.0f * log_f32(u1)) * cos2pi_f32(u2);
}
inline double normal_f64(const Philox4& p) {
  double u1 = double((((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) + 1) * 0x1p-53;
  double u2 = double(((uint64_t(p.r[2]) << 32) | p.r[3]) >> 11) * 0x1p-53;
  return std::sqrt(-2.0 * log_f64(u1)) * cos2pi_f64(u2);
}

// sin(2 pi u) for u in [0, 1) as cos(2 pi (u - 1/4 mod 1)): the shift is exact for u on the
// 2^-24 (float) / 2^-53 (double) grid of the uniforms.
inline float sin2pi_f32(float u) { return cos2pi_f32(u >= 0.25f ? u - 0.25f : u + 0.75f); }
inline double sin2pi_f64(double u) { return cos2pi_f64(u >= 0.25 ? u - 0.25 : u + 0.75); }

// Slot s of a block's Philox words (one call serving G = per_call elements, element e taking
// s = e mod G), for a site's draws and the keyed draws alike:
//   float32 uniform: word s;            float32 normal: Box-Muller on words 2(s/2), 2(s/2)+1,
//   float64 uniform: words 2s, 2s+1;    float64 normal: Box-Muller on all four words,
// a normal taking r cos(2 pi u2) for even s and r sin(2 pi u2) for odd s (both outputs of the
// pair, as ATen's normal_fill does).
inline float block_f32(const Philox4& p, uint32_t s, bool normal) {
  if (!normal) return uniform_f32(p, int(s));
  const int w = int(s / 2) * 2;
  float u1 = float((p.r[w] >> 8) + 1) * 0x1p-24f;
  float u2 = float(p.r[w + 1] >> 8) * 0x1p-24f;
  return std::sqrt(-2.0f * log_f32(u1)) * (s % 2 ? sin2pi_f32(u2) : cos2pi_f32(u2));
}
inline double block_f64(const Philox4& p, uint32_t s, bool normal) {
  if (!normal) return double(((uint64_t(p.r[2 * s]) << 32) | p.r[2 * s + 1]) >> 11) * 0x1p-53;
  double u1 = double((((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) + 1) * 0x1p-53;
  double u2 = double(((uint64_t(p.r[2]) << 32) | p.r[3]) >> 11) * 0x1p-53;
  return std::sqrt(-2.0 * log_f64(u1)) * (s ? sin2pi_f64(u2) : cos2pi_f64(u2));
}

// Draw of random call site `site` (a rand() if !normal, else a randn()) for one element: what
// every backend must produce, bit for bit.
inline float draw_f32(const Key& k, uint32_t site, bool normal, uint32_t member, uint32_t element) {
  return block_f32(site_block(k, site, member, element / 4), element % 4, normal);
}
inline double draw_f64(const Key& k, uint32_t site, bool normal, uint32_t member, uint32_t element) {
  return block_f64(site_block(k, site, member, element / 2), element % 2, normal);
}

// Member draw of random call site `site` (mrand() if !normal, else mrandn(); language version 1):
// one double per member, shared by all its elements and storage groups. Counter (0, member,
// invocation, 0xFFFF0000 | site): storage groups are below 0xFFFF and sites below 0x8000, so no
// element draw shares it (docs/language.md, "Random numbers").
inline double member_draw(const Key& k, uint32_t site, bool normal, uint32_t member) {
  Philox4 p = philox4x32_10(0, member, uint32_t(k.invocation), 0xFFFF0000u | site, uint32_t(k.seed),
                            uint32_t(k.seed >> 32));
  return normal ? normal_f64(p) : uniform_f64(p);
}

// pick(k) (language version 1): the uniform of step `step` of member `member`'s partial
// Fisher-Yates shuffle, counter (step, member, invocation, 0xFFFF8000); ir/IR.h states the shuffle.
inline double pick_uniform(const Key& k, uint32_t step, uint32_t member) {
  return uniform_f64(philox4x32_10(step, member, uint32_t(k.invocation), 0xFFFF8000u, uint32_t(k.seed),
                                   uint32_t(k.seed >> 32)));
}

// Keyed draw rand(k, j) / randn(k, j) (language version 1): G = per_call consecutive elements
// share one Philox call, counter (element / G, j, k, group << 16 | 0x8000 | normal), element e
// taking slot e % G (block_f32 / block_f64). No invocation, member or site: the same (seed, k, j)
// gives the same noise in any rule and run; bit 15 of c3 is never set by a v0 site (below
// 0x8000) and the 0xFFFF group of member draws is no storage group's. Why share calls: ten Philox
// rounds and a logarithm per element were three quarters of an OpenAI-ES step (bench/README.md).
inline Philox4 keyed(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint32_t call) {
  return philox4x32_10(call, key_j, key_k, (k.group << 16) | 0x8000u | uint32_t(normal), uint32_t(k.seed),
                       uint32_t(k.seed >> 32));
}
inline float keyed_f32(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint32_t element) {
  return block_f32(keyed(k, key_k, key_j, normal, element / 4), element % 4, normal);
}
inline double keyed_f64(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint32_t element) {
  return block_f64(keyed(k, key_k, key_j, normal, element / 2), element % 2, normal);
}

}  // namespace nyto::rng
