// Counter-based random numbers shared by every backend, so draws agree bit for bit.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011), as in ATen's PhiloxRNGEngine.h. Every draw of a rand() / randn() site is a pure
// function of
//   key     = seed (k0 = low 32 bits, k1 = high 32 bits)
//   counter = (c0 = call: the element's call in the member's flat storage group (below),
//              c1 = member index in the swarm (0 for a particle),
//              c2 = low 32 bits of the invocation number,
//              c3 = (storage group << 16) | site; sites stay below 0x8000 (at most 32,768): the
//                   upper half of the field keys the draws of language version 1,
//                   docs/language.md "Random numbers")
// so nothing depends on thread count, chunking or vector width.
//
// One Philox call gives four 32-bit words (128 bits) and costs ten rounds: the whole price of a
// draw. A float32 uniform needs 24 bits, so one call serves S = 5 float32 draws (the top 24 bits
// of each word, and a fifth from the four words' low bytes), a float64 uniform 53 bits, so S = 2.
// Calls are laid out lane-major: a block of B = 16 S consecutive elements (80 float32, 32
// float64) is served by 16 consecutive calls, element e taking
//   call = 16 (e / B) + e mod 16  (mod 2^32),   slot = (e mod B) / 16,
// so slot j of the 16 calls is 16 consecutive elements: a vector of 16 (or two of 8, four of 4)
// draws comes from one word of each call with no shuffle between lanes. A site costs 1/5
// (float32) or 1/2 (float64) of a call per element whatever the other sites are; the PSO rule's
// two rand() cost 0.4 calls per element (it was 0.5 with four draws per call and 1 with a call
// per element).
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

// The lane-major layout (header comment): slots per call, elements per block, and element e's
// call and slot. e is the element's place in the member's flat storage group.
inline constexpr uint32_t kCallLanes = 16;
inline constexpr uint32_t slots(bool f64) { return f64 ? 2u : 5u; }
inline constexpr uint32_t block_elems(bool f64) { return kCallLanes * slots(f64); }
inline uint32_t call_of(uint64_t e, bool f64) {
  return uint32_t(kCallLanes * (e / block_elems(f64)) + e % kCallLanes);
}
inline uint32_t slot_of(uint64_t e, bool f64) { return uint32_t(e % block_elems(f64) / kCallLanes); }

// The Philox words of random call site `site`, call `call` (call_of) of member `member`.
inline Philox4 site_call(const Key& k, uint32_t site, uint32_t member, uint32_t call) {
  return philox4x32_10(call, member, uint32_t(k.invocation), (k.group << 16) | site, uint32_t(k.seed),
                       uint32_t(k.seed >> 32));
}

// Uniform [0, 1): 24 (float, from word `word`) or 53 (double, from r0 and r1) random bits, exact
// in the target type.
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

// The 24 bits of float32 slot 4: (r0 ^ r1 << 8 ^ r2 << 16) mod 2^24. Each of its three bytes
// takes in a low byte (of r0, r1, r2) that no other slot reads (slots 0-3 take each word's top
// 24 bits), so it is uniform and independent of them.
inline uint32_t fifth_bits(const Philox4& p) { return (p.r[0] ^ (p.r[1] << 8) ^ (p.r[2] << 16)) & 0xFFFFFFu; }
// The 24 bits of float32 slot s (0-4) of a call.
inline uint32_t bits24(const Philox4& p, uint32_t s) { return s < 4 ? p.r[s] >> 8 : fifth_bits(p); }
// A Box-Muller output on two 24-bit values: u1 = (a + 1) 2^-24 in (0, 1], u2 = b 2^-24;
// r cos(2 pi u2), or r sin(2 pi u2) if `sine` (both outputs of the pair, as ATen's normal_fill).
inline float normal_pair_f32(uint32_t a, uint32_t b, bool sine) {
  float u1 = float(a + 1) * 0x1p-24f;
  float u2 = float(b) * 0x1p-24f;
  return std::sqrt(-2.0f * log_f32(u1)) * (sine ? sin2pi_f32(u2) : cos2pi_f32(u2));
}

// The draw of slot s of lane `lane` of a block (header comment), for a site's draws and the keyed
// draws alike; words(l) gives the Philox words of the block's lane l (its call 16 (e / B) + l):
//   float32 uniform: bits24(s) 2^-24.
//   float32 normal, s < 4: Box-Muller on bits24(2(s/2)) and bits24(2(s/2) + 1), r cos for even s,
//     r sin for odd s. s = 4: on lanes l mod 8 and l mod 8 + 8 of slot 4 (u1 from the first),
//     r cos for lanes 0-7, r sin for lanes 8-15.
//   float64 uniform: ((r[2s] << 32 | r[2s+1]) >> 11) 2^-53.
//   float64 normal: Box-Muller on u1 from r0, r1 and u2 from r2, r3; r cos for s = 0, r sin for 1.
template <class Words>
inline float lane_draw_f32(const Words& words, uint32_t lane, uint32_t s, bool normal) {
  const Philox4 p = words(lane);
  if (!normal) return float(bits24(p, s)) * 0x1p-24f;
  if (s < 4) return normal_pair_f32(bits24(p, s / 2 * 2), bits24(p, s / 2 * 2 + 1), s % 2 != 0);
  const Philox4 q = words(lane ^ 8u);
  return lane < 8 ? normal_pair_f32(fifth_bits(p), fifth_bits(q), false)
                  : normal_pair_f32(fifth_bits(q), fifth_bits(p), true);
}
inline double slot_f64(const Philox4& p, uint32_t s, bool normal) {
  if (!normal) return double(((uint64_t(p.r[2 * s]) << 32) | p.r[2 * s + 1]) >> 11) * 0x1p-53;
  double u1 = double((((uint64_t(p.r[0]) << 32) | p.r[1]) >> 11) + 1) * 0x1p-53;
  double u2 = double(((uint64_t(p.r[2]) << 32) | p.r[3]) >> 11) * 0x1p-53;
  return std::sqrt(-2.0 * log_f64(u1)) * (s ? sin2pi_f64(u2) : cos2pi_f64(u2));
}

// The draw of element `element` whose calls' words are call_words(call): lane_draw_f32 /
// slot_f64 at its call and slot.
template <class CallWords>
inline float element_draw_f32(const CallWords& call_words, uint64_t element, bool normal) {
  const uint32_t base = call_of(element, false) & ~(kCallLanes - 1);
  return lane_draw_f32([&](uint32_t l) { return call_words(base + l); }, uint32_t(element % kCallLanes),
                       slot_of(element, false), normal);
}
template <class CallWords>
inline double element_draw_f64(const CallWords& call_words, uint64_t element, bool normal) {
  return slot_f64(call_words(call_of(element, true)), slot_of(element, true), normal);
}

// Draw of random call site `site` (a rand() if !normal, else a randn()) for element `element` of
// member `member`: what every backend must produce, bit for bit.
inline float draw_f32(const Key& k, uint32_t site, bool normal, uint32_t member, uint64_t element) {
  return element_draw_f32([&](uint32_t c) { return site_call(k, site, member, c); }, element, normal);
}
inline double draw_f64(const Key& k, uint32_t site, bool normal, uint32_t member, uint64_t element) {
  return element_draw_f64([&](uint32_t c) { return site_call(k, site, member, c); }, element, normal);
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

// Keyed draw rand(k, j) / randn(k, j) (language version 1): the blocks of a site's draws,
// counter (call, j, k, group << 16 | 0x8000 | normal). No invocation, member or site: the same
// (seed, k, j) gives the same noise in any rule and run; bit 15 of c3 is never set by a v0 site
// (below 0x8000) and the 0xFFFF group of member draws is no storage group's. Why share calls: ten
// Philox rounds and a logarithm per element were three quarters of an OpenAI-ES step
// (bench/README.md).
inline Philox4 keyed(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint32_t call) {
  return philox4x32_10(call, key_j, key_k, (k.group << 16) | 0x8000u | uint32_t(normal), uint32_t(k.seed),
                       uint32_t(k.seed >> 32));
}
inline float keyed_f32(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint64_t element) {
  return element_draw_f32([&](uint32_t c) { return keyed(k, key_k, key_j, normal, c); }, element, normal);
}
inline double keyed_f64(const Key& k, uint32_t key_k, uint32_t key_j, bool normal, uint64_t element) {
  return element_draw_f64([&](uint32_t c) { return keyed(k, key_k, key_j, normal, c); }, element, normal);
}

}  // namespace nyto::rng
