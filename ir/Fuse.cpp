// Fusion of all statements of a rule into one multi-output kernel.
//
// The frontend already lowers a rule to one SSA DAG, so "fusion" here is making the kernel plan
// explicit: a backend emits one loop whose body loads each input once, computes every node once
// and stores each output once per element (PyTorch's fused Adam does the same by hand:
// FusedAdamKernel.cpp). Unlike a chain of ATen ops, no intermediate particle is materialized.
#include <sstream>

#include "ir/Error.h"
#include "ir/Passes.h"

namespace nyto::ir {

FusedKernel fuse(const Graph& g) {
  verify(g);
  // One load per input: if an input has both a Scalar and an Elem Input node, they become one
  // node, Elem (the value loaded is the same; only how its users compute would differ, and bound
  // to a particle it is Elem anyway), unless the input is read by a member index, a draw key or a
  // ranking, which must not have the element axis: then Scalar. Every backend retypes for the binding anyway
  // (specialize_inputs); after retyping the nodes are identical, and cse() merges them.
  std::vector<int> seen(g.inputs.size(), 0);
  bool duplicate = false;
  for (const Node& n : g.nodes)
    if (n.op == Op::Input) duplicate |= seen[n.index]++ > 0;
  std::vector<Type> types(g.inputs.size(), Type::Elem);
  if (duplicate) {
    std::vector<char> in_index(g.nodes.size(), 0);
    for (size_t i = g.nodes.size(); i-- > 0;) {
      const Node& n = g.nodes[i];
      if (n.op == Op::MRead) in_index[n.args[1]] = 1;
      if (is_keyed(n.op)) in_index[n.args[0]] = in_index[n.args[1]] = 1;
      if (is_member_scalar_op(n.op)) in_index[n.args[0]] = 1;
      if (n.op == Op::TKth || n.op == Op::PKth) in_index[n.args[1]] = 1;
      if (in_index[i])
        for (int a = 0; a < op_arity(n.op); ++a) in_index[n.args[a]] = 1;
      if (in_index[i] && n.op == Op::Input) types[n.index] = n.type;
    }
  }
  const Graph src = duplicate ? cse(specialize_inputs(g, types)) : g;

  // Loads first, in input order, then everything else in its (topological) order. Inputs are
  // leaves, so moving them to the front keeps every argument before its user.
  FusedKernel k;
  Graph& out = k.graph;
  out.inputs = src.inputs;
  out.params = src.params;
  out.rand_sites = src.rand_sites;
  std::vector<NodeId> map(src.nodes.size(), -1);
  std::vector<NodeId> input_node(src.inputs.size(), -1);  // the Input node of each input index
  for (size_t i = 0; i < src.nodes.size(); ++i)
    if (src.nodes[i].op == Op::Input) {
      NYTO_INTERNAL_ASSERT(input_node[src.nodes[i].index] == -1, "fuse: input loaded twice");
      input_node[src.nodes[i].index] = NodeId(i);
    }
  for (NodeId i : input_node)
    if (i >= 0) {
      out.nodes.push_back(src.nodes[i]);
      map[i] = NodeId(out.nodes.size() - 1);
      k.loads.push_back(map[i]);
    }
  for (size_t i = 0; i < src.nodes.size(); ++i) {
    if (src.nodes[i].op == Op::Input) continue;
    Node n = src.nodes[i];
    for (int a = 0; a < op_arity(n.op); ++a) n.args[a] = map[n.args[a]];
    out.nodes.push_back(n);
    map[i] = NodeId(out.nodes.size() - 1);
    k.compute.push_back(map[i]);
  }
  for (Output o : src.outputs) {
    o.node = map[o.node];
    out.outputs.push_back(o);
  }
  k.stores = out.outputs;
  verify(out);
  return k;
}

std::string print(const FusedKernel& k) {
  const Graph& g = k.graph;
  std::ostringstream os;
  os << "kernel(";
  for (size_t i = 0; i < g.inputs.size(); ++i) os << (i ? ", " : "") << g.inputs[i].name;
  os << "; params";
  for (size_t i = 0; i < g.params.size(); ++i)
    os << (i ? ", " : " ") << g.params[i].name << " = " << print_number(g.params[i].default_value);
  os << "; rand sites " << g.rand_sites << ") {\n";
  for (NodeId id : k.loads) os << "  load  " << print_node(g, id) << "\n";
  for (NodeId id : k.compute) os << "        " << print_node(g, id) << "\n";
  for (const Output& o : k.stores) {
    os << "  store " << o.name << " = %" << o.node;
    if (o.target >= 0)
      os << " -> input " << g.inputs.at(o.target).name << " (in place)";
    else
      os << " (new particle)";
    os << "\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace nyto::ir
