#include "ir/IR.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace nyto::ir {

const char* op_name(Op op) {
  switch (op) {
#define NYTO_IR_NAME(name, arity) \
  case Op::name:                  \
    return #name;
    NYTO_IR_OPS(NYTO_IR_NAME)
#undef NYTO_IR_NAME
  }
  return "?";
}

int op_arity(Op op) {
  switch (op) {
#define NYTO_IR_ARITY(name, arity) \
  case Op::name:                   \
    return arity;
    NYTO_IR_OPS(NYTO_IR_ARITY)
#undef NYTO_IR_ARITY
  }
  return 0;
}

namespace {
uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h;
}
uint64_t hash_node(const Node& n) {
  uint64_t bits;
  std::memcpy(&bits, &n.value, sizeof bits);
  uint64_t h = mix(uint64_t(n.op), uint64_t(n.type.bits()));
  for (NodeId a : n.args) h = mix(h, uint64_t(uint32_t(a)));
  h = mix(h, bits);
  h = mix(h, uint64_t(uint32_t(n.index)));
  // Finalizer (splitmix64): the table indexes by the low bits, which mix() alone spreads poorly.
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}
bool same_node(const Node& a, const Node& b) {
  return a.op == b.op && a.type == b.type && a.args[0] == b.args[0] && a.args[1] == b.args[1] &&
         a.args[2] == b.args[2] && std::memcmp(&a.value, &b.value, sizeof a.value) == 0 &&
         a.index == b.index;
}
}  // namespace

Builder::Builder(Graph& g) : g_(g) {
  size_t cap = 64;
  while (cap < 2 * g_.nodes.size() + 2) cap *= 2;
  slot_id_.assign(cap, -1);
  slot_hash_.assign(cap, 0);
  // A graph built elsewhere may hold duplicates; the first of them is the one add() returns.
  for (NodeId i = 0; i < NodeId(g_.nodes.size()); ++i) {
    uint64_t h = hash_node(g_.nodes[i]);
    if (!is_random(g_.nodes[i].op) && find(g_.nodes[i], h) < 0) insert(i, h);
  }
}

NodeId Builder::find(const Node& n, uint64_t h) const {
  const size_t mask = slot_id_.size() - 1;
  for (size_t i = size_t(h) & mask; slot_id_[i] >= 0; i = (i + 1) & mask)
    if (slot_hash_[i] == h && same_node(g_.nodes[slot_id_[i]], n)) return slot_id_[i];
  return -1;
}

void Builder::insert(NodeId id, uint64_t h) {
  if (2 * (used_ + 1) > slot_id_.size()) {  // grow: re-place every entry by its stored hash
    std::vector<NodeId> ids(slot_id_.size() * 2, -1);
    std::vector<uint64_t> hashes(ids.size(), 0);
    const size_t mask = ids.size() - 1;
    for (size_t k = 0; k < slot_id_.size(); ++k) {
      if (slot_id_[k] < 0) continue;
      size_t i = size_t(slot_hash_[k]) & mask;
      while (ids[i] >= 0) i = (i + 1) & mask;
      ids[i] = slot_id_[k];
      hashes[i] = slot_hash_[k];
    }
    slot_id_.swap(ids);
    slot_hash_.swap(hashes);
  }
  const size_t mask = slot_id_.size() - 1;
  size_t i = size_t(h) & mask;
  while (slot_id_[i] >= 0) i = (i + 1) & mask;
  slot_id_[i] = id;
  slot_hash_[i] = h;
  ++used_;
}

NodeId Builder::add(const Node& n) {
  int arity = op_arity(n.op);
  for (int i = 0; i < 3; ++i) {
    bool used = i < arity;
    if (used && (n.args[i] < 0 || n.args[i] >= NodeId(g_.nodes.size())))
      throw std::logic_error("nyto internal error (this is a bug in nyto): IR node argument out of range");
    if (!used && n.args[i] != -1)
      throw std::logic_error("nyto internal error (this is a bug in nyto): IR node has too many arguments");
  }
  bool random = is_random(n.op);
  uint64_t h = hash_node(n);
  if (!random)
    if (NodeId found = find(n, h); found >= 0) return found;
  g_.nodes.push_back(n);
  NodeId id = NodeId(g_.nodes.size() - 1);
  if (!random) insert(id, h);  // a random node is never looked up
  return id;
}

NodeId Builder::constant(double v) {
  Node n{Op::Const, Type::Scalar};
  n.value = v;
  return add(n);
}
NodeId Builder::input(int32_t index, Type type) {
  Node n{Op::Input, type};
  n.index = index;
  return add(n);
}
NodeId Builder::param(int32_t index) {
  Node n{Op::Param, Type::Scalar};
  n.index = index;
  return add(n);
}
NodeId Builder::rand(bool normal) {
  Node n{normal ? Op::Randn : Op::Rand};
  n.index = g_.rand_sites++;
  return add(typed(n));
}
NodeId Builder::member_rand(bool normal) {
  Node n{normal ? Op::MRandn : Op::MRand};
  n.index = g_.rand_sites++;
  return add(typed(n));
}
NodeId Builder::member_reduce(Op op, NodeId a) {
  if (!is_member_reduce(op))
    throw std::logic_error("nyto internal error (this is a bug in nyto): not a member reduction");
  Node n{op};
  n.args[0] = a;
  return add(typed(n));
}
NodeId Builder::member_read(NodeId src, NodeId index, int32_t site) {
  Node n{Op::MRead};
  n.args[0] = src, n.args[1] = index;
  n.index = site;
  return add(typed(n));
}
NodeId Builder::keyed_rand(bool normal, NodeId k, NodeId j, int32_t site) {
  Node n{normal ? Op::KRandn : Op::KRand};
  n.args[0] = k, n.args[1] = j;
  n.index = site;
  return add(typed(n));
}
NodeId Builder::add_typed(const Node& n) { return add(typed(n)); }

NodeId Builder::pick(int32_t k) {
  Node n{Op::Pick};
  n.index = k;
  return add(typed(n));
}
NodeId Builder::member() { return add(typed(Node{Op::Member})); }
NodeId Builder::members() { return add(typed(Node{Op::Members})); }
NodeId Builder::unary(Op op, NodeId a) {
  Node n{op};
  n.args[0] = a;
  return add(typed(n));
}
NodeId Builder::binary(Op op, NodeId a, NodeId b) {
  Node n{op};
  n.args[0] = a;
  n.args[1] = b;
  return add(typed(n));
}
NodeId Builder::select(NodeId m, NodeId a, NodeId b) {
  Node n{Op::Select};
  n.args[0] = m;
  n.args[1] = a;
  n.args[2] = b;
  return add(typed(n));
}
Node Builder::typed(Node n) const {
  Type args[3];
  for (int a = 0; a < op_arity(n.op); ++a) args[a] = g_.nodes.at(n.args[a]).type;
  n.type = infer_type(n.op, n.type, args);
  return n;
}

bool same_graph(const Graph& a, const Graph& b) {
  if (a.rand_sites != b.rand_sites || a.nodes.size() != b.nodes.size() ||
      a.inputs.size() != b.inputs.size() || a.params.size() != b.params.size() ||
      a.outputs.size() != b.outputs.size())
    return false;
  for (size_t i = 0; i < a.nodes.size(); ++i)
    if (!same_node(a.nodes[i], b.nodes[i])) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i)
    if (a.inputs[i].name != b.inputs[i].name) return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].name != b.params[i].name ||
        std::memcmp(&a.params[i].default_value, &b.params[i].default_value, sizeof(double)) != 0)
      return false;
  for (size_t i = 0; i < a.outputs.size(); ++i)
    if (a.outputs[i].name != b.outputs[i].name || a.outputs[i].node != b.outputs[i].node ||
        a.outputs[i].target != b.outputs[i].target)
      return false;
  return true;
}

// Shortest text that reads back to the same double (std::to_chars), so goldens show 0.729, not
// 0.72899999999999998, and stay exact: "-0", "inf", "nan" included.
std::string print_number(double v) {
  // NaN prints as "nan" whatever its sign bit: sqrt(-1) is -nan on x86 and +nan on ARM, and no
  // op of the IR distinguishes the two.
  if (std::isnan(v)) return "nan";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string type_name(Type t) {
  std::string s = t.member ? "member " : "";
  if (t.tensor) s += "tensor ";
  if (!t.mask) return s + (t.element ? "elem" : "scalar");
  return s + (t.element ? "mask" : "scalar mask");
}

std::string print_node(const Graph& g, NodeId i) {
  std::ostringstream os;
  const Node& n = g.nodes.at(i);
  std::string name = op_name(n.op);
  for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  os << "%" << i << " = " << name;
  switch (n.op) {
    case Op::Const: os << " " << print_number(n.value); break;
    case Op::Input: os << " " << g.inputs.at(n.index).name; break;
    case Op::Param: os << " " << g.params.at(n.index).name; break;
    case Op::Rand:
    case Op::Randn:
    case Op::MRand:
    case Op::MRandn: os << " site " << n.index; break;
    case Op::MRead: os << " %" << n.args[0] << "[%" << n.args[1] << "] check " << n.index; break;
    case Op::Pick: os << " " << n.index; break;
    case Op::KRand:
    case Op::KRandn: os << " key %" << n.args[0] << ", %" << n.args[1] << " check " << n.index; break;
    default:
      for (int a = 0; a < op_arity(n.op); ++a) os << (a ? ", %" : " %") << n.args[a];
  }
  os << " : " << type_name(n.type);
  return os.str();
}

std::string print(const Graph& g) {
  std::ostringstream os;
  for (size_t i = 0; i < g.params.size(); ++i)
    os << "param " << g.params[i].name << " = " << print_number(g.params[i].default_value) << "\n";
  for (size_t i = 0; i < g.inputs.size(); ++i) os << "input " << i << " " << g.inputs[i].name << "\n";
  for (size_t i = 0; i < g.nodes.size(); ++i) os << print_node(g, NodeId(i)) << "\n";
  for (auto& o : g.outputs) {
    os << "out " << o.name << " = %" << o.node;
    if (o.target >= 0) os << " -> input " << g.inputs.at(o.target).name;
    os << "\n";
  }
  return os.str();
}

}  // namespace nyto::ir
