// Lazy particle expressions (nytorch's ParamProduct): `0.5*net + 10*other - nyto::pow(net, 2)`
// builds an expression tree; converting it to a Particle (or calling eval()) lowers it to the
// rule compiler's IR and runs ONE fused kernel over the flat storage, with the species checks,
// ParamConfig handling and kernel cache of rules. Included by <nyto/particle.h>.
//
// As with Eigen's expression templates, an expression held in `auto` reads its operands when it
// is evaluated, not when it is written: assign it to a Particle to fix its value.
#pragma once

#include <nyto/particle.h>

#include <cstdint>
#include <memory>
#include <vector>
#include <type_traits>

namespace nyto {

enum class ExprOp : uint8_t { Add, Sub, Mul, Div, Pow, Neg, Min, Max };

namespace detail {
struct SwarmState;

struct ExprNode {
  // Swarm, Vector and MemberReduce: member expressions (nyto/member_expr.h).
  enum class Kind : uint8_t { Particle, Scalar, Unary, Binary, Swarm, Vector, MemberReduce };
  Kind kind;
  ExprOp op = ExprOp::Add;
  std::shared_ptr<ParticleState> particle;  // Kind::Particle
  double value = 0;                         // Kind::Scalar
  std::shared_ptr<const ExprNode> a, b;     // Unary (a), Binary (a, b), MemberReduce (a)
  std::shared_ptr<SwarmState> swarm;        // Kind::Swarm
  std::vector<double> values;               // Kind::Vector: one per member
  bool member = false;                      // varies per member (a swarm or vector below)
  std::shared_ptr<Species> species;         // of its particles; null for a number
};
using ExprPtr = std::shared_ptr<const ExprNode>;

ExprPtr expr_leaf(const AnyParticle& p);
ExprPtr expr_scalar(double v);
ExprPtr expr_unary(ExprOp op, ExprPtr a);
ExprPtr expr_binary(ExprOp op, ExprPtr a, ExprPtr b);
/// The builders check species as the tree grows, so a mistake throws SpeciesError where it is
/// written.
/// A new particle of the operands' species holding e's value.
AnyParticle expr_eval(const ExprPtr& e);
/// target = target OP e, in place, in one kernel. Throws SpeciesError.
void expr_update(AnyParticle& target, ExprOp op, const ExprPtr& e);
}  // namespace detail

/// An expression over particles of any module type. Particles and numbers convert to it.
class AnyExpr {
 public:
  AnyExpr(const AnyParticle& p) : node_(detail::expr_leaf(p)) {}
  AnyExpr(double v) : node_(detail::expr_scalar(v)) {}
  explicit AnyExpr(detail::ExprPtr node) : node_(std::move(node)) {}

  /// Compiles (once per expression shape and binding kind, then cached) and runs the expression:
  /// a new particle of its operands' species. Throws SpeciesError for operands of two species.
  AnyParticle eval() const { return detail::expr_eval(node()); }
  operator AnyParticle() const { return eval(); }
  /// The tree; once the expression was used as a particle (see ParticleExpr), that particle.
  detail::ExprPtr node() const { return cache_ ? detail::expr_leaf(*cache_) : node_; }

 protected:
  detail::ExprPtr node_;
  mutable std::shared_ptr<AnyParticle> cache_;
};

/// An expression whose particles are Particle<T>: evaluates to a Particle<T>.
template <class T>
class ParticleExpr : public AnyExpr {
 public:
  explicit ParticleExpr(detail::ExprPtr node) : AnyExpr(std::move(node)) {}
  Particle<T> eval() const { return Particle<T>(AnyExpr::eval()); }
  operator Particle<T>() const { return eval(); }

  // Read access as if it were the particle: evaluated on first use, then kept.
  typename Particle<T>::Module* operator->() const { return value()->operator->(); }
  const std::vector<at::Tensor>& storage() const { return value()->storage(); }
  const std::shared_ptr<Species>& species() const { return value()->species(); }
  bool same_species(const AnyParticle& other) const { return value()->same_species(other); }
  const std::vector<ParamInfo>& params() const { return value()->params(); }
  at::Tensor parameter(const std::string& path) const { return value()->parameter(path); }
  at::Tensor buffer(const std::string& path) const { return value()->buffer(path); }
  std::shared_ptr<torch::nn::Module> submodule(const std::string& path) const {
    return value()->submodule(path);
  }
  const Particle<T>& touch() const { return value()->touch(); }
  int64_t version() const { return value()->version(); }
  /// The evaluated particle (evaluated on first use, then kept).
  const Particle<T>& particle() const { return *value(); }
  // In-place arithmetic on an expression held in `auto` changes its (evaluated) particle.
  ParticleExpr& operator+=(const AnyExpr& e) { return *value() += e, *this; }
  ParticleExpr& operator-=(const AnyExpr& e) { return *value() -= e, *this; }
  ParticleExpr& operator*=(const AnyExpr& e) { return *value() *= e, *this; }
  ParticleExpr& operator/=(const AnyExpr& e) { return *value() /= e, *this; }

 private:
  Particle<T>* value() const {
    if (!cache_) cache_ = std::make_shared<Particle<T>>(eval());
    return static_cast<Particle<T>*>(cache_.get());
  }
};

namespace detail {
template <class X>
struct ExprTraits {
  static constexpr bool particle = false;
};
template <class T>
struct ExprTraits<Particle<T>> {
  static constexpr bool particle = true;
  using module = T;
};
template <class T>
struct ExprTraits<ParticleExpr<T>> {
  static constexpr bool particle = true;
  using module = T;
};
template <class X>
constexpr bool is_operand_v = ExprTraits<X>::particle || std::is_arithmetic_v<X>;

template <class X>
ExprPtr to_expr(const X& x) {
  if constexpr (std::is_arithmetic_v<X>)
    return expr_scalar(double(x));
  else if constexpr (std::is_base_of_v<AnyParticle, X>)
    return expr_leaf(x);
  else
    return x.node();
}

// The module type of a binary expression: that of its particle operand(s).
template <class A, class B>
struct ExprModule {
  using type = typename std::conditional_t<ExprTraits<A>::particle, ExprTraits<A>, ExprTraits<B>>::module;
};
template <class A, class B>
constexpr bool typed_operands_v = is_operand_v<A> && is_operand_v<B> &&
                                  (ExprTraits<A>::particle || ExprTraits<B>::particle);
}  // namespace detail

// Elementwise + - * / between Particle<T>, ParticleExpr<T> and numbers: each builds an expression.
#define NYTO_EXPR_BINOP(sym, op)                                                                 \
  template <class A, class B, std::enable_if_t<detail::typed_operands_v<A, B>, int> = 0>        \
  ParticleExpr<typename detail::ExprModule<A, B>::type> operator sym(const A& a, const B& b) {  \
    return ParticleExpr<typename detail::ExprModule<A, B>::type>(                                \
        detail::expr_binary(ExprOp::op, detail::to_expr(a), detail::to_expr(b)));                \
  }                                                                                              \
  inline AnyExpr operator sym(const AnyExpr& a, const AnyExpr& b) {                              \
    return AnyExpr(detail::expr_binary(ExprOp::op, a.node(), b.node()));                         \
  }
NYTO_EXPR_BINOP(+, Add)
NYTO_EXPR_BINOP(-, Sub)
NYTO_EXPR_BINOP(*, Mul)
NYTO_EXPR_BINOP(/, Div)
#undef NYTO_EXPR_BINOP

/// Elementwise power: particle ** number, number ** particle, particle ** particle.
template <class A, class B, std::enable_if_t<detail::typed_operands_v<A, B>, int> = 0>
ParticleExpr<typename detail::ExprModule<A, B>::type> pow(const A& a, const B& b) {
  return ParticleExpr<typename detail::ExprModule<A, B>::type>(
      detail::expr_binary(ExprOp::Pow, detail::to_expr(a), detail::to_expr(b)));
}
inline AnyExpr pow(const AnyExpr& a, const AnyExpr& b) {
  return AnyExpr(detail::expr_binary(ExprOp::Pow, a.node(), b.node()));
}

template <class A, std::enable_if_t<detail::ExprTraits<A>::particle, int> = 0>
ParticleExpr<typename detail::ExprTraits<A>::module> operator-(const A& a) {
  return ParticleExpr<typename detail::ExprTraits<A>::module>(
      detail::expr_unary(ExprOp::Neg, detail::to_expr(a)));
}
inline AnyExpr operator-(const AnyExpr& a) { return AnyExpr(detail::expr_unary(ExprOp::Neg, a.node())); }
/// Unary plus: evaluates to a new particle with the same values (as nytorch's `+net`).
template <class A, std::enable_if_t<detail::ExprTraits<A>::particle, int> = 0>
ParticleExpr<typename detail::ExprTraits<A>::module> operator+(const A& a) {
  return ParticleExpr<typename detail::ExprTraits<A>::module>(detail::to_expr(a));
}

template <class T>
Particle<T>& Particle<T>::operator+=(const AnyExpr& e) {
  return detail::expr_update(*this, ExprOp::Add, e.node()), *this;
}
template <class T>
Particle<T>& Particle<T>::operator-=(const AnyExpr& e) {
  return detail::expr_update(*this, ExprOp::Sub, e.node()), *this;
}
template <class T>
Particle<T>& Particle<T>::operator*=(const AnyExpr& e) {
  return detail::expr_update(*this, ExprOp::Mul, e.node()), *this;
}
template <class T>
Particle<T>& Particle<T>::operator/=(const AnyExpr& e) {
  return detail::expr_update(*this, ExprOp::Div, e.node()), *this;
}

}  // namespace nyto
