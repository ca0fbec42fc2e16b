// Parsing, precedence and lowering of every construct of docs/language.md, checked on the IR text.
#include <doctest/doctest.h>

#include <stdexcept>

#include "frontend/Frontend.h"

using nyto::frontend::compile_source;
using nyto::frontend::FrontendOptions;
using nyto::frontend::render_all;

namespace {

std::string ir_of(std::string_view text, const FrontendOptions& options = {}) {
  auto r = compile_source(text, "test.nyto", options);
  INFO(render_all(r));
  REQUIRE(r.ok);
  return nyto::ir::print(r.graph);
}

}  // namespace

TEST_CASE("seed example") {
  CHECK(ir_of("# the seed example\nnet2 = 0.5*net + 10\n") ==
        "input 0 net\n"
        "%0 = const 0.5 : scalar\n"
        "%1 = input net : elem\n"
        "%2 = mul %0, %1 : elem\n"
        "%3 = const 10 : scalar\n"
        "%4 = add %2, %3 : elem\n"
        "out net2 = %4\n");
}

TEST_CASE("PSO: statements see earlier assignments, in-place targets") {
  const char* pso =
      "# standard PSO\n"
      "param w  = 0.729\n"
      "param c1 = 1.4944500000000001\n"
      "param c2 = 1.4944500000000001\n"
      "\n"
      "v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x)\n"
      "x = x + v\n";
  CHECK(ir_of(pso) ==
        "param w = 0.729\n"
        "param c1 = 1.49445\n"
        "param c2 = 1.49445\n"
        "input 0 v\n"
        "input 1 pbest\n"
        "input 2 x\n"
        "input 3 gbest\n"
        "%0 = param w : scalar\n"
        "%1 = param c1 : scalar\n"
        "%2 = param c2 : scalar\n"
        "%3 = input v : elem\n"
        "%4 = mul %0, %3 : elem\n"
        "%5 = rand site 0 : member elem\n"
        "%6 = mul %1, %5 : member elem\n"
        "%7 = input pbest : elem\n"
        "%8 = input x : elem\n"
        "%9 = sub %7, %8 : elem\n"
        "%10 = mul %6, %9 : member elem\n"
        "%11 = add %4, %10 : member elem\n"
        "%12 = rand site 1 : member elem\n"
        "%13 = mul %2, %12 : member elem\n"
        "%14 = input gbest : elem\n"
        "%15 = sub %14, %8 : elem\n"
        "%16 = mul %13, %15 : member elem\n"
        "%17 = add %11, %16 : member elem\n"
        "%18 = add %8, %17 : member elem\n"
        "out v = %17 -> input v\n"
        "out x = %18 -> input x\n");
  // The AST dump shows literals as written.
  CHECK(compile_source(pso, "pso.nyto").ast_dump().find("    Number 0.729 @2:12\n") != std::string::npos);
}

TEST_CASE("APSO") {
  CHECK(ir_of("param alpha = 0.5\nparam beta  = 0.0\n"
              "x = (1 - alpha)*x + alpha*gbest + beta*randn()\n") ==
        "param alpha = 0.5\n"
        "param beta = 0\n"
        "input 0 x\n"
        "input 1 gbest\n"
        "%0 = param alpha : scalar\n"
        "%1 = param beta : scalar\n"
        "%2 = const 1 : scalar\n"
        "%3 = sub %2, %0 : scalar\n"
        "%4 = input x : elem\n"
        "%5 = mul %3, %4 : elem\n"
        "%6 = input gbest : elem\n"
        "%7 = mul %0, %6 : elem\n"
        "%8 = add %5, %7 : elem\n"
        "%9 = randn site 0 : member elem\n"
        "%10 = mul %1, %9 : member elem\n"
        "%11 = add %8, %10 : member elem\n"
        "out x = %11 -> input x\n");
}

TEST_CASE("model merging: a new output, shared subexpressions are one node") {
  CHECK(ir_of("param t = 0.5\nmerged = base + t*(ft_a - base) + t*(ft_b - base)\n") ==
        "param t = 0.5\n"
        "input 0 base\n"
        "input 1 ft_a\n"
        "input 2 ft_b\n"
        "%0 = param t : scalar\n"
        "%1 = input base : elem\n"
        "%2 = input ft_a : elem\n"
        "%3 = sub %2, %1 : elem\n"
        "%4 = mul %0, %3 : elem\n"
        "%5 = add %1, %4 : elem\n"
        "%6 = input ft_b : elem\n"
        "%7 = sub %6, %1 : elem\n"
        "%8 = mul %0, %7 : elem\n"
        "%9 = add %5, %8 : elem\n"
        "out merged = %9\n");
}

TEST_CASE("precedence: ** binds tighter than unary minus and is right-associative") {
  CHECK(ir_of("y = -x**2") ==
        "input 0 x\n"
        "%0 = input x : elem\n"
        "%1 = const 2 : scalar\n"
        "%2 = pow %0, %1 : elem\n"
        "%3 = neg %2 : elem\n"
        "out y = %3\n");
  CHECK(ir_of("y = 2**3**2") ==
        "%0 = const 2 : scalar\n"
        "%1 = const 3 : scalar\n"
        "%2 = pow %1, %0 : scalar\n"
        "%3 = pow %0, %2 : scalar\n"
        "out y = %3\n");
  // A signed exponent, and * below unary minus: 2 ** -x * 3 = (2 ** (-x)) * 3.
  CHECK(ir_of("y = 2 ** -x * 3") ==
        "input 0 x\n"
        "%0 = const 2 : scalar\n"
        "%1 = input x : elem\n"
        "%2 = neg %1 : elem\n"
        "%3 = pow %0, %2 : elem\n"
        "%4 = const 3 : scalar\n"
        "%5 = mul %3, %4 : elem\n"
        "out y = %5\n");
  // Left-associative - and /, * over +.
  CHECK(ir_of("y = a - b - c / d / e + f * g") ==
        "input 0 a\ninput 1 b\ninput 2 c\ninput 3 d\ninput 4 e\ninput 5 f\ninput 6 g\n"
        "%0 = input a : elem\n%1 = input b : elem\n%2 = sub %0, %1 : elem\n"
        "%3 = input c : elem\n%4 = input d : elem\n%5 = div %3, %4 : elem\n"
        "%6 = input e : elem\n%7 = div %5, %6 : elem\n%8 = sub %2, %7 : elem\n"
        "%9 = input f : elem\n%10 = input g : elem\n%11 = mul %9, %10 : elem\n"
        "%12 = add %8, %11 : elem\nout y = %12\n");
}

TEST_CASE("numbers, comments, ';' and newlines inside parentheses") {
  CHECK(ir_of("a = 1 + 0.5; b = .5 * 1e-3 # comment\nc = (2.5E+4 +\n  x\n)\n") ==
        "input 0 x\n"
        "%0 = const 1 : scalar\n%1 = const 0.5 : scalar\n%2 = add %0, %1 : scalar\n"
        "%3 = const 0.001 : scalar\n%4 = mul %1, %3 : scalar\n"
        "%5 = const 25000 : scalar\n%6 = input x : elem\n%7 = add %5, %6 : elem\n"
        "out a = %2\nout b = %4\nout c = %7\n");
  CHECK(ir_of("\n\n;;y = x;\r\n\r\n") == "input 0 x\n%0 = input x : elem\nout y = %0\n");
}

TEST_CASE("built-in functions lower to the IR contract") {
  CHECK(ir_of("y = clamp(x, 0, 1)") ==
        "input 0 x\n%0 = input x : elem\n%1 = const 0 : scalar\n%2 = const 1 : scalar\n"
        "%3 = max %0, %1 : elem\n%4 = min %3, %2 : elem\nout y = %4\n");
  CHECK(ir_of("y = lerp(a, b, 0.25)") ==
        "input 0 a\ninput 1 b\n%0 = input a : elem\n%1 = input b : elem\n"
        "%2 = const 0.25 : scalar\n%3 = sub %1, %0 : elem\n%4 = mul %2, %3 : elem\n"
        "%5 = add %0, %4 : elem\nout y = %5\n");
  CHECK(ir_of("let m = x > 0\ny = where(m, x, 0.1*x)") ==
        "input 0 x\n%0 = input x : elem\n%1 = const 0 : scalar\n%2 = gt %0, %1 : mask\n"
        "%3 = const 0.1 : scalar\n%4 = mul %3, %0 : elem\n"
        "%5 = select %2, %0, %4 : elem\nout y = %5\n");
  CHECK(ir_of("y = abs(sqrt(exp(log(sin(cos(tanh(sigmoid(sign(floor(ceil(min(max(x, 1), 2))))))))))))")
            .find("%15 = abs %14 : elem") != std::string::npos);
  // atan2(y, x) keeps C's argument order.
  CHECK(ir_of("z = acos(asin(atan(atan2(y, x))))") ==
        "input 0 y\ninput 1 x\n%0 = input y : elem\n%1 = input x : elem\n%2 = atan2 %0, %1 : elem\n"
        "%3 = atan %2 : elem\n%4 = asin %3 : elem\n%5 = acos %4 : elem\nout z = %5\n");
}

TEST_CASE("comparisons produce masks for where") {
  for (const char* op : {"<", "<=", ">", ">=", "==", "!="}) {
    auto r = compile_source(std::string("y = where(a ") + op + " b, a, b)", "t.nyto");
    INFO(op << "\n" << render_all(r));
    CHECK(r.ok);
  }
}

TEST_CASE("param defaults fold from literals, earlier params and pure functions") {
  CHECK(ir_of("param a = 2\nparam b = -a**2 + max(a, 3) / 2\nparam c = clamp(lerp(0, 10, 0.5), 0, 4)\n"
              "let k = sqrt(4)\nparam d = where(a < b, k, 1)\ny = x * b + c + d") ==
        "param a = 2\nparam b = -2.5\nparam c = 4\nparam d = 1\ninput 0 x\n"
        "%0 = param a : scalar\n%1 = param b : scalar\n%2 = param c : scalar\n"
        "%3 = const 4 : scalar\n%4 = sqrt %3 : scalar\n%5 = param d : scalar\n"
        "%6 = input x : elem\n%7 = mul %6, %1 : elem\n%8 = add %7, %2 : elem\n"
        "%9 = add %8, %5 : elem\nout y = %9\n");
}

TEST_CASE("SSA: later statements read the newest value; a reassigned name is one output") {
  CHECK(ir_of("y = x + 1\ny = y * 2\nz = y") ==
        "input 0 x\n%0 = input x : elem\n%1 = const 1 : scalar\n%2 = add %0, %1 : elem\n"
        "%3 = const 2 : scalar\n%4 = mul %2, %3 : elem\nout y = %4\nout z = %4\n");
}

TEST_CASE("unary plus is the identity, let is only a node") {
  CHECK(ir_of("let h = +x * 2\ny = h + h") ==
        "input 0 x\n%0 = input x : elem\n%1 = const 2 : scalar\n%2 = mul %0, %1 : elem\n"
        "%3 = add %2, %2 : elem\nout y = %3\n");
}

TEST_CASE("REPL mode: bare expressions become the output _") {
  FrontendOptions repl;
  repl.repl = true;
  auto r = compile_source("x * 2", "<repl>", repl);
  REQUIRE(r.ok);
  CHECK(r.has_expression_result);
  CHECK(nyto::ir::print(r.graph) ==
        "input 0 x\n%0 = input x : elem\n%1 = const 2 : scalar\n%2 = mul %0, %1 : elem\n"
        "out _ = %2\n");
  // A REPL line may only declare a param.
  CHECK(compile_source("param w = 1", "<repl>", repl).ok);
}

TEST_CASE("known names accept bound inputs") {
  FrontendOptions o;
  o.known_names = std::vector<std::string>{"x", "v", "pbest", "gbest"};
  CHECK(compile_source("v = v + rand()*(pbest - x) + (gbest - x)\nx = x + v", "t.nyto", o).ok);
  // A host may bind a name that is also a built-in function's.
  o.known_names->push_back("log");
  CHECK(compile_source("y = log * 2 + log(x)", "t.nyto", o).ok);
}

TEST_CASE("input first-use spans, AST dump") {
  auto r = compile_source("param w = 1\ny = w*a +\tb\n", "t.nyto");
  REQUIRE(r.ok);
  REQUIRE(r.input_first_use.size() == 2);
  CHECK(r.input_first_use[0].line == 2);
  CHECK(r.input_first_use[0].col == 7);
  CHECK(r.input_first_use[1].col == 11);
  CHECK(r.param_spans.at(0).col == 7);
  CHECK(r.ast_dump() ==
        "Program\n"
        "  Param w @1:1\n"
        "    Number 1 @1:11\n"
        "  Assign y @2:1\n"
        "    Binary + @2:5\n"
        "      Binary * @2:5\n"
        "        Name w @2:5\n"
        "        Name a @2:7\n"
        "      Name b @2:11\n");
}

// ---- size and nesting limits (docs/diagnostics.md, "Limits") ------------------------------------

namespace {
std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}
bool has_code(const nyto::frontend::FrontendResult& r, const std::string& code) {
  for (const auto& d : r.diagnostics)
    if (d.code == code) return true;
  return false;
}
}  // namespace

TEST_CASE("an operator chain is one nesting level: a 1000-term rule compiles") {
  // Was E0003 (the chain counted 1000 levels).
  auto r = compile_source("y = x" + repeat(" + rand()*randn()", 1000) + "\n", "terms.nyto");
  INFO(render_all(r));
  REQUIRE(r.ok);
  CHECK(r.graph.rand_sites == 2000);
  CHECK(r.graph.nodes.size() == 4001);
}

TEST_CASE("a 300,000-term chain: no recursion in analysis, destruction or the AST dump") {
  auto r = compile_source("y = x" + repeat(" + x", 300000) + "\n", "chain.nyto");
  INFO(render_all(r));
  REQUIRE(r.ok);
  CHECK(r.graph.nodes.size() == 300001);
  std::string dump = r.ast_dump();
  CHECK(dump.find("[300002] Name x @1:5\n") != std::string::npos);  // deep lines show their depth
  CHECK(dump.size() < 100'000'000);
}

TEST_CASE("100,000-deep nesting is E0003, not a stack overflow") {
  for (std::string text : {"y = " + repeat("(", 100000) + "x" + repeat(")", 100000),
                           "y = " + repeat("-(", 100000) + "x" + repeat(")", 100000),
                           "y = " + repeat("-", 100000) + "x", "y = " + repeat("sin(", 100000) + "x" + repeat(")", 100000),
                           "y = x" + repeat(" ** x", 100000)}) {
    auto r = compile_source(text + "\n", "deep.nyto");
    CHECK(!r.ok);
    CHECK(has_code(r, "E0003"));
  }
}

TEST_CASE("size limits: E0403 past the default number of random sites, not before") {
  std::string at_limit = "y = x" + repeat(" + rand()", 32768) + "\n";
  auto ok = compile_source(at_limit, "sites.nyto");
  INFO(render_all(ok));
  CHECK(ok.ok);
  CHECK(ok.graph.rand_sites == 32768);
  auto r = compile_source("y = x" + repeat(" + rand()", 32768) + " + randn()\n", "sites.nyto");
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].code == "E0403");
  CHECK(r.diagnostics[0].message ==
        "this rule is too large to compile: more than 32,768 rand() and randn() calls; split it "
        "into several rules");
  CHECK(r.diagnostics[0].span.col == int(5 + 9 * 32768 + 3 + 1));  // at the randn() past the limit
}

TEST_CASE("size limits: statements and operations, as set by the host") {
  FrontendOptions o;
  o.limits.statements = 3;
  auto r = compile_source("a = x\nb = a\nc = b\nd = c\n", "s.nyto", o);
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].code == "E0403");
  CHECK(r.diagnostics[0].span.line == 4);
  CHECK(compile_source("a = x\nb = a\nc = b\n", "s.nyto", o).ok);
  o = {};
  o.limits.ir_nodes = 5;
  r = compile_source("a = x * 2\nb = a + 1\nc = b * b\n", "n.nyto", o);
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].code == "E0403");
  CHECK(r.diagnostics[0].span.line == 3);
  o.limits.random_sites = 70000;
  CHECK_THROWS_AS(compile_source("y = x\n", "n.nyto", o), std::invalid_argument);
}
