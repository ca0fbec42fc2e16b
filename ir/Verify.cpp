// verify(), infer_type() and specialize_inputs(): the IR's invariants in one place.
#include <cstring>
#include <set>
#include <string>

#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/Passes.h"

namespace nyto::ir {

Type infer_type(Op op, Type input_type, const Type* args) {
  switch (op) {
    case Op::Const:
    case Op::Param: return Type::Scalar;
    case Op::Input: return input_type;
    case Op::Rand:
    case Op::Randn: return Type::Swarm;  // keyed by (member, element): varies along both
    case Op::MRand:
    case Op::MRandn:
    case Op::Member:
    case Op::Pick:
    case Op::Rank:
    case Op::CRank: return Type::MemberScalar;
    case Op::ArgMin:
    case Op::ArgMax: return Type::Scalar;
    case Op::Members: return Type::Scalar;
    case Op::Select: return args[0].as_value().join(args[1]).join(args[2]);
    case Op::MSum:
    case Op::MMin:
    case Op::MMax: return {false, false, args[0].element, args[0].tensor};
    case Op::MRead: return Type{false, args[1].member, args[0].element, args[0].tensor}.join(
                        Type{false, false, false, args[1].tensor});
    case Op::KRand:
    case Op::KRandn: return {false, args[0].member || args[1].member, true};
    case Op::TSum:
    case Op::TMin:
    case Op::TMax: return {false, args[0].member, false, true};
    case Op::PSum:
    case Op::PMin:
    case Op::PMax: return {false, args[0].member, false, false};
    case Op::TKth: return {false, args[0].member || args[1].member, false, true};
    case Op::PKth: return {false, args[0].member || args[1].member, false, false};
    case Op::Numel: return {false, false, false, true};
    case Op::Elem: return Type::Elem;
    case Op::Elems: return Type::Scalar;
    default: break;
  }
  if (is_compare_op(op)) return args[0].as_mask().join(args[1]);
  if (op_arity(op) == 1) return args[0];
  return args[0].join(args[1]);
}

namespace {
std::string at(size_t i, const Node& n) {
  return "node %" + std::to_string(i) + " (" + op_name(n.op) + "): ";
}
}  // namespace

void verify(const Graph& g) {
  NYTO_INTERNAL_ASSERT(g.rand_sites >= 0, "negative rand_sites");
  std::set<int32_t> sites;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    int arity = op_arity(n.op);
    NYTO_INTERNAL_ASSERT(int(n.op) < kNumOps, at(i, n) + "unknown op");
    Type arg_types[3] = {Type::Scalar, Type::Scalar, Type::Scalar};
    for (int a = 0; a < 3; ++a) {
      if (a < arity) {
        NYTO_INTERNAL_ASSERT(n.args[a] >= 0 && size_t(n.args[a]) < i,
                             at(i, n) + "argument not defined before use (order or range)");
        arg_types[a] = g.nodes[n.args[a]].type;
        bool want_mask = n.op == Op::Select && a == 0;
        NYTO_INTERNAL_ASSERT(arg_types[a].mask == want_mask,
                             at(i, n) + (want_mask ? "select condition is not a mask"
                                                   : "a mask used as a value"));
      } else {
        NYTO_INTERNAL_ASSERT(n.args[a] == -1, at(i, n) + "too many arguments");
      }
    }
    // Attributes a node does not use stay zero, so hash-consing sees one canonical form.
    if (n.op != Op::Const) {
      uint64_t bits;
      std::memcpy(&bits, &n.value, sizeof bits);
      NYTO_INTERNAL_ASSERT(bits == 0, at(i, n) + "value set on a non-constant");
    }
    switch (n.op) {
      case Op::Input:
        NYTO_INTERNAL_ASSERT(n.index >= 0 && size_t(n.index) < g.inputs.size(),
                             at(i, n) + "input index out of range");
        NYTO_INTERNAL_ASSERT(!n.type.mask, at(i, n) + "an input cannot be a mask");
        break;
      case Op::Param:
        NYTO_INTERNAL_ASSERT(n.index >= 0 && size_t(n.index) < g.params.size(),
                             at(i, n) + "param index out of range");
        break;
      case Op::Rand:
      case Op::Randn:
      case Op::MRand:
      case Op::MRandn:
        NYTO_INTERNAL_ASSERT(n.index >= 0 && n.index < g.rand_sites,
                             at(i, n) + "rand site >= rand_sites");
        NYTO_INTERNAL_ASSERT(sites.insert(n.index).second, at(i, n) + "rand site used twice");
        break;
      case Op::MRead:
        NYTO_INTERNAL_ASSERT(n.index >= 0, at(i, n) + "negative check site");
        NYTO_INTERNAL_ASSERT(!arg_types[1].element,
                             at(i, n) + "a member index varies per element");
        break;
      case Op::Pick: NYTO_INTERNAL_ASSERT(n.index >= 0, at(i, n) + "negative pick index"); break;
      case Op::Rank:
      case Op::CRank:
      case Op::ArgMin:
      case Op::ArgMax:
        NYTO_INTERNAL_ASSERT(!arg_types[0].element, at(i, n) + "ranks a value that varies per element");
        NYTO_INTERNAL_ASSERT(n.index == 0, at(i, n) + "index set on a node without one");
        break;
      case Op::KRand:
      case Op::KRandn:
        NYTO_INTERNAL_ASSERT(n.index >= 0, at(i, n) + "negative check site");
        NYTO_INTERNAL_ASSERT(!arg_types[0].element && !arg_types[1].element,
                             at(i, n) + "a draw key varies per element");
        break;
      case Op::TKth:
        NYTO_INTERNAL_ASSERT(!arg_types[1].element, at(i, n) + "k varies within a tensor");
        NYTO_INTERNAL_ASSERT(n.index == 0, at(i, n) + "index set on a node without one");
        break;
      case Op::PKth:
        NYTO_INTERNAL_ASSERT(!arg_types[1].element && !arg_types[1].tensor,
                             at(i, n) + "k varies within the particle");
        NYTO_INTERNAL_ASSERT(n.index == 0, at(i, n) + "index set on a node without one");
        break;
      default:
        NYTO_INTERNAL_ASSERT(n.index == 0, at(i, n) + "index set on a node without one");
    }
    NYTO_INTERNAL_ASSERT(!(n.type.element && n.type.tensor), at(i, n) + "non-canonical type");
    NYTO_INTERNAL_ASSERT(n.type == infer_type(n.op, n.type, arg_types),
                         at(i, n) + "type inconsistent with its arguments");
  }
  std::set<int32_t> targets;
  std::set<std::string> names;
  for (const Output& o : g.outputs) {
    NYTO_INTERNAL_ASSERT(o.node >= 0 && size_t(o.node) < g.nodes.size(),
                         "output " + o.name + ": node out of range");
    NYTO_INTERNAL_ASSERT(!g.nodes[o.node].type.mask, "output " + o.name + " is a mask");
    NYTO_INTERNAL_ASSERT(o.target >= -1 && o.target < int32_t(g.inputs.size()),
                         "output " + o.name + ": target out of range");
    NYTO_INTERNAL_ASSERT(o.target == -1 || targets.insert(o.target).second,
                         "output " + o.name + ": two outputs store to one input");
    NYTO_INTERNAL_ASSERT(names.insert(o.name).second, "output " + o.name + " defined twice");
  }
}

Graph specialize_inputs(const Graph& g, const std::vector<Type>& input_types) {
  NYTO_INTERNAL_ASSERT(input_types.size() == g.inputs.size(),
                       "specialize_inputs: one type per input expected");
  // Retyped in place, not rebuilt: node ids stay the same, so a FusedKernel plan (loads,
  // compute, stores) remains valid for the specialized graph. Nothing is merged here.
  Graph out = g;
  for (Node& n : out.nodes) {
    Type args[3] = {Type::Scalar, Type::Scalar, Type::Scalar};
    for (int a = 0; a < op_arity(n.op); ++a) args[a] = out.nodes.at(n.args[a]).type;
    Type in = n.type;
    if (n.op == Op::Input) {
      in = input_types.at(n.index);
      NYTO_INTERNAL_ASSERT(!in.mask, "specialize_inputs: an input cannot be a mask");
    }
    n.type = infer_type(n.op, in, args);
  }
  return out;
}

}  // namespace nyto::ir
