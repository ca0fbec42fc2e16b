#include "ir/ParamAxis.h"

#include <algorithm>
#include <sstream>

#include "ir/Error.h"
#include "ir/Passes.h"

namespace nyto::ir {

bool has_param_axis(const Graph& g) {
  for (const Node& n : g.nodes)
    if (is_param_axis(n.op)) return true;
  return false;
}

namespace {

std::string lower(const char* s) {
  std::string r = s;
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// Builds one pass graph: the nodes of `g` needed by `roots`, with every reduction of slot s where
// available(s) (and numel(), elems(), elem()) turned into an input after the rule's.
struct PassBuilder {
  const Graph& g;
  const Graph& typed;
  const std::vector<int32_t>& slot_of;  // node -> reduction slot or -1
  std::vector<char> available;          // per slot
  Graph out;
  std::vector<PassInput> extras;
  std::vector<NodeId> map;

  PassBuilder(const Graph& g, const Graph& typed, const std::vector<int32_t>& slot_of, std::vector<char> avail)
      : g(g), typed(typed), slot_of(slot_of), available(std::move(avail)), map(g.nodes.size(), -1) {
    out.inputs = g.inputs;
    out.params = g.params;
    out.rand_sites = g.rand_sites;
  }

  bool is_boundary(NodeId i) const {
    const Op op = g.nodes[size_t(i)].op;
    if (op == Op::Numel || op == Op::Elems || op == Op::Elem) return true;
    return is_param_reduce(op) && available[size_t(slot_of[size_t(i)])];
  }

  // Adds the nodes `roots` need (ascending ids: arguments come first).
  void need(const std::vector<NodeId>& roots) {
    std::vector<char> want(g.nodes.size(), 0);
    std::vector<NodeId> todo(roots.begin(), roots.end());
    while (!todo.empty()) {
      NodeId i = todo.back();
      todo.pop_back();
      if (want[size_t(i)] || map[size_t(i)] >= 0) continue;
      want[size_t(i)] = 1;
      if (is_boundary(i)) continue;
      NYTO_INTERNAL_ASSERT(!is_param_reduce(g.nodes[size_t(i)].op),
                           "param axis: a reduction needed before the pass computing it");
      for (int a = 0; a < op_arity(g.nodes[size_t(i)].op); ++a) todo.push_back(g.nodes[size_t(i)].args[a]);
    }
    Builder b(out);
    for (NodeId i = 0; i < NodeId(g.nodes.size()); ++i) {
      if (!want[size_t(i)]) continue;
      const Node& n = g.nodes[size_t(i)];
      if (is_boundary(i)) {
        PassInput in;
        if (n.op == Op::Numel) in.from = PassInput::From::Numel;
        else if (n.op == Op::Elems) in.from = PassInput::From::Elems;
        else if (n.op == Op::Elem) in.from = PassInput::From::Elem;
        else in = {PassInput::From::Reduction, slot_of[size_t(i)], typed.nodes[size_t(i)].type.member};
        const int32_t index = int32_t(out.inputs.size());
        out.inputs.push_back({"%" + lower(op_name(n.op)) + std::to_string(i)});
        extras.push_back(in);
        map[size_t(i)] = b.input(index, n.op == Op::Elem ? Type::Elem : Type::Scalar);
        continue;
      }
      Node c = n;
      for (int a = 0; a < op_arity(n.op); ++a) c.args[a] = map[size_t(n.args[a])];
      map[size_t(i)] = is_random(n.op) || n.op == Op::Input ? b.add(c) : b.add_typed(c);
    }
  }
};

}  // namespace

ParamPlan plan_passes(const Graph& g, const std::vector<Type>& input_types, const std::vector<bool>& value_out) {
  NYTO_INTERNAL_ASSERT(value_out.size() == g.outputs.size(), "param axis: one value_out per output");
  ParamPlan plan;
  plan.typed = specialize_inputs(g, input_types);
  const Graph& t = plan.typed;
  const size_t N = t.nodes.size();

  // Levels, and the pass each reduction is computed in (the level of its arguments).
  std::vector<int32_t> level(N, 0), pass_of(N, -1);
  for (size_t i = 0; i < N; ++i) {
    const Node& n = t.nodes[i];
    int32_t l = 0;
    for (int a = 0; a < op_arity(n.op); ++a) l = std::max(l, level[size_t(n.args[a])]);
    if (is_param_reduce(n.op)) pass_of[i] = l, ++l;
    level[i] = l;
  }
  // The reductions the outputs use.
  std::vector<char> used(N, 0);
  for (const Output& o : t.outputs) used[size_t(o.node)] = 1;
  for (size_t i = N; i-- > 0;)
    if (used[i])
      for (int a = 0; a < op_arity(t.nodes[i].op); ++a) used[size_t(t.nodes[i].args[a])] = 1;
  std::vector<int32_t> slot_of(N, -1);
  for (size_t i = 0; i < N; ++i)
    if (used[i] && is_param_reduce(t.nodes[i].op)) {
      slot_of[i] = int32_t(plan.reductions.size());
      plan.reductions.push_back(NodeId(i));
    }

  int32_t last_elem = -1, last_val = 0, passes = 0;
  for (size_t o = 0; o < t.outputs.size(); ++o) {
    const int32_t l = level[size_t(t.outputs[o].node)];
    if (value_out[o])
      last_val = std::max(last_val, l);
    else
      last_elem = std::max(last_elem, l);
  }
  for (NodeId r : plan.reductions) passes = std::max(passes, pass_of[size_t(r)] + 1);
  passes = std::max(passes, last_elem + 1);
  // Value outputs are evaluated after the reductions they need. When those include one the
  // storing pass computes and the values check an index or key (x[i], rand(k, j)), a bad one
  // would be found after the stores: then the stores move to a pass of their own, after them.
  bool value_checks = false;
  {
    std::vector<char> reach(N, 0);
    for (size_t o = 0; o < t.outputs.size(); ++o)
      if (value_out[o]) reach[size_t(t.outputs[o].node)] = 1;
    for (size_t i = N; i-- > 0;) {
      if (!reach[i] || is_param_reduce(t.nodes[i].op)) continue;  // a reduction's argument is its pass's
      value_checks = value_checks || is_checked(t.nodes[i].op);
      for (int a = 0; a < op_arity(t.nodes[i].op); ++a) reach[size_t(t.nodes[i].args[a])] = 1;
    }
  }
  if (value_checks && last_elem >= 0 && last_val >= passes && last_elem == passes - 1) last_elem = passes++;

  auto available_before = [&](int32_t p) {
    std::vector<char> a(plan.reductions.size(), 0);
    for (size_t s = 0; s < plan.reductions.size(); ++s) a[s] = pass_of[size_t(plan.reductions[s])] < p;
    return a;
  };
  for (int32_t p = 0; p < passes; ++p) {
    PassBuilder pb(g, t, slot_of, available_before(p));
    std::vector<NodeId> roots, ks, stores;
    std::vector<int32_t> slots;
    for (size_t s = 0; s < plan.reductions.size(); ++s) {
      const NodeId r = plan.reductions[s];
      if (pass_of[size_t(r)] != p) continue;
      slots.push_back(int32_t(s));
      roots.push_back(g.nodes[size_t(r)].args[0]);
      const Op op = g.nodes[size_t(r)].op;
      ks.push_back(op == Op::TKth || op == Op::PKth ? g.nodes[size_t(r)].args[1] : -1);
    }
    std::vector<int32_t> store_outputs;
    if (p == last_elem)
      for (size_t o = 0; o < g.outputs.size(); ++o)
        if (!value_out[o]) store_outputs.push_back(int32_t(o)), stores.push_back(g.outputs[o].node);
    std::vector<NodeId> all = roots;
    all.insert(all.end(), stores.begin(), stores.end());
    for (NodeId k : ks)
      if (k >= 0) all.push_back(k);
    pb.need(all);

    Pass pass;
    pass.extras = pb.extras;
    pass.roots = int32_t(roots.size());
    pass.stores = store_outputs;
    Graph& out = pb.out;
    for (size_t i = 0; i < roots.size(); ++i) {
      out.outputs.push_back({"%arg" + std::to_string(plan.reductions[size_t(slots[i])]), pb.map[size_t(roots[i])], -1});
      PassReduction red{slots[i], int32_t(i), ks[i] >= 0 ? pb.map[size_t(ks[i])] : -1};
      pass.selects = pass.selects || red.k >= 0;
      pass.reductions.push_back(red);
    }
    for (size_t i = 0; i < stores.size(); ++i) {
      Output o = g.outputs[size_t(store_outputs[i])];
      o.node = pb.map[size_t(stores[i])];
      out.outputs.push_back(o);
    }
    pass.values = out;
    pass.kernel = dce(out);
    if (pass.selects && !stores.empty()) {
      Graph r = out;
      r.outputs.resize(roots.size());
      pass.roots_only = dce(r);
    }
    verify(pass.kernel);
    plan.passes.push_back(std::move(pass));
  }

  // Value outputs: after the reductions they need.
  bool any_value = false;
  std::vector<NodeId> vroots;
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (value_out[o]) any_value = true, vroots.push_back(g.outputs[o].node);
  plan.values_before = any_value ? std::min(last_val, passes) : passes;
  if (any_value) {
    PassBuilder pb(g, t, slot_of, available_before(plan.values_before));
    pb.need(vroots);
    for (size_t o = 0; o < g.outputs.size(); ++o)
      if (value_out[o]) plan.value_outputs.emplace_back(int32_t(o), pb.map[size_t(g.outputs[o].node)]);
    plan.values = pb.out;
    plan.value_extras = pb.extras;
  }
  return plan;
}

std::string print(const ParamPlan& plan) {
  std::ostringstream os;
  const Graph& t = plan.typed;
  os << "; parameter axis: " << plan.passes.size() << " pass" << (plan.passes.size() == 1 ? "" : "es")
     << " over the particle, each in blocks of whole " << kParamChunk << "-element chunks of one tensor\n";
  auto extras = [&](const std::vector<PassInput>& ex, size_t first) {
    for (size_t i = 0; i < ex.size(); ++i) {
      os << ";   input " << first + i << ": ";
      switch (ex[i].from) {
        case PassInput::From::Reduction: os << "%" << plan.reductions[size_t(ex[i].index)] << " from an earlier pass"; break;
        case PassInput::From::Numel: os << "numel() of the block's tensor"; break;
        case PassInput::From::Elems: os << "elems()"; break;
        case PassInput::From::Elem: os << "elem() of each element"; break;
      }
      os << (ex[i].member ? ", per member\n" : "\n");
    }
  };
  for (size_t p = 0; p < plan.passes.size(); ++p) {
    const Pass& pass = plan.passes[p];
    if (plan.values_before == int32_t(p) && !plan.value_outputs.empty()) os << "; value outputs now (below)\n";
    os << "; pass " << p << (pass.selects ? " (once per radix digit of its selections)" : "") << ":\n";
    for (const PassReduction& r : pass.reductions) {
      const NodeId n = plan.reductions[size_t(r.slot)];
      os << ";   reduces " << print_node(t, n) << " from kernel output " << r.root << "\n";
    }
    if (!pass.stores.empty()) {
      os << ";   stores";
      for (int32_t o : pass.stores) os << " " << t.outputs[size_t(o)].name;
      os << "\n";
    }
    extras(pass.extras, t.inputs.size());
    os << print(pass.kernel);
  }
  if (!plan.value_outputs.empty()) {
    os << "; value outputs" << (plan.values_before == int32_t(plan.passes.size()) ? " after the last pass" : "")
       << ":";
    for (auto [o, n] : plan.value_outputs) os << " " << t.outputs[size_t(o)].name << " = %" << n;
    os << "\n";
    extras(plan.value_extras, t.inputs.size());
    os << print(plan.values);
  }
  return os.str();
}

}  // namespace nyto::ir
