#include "frontend/Sema.h"

#include "ir/Error.h"
#include "ir/Eval.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace nyto::frontend {

namespace {

using ir::NodeId;
using ir::Op;

enum class Builtin { Unary, Binary, Clamp, Lerp, Where, Rand, Randn, MRand, Member, MReduce, MRank, Pick, PReduce, PLeaf, Kth };

struct FunctionInfo {
  const char* name;
  Builtin kind;
  Op op;             // Unary: the IR op
  const char* args;  // for arity messages
  int arity;
};

const FunctionInfo kFunctions[] = {
    {"abs", Builtin::Unary, Op::Abs, "x", 1},
    {"sqrt", Builtin::Unary, Op::Sqrt, "x", 1},
    {"exp", Builtin::Unary, Op::Exp, "x", 1},
    {"log", Builtin::Unary, Op::Log, "x", 1},
    {"sin", Builtin::Unary, Op::Sin, "x", 1},
    {"cos", Builtin::Unary, Op::Cos, "x", 1},
    {"tanh", Builtin::Unary, Op::Tanh, "x", 1},
    {"sigmoid", Builtin::Unary, Op::Sigmoid, "x", 1},
    {"sign", Builtin::Unary, Op::Sign, "x", 1},
    {"floor", Builtin::Unary, Op::Floor, "x", 1},
    {"ceil", Builtin::Unary, Op::Ceil, "x", 1},
    {"acos", Builtin::Unary, Op::Acos, "x", 1},
    {"asin", Builtin::Unary, Op::Asin, "x", 1},
    {"atan", Builtin::Unary, Op::Atan, "x", 1},
    {"min", Builtin::Binary, Op::Min, "a, b", 2},
    {"max", Builtin::Binary, Op::Max, "a, b", 2},
    {"mod", Builtin::Binary, Op::Mod, "a, b", 2},
    {"atan2", Builtin::Binary, Op::Atan2, "y, x", 2},
    {"clamp", Builtin::Clamp, Op::Min, "x, lo, hi", 3},
    {"lerp", Builtin::Lerp, Op::Add, "a, b, t", 3},
    {"where", Builtin::Where, Op::Select, "mask, a, b", 3},
    {"rand", Builtin::Rand, Op::Rand, "", 0},
    {"randn", Builtin::Randn, Op::Randn, "", 0},
    {"mrand", Builtin::MRand, Op::MRand, "", 0},
    {"mrandn", Builtin::MRand, Op::MRandn, "", 0},
    {"member", Builtin::Member, Op::Member, "", 0},
    {"members", Builtin::Member, Op::Members, "", 0},
    {"msum", Builtin::MReduce, Op::MSum, "x", 1},
    {"mmean", Builtin::MReduce, Op::Div, "x", 1},  // msum(x) / members()
    {"mmin", Builtin::MReduce, Op::MMin, "x", 1},
    {"mmax", Builtin::MReduce, Op::MMax, "x", 1},
    {"rank", Builtin::MRank, Op::Rank, "f", 1},
    {"centered_rank", Builtin::MRank, Op::CRank, "f", 1},
    {"argmin", Builtin::MRank, Op::ArgMin, "f", 1},
    {"argmax", Builtin::MRank, Op::ArgMax, "f", 1},
    {"pick", Builtin::Pick, Op::Pick, "k", 1},
    {"tsum", Builtin::PReduce, Op::TSum, "x", 1},
    {"tmean", Builtin::PReduce, Op::Numel, "x", 1},  // tsum(x) / numel()
    {"tmin", Builtin::PReduce, Op::TMin, "x", 1},
    {"tmax", Builtin::PReduce, Op::TMax, "x", 1},
    {"psum", Builtin::PReduce, Op::PSum, "x", 1},
    {"pmean", Builtin::PReduce, Op::Elems, "x", 1},  // psum(x) / elems()
    {"pmin", Builtin::PReduce, Op::PMin, "x", 1},
    {"pmax", Builtin::PReduce, Op::PMax, "x", 1},
    {"numel", Builtin::PLeaf, Op::Numel, "", 0},
    {"elem", Builtin::PLeaf, Op::Elem, "", 0},
    {"elems", Builtin::PLeaf, Op::Elems, "", 0},
    {"tkth", Builtin::Kth, Op::TKth, "x, k", 2},
    {"pkth", Builtin::Kth, Op::PKth, "x, k", 2},
};

const FunctionInfo* find_function(const std::string& name) {
  for (const FunctionInfo& f : kFunctions)
    if (name == f.name) return &f;
  return nullptr;
}

using ir::internal_error;

// Value: a scalar or a particle (inputs' kinds are only known at bind time). Mask: a comparison
// result. Error: already reported; anything built from it stays silent.
enum class Ty { Value, Mask, Error };

struct Val {
  Ty ty = Ty::Error;
  NodeId node = -1;  // -1 when not built (param defaults, or after an error)
  bool is_const = false;
  double cval = 0.0;  // when is_const; a Mask folds to 1 or 0
  // When not constant: the leaf that makes it so, for E0201.
  Span nonconst_span;
  std::string nonconst_what;
  // Shape facts known before binding (docs/language.md, "Shapes"): `member` = may vary per
  // member (it reads an input, which may be a swarm, or member(), a draw, ...); `elem` = surely
  // varies per element (it reads rand() or randn()). Inputs are neither surely per-element nor
  // surely per-member: that is decided when the host binds them.
  bool member = false;
  bool elem = false;
  // `tensor` = surely varies per parameter tensor (numel(), tsum(x)): no pkth(x, k) k.
  bool tensor = false;
};

// Param defaults fold with the IR's own semantics (ir/Eval.h), so a folded default is exactly
// what constant folding and every backend compute.
double fold_unary(Op op, double a) { return ir::eval_unary<double>(op, a); }

double fold_binary(Op op, double a, double b) {
  return ir::is_compare_op(op) ? double(ir::eval_compare<double>(op, a, b))
                               : ir::eval_binary<double>(op, a, b);
}

Op to_ir(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return Op::Add;
    case BinaryOp::Sub: return Op::Sub;
    case BinaryOp::Mul: return Op::Mul;
    case BinaryOp::Div: return Op::Div;
    case BinaryOp::Pow: return Op::Pow;
    case BinaryOp::Lt: return Op::Lt;
    case BinaryOp::Le: return Op::Le;
    case BinaryOp::Gt: return Op::Gt;
    case BinaryOp::Ge: return Op::Ge;
    case BinaryOp::Eq: return Op::Eq;
    case BinaryOp::Ne: return Op::Ne;
  }
  internal_error("unknown binary operator");
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Lt || op == BinaryOp::Le || op == BinaryOp::Gt || op == BinaryOp::Ge ||
         op == BinaryOp::Eq || op == BinaryOp::Ne;
}

std::string line_of(const Span& s) { return "line " + std::to_string(s.line); }

class Analyzer {
 public:
  Analyzer(const FrontendOptions& options, std::vector<Diagnostic>& diagnostics)
      : options_(options), diags_(diagnostics), builder_(out_.graph) {}

  Lowered run(const Program& program) {
    bool bare_reported = false;
    bool has_effect = false;
    collect_declarations(program);
    for (const Stmt& s : program.statements) {
      if (size_t(&s - program.statements.data()) == options_.limits.statements) {
        too_large(s.span, "more than " + with_commas(options_.limits.statements) + " statements");
        break;
      }
      if (limit_hit_) break;
      switch (s.kind) {
        case StmtKind::Param: param(s); break;
        case StmtKind::Let:
          if (!options_.state_init || init_lets_.count(s.name)) let(s);
          break;
        case StmtKind::State:
          if (options_.repl) {
            error("E0208", Span{s.span.line, s.span.col, 5},  // the keyword
                  "'state' declares what a generation rule keeps between runs (nyto train --mode "
                  "evolve); the REPL keeps every name already: write '" + s.name + " = ...'");
            break;
          }
          state(s);
          if (options_.state_init) {
            assign(s.name, s.name_span, s);
            has_effect = true;
          }
          break;
        case StmtKind::Assign:
          if (options_.state_init) break;
          assign(s.name, s.name_span, s);
          has_effect = true;
          break;
        case StmtKind::Expr:
          if (options_.state_init) break;
          if (options_.repl) {
            assign("_", s.value->span, s);
            out_.has_expression_result = true;
            has_effect = true;
          } else {
            const Expr& v = *s.value;
            bool looks_like_assignment = v.kind == ExprKind::Binary &&
                                         v.binary_op == BinaryOp::Eq &&
                                         v.args[0]->kind == ExprKind::Name;
            error("E0401", v.span,
                  looks_like_assignment
                      ? "a comparison on its own has no effect; to assign, write '" +
                            v.args[0]->name + " = ...' with a single '='"
                      : std::string("a bare expression has no effect in a rule; assign it to a "
                                    "name, e.g. 'y = ...'"));
            bare_reported = true;
            expr(*s.value);  // still check it
          }
          break;
      }
      if (out_.graph.nodes.size() > options_.limits.ir_nodes && !limit_hit_)
        too_large(s.span, "more than " + with_commas(options_.limits.ir_nodes) + " operations");
    }
    if (limit_hit_) return std::move(out_);
    if (!has_effect && !bare_reported && !options_.repl && !options_.state_init) {
      Span at = program.statements.empty() ? Span{1, 1, 1} : program.statements.back().span;
      error("E0402", at,
            "this rule has no effect because it assigns nothing; add an assignment such as "
            "'x = ...'");
    }
    for (const std::string& name : output_order_) {
      const Binding& b = env_.at(name);
      out_.graph.outputs.push_back({name, b.val.node, b.input_index});
      out_.output_spans.push_back(b.span);
    }
    return std::move(out_);
  }

 private:
  enum class Kind { Param, Let, Assigned, Input };
  struct Binding {
    Kind kind;
    Span span;  // declaration, last assignment, or first use of an input
    Val val;
    int32_t input_index = -1;  // Input, or Assigned after being read as an input
  };

  void error(const char* code, Span span, std::string message) {
    diags_.push_back({code, span, std::move(message)});
  }

  // E0403, once: the rule is beyond a size limit of the compiler; analysis stops here.
  void too_large(Span span, const std::string& what) {
    limit_hit_ = true;
    error("E0403", span,
          "this rule is too large to compile: " + what + "; split it into several rules");
  }
  static std::string with_commas(size_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return out;
  }

  static const char* describe(Kind k) {
    switch (k) {
      case Kind::Param: return "a param";
      case Kind::Let: return "a let";
      case Kind::Assigned: return "assigned";
      case Kind::Input: return "an input";
    }
    return "?";
  }

  // The names of the names `e` reads (inputs, lets, params, swarms indexed), without recursion.
  static void names_read(const Expr& root, std::unordered_set<std::string>& out) {
    std::vector<const Expr*> todo{&root};
    while (!todo.empty()) {
      const Expr* e = todo.back();
      todo.pop_back();
      if (e->kind == ExprKind::Name || e->kind == ExprKind::Index) out.insert(e->name);
      for (const auto& a : e->args) todo.push_back(a.get());
    }
  }

  // Before the walk: where each param and let is declared (a state may not take their names,
  // wherever they stand) and, for the init part, the lets the states' initial values read.
  void collect_declarations(const Program& program) {
    for (const Stmt& s : program.statements)
      if (s.kind == StmtKind::Param || s.kind == StmtKind::Let) declared_.emplace(s.name, &s);
    if (!options_.state_init) return;
    std::unordered_set<std::string> read;
    for (auto it = program.statements.rbegin(); it != program.statements.rend(); ++it) {
      if (it->kind == StmtKind::State) names_read(*it->value, read);
      if (it->kind == StmtKind::Let && read.count(it->name)) {
        init_lets_.insert(it->name);
        names_read(*it->value, read);
      }
    }
  }

  // E0206 / E0207: a state's name must be its own and its kind one of the four.
  void state(const Stmt& s) {
    static const std::vector<std::string> kinds = {"scalar", "vector", "particle", "swarm"};
    if (!s.state_kind.empty() &&
        std::find(kinds.begin(), kinds.end(), s.state_kind) == kinds.end()) {
      std::string guess = closest_match(s.state_kind, kinds);
      error("E0207", s.state_kind_span,
            "unknown state kind '" + s.state_kind + "'" +
                (guess.empty() ? "" : "; did you mean '" + guess + "'?") +
                " (a state is a scalar, a vector (one number per member), a particle or a swarm)");
    }
    if (std::find(options_.read_only.begin(), options_.read_only.end(), s.name) !=
        options_.read_only.end()) {
      error("E0206", s.name_span,
            "'" + s.name + "' cannot be a state: the host binds it anew on every run (read-only); "
            "give the state another name");
    } else if (auto d = declared_.find(s.name); d != declared_.end()) {
      error("E0206", s.name_span,
            "'" + s.name + "' is already " + (d->second->kind == StmtKind::Param ? "a param" : "a let") +
                " (" + line_of(d->second->name_span) + "); a state needs a name of its own");
    } else if (auto p = states_.find(s.name); p != states_.end()) {
      error("E0206", s.name_span,
            "state '" + s.name + "' is already declared on " + line_of(p->second) +
                "; remove one of the declarations");
    } else {
      states_.emplace(s.name, s.name_span);
      out_.states.push_back({s.name, s.state_kind, s.name_span,
                             s.state_kind.empty() ? s.name_span : s.state_kind_span});
    }
  }

  void param(const Stmt& s) {
    in_param_ = true;
    Val v = expr(*s.value);
    in_param_ = false;
    bool ok = true;
    if (v.ty == Ty::Mask) {
      error("E0303", s.value->span,
            "a param's default cannot be a mask (a comparison); give it a number");
      ok = false;
    } else if (v.ty == Ty::Value && !v.is_const) {
      error("E0201", v.nonconst_span,
            "the default of param '" + s.name + "' must be a constant, but " + v.nonconst_what +
                " is not; use numbers, earlier params and arithmetic on them");
      ok = false;
    } else if (v.ty == Ty::Error) {
      ok = false;
    }
    auto it = env_.find(s.name);
    if (it != env_.end()) {
      const Binding& b = it->second;
      std::string msg;
      if (b.kind == Kind::Param)
        msg = "param '" + s.name + "' is already declared on " + line_of(b.span) +
              "; remove one of the declarations";
      else if (b.kind == Kind::Input)
        msg = "'" + s.name + "' is used as an input on " + line_of(b.span) +
              " before this declaration; declare a param before its first use";
      else
        msg = "'" + s.name + "' is already " + describe(b.kind) + " (" + line_of(b.span) +
              "); give the param another name";
      error("E0203", s.name_span, msg);
      return;
    }
    Binding b{Kind::Param, s.name_span, {}};
    int32_t index = int32_t(out_.graph.params.size());
    out_.graph.params.push_back({s.name, ok ? v.cval : 0.0});
    out_.param_spans.push_back(s.name_span);
    b.val.ty = Ty::Value;
    b.val.node = builder_.param(index);
    b.val.is_const = ok;
    b.val.cval = ok ? v.cval : 0.0;
    if (!ok) b.val.ty = Ty::Error;  // its uses were checked against a broken default already
    env_.emplace(s.name, b);
  }

  void let(const Stmt& s) {
    Val v = expr(*s.value);
    auto it = env_.find(s.name);
    if (it != env_.end()) {
      const Binding& b = it->second;
      std::string msg;
      if (b.kind == Kind::Let)
        msg = "'" + s.name + "' is already defined by let on " + line_of(b.span) +
              "; a let cannot be redefined, use a new name";
      else if (b.kind == Kind::Input)
        msg = "'" + s.name + "' is used as an input on " + line_of(b.span) +
              " before this let; define a let before its first use or use a new name";
      else
        msg = "'" + s.name + "' is already " + describe(b.kind) + " (" + line_of(b.span) +
              "); a let needs a new name";
      error("E0204", s.name_span, msg);
      return;
    }
    env_.emplace(s.name, Binding{Kind::Let, s.name_span, v});
  }

  void assign(const std::string& name, Span name_span, const Stmt& s) {
    Val v = expr(*s.value);
    if (v.ty == Ty::Mask) {
      error("E0303", s.value->span,
            "a mask (a comparison) cannot be a result; use it as the first argument of "
            "where(mask, a, b)");
      v.ty = Ty::Error;
    }
    if (std::find(options_.read_only.begin(), options_.read_only.end(), name) !=
        options_.read_only.end()) {
      error("E0205", name_span,
            "cannot assign to '" + name + "': the host binds it as an input only (read-only), "
            "and the run would overwrite the host's value; assign to a new name instead");
      return;
    }
    auto it = env_.find(name);
    if (it != env_.end()) {
      Binding& b = it->second;
      if (b.kind == Kind::Param) {
        error("E0202", name_span,
              "cannot assign to param '" + name + "' (declared on " + line_of(b.span) +
                  "); params are set by the host, e.g. --set " + name + "=VALUE");
        return;
      }
      if (b.kind == Kind::Let) {
        error("E0204", name_span,
              "cannot assign to '" + name + "': it is a let (" + line_of(b.span) +
                  ") and a let cannot be redefined; use a new name");
        return;
      }
      if (b.kind == Kind::Input) output_order_.push_back(name);
      b.kind = Kind::Assigned;
      b.span = name_span;
      b.val = v;
      return;
    }
    env_.emplace(name, Binding{Kind::Assigned, name_span, v});
    output_order_.push_back(name);
  }

  // --- expressions -------------------------------------------------------------------------

  Val error_val() const { return Val{}; }

  Val expr(const Expr& e) {
    switch (e.kind) {
      case ExprKind::Number: {
        Val v;
    v.ty = Ty::Value;
        v.is_const = true;
        v.cval = e.number;
        if (!in_param_) v.node = builder_.constant(e.number);
        return v;
      }
      case ExprKind::Name: return name(e);
      case ExprKind::Unary: return unary(e);
      case ExprKind::Binary: return binary(e);
      case ExprKind::Call: return call(e);
      case ExprKind::Index: return index(e);
    }
    internal_error("unknown expression kind");
  }

  Val name(const Expr& e) {
    auto it = env_.find(e.name);
    if (it != env_.end()) {
      const Binding& b = it->second;
      Val v = b.val;
      if (in_param_ && (b.kind == Kind::Assigned || b.kind == Kind::Input)) v.is_const = false;
      if (!v.is_const) {
        // Point at this use; the let's own definition may be far away.
        v.nonconst_span = e.span;
        v.nonconst_what = b.kind == Kind::Input   ? "input '" + e.name + "'"
                          : b.kind == Kind::Let ? "let '" + e.name + "'"
                                                : "'" + e.name + "'";
      }
      return v;
    }
    bool host_binds = false;
    if (options_.known_names)
      for (const std::string& k : *options_.known_names) host_binds = host_binds || k == e.name;
    if (e.name == "inf" && !host_binds) {  // +infinity: a start value no fitness can beat
      Val v;
      v.ty = Ty::Value;
      v.is_const = true;
      v.cval = std::numeric_limits<double>::infinity();
      if (!in_param_) v.node = builder_.constant(v.cval);
      return v;
    }
    if (find_function(e.name) && !host_binds) {
      error("E0102", e.span,
            "'" + e.name + "' is a built-in function, not a value; call it, e.g. '" + e.name +
                "(" + find_function(e.name)->args + ")'");
      return error_val();
    }
    if (in_param_) {
      // Not an input: a param default may not read one, and it must not create one either.
      Val v;
    v.ty = Ty::Value;
      v.nonconst_span = e.span;
      v.nonconst_what = "input '" + e.name + "'";
      return v;
    }
    // A new input. Check it against the names the host can bind.
    bool known = true;
    if (options_.known_names) {
      known = false;
      for (const std::string& k : *options_.known_names) known = known || k == e.name;
    }
    if (!known) {
      std::vector<std::string> candidates = *options_.known_names;
      for (const auto& [n, b] : env_) candidates.push_back(n);
      std::string guess = closest_match(e.name, candidates);
      error("E0101", e.span,
            guess.empty()
                ? "unknown name '" + e.name +
                      "': it is not declared or assigned before, and the host binds no such "
                      "name; bind it or fix the spelling" + options_.unknown_name_hint
                : "unknown name '" + e.name + "'; did you mean '" + guess + "'?" +
                      options_.unknown_name_hint);
    }
    int32_t index = int32_t(out_.graph.inputs.size());
    out_.graph.inputs.push_back({e.name});
    out_.input_first_use.push_back(e.span);
    Binding b{Kind::Input, e.span, {}, index};
    b.val.ty = known ? Ty::Value : Ty::Error;
    b.val.node = builder_.input(index, ir::Type::Elem);
    b.val.member = true;  // it may be bound to a swarm or a per-member vector
    env_.emplace(e.name, b);
    Val v = b.val;
    v.nonconst_span = e.span;
    v.nonconst_what = "input '" + e.name + "'";
    return v;
  }

  // Propagates constness and the first non-constant leaf from operands to a result.
  static void merge_const(Val& r, std::initializer_list<const Val*> args) {
    for (const Val* a : args)
      r.member = r.member || a->member, r.elem = r.elem || a->elem, r.tensor = r.tensor || a->tensor;
    r.is_const = true;
    for (const Val* a : args) {
      if (!a->is_const) {
        r.is_const = false;
        r.nonconst_span = a->nonconst_span;
        r.nonconst_what = a->nonconst_what;
        return;
      }
    }
  }

  // r is known only when the rule runs (a draw, a member value, a reduction...): not a constant,
  // so a param default cannot use it (E0201 names `what`).
  static void not_constant(Val& r, const Expr& e, std::string what) {
    r.is_const = false;
    r.nonconst_span = e.span;
    r.nonconst_what = std::move(what);
  }

  // E0304: a member construct on a value that is the same for every member.
  void same_for_every_member(const Expr& e, const char* does, const char* advice) {
    error("E0304", e.args[0]->span,
          "'" + e.name + "' " + does + ", but this value is the same for every member (it reads no "
          "input, member() or random draw, or it is already reduced); apply '" + e.name + "' to " +
          advice);
  }

  bool reject_mask(const Val& v, const Expr& at, const char* where) {
    if (v.ty != Ty::Mask) return false;
    error("E0301", at.span,
          std::string("a mask (a comparison) cannot be used ") + where +
              "; masks are only the first argument of where(mask, a, b)");
    return true;
  }

  NodeId build_unary(Op op, const Val& a) {
    if (in_param_ || a.node < 0) return -1;
    return builder_.unary(op, a.node);
  }
  NodeId build_binary(Op op, const Val& a, const Val& b) {
    if (in_param_ || a.node < 0 || b.node < 0) return -1;
    return builder_.binary(op, a.node, b.node);
  }
  NodeId build_binary(Op op, NodeId a, NodeId b) {
    if (in_param_ || a < 0 || b < 0) return -1;
    return builder_.binary(op, a, b);
  }

  Val unary(const Expr& e) {
    Val a = expr(*e.args[0]);
    if (a.ty == Ty::Error) return error_val();
    if (reject_mask(a, *e.args[0], "with a sign")) return error_val();
    if (e.unary_op == UnaryOp::Plus) return a;
    Val r;
    r.ty = Ty::Value;
    merge_const(r, {&a});
    if (r.is_const) r.cval = -a.cval;
    r.node = build_unary(Op::Neg, a);
    return r;
  }

  // Walks the left operands as a loop, not by recursion: `a + b + c + ...` is as deep as it is
  // long (the parser limits nesting, not chain length).
  Val binary(const Expr& e) {
    std::vector<const Expr*> spine{&e};
    while (spine.back()->args[0]->kind == ExprKind::Binary) spine.push_back(spine.back()->args[0].get());
    Val acc = expr(*spine.back()->args[0]);
    for (auto it = spine.rbegin(); it != spine.rend(); ++it) acc = binary_step(**it, acc);
    return acc;
  }

  // Binary `e` whose left operand has the value `a`.
  Val binary_step(const Expr& e, const Val& a) {
    Val b = expr(*e.args[1]);
    bool compare = is_comparison(e.binary_op);
    const char* where = compare ? "in a comparison" : "in arithmetic";
    bool bad = reject_mask(a, *e.args[0], where);
    bad = reject_mask(b, *e.args[1], where) || bad;
    if (bad || a.ty == Ty::Error || b.ty == Ty::Error) return error_val();
    Op op = to_ir(e.binary_op);
    Val r;
    r.ty = compare ? Ty::Mask : Ty::Value;
    merge_const(r, {&a, &b});
    if (r.is_const) r.cval = fold_binary(op, a.cval, b.cval);
    r.node = build_binary(op, a, b);
    return r;
  }

  Val call(const Expr& e) {
    std::vector<Val> args;
    for (const auto& a : e.args) args.push_back(expr(*a));
    const FunctionInfo* f = find_function(e.name);
    if (f == nullptr) {
      std::string msg = "unknown function '" + e.name + "'";
      std::string guess = closest_match(e.name, builtin_function_names());
      if (!guess.empty()) {
        msg += "; did you mean '" + guess + "'?";
      } else {
        msg += "; the built-in functions are";
        for (const FunctionInfo& g : kFunctions) msg += std::string(" ") + g.name;
      }
      error("E0103", e.name_span, msg);
      return error_val();
    }
    const bool keyed = (f->kind == Builtin::Rand || f->kind == Builtin::Randn) && args.size() == 2;
    if (int(args.size()) != f->arity && !keyed) {
      std::string takes = f->kind == Builtin::Rand || f->kind == Builtin::Randn
                              ? "takes no arguments (a fresh draw) or 2 (k, j: keyed noise)"
                          : f->arity == 0 ? "takes no arguments"
                          : f->arity == 1 ? "takes 1 argument (" + std::string(f->args) + ")"
                                          : "takes " + std::to_string(f->arity) + " arguments (" +
                                                f->args + ")";
      error("E0104", e.span,
            "'" + e.name + "' " + takes + " but was given " + std::to_string(args.size()) +
                "; write " + e.name + "(" + f->args + ")" +
                (f->kind == Builtin::Rand || f->kind == Builtin::Randn ? " or " + e.name + "(k, j)" : ""));
      return error_val();
    }
    bool broken = false;
    for (const Val& a : args) broken = broken || a.ty == Ty::Error;
    if (f->kind == Builtin::Where) {
      if (!broken && args[0].ty != Ty::Mask) {
        error("E0302", e.args[0]->span,
              "the first argument of 'where' must be a mask, a comparison such as 'x > 0'");
        broken = true;
      }
      for (size_t i = 1; i < 3; ++i)
        broken = reject_mask(args[i], *e.args[i], "as a value chosen by where") || broken;
    } else {
      for (size_t i = 0; i < args.size(); ++i)
        broken = reject_mask(args[i], *e.args[i], std::string("as an argument of '" + e.name + "'").c_str()) || broken;
    }
    if (broken) return error_val();
    if (keyed) return keyed_draw(e, f->kind == Builtin::Randn, args);

    Val r;
    r.ty = Ty::Value;
    switch (f->kind) {
      case Builtin::Rand:
      case Builtin::Randn:
      case Builtin::MRand:
        not_constant(r, e, "'" + e.name + "()'");
        if (!in_param_ && out_.graph.rand_sites == options_.limits.random_sites) {
          if (!limit_hit_)
            too_large(e.span, "more than " + with_commas(size_t(options_.limits.random_sites)) +
                                  " rand() and randn() calls");
          return error_val();
        }
        if (!in_param_)
          r.node = f->kind == Builtin::MRand ? builder_.member_rand(f->op == Op::MRandn)
                                             : builder_.rand(f->kind == Builtin::Randn);
        r.member = true;
        r.elem = f->kind != Builtin::MRand;
        return r;
      case Builtin::Member:
        // Known only when the rule runs: never a constant (a param's default cannot use it).
        not_constant(r, e, "'" + e.name + "()'");
        if (!in_param_) r.node = f->op == Op::Member ? builder_.member() : builder_.members();
        r.member = f->op == Op::Member;
        return r;
      case Builtin::MRank: {
        // Per-member scalar work across the members: a per-member value, not a particle value.
        const Val& a = args[0];
        if (a.elem) {
          error("E0308", e.args[0]->span,
                "'" + e.name + "' ranks one value per member, but this one varies per element (it "
                "uses rand() or randn()); rank a per-member value such as a fitness vector f");
          return error_val();
        }
        if (!a.member) {
          same_for_every_member(e, "compares the members", "a per-member value such as a fitness vector f");
          return error_val();
        }
        not_constant(r, e, "'" + e.name + "(...)'");
        r.member = f->op == Op::Rank || f->op == Op::CRank;
        if (!in_param_ && a.node >= 0) {
          ir::Node n{f->op};
          n.args[0] = without_element_axis(a.node);
          r.node = builder_.add_typed(n);
        }
        return r;
      }
      case Builtin::Pick: {
        const Val& a = args[0];
        if (!a.is_const || !(a.cval >= 0 && a.cval < 1e6 && a.cval == std::floor(a.cval))) {
          error("E0309", e.args[0]->span,
                a.is_const ? "pick(k) needs k to be an integer from 0 on (k < 1,000,000), not " +
                                 ir::print_number(a.cval)
                           : "pick(k) needs a constant k (a number, a param or a let of numbers): "
                             "pick(0), pick(1), ... are distinct members chosen once per run, and "
                             "which ones a member gets must not depend on " + a.nonconst_what);
          return error_val();
        }
        not_constant(r, e, "'pick(...)'");
        r.member = true;
        if (!in_param_) {
          r.node = builder_.pick(int32_t(a.cval));
          if (out_.pick_spans.size() <= size_t(a.cval)) out_.pick_spans.resize(size_t(a.cval) + 1, e.span);
        }
        return r;
      }
      case Builtin::MReduce: {
        const Val& a = args[0];
        if (!a.member) {
          same_for_every_member(e, "reduces over the members", "a swarm value, or drop it");
          return error_val();
        }
        not_constant(r, e, "'" + e.name + "(...)'");
        r.elem = a.elem;  // the member axis is gone; the element axis stays
        if (!in_param_ && a.node >= 0) {
          if (f->op == Op::Div)  // mmean(x) = msum(x) / members()
            r.node = builder_.binary(Op::Div, builder_.member_reduce(Op::MSum, a.node), builder_.members());
          else
            r.node = builder_.member_reduce(f->op, a.node);
        }
        return r;
      }
      case Builtin::PReduce: {
        // A reduction over each tensor (t*) or the whole particle (p*): per member when its
        // argument may vary per member; tmean/pmean divide by numel()/elems().
        const Val& a = args[0];
        const bool tensor = ir::is_tensor_reduce(f->op) || f->op == Op::Numel;  // Numel: tmean
        not_constant(r, e, "'" + e.name + "(...)'");
        r.member = a.member;
        r.tensor = tensor;
        if (!in_param_ && a.node >= 0) {
          if (f->op == Op::Numel || f->op == Op::Elems) {
            const Op sum = f->op == Op::Numel ? Op::TSum : Op::PSum;
            ir::Node n{sum}, count{f->op};
            n.args[0] = a.node;
            r.node = builder_.binary(Op::Div, builder_.add_typed(n), builder_.add_typed(count));
          } else {
            ir::Node n{f->op};
            n.args[0] = a.node;
            r.node = builder_.add_typed(n);
          }
        }
        return r;
      }
      case Builtin::PLeaf:
        not_constant(r, e, "'" + e.name + "()'");
        r.elem = f->op == Op::Elem;
        r.tensor = f->op == Op::Numel;
        if (!in_param_) r.node = builder_.add_typed(ir::Node{f->op});
        return r;
      case Builtin::Kth: {
        // tkth(x, k) / pkth(x, k): k is one number per tensor (per particle), per member at most.
        const Val& x = args[0];
        const Val& k = args[1];
        const bool particle = f->op == Op::PKth;
        if (k.elem || (particle && k.tensor)) {
          error("E0310", e.args[1]->span,
                "k of '" + e.name + "(x, k)' varies per " + (k.elem ? "element" : "tensor") +
                    " (it uses " + (k.elem ? "rand(), randn() or elem()" : "numel() or a t* reduction") +
                    "); k is " + (particle ? "one number per particle, such as density * elems()"
                                           : "one number per tensor, such as density * numel()"));
          return error_val();
        }
        not_constant(r, e, "'" + e.name + "(...)'");
        r.member = x.member || k.member;
        r.tensor = !particle;
        if (!in_param_ && x.node >= 0 && k.node >= 0) {
          ir::Node n{f->op};
          n.args[0] = x.node;
          n.args[1] = without_element_axis(k.node);
          r.node = builder_.add_typed(n);
        }
        return r;
      }
      case Builtin::Unary:
        merge_const(r, {&args[0]});
        if (r.is_const) r.cval = fold_unary(f->op, args[0].cval);
        r.node = build_unary(f->op, args[0]);
        return r;
      case Builtin::Binary:
        merge_const(r, {&args[0], &args[1]});
        if (r.is_const) r.cval = fold_binary(f->op, args[0].cval, args[1].cval);
        r.node = build_binary(f->op, args[0], args[1]);
        return r;
      case Builtin::Clamp:
        // clamp(x, lo, hi) = Min(Max(x, lo), hi), the IR contract's definition.
        merge_const(r, {&args[0], &args[1], &args[2]});
        if (r.is_const)
          r.cval = fold_binary(Op::Min, fold_binary(Op::Max, args[0].cval, args[1].cval), args[2].cval);
        r.node = build_binary(Op::Min, build_binary(Op::Max, args[0], args[1]), args[2].node);
        return r;
      case Builtin::Lerp: {
        // lerp(a, b, t) = a + t * (b - a), the IR contract's definition.
        merge_const(r, {&args[0], &args[1], &args[2]});
        if (r.is_const)
          r.cval = args[0].cval + args[2].cval * (args[1].cval - args[0].cval);
        NodeId diff = build_binary(Op::Sub, args[1], args[0]);
        r.node = build_binary(Op::Add, args[0].node, build_binary(Op::Mul, args[2].node, diff));
        return r;
      }
      case Builtin::Where:
        merge_const(r, {&args[0], &args[1], &args[2]});
        if (r.is_const) r.cval = args[0].cval != 0 ? args[1].cval : args[2].cval;
        if (!in_param_ && args[0].node >= 0 && args[1].node >= 0 && args[2].node >= 0)
          r.node = builder_.select(args[0].node, args[1].node, args[2].node);
        return r;
    }
    internal_error("unknown builtin kind");
  }

  // rand(k, j) / randn(k, j): keyed noise, the same particle for the same (seed, k, j) in any rule
  // and run. The keys must not vary per element; constant keys are checked here, the others
  // before the run writes anything (E0601).
  Val keyed_draw(const Expr& e, bool normal, const std::vector<Val>& args) {
    bool bad = false;
    for (int k = 0; k < 2; ++k) {
      const Val& a = args[size_t(k)];
      const Expr& at = *e.args[size_t(k)];
      const char* which = k == 0 ? "k" : "j";
      if (a.elem) {
        error("E0307", at.span,
              std::string("the key ") + which + " of '" + e.name + "(k, j)' varies per element (it "
              "uses rand() or randn()); keys are scalars or per-member values such as member() or "
              "a generation number, and every element of the particle is keyed by them");
        bad = true;
      } else if (a.is_const && !(a.cval >= 0 && a.cval < 0x1p32 && a.cval == std::floor(a.cval))) {
        error("E0307", at.span,
              std::string("the key ") + which + " of '" + e.name + "(k, j)' is " +
                  ir::print_number(a.cval) + "; keys are integers in [0, 4294967295]");
        bad = true;
      }
    }
    if (bad) return error_val();
    Val r;
    r.ty = Ty::Value;
    not_constant(r, e, "'" + e.name + "(k, j)'");
    r.member = args[0].member || args[1].member;
    r.elem = true;
    if (!in_param_ && args[0].node >= 0 && args[1].node >= 0) {
      r.node = builder_.keyed_rand(normal, without_element_axis(args[0].node),
                                   without_element_axis(args[1].node), int32_t(out_.read_spans.size()));
      out_.read_spans.push_back(e.span);
    }
    return r;
  }

  // `id` rebuilt with its inputs typed as scalars: the frontend types an input as a particle
  // value (Elem) until bound, but a member index reads scalars or per-member vectors (a particle
  // bound there is E0507 at bind time). `id` has no random draw (E0306 was checked).
  NodeId without_element_axis(NodeId id) {
    const ir::Graph& g = out_.graph;
    if (!g.nodes[id].type.element) return id;
    std::vector<char> reach(size_t(id) + 1, 0);
    std::vector<NodeId> todo{id};
    while (!todo.empty()) {
      NodeId n = todo.back();
      todo.pop_back();
      if (reach[size_t(n)] || !g.nodes[n].type.element) continue;
      reach[size_t(n)] = 1;
      for (int a = 0; a < ir::op_arity(g.nodes[n].op); ++a) todo.push_back(g.nodes[n].args[a]);
    }
    std::vector<NodeId> map(size_t(id) + 1, -1);
    for (NodeId n = 0; n <= id; ++n) {
      if (!reach[size_t(n)]) continue;
      ir::Node c = g.nodes[n];  // a copy: the builder may grow the node vector
      if (c.op == Op::Input) {
        map[size_t(n)] = builder_.input(c.index, ir::Type::Scalar);
        continue;
      }
      NodeId args[3] = {-1, -1, -1};
      for (int a = 0; a < ir::op_arity(c.op); ++a)
        args[a] = map[size_t(c.args[a])] >= 0 ? map[size_t(c.args[a])] : c.args[a];
      if (c.op == Op::Select)
        map[size_t(n)] = builder_.select(args[0], args[1], args[2]);
      else if (ir::is_member_reduce(c.op))
        map[size_t(n)] = builder_.member_reduce(c.op, args[0]);
      else if (c.op == Op::MRead)
        map[size_t(n)] = builder_.member_read(args[0], args[1], c.index);
      else if (ir::is_keyed(c.op))
        map[size_t(n)] = builder_.keyed_rand(c.op == Op::KRandn, args[0], args[1], c.index);
      else if (ir::op_arity(c.op) == 1)
        map[size_t(n)] = builder_.unary(c.op, args[0]);
      else
        map[size_t(n)] = builder_.binary(c.op, args[0], args[1]);
    }
    return map[size_t(id)];
  }

  // x[i]: member i of swarm x (or entry i of a per-member vector x), at the same element. x is a
  // name: the value it has at this statement (an input, or what an earlier statement assigned).
  Val index(const Expr& e) {
    Expr ref;
    ref.kind = ExprKind::Name;
    ref.name = e.name;
    ref.span = e.name_span;
    Val x = name(ref);
    Val i = expr(*e.args[0]);
    if (x.ty == Ty::Error || i.ty == Ty::Error) return error_val();
    bool bad = false;
    if (x.ty == Ty::Mask || !x.member) {
      auto it = env_.find(e.name);
      std::string what = x.ty == Ty::Mask ? "a mask"
                         : it != env_.end() && it->second.kind == Kind::Param
                             ? "a param, the same for every member"
                             : "the same for every member (it reads no input, member() or "
                               "random draw, or it is reduced over the members)";
      error("E0305", e.name_span,
            "'" + e.name + "' is " + what + "; x[i] reads member i of a swarm or entry i of a "
            "per-member vector");
      bad = true;
    }
    if (reject_mask(i, *e.args[0], "as a member index")) bad = true;
    if (!bad && i.elem) {
      error("E0306", e.args[0]->span,
            "a member index must be the same for every element of a member, but this one varies "
            "per element (it uses rand() or randn()); use a scalar, member(), mrand() or a "
            "per-member vector");
      bad = true;
    }
    if (bad) return error_val();
    Val r;
    r.ty = Ty::Value;
    not_constant(r, e, "'" + e.name + "[...]'");
    r.member = i.member;  // x[0] is the same for every member; x[member() + 1] is not
    r.elem = x.elem;
    if (!in_param_ && x.node >= 0 && i.node >= 0) {
      r.node = builder_.member_read(x.node, without_element_axis(i.node), int32_t(out_.read_spans.size()));
      out_.read_spans.push_back(e.span);
    }
    return r;
  }

  const FrontendOptions& options_;
  std::vector<Diagnostic>& diags_;
  Lowered out_;
  ir::Builder builder_;
  std::unordered_map<std::string, Binding> env_;
  std::vector<std::string> output_order_;
  std::unordered_map<std::string, const Stmt*> declared_;  // params and lets
  std::unordered_map<std::string, Span> states_;
  std::unordered_set<std::string> init_lets_;  // state_init: the lets the states read
  bool in_param_ = false;
  bool limit_hit_ = false;  // E0403 reported: stop analysing
};

}  // namespace

const std::vector<std::string>& builtin_function_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const FunctionInfo& f : kFunctions) v.push_back(f.name);
    return v;
  }();
  return names;
}

Lowered analyze(const Program& program, const FrontendOptions& options,
                std::vector<Diagnostic>& diagnostics) {
  if (options.limits.random_sites < 0 || options.limits.random_sites > Limits{}.random_sites)
    throw std::invalid_argument("FrontendOptions::limits.random_sites must be in [0, 32768]");
  std::vector<Diagnostic> found;
  Analyzer analyzer(options, found);
  Lowered lowered = analyzer.run(program);
  // Reported as they are found (a value before the name it is assigned to); read in text order.
  std::stable_sort(found.begin(), found.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.span.line != b.span.line ? a.span.line < b.span.line : a.span.col < b.span.col;
  });
  diagnostics.insert(diagnostics.end(), found.begin(), found.end());
  return lowered;
}

}  // namespace nyto::frontend
