// Lazy particle expressions, lowered to the rule IR and run as one fused kernel.
#include <ATen/ATen.h>
#include <nyto/rule.h>

#include <map>

#include "ir/Passes.h"
#include "runtime/detail.h"
#include "runtime/run_graph.h"

namespace nyto::detail {

ExprPtr expr_leaf(const AnyParticle& p) {
  if (!p.detail_state()) throw Error("use of an empty particle handle in an expression");
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Particle;
  n->particle = p.detail_state();
  n->species = n->particle->species;
  return n;
}

ExprPtr expr_scalar(double v) {
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Scalar;
  n->value = v;
  return n;
}

ExprPtr expr_unary(ExprOp op, ExprPtr a) {
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Unary;
  n->op = op;
  n->species = a->species;
  n->a = std::move(a);
  return n;
}

void check_species(const std::shared_ptr<Species>& a, const std::shared_ptr<Species>& b) {
  if (a && b && a != b)
    throw SpeciesError("operands belong to different species: " + a->name() + " and " + b->name() +
                       "; particle operations need particles built from one another (clone(), "
                       "rand(), operations); use clone_from() to copy values across species");
}

ExprPtr expr_binary(ExprOp op, ExprPtr a, ExprPtr b) {
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Binary;
  n->op = op;
  check_species(a->species, b->species);
  n->species = a->species ? a->species : b->species;
  n->a = std::move(a);
  n->b = std::move(b);
  return n;
}

namespace {

// Lowers an expression tree to a graph. Particles become inputs (one per distinct particle);
// numbers become params, so the graph's structure, and with it the compiled kernel, depends only
// on the expression's shape: `k * net` compiles once for every k.
struct Lowering {
  ir::Graph g;
  ir::Builder b{g};
  std::vector<std::shared_ptr<ParticleState>> particles;
  std::map<std::string, double> params;

  ir::NodeId lower(const ExprNode& n) {
    switch (n.kind) {
      case ExprNode::Kind::Particle: return b.input(input_of(n.particle), ir::Type::Elem);
      case ExprNode::Kind::Scalar: {
        std::string name = "k" + std::to_string(g.params.size());
        g.params.push_back({name, n.value});
        params[name] = n.value;
        return b.param(int32_t(g.params.size() - 1));
      }
      case ExprNode::Kind::Unary: return b.unary(ir::Op::Neg, lower(*n.a));
      case ExprNode::Kind::Binary: {
        ir::NodeId x = lower(*n.a), y = lower(*n.b);
        return b.binary(op_of(n.op), x, y);
      }
    }
    throw std::logic_error("nyto internal error (this is a bug in nyto): bad expression node");
  }

  int32_t input_of(const std::shared_ptr<ParticleState>& p) {
    for (size_t i = 0; i < particles.size(); ++i)
      if (particles[i] == p) return int32_t(i);
    particles.push_back(p);
    g.inputs.push_back({"p" + std::to_string(particles.size() - 1)});
    return int32_t(particles.size() - 1);
  }

  static ir::Op op_of(ExprOp op) {
    switch (op) {
      case ExprOp::Add: return ir::Op::Add;
      case ExprOp::Sub: return ir::Op::Sub;
      case ExprOp::Mul: return ir::Op::Mul;
      case ExprOp::Div: return ir::Op::Div;
      case ExprOp::Pow: return ir::Op::Pow;
      case ExprOp::Neg: return ir::Op::Neg;
    }
    return ir::Op::Add;
  }

  std::map<std::string, Value> run(const std::string& what) {
    for (const auto& p : particles) check_species(particles[0]->species, p->species);
    Bindings bindings;
    for (size_t i = 0; i < particles.size(); ++i)
      bindings.emplace(g.inputs[i].name, Value(AnyParticle(particles[i])));
    ir::FusedKernel k = ir::optimize(g);
    RunOptions options;
    options.params = params;
    auto locate = [](const char* code, Site, const std::string& message) {
      return std::string("error[") + code + "]: " + message;
    };
    return run_graph(k.graph, what, locate, bindings, options);
  }
};

}  // namespace

AnyParticle expr_eval(const ExprPtr& e) {
  Lowering l;
  ir::NodeId out = l.lower(*e);
  l.g.outputs.push_back({"result", out, -1});
  return l.run("particle expression").at("result").particle();
}

void expr_update(AnyParticle& target, ExprOp op, const ExprPtr& e) {
  Lowering l;
  ir::NodeId t = l.b.input(l.input_of(target.detail_state()), ir::Type::Elem);
  ir::NodeId out = l.b.binary(Lowering::op_of(op), t, l.lower(*e));
  l.g.outputs.push_back({l.g.inputs[0].name, out, 0});
  l.run("in-place particle operation");
}

}  // namespace nyto::detail
