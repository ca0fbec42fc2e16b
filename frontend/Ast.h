// The nyto AST: what the parse tree converter produces and semantic analysis reads.
// Every node carries the Span it came from, for diagnostics.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frontend/Source.h"

namespace nyto::frontend {

enum class ExprKind { Number, Name, Unary, Binary, Call, Index };
enum class UnaryOp { Neg, Plus };
enum class BinaryOp { Add, Sub, Mul, Div, Pow, Lt, Le, Gt, Ge, Eq, Ne };

/// Source spelling of an operator ("+", "**", "<=", ...).
const char* op_spelling(UnaryOp op);
const char* op_spelling(BinaryOp op);

/// An expression. One struct for all kinds keeps the tree small and the walkers plain switches.
struct Expr {
  ExprKind kind;
  Span span;                                // the whole expression
  double number = 0.0;                      // Number
  std::string name;                         // Name, Call (the function), Index (the swarm)
  Span name_span;                           // Call: the function name only; Index: the swarm
  UnaryOp unary_op = UnaryOp::Neg;          // Unary
  BinaryOp binary_op = BinaryOp::Add;       // Binary
  Span op_span;                             // Unary, Binary: the operator token
  std::vector<std::unique_ptr<Expr>> args;  // Unary: 1, Binary: 2, Call: the arguments, Index: 1
  int nesting = 1;  // levels of nesting (parser's limit, E0003); an operator chain counts as one

  Expr() = default;
  Expr(Expr&&) = default;
  Expr& operator=(Expr&&) = default;
  /// Frees the subtree without recursion: a chain `a + b + c + ...` of a million operators is a
  /// million levels deep along its left operands.
  ~Expr();
};

enum class StmtKind { Param, Let, Assign, Expr, State };

/// A statement: `param NAME = value`, `let NAME = value`, `NAME = value`, a bare `value`, or
/// `state NAME[: KIND] = value` (a value a generation trainer keeps; `value` is its initial value).
struct Stmt {
  StmtKind kind;
  Span span;       // the whole statement
  std::string name;
  Span name_span;  // Param, Let, Assign, State
  std::string state_kind;  // State: "scalar", "vector", "particle", "swarm" as written, or empty
  Span state_kind_span;    // State: the kind's name, when written
  std::unique_ptr<Expr> value;
};

/// A parsed script: statements in source order.
struct Program {
  std::vector<Stmt> statements;
};

/// A readable, indented dump of the tree with `line:col` of every node (`--emit ast`).
std::string dump(const Program& program);

}  // namespace nyto::frontend
