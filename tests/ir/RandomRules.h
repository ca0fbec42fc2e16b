// A generator of random valid rules, for differential tests (interpreter vs optimized graph here;
// interpreter vs LLVM JIT in tests/backend). Header-only, standard library only.
//
//   #include "tests/ir/RandomRules.h"   (or "RandomRules.h" from tests/ir)
//   nyto::ir::testing::RandomRuleOptions opt;  opt.ops = 60;
//   nyto::ir::Graph g = nyto::ir::testing::random_rule(seed, opt);   // verify(g) holds
//
// The same (seed, options) always gives the same graph (std::mt19937_64 and only integer draws
// mapped by hand, so no dependence on the standard library's distributions). Every op of
// NYTO_IR_OPS appears once `ops` >= 30 (ops are taken from a shuffled cycle over all of them),
// nested: operands prefer values not used yet, and the leftover roots are summed, so every node,
// input, param and rand site reaches an output (a few extra add/select nodes close the DAG).
// Input i is named "in<i>", param j "p<j>", output k "out<k>"; inputs flagged Scalar by the
// generator (RandomRuleOptions::scalar_input_probability) may be bound to anything, the others
// must be bound to a Particle or Swarm (see elem_inputs()).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ir/IR.h"

namespace nyto::ir::testing {

/// Shape of a random rule.
struct RandomRuleOptions {
  int inputs = 3;          // >= 1; input 0 is always Elem
  int params = 2;          // defaults drawn from {-2, -1.5, ..., 2}
  int outputs = 2;         // >= 1
  int ops = 40;            // operation nodes requested (hash-consing may merge a few)
  int rand_sites = 2;      // call sites, alternating rand() and randn()
  double scalar_input_probability = 0.3;  // chance an input other than 0 is typed Scalar
  bool special_constants = false;  // also draw constants nan, inf, -inf, -0
  bool tame_domains = true;  // log/sqrt take abs(a), pow(abs(a), small const), exp(min(a, 8)):
                             // keeps most values finite so comparisons are informative
  bool in_place = true;      // outputs store into distinct Elem inputs while there are some left
  std::vector<Op> only_ops;  // if not empty: the operations to draw from (leaves always appear)
  bool population = true;    // also the ops that cross members or are keyed (msum, x[i], rank,
                             // pick, rand(k, j)): such rules run staged (ir/Schedule.h); without
                             // them a rule is one fused kernel
  bool param_axis = false;   // also the parameter-axis ops (tsum, psum, tkth, numel(), elem(),
                             // ...): such rules run in passes (ir/ParamAxis.h) and need
                             // KernelArgs::tensors
};

/// The random rule for `seed`. Throws nothing for valid options; the result passes ir::verify.
inline Graph random_rule(uint64_t seed, const RandomRuleOptions& opt = {}) {
  std::mt19937_64 rng(seed);
  auto below = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  auto chance = [&](double p) { return double(rng() >> 11) * 0x1p-53 < p; };

  Graph g;
  Builder b(g);
  std::vector<NodeId> values, masks;
  std::vector<char> used;  // by node id
  auto note = [&](NodeId id) {
    if (used.size() <= size_t(id)) used.resize(id + 1, 0);
    return id;
  };
  auto add_value = [&](NodeId id) {
    note(id);
    if (g.nodes[id].type.mask)
      masks.push_back(id);
    else if (std::find(values.begin(), values.end(), id) == values.end())
      values.push_back(id);
    return id;
  };

  // Leaves.
  std::vector<Type> input_types;
  for (int i = 0; i < std::max(1, opt.inputs); ++i) {
    g.inputs.push_back({"in" + std::to_string(i)});
    input_types.push_back(i > 0 && chance(opt.scalar_input_probability) ? Type::Scalar : Type::Elem);
    add_value(b.input(i, input_types.back()));
  }
  for (int j = 0; j < opt.params; ++j) {
    g.params.push_back({"p" + std::to_string(j), -2.0 + 0.5 * double(below(9))});
    add_value(b.param(j));
  }
  // Every third site is a member draw (mrand(), mrandn(); language v1).
  for (int s = 0; s < opt.rand_sites; ++s)
    add_value(s % 3 == 2 ? b.member_rand(s % 2 == 1) : b.rand(s % 2 == 1));
  add_value(b.member());  // member values (language v1): per member, and the member count
  add_value(b.members());
  if (opt.population) add_value(b.pick(0));  // needs 2 members (RandomBindings sees to it)
  if (opt.param_axis)
    for (Op leaf : {Op::Numel, Op::Elem, Op::Elems}) add_value(b.add_typed(Node{leaf}));
  std::vector<double> pool = {0.5, 2, -1.5, 3, 0.25, 1, 0, -1, 10, 0.1};
  if (opt.special_constants) {
    pool.push_back(std::numeric_limits<double>::quiet_NaN());
    pool.push_back(std::numeric_limits<double>::infinity());
    pool.push_back(-std::numeric_limits<double>::infinity());
    pool.push_back(-0.0);
  }
  auto constant = [&]() { return note(b.constant(pool[below(pool.size())])); };
  for (int c = 0; c < 3; ++c) add_value(constant());

  // An operand: an unused value if any (so the DAG nests), else a recent one, else any.
  auto operand = [&]() -> NodeId {
    std::vector<NodeId> fresh;
    for (NodeId v : values)
      if (!used[v]) fresh.push_back(v);
    NodeId pick;
    if (!fresh.empty() && chance(0.8))
      pick = fresh[below(fresh.size())];
    else if (chance(0.5))
      pick = values[values.size() - 1 - below(std::min<size_t>(values.size(), 6))];
    else if (chance(0.15))
      pick = constant();
    else
      pick = values[below(values.size())];
    used[pick] = 1;
    return pick;
  };
  auto compare = [&]() {
    static const Op cmps[] = {Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne};
    NodeId a = operand();
    NodeId c = operand();
    return add_value(b.binary(cmps[below(6)], a, c));
  };

  // Every op with arguments, in a shuffled cycle so each appears before any repeats.
  std::vector<Op> all;
  for (int k = 0; k < kNumOps; ++k)
    if (op_arity(Op(k)) > 0 && (opt.population || !(crosses_members(Op(k)) || is_keyed(Op(k)))) &&
        (opt.param_axis || !is_param_axis(Op(k))) &&
        (opt.only_ops.empty() || std::find(opt.only_ops.begin(),
                                                                   opt.only_ops.end(),
                                                                   Op(k)) != opt.only_ops.end()))
      all.push_back(Op(k));
  std::vector<Op> order;
  for (int k = 0; k < opt.ops; ++k) {
    if (size_t(k) % all.size() == 0) {
      std::vector<Op> cycle = all;
      for (size_t i = cycle.size(); i > 1; --i) std::swap(cycle[i - 1], cycle[below(i)]);
      order.insert(order.end(), cycle.begin(), cycle.end());
    }
  }
  order.resize(std::max(0, opt.ops));

  // The values without the element axis that read no input: what a member index, a draw key or
  // a ranking may use (a Scalar input may be bound to a particle, see elem_inputs()).
  auto uniform_values = [&] {
    std::vector<char> reads_input(g.nodes.size(), 0);
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      reads_input[i] = g.nodes[i].op == Op::Input;
      for (int a = 0; a < op_arity(g.nodes[i].op); ++a) reads_input[i] |= reads_input[g.nodes[i].args[a]];
    }
    std::vector<NodeId> uniform;
    for (NodeId v : values)
      if (!g.nodes[v].type.element && !reads_input[v]) uniform.push_back(v);
    return uniform;
  };
  int32_t read_sites = 0;
  for (Op op : order) {
    if (op == Op::Select) {
      NodeId m;
      bool fresh_mask = false;
      for (NodeId id : masks) fresh_mask |= !used[id];
      if (masks.empty() || (!fresh_mask && chance(0.5))) {
        m = compare();
      } else {
        std::vector<NodeId> pickable;
        for (NodeId id : masks)
          if (!used[id] || !fresh_mask) pickable.push_back(id);
        m = pickable[below(pickable.size())];
      }
      used[m] = 1;
      NodeId a = operand();
      NodeId c = operand();
      add_value(b.select(m, a, c));
    } else if (op == Op::TKth || op == Op::PKth) {
      // k: a value without the element axis that reads no input (for pkth, not per tensor
      // either), scaled so it lands anywhere in [1, n] and beyond: k = s * elems() / 4.
      std::vector<NodeId> uniform;
      for (NodeId v : uniform_values())
        if (op == Op::TKth || !g.nodes[v].type.tensor) uniform.push_back(v);
      NodeId s = uniform[below(uniform.size())];
      used[s] = 1;
      Node n{op};
      n.args[0] = operand();
      n.args[1] = note(b.binary(Op::Mul, s, note(b.binary(Op::Div, note(b.add_typed(Node{Op::Elems})),
                                                               note(b.constant(4))))));
      add_value(b.add_typed(n));
    } else if (is_member_reduce(op)) {
      add_value(b.member_reduce(op, operand()));
    } else if (is_member_scalar_op(op)) {
      // rank(f) and friends of a per-member value that reads no input (see MRead below).
      std::vector<NodeId> uniform = uniform_values();
      Node n{op};
      n.args[0] = uniform[below(uniform.size())];
      used[n.args[0]] = 1;
      add_value(b.add_typed(n));
    } else if (op == Op::MRead || is_keyed(op)) {
      // x[i] with a valid index: i = mod(floor(s), members()) of a value s without the element
      // axis that reads no input (member(), a param, mrand(), ...: a Scalar input may be bound
      // to a particle, see elem_inputs()), 0 where s is not finite. Keys of rand(k, j) alike,
      // mod 7 (and the generation-like constant 3 for j half the time).
      NodeId src = op == Op::MRead ? operand() : -1;
      std::vector<NodeId> uniform = uniform_values();
      NodeId s = uniform[below(uniform.size())];
      used[s] = 1;
      NodeId finite = note(b.binary(Op::Lt, note(b.unary(Op::Abs, s)), note(b.constant(1e9))));
      NodeId safe = note(b.select(finite, s, note(b.constant(0))));
      NodeId bound = op == Op::MRead ? note(b.members()) : note(b.constant(7));
      NodeId index = note(b.binary(Op::Mod, note(b.unary(Op::Floor, safe)), bound));
      if (op == Op::MRead)
        add_value(b.member_read(src, index, read_sites++));
      else
        add_value(b.keyed_rand(op == Op::KRandn, index, chance(0.5) ? note(b.constant(3)) : index, read_sites++));
    } else if (op_arity(op) == 2 && op != Op::Lt && op != Op::Le && op != Op::Gt && op != Op::Ge &&
               op != Op::Eq && op != Op::Ne) {
      NodeId a = operand();
      NodeId c;
      if (opt.tame_domains && op == Op::Pow) {
        a = note(b.unary(Op::Abs, a));
        static const double exps[] = {0.5, 2, 3, -1, 1.5, 0};
        c = note(b.constant(exps[below(6)]));
      } else {
        c = operand();
      }
      add_value(b.binary(op, a, c));
    } else if (op_arity(op) == 2) {
      NodeId a = operand();
      NodeId c = operand();
      add_value(b.binary(op, a, c));
    } else {
      NodeId a = operand();
      if (opt.tame_domains && (op == Op::Log || op == Op::Sqrt)) a = note(b.unary(Op::Abs, a));
      if (opt.tame_domains && op == Op::Exp) a = note(b.binary(Op::Min, a, note(b.constant(8))));
      add_value(b.unary(op, a));
    }
  }

  // Close the DAG: an unused mask becomes a select, and the unused values (roots) beyond the
  // number of outputs are summed pairwise, so every node, input and rand site reaches an output.
  for (size_t i = 0; i < masks.size(); ++i)
    if (!used[masks[i]]) {
      used[masks[i]] = 1;
      NodeId a = operand();
      NodeId c = operand();
      add_value(b.select(masks[i], a, c));
    }
  std::vector<NodeId> roots;
  for (size_t i = values.size(); i-- > 0;)
    if (!used[values[i]]) roots.push_back(values[i]);  // newest first
  const size_t n_out = size_t(std::max(1, opt.outputs));
  while (roots.size() > n_out) {
    NodeId a = roots.back();
    roots.pop_back();
    NodeId c = roots.back();
    roots.pop_back();
    used[a] = used[c] = 1;
    roots.push_back(add_value(b.binary(Op::Add, a, c)));
    std::rotate(roots.begin(), roots.end() - 1, roots.end());  // keep it at the front
  }
  for (size_t i = values.size(); i-- > 0 && roots.size() < n_out;)
    if (std::find(roots.begin(), roots.end(), values[i]) == roots.end()) roots.push_back(values[i]);
  std::vector<char> targeted(g.inputs.size(), 0);
  for (size_t k = 0; k < n_out && k < roots.size(); ++k) {
    int32_t target = -1;
    if (opt.in_place)
      for (size_t i = 0; i < g.inputs.size() && target < 0; ++i)
        if (input_types[i] == Type::Elem && !targeted[i] && chance(0.7)) target = int32_t(i), targeted[i] = 1;
    g.outputs.push_back({"out" + std::to_string(k), roots[k], target});
  }
  return g;
}

/// For each input of a graph from random_rule: true if it is typed Elem (bind it to a Particle
/// or Swarm), false if Scalar (any binding kind works).
inline std::vector<bool> elem_inputs(const Graph& g) {
  std::vector<bool> elem(g.inputs.size(), false);
  for (const Node& n : g.nodes)
    if (n.op == Op::Input && n.type == Type::Elem) elem[n.index] = true;
  return elem;
}

}  // namespace nyto::ir::testing
