// The staged schedule (see Schedule.h): levels, temporaries and one elementwise kernel per
// (stage, member or not).
#include "ir/Schedule.h"

#include <algorithm>
#include <sstream>

#include "ir/Error.h"
#include "ir/Passes.h"

namespace nyto::ir {

bool needs_schedule(const Graph& g, const std::vector<bool>& per_member_store) {
  NYTO_INTERNAL_ASSERT(per_member_store.size() == g.outputs.size(),
                       "needs_schedule: one store flag per output expected");
  bool any_member = false;
  for (const Node& n : g.nodes) {
    if (crosses_members(n.op) || is_keyed(n.op)) return true;  // keys are checked by the prelude
    any_member = any_member || n.type.member;
  }
  if (!any_member) return false;
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (!per_member_store[o] && !g.nodes[g.outputs[o].node].type.member) return true;
  return false;
}

namespace {
// A stage kernel being built from nodes of the scheduled graph `g`: the operands it takes from
// elsewhere become its inputs, each once (a Const or Param is rebuilt in it instead).
struct KernelBuild {
  const Graph& g;
  const std::vector<int32_t>& temp_of;  // node -> its block temporary, or -1
  StageKernel k;
  Builder b{k.graph};
  std::vector<NodeId> local, prelude_load, temp_load;  // node / temp -> its node in the kernel
  KernelBuild(const Graph& graph, const std::vector<int32_t>& temps_of, size_t temps, bool per_member)
      : g(graph), temp_of(temps_of), local(graph.nodes.size(), -1), prelude_load(graph.nodes.size(), -1),
        temp_load(temps, -1) {
    k.per_member = per_member;
    k.graph.params = g.params;
    k.graph.rand_sites = g.rand_sites;
  }
  NodeId add_input(StageInput::From from, int32_t index, Type t, const std::string& name) {
    k.inputs.push_back({from, index, t.member});
    k.graph.inputs.push_back({name});
    NodeId in = b.input(int32_t(k.graph.inputs.size() - 1), t.as_value());
    return t.mask ? b.binary(Op::Ne, in, b.constant(0)) : in;  // a mask crosses as 1 or 0
  }
  // Node `a` of g as an operand in this kernel: computed here, rebuilt, or loaded.
  NodeId value_of(NodeId a) {
    if (local[a] >= 0) return local[a];
    const Node& an = g.nodes[a];
    if (!an.type.element) {
      if (an.op == Op::Const) return b.constant(an.value);
      if (an.op == Op::Param) return b.param(an.index);
      if (prelude_load[a] < 0)
        prelude_load[a] = add_input(StageInput::From::Prelude, a, an.type, "%" + std::to_string(a));
      return prelude_load[a];
    }
    int32_t t = temp_of[a];
    NYTO_INTERNAL_ASSERT(t >= 0, "schedule: a value from another kernel without a temporary");
    if (temp_load[t] < 0) temp_load[t] = add_input(StageInput::From::Temp, t, an.type, "t" + std::to_string(t));
    return temp_load[t];
  }
};
}  // namespace

Schedule schedule(const Graph& g, const std::vector<bool>& per_member_store) {
  verify(g);
  NYTO_INTERNAL_ASSERT(per_member_store.size() == g.outputs.size(),
                       "schedule: one store flag per output expected");
  const size_t n = g.nodes.size();
  auto element = [&](NodeId id) { return g.nodes[id].type.element; };
  // Keyed draws whose keys vary per member are done by the driver, once per distinct key pair
  // (SharedDraw); like any node they are placed as late as their users allow.
  auto shared_draw = [&](NodeId id) {
    const Node& nd = g.nodes[id];
    return is_keyed(nd.op) && nd.type.element && nd.type.member;
  };

  // Stage level of each element node: a crossing is one stage after its source.
  std::vector<int> level(n, 0);
  int max_level = 0;
  for (size_t i = 0; i < n; ++i) {
    const Node& nd = g.nodes[i];
    if (!nd.type.element) continue;
    int l = 0;
    if (crosses_members(nd.op)) {
      l = level[nd.args[0]] + 1;
    } else {
      for (int a = 0; a < op_arity(nd.op); ++a)
        if (element(nd.args[a])) l = std::max(l, level[nd.args[a]]);
    }
    level[i] = l;
    max_level = std::max(max_level, l);
  }
  // As late as possible: a value is computed in the last stage it can be, the one of its first
  // user (a crossing's source one stage before it), so what a later stage needs is recomputed or
  // loaded there instead of carried in a temporary (DE's rand() < CR, OpenAI-ES's noise and mu).
  // An output's store stays where its value is computed. Levels only move later, never past a
  // user, so every argument still comes first. An input is loaded no later than the first store
  // into it: a load must not follow a store to the same memory.
  {
    const int kNever = max_level + 1;
    std::vector<int> late(n, kNever);
    std::vector<char> is_output(n, 0);
    for (const Output& o : g.outputs) is_output[size_t(o.node)] = 1;
    for (size_t i = n; i-- > 0;) {
      const Node& nd = g.nodes[i];
      if (!nd.type.element) continue;
      int l = late[i] == kNever ? max_level : late[i];
      if (is_output[i] || crosses_members(nd.op)) l = level[i];  // outputs and crossings stay
      if (nd.op != Op::Input) level[i] = std::max(level[i], std::min(l, max_level));
      for (int a = 0; a < op_arity(nd.op); ++a) {
        NodeId arg = nd.args[a];
        if (!g.nodes[arg].type.element) continue;
        late[arg] = std::min(late[arg], crosses_members(nd.op) ? level[i] - 1 : level[i]);
      }
    }
    std::vector<int> first_store(g.inputs.size(), kNever);
    for (const Output& o : g.outputs) {
      const int l = g.nodes[o.node].type.element ? level[o.node] : 0;
      if (o.target >= 0) first_store[o.target] = std::min(first_store[o.target], l);
    }
    for (size_t i = 0; i < n; ++i)
      if (g.nodes[i].op == Op::Input && g.nodes[i].type.element && !is_output[i])
        level[i] = std::min({late[i] == kNever ? max_level : late[i], first_store[g.nodes[i].index], max_level});
  }
  // Home kernel of each element node: 2*level + (varies per member); -1 for a crossing (driver).
  std::vector<int> home(n, -1);
  for (size_t i = 0; i < n; ++i)
    if (element(NodeId(i)) && !crosses_members(g.nodes[i].op) && !shared_draw(NodeId(i)))
      home[i] = 2 * level[i] + (g.nodes[i].type.member ? 1 : 0);
  // Store place of each output: the member kernel of its level when it is stored per member
  // (a value without the member axis into a swarm is stored by every member), else its home.
  std::vector<int> place(g.outputs.size());
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const Node& nd = g.nodes[g.outputs[o].node];
    int l = nd.type.element ? level[g.outputs[o].node] : 0;
    place[o] = 2 * l + (per_member_store[o] || nd.type.member ? 1 : 0);
  }

  Schedule s;
  s.graph = g;
  std::vector<int32_t> temp_of(n, -1);
  auto need_temp = [&](NodeId id) {
    if (temp_of[id] < 0) {
      temp_of[id] = int32_t(s.temps.size());
      s.temps.push_back({id, g.nodes[id].type.member});
    }
  };
  for (size_t i = 0; i < n; ++i) {
    const Node& nd = g.nodes[i];
    if (!nd.type.element) continue;
    if (crosses_members(nd.op)) {
      need_temp(nd.args[0]);
      need_temp(NodeId(i));
      continue;
    }
    if (shared_draw(NodeId(i))) {
      need_temp(NodeId(i));
      continue;
    }
    for (int a = 0; a < op_arity(nd.op); ++a) {
      NodeId arg = nd.args[a];
      if (element(arg) && home[arg] != home[i]) need_temp(arg);
    }
  }
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    NodeId id = g.outputs[o].node;
    if (element(id) && home[id] != place[o]) need_temp(id);
  }

  // One kernel per (level, member or not) that computes or stores something.
  std::vector<int> kernel_of(size_t(2 * (max_level + 1)), -1);
  for (int key = 0; key < 2 * (max_level + 1); ++key) {
    bool used = std::count(home.begin(), home.end(), key) > 0 ||
                std::count(place.begin(), place.end(), key) > 0;
    if (!used) continue;
    KernelBuild kb(g, temp_of, s.temps.size(), key % 2 == 1);
    StageKernel& k = kb.k;
    Graph& kg = k.graph;
    Builder& b = kb.b;
    std::vector<NodeId>& local = kb.local;
    for (size_t i = 0; i < n; ++i) {
      if (home[i] != key) continue;
      const Node& nd = g.nodes[i];
      if (nd.op == Op::Input) {
        k.inputs.push_back({StageInput::From::Input, nd.index, nd.type.member});
        kg.inputs.push_back({g.inputs[nd.index].name});
        local[i] = b.input(int32_t(kg.inputs.size() - 1), nd.type);
        continue;
      }
      Node c = nd;
      for (int a = 0; a < op_arity(nd.op); ++a) c.args[a] = kb.value_of(nd.args[a]);
      local[i] = b.add(c);
    }
    for (size_t i = 0; i < n; ++i) {
      if (home[i] != key || temp_of[i] < 0) continue;
      NodeId v = local[i];
      if (g.nodes[i].type.mask) v = b.select(v, b.constant(1), b.constant(0));
      kg.outputs.push_back({"t" + std::to_string(temp_of[i]), v, -1});
      k.outputs.push_back({true, temp_of[i]});
    }
    for (size_t o = 0; o < g.outputs.size(); ++o) {
      if (place[o] != key) continue;
      kg.outputs.push_back({g.outputs[o].name, kb.value_of(g.outputs[o].node), -1});
      k.outputs.push_back({false, int32_t(o)});
    }
    verify(kg);
    kernel_of[size_t(key)] = int(s.kernels.size());
    s.kernels.push_back(std::move(k));
  }

  s.stages.resize(size_t(max_level + 1));
  for (size_t i = 0; i < n; ++i) {
    if (!shared_draw(NodeId(i))) continue;
    const Node& nd = g.nodes[i];
    KernelBuild kb(g, temp_of, s.temps.size(), true);
    Node c = nd;
    for (int a = 0; a < 2; ++a) c.args[a] = kb.value_of(nd.args[a]);
    c.index = 0;  // the check site: the prelude checks the keys, so draw kernels of one shape are alike
    kb.k.graph.outputs.push_back({"t" + std::to_string(temp_of[i]), kb.b.add(c), -1});
    kb.k.outputs.push_back({true, temp_of[i]});
    verify(kb.k.graph);
    s.stages[size_t(level[i])].draws.push_back({NodeId(i), temp_of[i], int(s.kernels.size())});
    s.kernels.push_back(std::move(kb.k));
  }
  for (size_t i = 0; i < n; ++i) {
    const Node& nd = g.nodes[i];
    if (!nd.type.element || !crosses_members(nd.op)) continue;
    Crossing c{NodeId(i), nd.op, temp_of[nd.args[0]], temp_of[i]};
    if (nd.op == Op::MRead) c.index = nd.args[1];
    s.stages[size_t(level[i])].crossings.push_back(c);
  }
  for (int l = 0; l <= max_level; ++l) {
    s.stages[size_t(l)].invariant = kernel_of[size_t(2 * l)];
    s.stages[size_t(l)].member = kernel_of[size_t(2 * l + 1)];
  }
  return s;
}

std::string print(const Schedule& s) {
  const Graph& g = s.graph;
  std::ostringstream os;
  os << "schedule(";
  for (size_t i = 0; i < g.inputs.size(); ++i) os << (i ? ", " : "") << g.inputs[i].name;
  os << "; rand sites " << g.rand_sites << ") {\n  prelude (once per run, every member; member indices checked):\n";
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!g.nodes[i].type.element) os << "    " << print_node(g, NodeId(i)) << "\n";
  for (size_t t = 0; t < s.temps.size(); ++t)
    os << "  temp t" << t << " = %" << s.temps[t].node << (s.temps[t].member ? " [M x B]" : " [B]")
       << "\n";
  os << "  for each block of B elements:\n";
  for (size_t l = 0; l < s.stages.size(); ++l) {
    const Stage& st = s.stages[l];
    os << "    stage " << l << ":\n";
    for (const SharedDraw& d : st.draws)
      os << "      t" << d.dst << " = " << print_node(g, d.node)
         << "    (once per distinct key pair; members sharing one get a copy)\n";
    for (const Crossing& c : st.crossings) {
      os << "      t" << c.dst << " = ";
      if (c.op == Op::MRead)
        os << "t" << c.src << "[%" << c.index << "]";
      else
        os << (c.op == Op::MSum ? "msum" : c.op == Op::MMin ? "mmin" : "mmax") << "(t" << c.src
           << ") over members 0..M-1";
      os << "    (" << print_node(g, c.node) << ")\n";
    }
    for (int ki : {st.invariant, st.member}) {
      if (ki < 0) continue;
      const StageKernel& k = s.kernels[size_t(ki)];
      os << "      " << (k.per_member ? "for each member m:" : "once:") << "\n";
      std::istringstream lines(print(k.graph));
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("param ", 0) == 0) continue;
        os << "        " << line << "\n";
      }
    }
  }
  os << "}\n";
  return os.str();
}

}  // namespace nyto::ir
