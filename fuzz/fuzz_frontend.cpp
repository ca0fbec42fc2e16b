// (a) The frontend on any bytes: compile_source never throws, every failure has diagnostics
// positioned inside the text, and rendering them works.
#include <string>
#include <string_view>

#include "frontend/Frontend.h"
#include "fuzz/FuzzUtil.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nyto;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  frontend::FrontendResult r;
  try {
    r = frontend::compile_source(text, "fuzz.nyto");
  } catch (const std::exception& e) {
    fuzz::fail(std::string("compile_source threw: ") + e.what());
  }
  if (r.ok) return 0;
  if (r.diagnostics.empty()) fuzz::fail("a failed compile without a diagnostic");
  for (const auto& d : r.diagnostics) {
    if (d.span.line < 1 || d.span.line > r.source->line_count() || d.span.col < 1)
      fuzz::fail("diagnostic " + d.code + " at " + std::to_string(d.span.line) + ":" +
                 std::to_string(d.span.col) + " is outside the text");
    if (d.code.size() != 5) fuzz::fail("malformed diagnostic code '" + d.code + "'");
  }
  try {
    (void)frontend::render_all(r);
  } catch (const std::exception& e) {
    fuzz::fail(std::string("render_all threw: ") + e.what());
  }
  return 0;
}
