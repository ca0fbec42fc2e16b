// The nyto frontend's one entry point: script text -> diagnostics, AST dump and ir::Graph.
//
//   auto r = nyto::frontend::compile_source(text, "pso.nyto");
//   if (!r.ok) std::cerr << nyto::frontend::render_all(r);
//   else run(r.graph);
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/Ast.h"
#include "frontend/Sema.h"
#include "frontend/Source.h"
#include "ir/IR.h"

namespace nyto::frontend {

/// Everything the frontend produces for one script.
struct FrontendResult {
  /// True when there is no diagnostic; `graph` is then the lowered rule.
  bool ok = false;
  /// Every error found, in source order within each phase (syntax errors stop before semantic
  /// checks, since the tree is incomplete).
  std::vector<Diagnostic> diagnostics;
  /// The script as compiled, for rendering these diagnostics and later bind-time ones.
  std::shared_ptr<const Source> source;
  /// The syntax tree (null after a syntax error).
  std::shared_ptr<const Program> ast;
  /// `--emit ast`: the indented tree (empty after a syntax error), made on demand.
  std::string ast_dump() const { return ast ? dump(*ast) : std::string(); }
  /// The rule in SSA form: inputs in first-use order, params with folded defaults, one output
  /// per assigned name (its final value; `target` = input index for in-place updates).
  ir::Graph graph;
  /// Parallel to graph.inputs: where each input is first read, for bind-time errors
  /// (E0501 wrong kind, E0502 species mismatch) rendered by the runtime.
  std::vector<Span> input_first_use;
  /// Parallel to graph.params: the declared name.
  std::vector<Span> param_spans;
  /// Parallel to graph.outputs: the name in the last assignment.
  std::vector<Span> output_spans;
  /// By check site (attr.index of ir::Op::MRead, KRand, KRandn): the `x[i]` or `rand(k, j)` it came
  /// from, for run-time errors about its index or keys (E0601).
  std::vector<Span> read_spans;
  /// By k: the first `pick(k)`, for E0508 (too few members for it).
  std::vector<Span> pick_spans;
  /// Every `state` declaration, in source order (in both parts of a generation rule).
  std::vector<StateInfo> states;
  /// REPL mode: a bare expression was evaluated; its value is the output named "_".
  bool has_expression_result = false;
};

/// Parses, checks and lowers `text`. Never throws for any input text; a std::logic_error
/// ("nyto internal error ...") means a bug in nyto.
FrontendResult compile_source(std::string_view text, std::string filename,
                              const FrontendOptions& options = {});

/// All diagnostics of `result` rendered as docs/language.md specifies.
std::string render_all(const FrontendResult& result);

}  // namespace nyto::frontend
