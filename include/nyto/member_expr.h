// Lazy expressions over the members of a swarm (language version 1 in C++): a swarm, or a
// per-member vector of numbers, combined elementwise with particles, numbers and each other, and
// reduced over the members by nyto::msum / mmean / mmin / mmax. The whole expression, reductions
// included, is lowered to the rule IR and runs as ONE staged pass (docs/language.md, "Cost"):
//
//   std::vector<double> w = ...;              // one weight per member
//   mu -= lr * nyto::msum(w * (eps - mu));    // one fused kernel over mu and the swarm eps
//
// A member of a swarm inside an expression is `swarm.member(i)` (or `Swarm<T>::operator[]`), a
// particle. Included by <nyto/swarm.h>.
#pragma once

#include <nyto/expr.h>

#include <vector>

namespace nyto {

class AnySwarm;

namespace detail {
ExprPtr expr_swarm(const AnySwarm& s);
ExprPtr expr_vector(std::vector<double> per_member);
/// msum (op Add), mmin (Min), mmax (Max) or mmean (Div) of a per-member expression.
ExprPtr expr_member_reduce(ExprOp op, ExprPtr a);
/// A new swarm holding e's value per member (its species from e's swarm).
AnySwarm expr_eval_swarm(const ExprPtr& e);
}  // namespace detail

/// An expression with one value per member: a swarm, a per-member vector (length = the swarm's
/// size, checked when evaluated: BindError), or arithmetic mixing them with particles and numbers.
class MemberExpr {
 public:
  MemberExpr(const AnySwarm& s) : node_(detail::expr_swarm(s)) {}
  MemberExpr(std::vector<double> per_member) : node_(detail::expr_vector(std::move(per_member))) {}
  explicit MemberExpr(detail::ExprPtr node) : node_(std::move(node)) {}
  const detail::ExprPtr& node() const { return node_; }
  /// Runs the expression: a new swarm of its swarm's species and size. Throws SpeciesError,
  /// BindError (no swarm in the expression to take the structure from, vector length).
  AnySwarm eval() const;

 private:
  detail::ExprPtr node_;
};

#define NYTO_MEMBER_BINOP(sym, op)                                                              \
  inline MemberExpr operator sym(const MemberExpr& a, const MemberExpr& b) {                    \
    return MemberExpr(detail::expr_binary(ExprOp::op, a.node(), b.node()));                     \
  }                                                                                             \
  inline MemberExpr operator sym(const MemberExpr& a, const AnyExpr& b) {                       \
    return MemberExpr(detail::expr_binary(ExprOp::op, a.node(), b.node()));                     \
  }                                                                                             \
  inline MemberExpr operator sym(const AnyExpr& a, const MemberExpr& b) {                       \
    return MemberExpr(detail::expr_binary(ExprOp::op, a.node(), b.node()));                     \
  }
NYTO_MEMBER_BINOP(+, Add)
NYTO_MEMBER_BINOP(-, Sub)
NYTO_MEMBER_BINOP(*, Mul)
NYTO_MEMBER_BINOP(/, Div)
#undef NYTO_MEMBER_BINOP
inline MemberExpr operator-(const MemberExpr& a) { return MemberExpr(detail::expr_unary(ExprOp::Neg, a.node())); }

/// Sum over the members, added in member order 0..M-1 (the same bits on every backend and thread
/// count): a particle expression.
inline AnyExpr msum(const MemberExpr& e) { return AnyExpr(detail::expr_member_reduce(ExprOp::Add, e.node())); }
/// msum(e) / M.
inline AnyExpr mmean(const MemberExpr& e) { return AnyExpr(detail::expr_member_reduce(ExprOp::Div, e.node())); }
/// Elementwise minimum / maximum over the members (NaN propagates, as ir::Op::Min / Max).
inline AnyExpr mmin(const MemberExpr& e) { return AnyExpr(detail::expr_member_reduce(ExprOp::Min, e.node())); }
inline AnyExpr mmax(const MemberExpr& e) { return AnyExpr(detail::expr_member_reduce(ExprOp::Max, e.node())); }

}  // namespace nyto
