// Robustness: random bytes and random token soups never crash, hang or throw, and every
// failure carries at least one diagnostic with a position inside the text.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "frontend/Frontend.h"

using nyto::frontend::compile_source;
using nyto::frontend::render_all;

namespace {

void check_one(const std::string& text) {
  nyto::frontend::FrontendResult r;
  REQUIRE_NOTHROW(r = compile_source(text, "fuzz.nyto"));
  if (!r.ok) {
    REQUIRE(!r.diagnostics.empty());
    for (const auto& d : r.diagnostics) {
      REQUIRE(d.span.line >= 1);
      REQUIRE(d.span.line <= r.source->line_count());
      REQUIRE(d.span.col >= 1);
      REQUIRE(d.code.size() == 5);
    }
    REQUIRE_NOTHROW(render_all(r));
  }
}

}  // namespace

TEST_CASE("fuzz: random bytes") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = char(rng() % 256);
    check_one(s);
  }
}

TEST_CASE("fuzz: random token soups") {
  const char* tokens[] = {"param", "let", "x", "v", "w", "rand", "randn", "where", "clamp", "(",
                          ")", ",", ";", "\n", "=", "+", "-", "*", "/", "**", "<", "<=", "==",
                          "!=", ">", "1", ".5", "1e-3", "2.5E+4", "#c\n", "\t", " ", "sin"};
  std::mt19937 rng(777);
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    int n = int(rng() % 30);
    for (int k = 0; k < n; ++k) {
      s += tokens[rng() % (sizeof tokens / sizeof *tokens)];
      if (rng() % 2) s += ' ';
    }
    check_one(s);
  }
}

TEST_CASE("fuzz: pathological nesting and lengths") {
  check_one(std::string(100000, '('));
  check_one("y = " + std::string(5000, '(') + "x" + std::string(5000, ')'));
  check_one("y = " + std::string(100000, '-') + "x");
  std::string chain = "y = x";
  for (int i = 0; i < 50000; ++i) chain += "+x";
  check_one(chain);
  std::string pow = "y = x";
  for (int i = 0; i < 5000; ++i) pow += "**x";
  check_one(pow);
  check_one(std::string(100000, ')'));
  check_one(std::string(1000, '$'));
  check_one("y = x\n" + std::string(1000, '\n') + "z = ");
  // Long runs of separators once made prediction quadratic; they must parse, and quickly.
  CHECK(compile_source(std::string(200000, '\n') + "y = x" + std::string(200000, ';'), "f").ok);
  check_one("y = " + std::string(20000, '(') + std::string(20000, '\n'));
}
