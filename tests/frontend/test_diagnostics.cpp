// Golden diagnostics: every diagnostics/NAME.nyto compiles to exactly diagnostics/NAME.expected.
// A first line "# repl" compiles in REPL mode; "# known: a, b" passes those known names;
// "# read-only: a, b" those names as read-only inputs.
// NYTO_UPDATE_GOLDENS=1 rewrites the .expected files (review the diff before committing).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "frontend/Frontend.h"

namespace fs = std::filesystem;
using nyto::frontend::compile_source;
using nyto::frontend::FrontendOptions;
using nyto::frontend::render_all;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FrontendOptions options_for(const std::string& text) {
  FrontendOptions o;
  std::string first = text.substr(0, text.find('\n'));
  if (first == "# repl") o.repl = true;
  auto names_after = [&](const std::string& prefix) {
    std::vector<std::string> names;
    std::stringstream ss(first.substr(prefix.size()));
    std::string name;
    while (std::getline(ss, name, ',')) {
      name.erase(std::remove(name.begin(), name.end(), ' '), name.end());
      if (!name.empty()) names.push_back(name);
    }
    return names;
  };
  if (first.rfind("# known:", 0) == 0) o.known_names = names_after("# known:");
  if (first.rfind("# read-only:", 0) == 0) o.read_only = names_after("# read-only:");
  // "# limits: statements=N, ir_nodes=N, random_sites=N": small limits, so an E0403 golden
  // shows the message without a script of a million statements (the defaults: test_parse.cpp).
  if (first.rfind("# limits:", 0) == 0) {
    std::stringstream ss(first.substr(9));
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
      std::string key = item.substr(0, item.find('='));
      long value = std::stol(item.substr(item.find('=') + 1));
      if (key == "statements") o.limits.statements = size_t(value);
      else if (key == "ir_nodes") o.limits.ir_nodes = size_t(value);
      else if (key == "random_sites") o.limits.random_sites = int32_t(value);
      else FAIL("unknown limit " << key);
    }
  }
  return o;
}

std::vector<fs::path> golden_scripts() {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator("diagnostics"))
    if (e.path().extension() == ".nyto") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("golden diagnostics") {
  bool update = std::getenv("NYTO_UPDATE_GOLDENS") != nullptr;
  auto scripts = golden_scripts();
  REQUIRE(!scripts.empty());
  std::set<std::string> codes_seen;
  for (const fs::path& script : scripts) {
    std::string text = read(script);
    auto r = compile_source(text, script.filename().string(), options_for(text));
    std::string got = render_all(r);
    fs::path expected_path = fs::path(script).replace_extension(".expected");
    if (update) std::ofstream(expected_path, std::ios::binary) << got;
    INFO("script: " << script.string());
    CHECK(!r.ok);
    CHECK(got == read(expected_path));
    for (const auto& d : r.diagnostics) codes_seen.insert(d.code);
    // A golden named after a code must produce that code.
    std::string stem = script.stem().string();
    if (stem.size() >= 5 && stem[0] == 'E') {
      bool found = false;
      for (const auto& d : r.diagnostics) found = found || d.code == stem.substr(0, 5);
      CHECK_MESSAGE(found, stem);
    }
  }
  // Every compile-time code of docs/diagnostics.md has a golden.
  for (const char* code : {"E0001", "E0002", "E0003", "E0004", "E0005", "E0101", "E0102", "E0103", "E0104",
                           "E0201", "E0202", "E0203", "E0204", "E0301", "E0302", "E0303",
                           "E0205", "E0206", "E0207", "E0208", "E0401", "E0402", "E0403"})
    CHECK_MESSAGE(codes_seen.count(code) == 1, code);
}

TEST_CASE("all errors of a script are reported, in order") {
  auto r = compile_source(
      "param w = x\n"
      "v = w*v + c1*rnd()*(pbest - x)\n"
      "w = 2\n"
      "y = where(x, 1, 2) + (a < b)\n"
      "let k = 1\n"
      "k = clamp(k, 1)\n",
      "many.nyto");
  std::vector<std::string> codes;
  for (const auto& d : r.diagnostics) codes.push_back(d.code);
  CHECK(codes == std::vector<std::string>{"E0201", "E0103", "E0202", "E0302", "E0301", "E0204",
                                          "E0104"});
}

TEST_CASE("syntax errors: several are reported, columns are 1-based") {
  auto r = compile_source("x = (1 +\ny = 2 * * 3\nz = )\n", "s.nyto");
  REQUIRE(!r.ok);
  CHECK(r.diagnostics.size() >= 1);
  auto r2 = compile_source("a = 1 +\nb = * 2\nc = 3 3\n", "s.nyto");
  REQUIRE(r2.diagnostics.size() == 3);
  CHECK(r2.diagnostics[0].span.line == 1);
  CHECK(r2.diagnostics[0].span.col == 8);
  CHECK(r2.diagnostics[1].span.line == 2);
  CHECK(r2.diagnostics[1].span.col == 5);
  CHECK(r2.diagnostics[2].span.line == 3);
  CHECK(r2.diagnostics[2].span.col == 7);
}

TEST_CASE("rendering: tabs are kept in the caret line, spans clipped at the end of the line") {
  nyto::frontend::Source src("t.nyto", "\tv = w*v + c1*rnd()\n");
  nyto::frontend::Diagnostic d{"E0103", {1, 15, 3}, "unknown function 'rnd'; did you mean 'rand'?"};
  CHECK(nyto::frontend::render(src, d) ==
        "t.nyto:1:15: error[E0103]: unknown function 'rnd'; did you mean 'rand'?\n"
        "\tv = w*v + c1*rnd()\n"
        "\t             ^~~\n");
  nyto::frontend::Diagnostic long_span{"E0301", {1, 18, 100}, "m"};
  CHECK(nyto::frontend::render(src, long_span) ==
        "t.nyto:1:18: error[E0301]: m\n\tv = w*v + c1*rnd()\n\t                ^~\n");
}

TEST_CASE("source: UTF-8 in comments is fine, columns count characters, CRLF and bad bytes") {
  CHECK(compile_source("# Kennedy & Eberhart — 1995, ü\r\ny = x\r\n", "u.nyto").ok);
  auto r = compile_source("y = \xc3\xbc + \xc3\xbc\r\n", "u.nyto");
  REQUIRE(r.diagnostics.size() == 2);
  CHECK(r.diagnostics[0].code == "E0002");
  CHECK(r.diagnostics[0].span.col == 5);
  CHECK(r.diagnostics[1].span.col == 9);
  CHECK(render_all(r) ==
        "u.nyto:1:5: error[E0002]: unexpected character U+00FC; nyto scripts use only names, "
        "numbers, operators, parentheses, brackets (x[i]), commas, ':' (state kinds), ';' and '#' comments\n"
        "y = \xc3\xbc + \xc3\xbc\n"
        "    ^\n"
        "u.nyto:1:9: error[E0002]: unexpected character U+00FC; nyto scripts use only names, "
        "numbers, operators, parentheses, brackets (x[i]), commas, ':' (state kinds), ';' and '#' comments\n"
        "y = \xc3\xbc + \xc3\xbc\n"
        "        ^\n");
  auto bad = compile_source("y = x\nz = \xff", "b.nyto");
  REQUIRE(bad.diagnostics.size() >= 1);
  CHECK(bad.diagnostics[0].message.find("invalid UTF-8 byte") != std::string::npos);
  CHECK(bad.diagnostics[0].span.line == 2);
  CHECK(bad.diagnostics[0].span.col == 5);
}

TEST_CASE("suggestions: closest match within a third of the word") {
  using nyto::frontend::closest_match;
  CHECK(closest_match("rnd", nyto::frontend::builtin_function_names()) == "rand");
  CHECK(closest_match("sigmod", nyto::frontend::builtin_function_names()) == "sigmoid");
  CHECK(closest_match("banana", nyto::frontend::builtin_function_names()).empty());
  CHECK(nyto::frontend::edit_distance("kitten", "sitting") == 3);
}

TEST_CASE("lines end at \\n, \\r\\n and a lone \\r; control characters are shown, not echoed") {
  nyto::frontend::Source src("m.nyto", std::string("a\rb\r\nc\nd\0e\x1b\r", 12));
  CHECK(src.line_count() == 5);  // the text ends with a line end: an empty fifth line
  CHECK(src.line_text(1) == "a");
  CHECK(src.line_text(2) == "b");
  CHECK(src.line_text(3) == "c");
  CHECK(src.line_text(4) == std::string_view("d\0e\x1b", 4));
  CHECK(src.line_text(5).empty());
  CHECK(src.span_at(2).line == 2);  // 'b'
  CHECK(src.span_at(5).line == 3);  // 'c'
  CHECK(src.span_at(9).line == 4);
  CHECK(src.span_at(9).col == 3);  // 'e', after the NUL
  // The lexer reads a lone CR as a newline; a CR of CRLF stays.
  CHECK(src.sanitized() == std::string("a\nb\r\nc\nd\0e\x1b\n", 12));
  CHECK(nyto::frontend::visible(std::string("d\0e\x1b\x7f\tf", 7)) == "d\u2400e\u241b\u2421\tf");
  nyto::frontend::Diagnostic d{"E0002", {4, 2, 1}, "unexpected character U+0000"};
  CHECK(nyto::frontend::render(src, d) ==
        "m.nyto:4:2: error[E0002]: unexpected character U+0000\n"
        "d\u2400e\u241b\n"
        " ^\n");
}
