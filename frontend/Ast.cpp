#include "frontend/Ast.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <utility>
#include <vector>

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

// The shortest decimal that reads back as the same double: 0.729, not 0.72899999999999998.
std::string format_number(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void at(std::ostringstream& os, const Span& s) { os << " @" << s.line << ":" << s.col << "\n"; }

// Preorder with an explicit stack: long operator chains are deep along their left operands.
void dump_expr(std::ostringstream& os, const Expr& root, int root_depth) {
  std::vector<std::pair<const Expr*, int>> todo{{&root, root_depth}};
  while (!todo.empty()) {
    auto [e, depth] = todo.back();
    todo.pop_back();
    // Past kMaxIndent levels the depth is written instead of ever more spaces, so the dump of
    // a long chain stays linear in its length.
    constexpr int kMaxIndent = 40;
    os << std::string(size_t(std::min(depth, kMaxIndent)) * 2, ' ');
    if (depth > kMaxIndent) os << "[" << depth << "] ";
    switch (e->kind) {
      case ExprKind::Number: os << "Number " << format_number(e->number); break;
      case ExprKind::Name: os << "Name " << e->name; break;
      case ExprKind::Unary: os << "Unary " << op_spelling(e->unary_op); break;
      case ExprKind::Binary: os << "Binary " << op_spelling(e->binary_op); break;
      case ExprKind::Call: os << "Call " << e->name; break;
      case ExprKind::Index: os << "Index " << e->name; break;
    }
    at(os, e->span);
    for (size_t i = e->args.size(); i-- > 0;) todo.push_back({e->args[i].get(), depth + 1});
  }
}

}  // namespace

Expr::~Expr() {
  std::vector<std::unique_ptr<Expr>> pending = std::move(args);
  while (!pending.empty()) {
    std::unique_ptr<Expr> e = std::move(pending.back());
    pending.pop_back();
    for (auto& a : e->args) pending.push_back(std::move(a));
    e->args.clear();
  }  // each e is freed here with no children left, so no destructor recurses
}

std::string dump(const Program& program) {
  std::ostringstream os;
  os << "Program\n";
  for (const Stmt& s : program.statements) {
    switch (s.kind) {
      case StmtKind::Param: os << "  Param " << s.name; break;
      case StmtKind::Let: os << "  Let " << s.name; break;
      case StmtKind::Assign: os << "  Assign " << s.name; break;
      case StmtKind::Expr: os << "  Expr"; break;
      case StmtKind::State:
        os << "  State " << s.name << (s.state_kind.empty() ? "" : ": " + s.state_kind);
        break;
    }
    at(os, s.span);
    if (s.value) dump_expr(os, *s.value, 2);
  }
  return os.str();
}

}  // namespace nyto::frontend
