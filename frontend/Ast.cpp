#include "frontend/Ast.h"

#include <sstream>

namespace nyto::frontend {

const char* op_spelling(UnaryOp op) { return op == UnaryOp::Neg ? "-" : "+"; }

const char* op_spelling(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "+";
    case BinaryOp::Sub: return "-";
    case BinaryOp::Mul: return "*";
    case BinaryOp::Div: return "/";
    case BinaryOp::Pow: return "**";
    case BinaryOp::Lt: return "<";
    case BinaryOp::Le: return "<=";
    case BinaryOp::Gt: return ">";
    case BinaryOp::Ge: return ">=";
    case BinaryOp::Eq: return "==";
    case BinaryOp::Ne: return "!=";
  }
  return "?";
}

namespace {

void at(std::ostringstream& os, const Span& s) { os << " @" << s.line << ":" << s.col << "\n"; }

void dump_expr(std::ostringstream& os, const Expr& e, int depth) {
  os << std::string(size_t(depth) * 2, ' ');
  switch (e.kind) {
    case ExprKind::Number: os << "Number " << e.number; break;
    case ExprKind::Name: os << "Name " << e.name; break;
    case ExprKind::Unary: os << "Unary " << op_spelling(e.unary_op); break;
    case ExprKind::Binary: os << "Binary " << op_spelling(e.binary_op); break;
    case ExprKind::Call: os << "Call " << e.name; break;
  }
  at(os, e.span);
  for (const auto& a : e.args) dump_expr(os, *a, depth + 1);
}

}  // namespace

std::string dump(const Program& program) {
  std::ostringstream os;
  os.precision(17);
  os << "Program\n";
  for (const Stmt& s : program.statements) {
    switch (s.kind) {
      case StmtKind::Param: os << "  Param " << s.name; break;
      case StmtKind::Let: os << "  Let " << s.name; break;
      case StmtKind::Assign: os << "  Assign " << s.name; break;
      case StmtKind::Expr: os << "  Expr"; break;
    }
    at(os, s.span);
    if (s.value) dump_expr(os, *s.value, 2);
  }
  return os.str();
}

}  // namespace nyto::frontend
