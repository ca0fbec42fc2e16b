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

ExprPtr expr_swarm(const AnySwarm& s) {
  if (!s.detail_state()) throw Error("use of an empty swarm handle in an expression");
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Swarm;
  n->swarm = s.detail_state();
  n->species = n->swarm->species;
  n->member = true;
  return n;
}

ExprPtr expr_vector(std::vector<double> per_member) {
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Vector;
  n->values = std::move(per_member);
  n->member = true;
  return n;
}

ExprPtr expr_member_reduce(ExprOp op, ExprPtr a) {
  if (!a->member)
    throw Error("msum/mmean/mmin/mmax of an expression without a swarm or per-member vector: it is "
                "the same for every member");
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::MemberReduce;
  n->op = op;
  n->species = a->species;
  n->a = std::move(a);
  return n;
}

ExprPtr expr_unary(ExprOp op, ExprPtr a) {
  auto n = std::make_shared<ExprNode>();
  n->kind = ExprNode::Kind::Unary;
  n->op = op;
  n->member = a->member;
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
  n->member = a->member || b->member;
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
  Bindings others;  // swarms and per-member vectors, by input name

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
      case ExprNode::Kind::Swarm:
      case ExprNode::Kind::Vector: {
        std::string name = (n.kind == ExprNode::Kind::Swarm ? "s" : "v") + std::to_string(g.inputs.size());
        g.inputs.push_back({name});
        if (n.kind == ExprNode::Kind::Swarm)
          others.emplace(name, Value(AnySwarm(n.swarm)));
        else
          others.emplace(name, Value(n.values));
        return b.input(int32_t(g.inputs.size() - 1), ir::Type::Elem);
      }
      case ExprNode::Kind::MemberReduce: {
        ir::NodeId a = lower(*n.a);
        if (n.op == ExprOp::Div) return b.binary(ir::Op::Div, b.member_reduce(ir::Op::MSum, a), b.members());
        return b.member_reduce(n.op == ExprOp::Add ? ir::Op::MSum : n.op == ExprOp::Min ? ir::Op::MMin : ir::Op::MMax, a);
      }
      case ExprNode::Kind::Binary: {
        ir::NodeId x = lower(*n.a), y = lower(*n.b);
        return b.binary(op_of(n.op), x, y);
      }
    }
    throw std::logic_error("nyto internal error (this is a bug in nyto): bad expression node");
  }

  // Inputs are numbered in order of first use (particles, swarms and vectors alike).
  std::vector<int32_t> particle_input;
  int32_t input_of(const std::shared_ptr<ParticleState>& p) {
    for (size_t i = 0; i < particles.size(); ++i)
      if (particles[i] == p) return particle_input[i];
    particles.push_back(p);
    g.inputs.push_back({"p" + std::to_string(particles.size() - 1)});
    particle_input.push_back(int32_t(g.inputs.size() - 1));
    return particle_input.back();
  }
  std::string name_of(const std::shared_ptr<ParticleState>& p) const {
    for (size_t i = 0; i < particles.size(); ++i)
      if (particles[i] == p) return g.inputs[size_t(particle_input[i])].name;
    return "";
  }

  static ir::Op op_of(ExprOp op) {
    switch (op) {
      case ExprOp::Add: return ir::Op::Add;
      case ExprOp::Sub: return ir::Op::Sub;
      case ExprOp::Mul: return ir::Op::Mul;
      case ExprOp::Div: return ir::Op::Div;
      case ExprOp::Pow: return ir::Op::Pow;
      case ExprOp::Neg: return ir::Op::Neg;
      case ExprOp::Min: return ir::Op::Min;
      case ExprOp::Max: return ir::Op::Max;
    }
    return ir::Op::Add;
  }

  std::map<std::string, Value> run(const std::string& what) {
    for (const auto& p : particles) check_species(particles[0]->species, p->species);
    Bindings bindings;
    for (const auto& p : particles) bindings.emplace(name_of(p), Value(AnyParticle(p)));
    for (const auto& [name, v] : others) bindings.emplace(name, v);
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

AnySwarm expr_eval_swarm(const ExprPtr& e) {
  Lowering l;
  ir::NodeId out = l.lower(*e);
  l.g.outputs.push_back({"result", out, -1});
  Value v = l.run("member expression").at("result");
  if (v.kind() != Value::Kind::Swarm)
    throw BindError("the member expression has no swarm to take its structure from; a per-member "
                    "vector alone is not a swarm");
  return v.swarm();
}

AnyParticle expr_eval(const ExprPtr& e) {
  if (e->member)
    throw Error("this expression has one value per member (a swarm or per-member vector in it): "
                "reduce it with nyto::msum, mmean, mmin or mmax, or evaluate it as a MemberExpr");
  Lowering l;
  ir::NodeId out = l.lower(*e);
  l.g.outputs.push_back({"result", out, -1});
  return l.run("particle expression").at("result").particle();
}

void expr_update(AnyParticle& target, ExprOp op, const ExprPtr& e) {
  Lowering l;
  const int32_t ti = l.input_of(target.detail_state());
  ir::NodeId t = l.b.input(ti, ir::Type::Elem);
  ir::NodeId out = l.b.binary(Lowering::op_of(op), t, l.lower(*e));
  l.g.outputs.push_back({l.g.inputs[size_t(ti)].name, out, ti});
  l.run("in-place particle operation");
}

}  // namespace nyto::detail

namespace nyto {
AnySwarm MemberExpr::eval() const { return detail::expr_eval_swarm(node_); }
}  // namespace nyto
