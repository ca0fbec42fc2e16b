// Semantic analysis and lowering: name resolution, type checking and AST -> ir::Graph, in one
// walk over the statements in order (each statement sees the assignments before it).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "frontend/Ast.h"
#include "frontend/Source.h"
#include "ir/IR.h"

namespace nyto::frontend {

/// Limits on the size of one rule (docs/diagnostics.md, "Limits"); beyond one, analysis stops with
/// E0403 at the statement or call that crosses it. Random call sites: a site's number is a 16-bit
/// field of the Philox counter (backend/Random.h) whose upper half keys the draws of language
/// version 1 (keyed and member draws, docs/language.md), so there can be at most 32,768.
struct Limits {
  size_t statements = 1'000'000;
  size_t ir_nodes = 4'000'000;     // IR nodes as lowered (before optimization)
  int32_t random_sites = 32'768;   // rand() and randn() calls; at most 32,768
};

/// How the host compiles a script.
struct FrontendOptions {
  /// REPL mode: bare expression statements are allowed; each one becomes the output named "_".
  /// A script without assignments is not an error then.
  bool repl = false;
  /// Names the host can bind (REPL session names, `nyto run` loads, trainer bindings). When set,
  /// an input not in this list is an error (E0101) with a suggestion.
  std::optional<std::vector<std::string>> known_names;
  /// Names the host binds as inputs only (the trainer's gbest, pbest, loss...): an assignment to
  /// one is an error (E0205), since the run would write into the host's value.
  std::vector<std::string> read_only;
  /// Which part of a generation rule to lower (docs/language.md, "Generation rules"). false: the
  /// step, every statement but `state` (a state's name is an input the host binds). true: the
  /// init, each `state NAME = value` as the assignment `NAME = value`, with the params and the
  /// lets those values read; every other statement is left out.
  bool state_init = false;
  /// Appended to the message of E0101 (say why a name is not bound, e.g. before generation 0).
  std::string unknown_name_hint;
  /// Size limits (E0403). Hosts may lower them; raising random_sites above 32,768 is an error of
  /// the host (std::invalid_argument).
  Limits limits;
};

/// A `state NAME[: KIND] = value` declaration.
struct StateInfo {
  std::string name;
  std::string kind;  // "scalar", "vector", "particle", "swarm", or "" (the initial value's kind)
  Span name_span;
  Span kind_span;    // the kind's name when written, else the name's
};

/// What analysis produces besides diagnostics. Meaningful only when no diagnostic was added.
struct Lowered {
  ir::Graph graph;
  std::vector<Span> input_first_use;  // parallel to graph.inputs: where each is first read
  std::vector<Span> param_spans;      // parallel to graph.params: the declared name
  std::vector<Span> output_spans;     // parallel to graph.outputs: the last assignment's name
  std::vector<Span> read_spans;       // by check site (MRead, KRand/KRandn attr.index): x[i], rand(k, j)
  std::vector<Span> pick_spans;       // by k: the first pick(k)
  bool has_expression_result = false; // REPL: an output "_" holds a bare expression's value
  std::vector<StateInfo> states;      // every `state` declaration, in source order
};

/// Checks `program` and lowers it. Every semantic error of the script is appended to
/// `diagnostics` (codes E01xx-E04xx, see docs/diagnostics.md).
Lowered analyze(const Program& program, const FrontendOptions& options,
                std::vector<Diagnostic>& diagnostics);

/// The built-in function names, for completion and suggestions.
const std::vector<std::string>& builtin_function_names();

}  // namespace nyto::frontend
