// backend/Random.h: the layout of the draws written out by hand, the accuracy of the libm-free
// normal (documented in Random.h), and the kernels' precompiled Philox words
// (backend/llvm/Philox.h) against it. (Philox's known answers: tests/ir/test_random.cpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "backend/Random.h"
#include "backend/llvm/Philox.h"

using namespace nyto;

TEST_CASE("random call sites map onto Philox calls and words as documented") {
  // The layout of Random.h and docs/language.md, written out by hand: site s of member m at
  // element e draws from Philox4x32-10 with key (seed low, seed high) and counter (call, m,
  // invocation, group << 16 | s). Calls are lane-major in blocks of B = 16 S elements (S = 5
  // draws per call for float32, 2 for float64): call = 16 (e / B) + e mod 16 (mod 2^32), slot
  // (e mod B) / 16.
  const rng::Key key{0x0123456789abcdefull, 77, 3};
  auto call = [&](uint32_t site, uint32_t member, uint32_t c) {
    return rng::philox4x32_10(c, member, 77, (3u << 16) | site, 0x89abcdefu, 0x01234567u);
  };
  auto u24 = [](uint32_t bits) { return float(bits) * 0x1p-24f; };
  auto u53 = [](uint32_t hi, uint32_t lo) { return double(((uint64_t(hi) << 32) | lo) >> 11) * 0x1p-53; };
  // Slot 4's 24 bits: r0 ^ r1 << 8 ^ r2 << 16, low 24 bits.
  auto fifth = [](const rng::Philox4& p) { return (p.r[0] ^ (p.r[1] << 8) ^ (p.r[2] << 16)) & 0xFFFFFFu; };
  auto pair = [](uint32_t a, uint32_t b, bool sine) {
    const float u1 = float(a + 1) * 0x1p-24f, u2 = float(b) * 0x1p-24f;
    return std::sqrt(-2.0f * rng::log_f32(u1)) * (sine ? rng::sin2pi_f32(u2) : rng::cos2pi_f32(u2));
  };
  int slots_seen[5] = {};
  for (uint64_t e : {0ull, 1ull, 7ull, 8ull, 15ull, 16ull, 17ull, 31ull, 32ull, 47ull, 48ull, 63ull, 64ull, 65ull,
                     71ull, 72ull, 79ull, 80ull, 95ull, 159ull, 4097ull, 4098ull, 0xFFFFFFFFull, 0x100000000ull,
                     0x100000005ull, 10000000003ull})
    for (uint32_t site : {0u, 1u, 5u, 0x7FFFu}) {
      CAPTURE(e);
      CAPTURE(site);
      // float32: block of 80, 16 calls.
      const uint32_t lane = uint32_t(e % 16), slot = uint32_t(e % 80 / 16), c = uint32_t(16 * (e / 80) + lane);
      ++slots_seen[slot];
      const rng::Philox4 p = call(site, 2, c);
      // uniform: slot s < 4 takes word s's top 24 bits, slot 4 the low bytes of words 0-2.
      CHECK(rng::draw_f32(key, site, false, 2, e) == u24(slot < 4 ? p.r[slot] >> 8 : fifth(p)));
      // normal: slots (0, 1) and (2, 3) are Box-Muller pairs on the words' top 24 bits (u1 from the
      // even word, shifted into (0, 1]; r cos for the even slot, r sin for the odd one). Slot 4
      // pairs lane l < 8 (u1, r cos) with lane l + 8 (u2, r sin) of the same block.
      float z;
      if (slot < 4) {
        const uint32_t w = 2 * (slot / 2);
        z = pair(p.r[w] >> 8, p.r[w + 1] >> 8, slot % 2 == 1);
      } else if (lane < 8) {
        z = pair(fifth(p), fifth(call(site, 2, c + 8)), false);
      } else {
        z = pair(fifth(call(site, 2, c - 8)), fifth(p), true);
      }
      CHECK(rng::draw_f32(key, site, true, 2, e) == z);
      // float64: block of 32, 16 calls, two slots. uniform: words 2s, 2s + 1 (53 bits).
      const uint32_t s2 = uint32_t(e % 32 / 16), c2 = uint32_t(16 * (e / 32) + lane);
      const rng::Philox4 d = call(site, 2, c2);
      CHECK(rng::draw_f64(key, site, false, 2, e) == u53(d.r[2 * s2], d.r[2 * s2 + 1]));
      // normal: u1 from words 0-1, u2 from words 2-3; r cos for slot 0, r sin for slot 1.
      const double d1 = double((((uint64_t(d.r[0]) << 32) | d.r[1]) >> 11) + 1) * 0x1p-53;
      const double d2 = u53(d.r[2], d.r[3]);
      const double rd = std::sqrt(-2.0 * rng::log_f64(d1));
      CHECK(rng::draw_f64(key, site, true, 2, e) == rd * (s2 ? rng::sin2pi_f64(d2) : rng::cos2pi_f64(d2)));
    }
  for (int slot = 0; slot < 5; ++slot) CHECK(slots_seen[slot] > 0);
  // A slot-0 normal is the pair's cosine: normal_f32 on words 0 and 1 of its call.
  CHECK(rng::draw_f32(key, 4, true, 1, 80 + 6) == rng::normal_f32(call(4, 1, 16 + 6), 0));
  // Neighbouring elements, sites and members draw differently.
  int same = 0;
  for (uint64_t e = 0; e < 10000; ++e) {
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 1, false, 0, e);
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 0, false, 1, e);
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 0, false, 0, e + 1);
  }
  CHECK(same < 10);
}

TEST_CASE("float32 slot 4 is uniform and independent of slots 0-3") {
  // Slot 4 takes the words' low bytes, which slots 0-3 do not read: over 2^20 calls its mean is
  // 1/2 and its correlation with each other slot is within a few standard errors of 0.
  const int n = 1 << 20;
  const rng::Key key{99, 1, 0};
  double s4 = 0, q4 = 0, cross[4] = {}, sj[4] = {};
  for (uint32_t i = 0; i < uint32_t(n); ++i) {
    const uint64_t block = i / 16, lane = i % 16;
    float u[5];
    for (uint64_t s = 0; s < 5; ++s) u[s] = rng::draw_f32(key, 0, false, 0, 80 * block + 16 * s + lane);
    s4 += u[4], q4 += double(u[4]) * u[4];
    for (int j = 0; j < 4; ++j) cross[j] += (u[j] - 0.5) * (u[4] - 0.5), sj[j] += u[j];
  }
  // The standard error of the mean is sqrt(1/12 / n) = 2.8e-4; of the covariance 1/12/sqrt(n) = 8e-5.
  CHECK(std::fabs(s4 / n - 0.5) < 0.0015);
  CHECK(std::fabs(q4 / n - 1.0 / 3) < 0.0015);
  for (int j = 0; j < 4; ++j) {
    CAPTURE(j);
    CHECK(std::fabs(sj[j] / n - 0.5) < 0.0015);
    CHECK(std::fabs(cross[j] / n) < 4e-4);
  }
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

TEST_CASE("nyto_philox_words, every form this CPU runs, gives rng::philox4x32_10's words in its layout") {
  // Kernels take their rand() / randn() words from it (backend/llvm/Philox.h); every form must
  // give the same words, for every q (a power of two, below and above each form's lanes) and
  // across the counter's wrap (mask).
  const auto forms = llvm_backend::philox_words_forms();
  REQUIRE(!forms.empty());
  CHECK(forms.back().first == "generic");
  CHECK(llvm_backend::philox_words_symbol().second == forms.front().second);
  const uint32_t key[5] = {0x89abcdefu, 0x01234567u, 5u, 77u, 3u << 16};
  const uint32_t sites[3] = {0, 7, 65535};
  for (const auto& form : forms) {
    const std::string name = form.first;  // (clang 14 cannot capture a structured binding)
    auto fn = reinterpret_cast<llvm_backend::PhiloxWordsFn>(form.second);
    for (int q : {2, 4, 8, 16, 32, 64})
      for (uint32_t mask : {0xFFFFFFFFu >> 2, 0xFFFFFFFFu >> 1})
        for (uint32_t first : {0u, 12u, mask - 5u}) {
          CAPTURE(name);
          CAPTURE(q);
          CAPTURE(first);
          std::vector<uint32_t> out(size_t(3 * 4 * q), 0xDEADBEEFu);
          fn(key, sites, 3, first, mask, q, out.data());
          bool same = true;
          for (int s = 0; s < 3; ++s)
            for (int t = 0; t < q; ++t) {
              auto p = rng::philox4x32_10((first + uint32_t(t)) & mask, key[2], key[3], key[4] | sites[s], key[0], key[1]);
              for (int j = 0; j < 4; ++j) same = same && out[size_t((4 * s + j) * q + t)] == p.r[j];
            }
          CHECK(same);
        }
  }
}
