#include "frontend/Frontend.h"

#include "frontend/Parser.h"

namespace nyto::frontend {

FrontendResult compile_source(std::string_view text, std::string filename,
                              const FrontendOptions& options) {
  FrontendResult r;
  r.source = std::make_shared<const Source>(std::move(filename), std::string(text));
  auto program = std::make_shared<Program>(parse(*r.source, r.diagnostics));
  if (!r.diagnostics.empty()) return r;
  r.ast = program;
  Lowered lowered = analyze(*program, options, r.diagnostics);
  if (!r.diagnostics.empty()) return r;
  r.graph = std::move(lowered.graph);
  r.input_first_use = std::move(lowered.input_first_use);
  r.param_spans = std::move(lowered.param_spans);
  r.output_spans = std::move(lowered.output_spans);
  r.read_spans = std::move(lowered.read_spans);
  r.pick_spans = std::move(lowered.pick_spans);
  r.has_expression_result = lowered.has_expression_result;
  r.states = std::move(lowered.states);
  r.ok = true;
  return r;
}

std::string render_all(const FrontendResult& result) {
  if (!result.source) return "";
  return render_all(*result.source, result.diagnostics);
}

}  // namespace nyto::frontend
