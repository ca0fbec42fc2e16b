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
  // element e draws from Philox4x32-10 with key (seed low, seed high) and counter (e / G, m,
  // invocation, group << 16 | s), G = 4 (float32) or 2 (float64), taking slot e % G of the call.
  const rng::Key key{0x0123456789abcdefull, 77, 3};
  auto call = [&](uint32_t site, uint32_t member, uint32_t block) {
    return rng::philox4x32_10(block, member, 77, (3u << 16) | site, 0x89abcdefu, 0x01234567u);
  };
  auto u24 = [](uint32_t w) { return float(w >> 8) * 0x1p-24f; };
  auto u53 = [](uint32_t hi, uint32_t lo) { return double(((uint64_t(hi) << 32) | lo) >> 11) * 0x1p-53; };
  for (uint32_t e : {0u, 1u, 2u, 3u, 4097u, 4098u, 0xFFFFFFFEu, 0xFFFFFFFFu})
    for (uint32_t site : {0u, 1u, 5u, 0x7FFFu}) {
      auto p4 = call(site, 2, e / 4), p2 = call(site, 2, e / 2);
      const uint32_t s4 = e % 4, s2 = e % 2;
      CAPTURE(e);
      CAPTURE(site);
      // float32 uniform: word e % 4.
      CHECK(rng::draw_f32(key, site, false, 2, e) == u24(p4.r[s4]));
      // float32 normal: Box-Muller on words 2(s/2) (u1, shifted into (0, 1]) and 2(s/2) + 1 (u2),
      // r cos(2 pi u2) for even slots, r sin(2 pi u2) for odd ones.
      const uint32_t w = 2 * (s4 / 2);
      const float u1 = float((p4.r[w] >> 8) + 1) * 0x1p-24f, u2 = u24(p4.r[w + 1]);
      const float r = std::sqrt(-2.0f * rng::log_f32(u1));
      CHECK(rng::draw_f32(key, site, true, 2, e) == r * (s4 % 2 ? rng::sin2pi_f32(u2) : rng::cos2pi_f32(u2)));
      // float64 uniform: words 2s, 2s + 1 of call e / 2 (53 bits).
      CHECK(rng::draw_f64(key, site, false, 2, e) == u53(p2.r[2 * s2], p2.r[2 * s2 + 1]));
      // float64 normal: u1 from words 0-1, u2 from words 2-3.
      const double d1 = double((((uint64_t(p2.r[0]) << 32) | p2.r[1]) >> 11) + 1) * 0x1p-53;
      const double d2 = u53(p2.r[2], p2.r[3]);
      const double rd = std::sqrt(-2.0 * rng::log_f64(d1));
      CHECK(rng::draw_f64(key, site, true, 2, e) == rd * (s2 ? rng::sin2pi_f64(d2) : rng::cos2pi_f64(d2)));
    }
  // An element's even-slot normal is the pair's cosine: normal_f32 on the same two words.
  CHECK(rng::draw_f32(key, 4, true, 1, 6) == rng::normal_f32(call(4, 1, 1), 2));
  // The four elements of a block use each word of the call once; sites and members differ.
  int same = 0;
  for (uint32_t e = 0; e < 10000; ++e) {
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 1, false, 0, e);
    same += rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 0, false, 1, e);
    same += e % 4 != 3 && rng::draw_f32(key, 0, false, 0, e) == rng::draw_f32(key, 0, false, 0, e + 1);
  }
  CHECK(same < 10);
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
