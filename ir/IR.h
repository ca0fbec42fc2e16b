// The nyto IR: one typed SSA list of nodes per rule, hash-consed through a builder.
//
// This header is the contract between the frontend (which lowers a checked AST into a Graph), the
// passes (Graph -> Graph), and the backends (interp, llvm, aten), which all read a Graph. It holds
// only data and the builder; passes live in their own files. No LibTorch, no LLVM here.
//
// Model: a rule is a pure elementwise function. For every member m of the bound swarm (or the one
// particle) and every element e of the operational part of the flat storage, each node has one
// value; its Type says along which of the two axes (member, element) that value varies. The graph
// has no control flow: statements are already in SSA form (each assignment is a new node; later
// statements refer to it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nyto::ir {

// X-macro of every node kind: X(Name, arity). Arity -1 = variable (none here yet).
// Numerics: nodes without the element axis (constants, params, scalar and per-member inputs and
// arithmetic, comparisons and selects on them only) are computed in double, once per member; a
// node with the element axis computes in the kernel's dtype, converting an operand without it to
// that dtype (round to nearest) where the two meet. Constant folding in double is therefore exact
// with respect to every backend. No FMA contraction, no reassociation.
// Semantics are those of C++ on the dtype (IEEE float32/float64, round to nearest):
//   Min/Max propagate NaN (like torch.minimum/maximum); Sign(x) is -1, 0 or 1 (NaN stays NaN);
//   exp, log, sin, cos, tanh, acos, asin, atan, pow, atan2 are SLEEF's 1-ulp functions (ir/Math.h;
//   pow and atan2 as C's); Sigmoid(x) = 1 / (1 + exp(-x)); comparisons give a mask;
//   Mod(a, b) is the floored modulo (Python's a % b: the sign of b; fmod, then + b where the signs
//   differ; a zero result takes b's sign);
//   Select(m, a, b) = m ? a : b.
//   MSum(a) = a(0) + a(1) + ... + a(M-1), added left to right in member order (so the bits do not
//   depend on threads or backend); MMin/MMax fold Min/Max the same way; mmean is MSum / Members.
//   With M = 0 the reductions are never evaluated (there is nothing to write).
//   MRead(x, i) at member m = x at member i(m), same element; i has no element axis and must be
//   an integer in [0, M) for every member, checked before anything is written (a run-time error
//   naming the read site, attr.index, which the frontend maps to the source).
//   KRand(k, j), KRandn(k, j): the draw of backend/Random.h's keyed layout for element e, keyed by
//   (seed, group, k, j, e) only; k and j have no element axis and must be integers in [0, 2^32)
//   for every member, checked before anything is written.
//   Rank(f), CRank(f), ArgMin(f), ArgMax(f): f without the element axis (a per-member value);
//   rank = scipy's rankdata(f, "average") - 1 with NaN ranked as +inf; CRank = Rank / (M - 1) -
//   0.5 (0 when M = 1), evosax's centered ranks; ArgMin/ArgMax the first member index of the
//   smallest / largest value, NaN treated as +inf / -inf (it never wins unless all are NaN: 0).
//   Pick (attr.index = k): for member m, entry k of a partial Fisher-Yates shuffle of the other
//   members in ascending order, step i drawing u_i = uniform_f64 of Philox counter (i, m,
//   invocation, 0xFFFF8000): r = min(i + floor(u_i (M - 1 - i)), M - 2). Needs k < M - 1.
//   Parameter axis (docs/language.md, "Parameter axis"): the operational elements of a member
//   are split into its parameter tensors (KernelArgs::tensors), P elements in all.
//   TSum/TMin/TMax(a) reduce a over one tensor's elements, PSum/PMin/PMax over all P, per member.
//   Sums are in double in a fixed blocked order: per tensor, chunks of kParamChunk = 1024 elements
//   from its first element, each chunk summed in 32 lanes (element i of the chunk into lane
//   i mod 32, each lane left to right from -0), the lanes folded in halves (l[j] += l[j + w]
//   for j < w, w = 16, 8, 4, 2, 1: the sum is l[0]),
//   the chunk sums added left to right; PSum adds the tensor sums in parameter order. The
//   min/max reductions are IEEE minimum/maximum (as Min/Max), which no order changes. So every
//   backend but aten and every thread count give the same bits. A reduction's value is a double, converted to the dtype where it meets an
//   element value (the numerics rule above). TKth/PKth(e, k): the k-th largest of e (in the
//   dtype) over the tensor / particle, counting repeated values, NaN above +inf and -0 below
//   +0; k (no variation within a tensor; PKth: none per tensor) is floored and clamped to
//   [1, n], NaN counting as 1. Found exactly by a radix select on the value's bits.
//   Numel: the tensor's element count; Elem: the element's index among the P (0-based);
//   Elems: P. An empty tensor has no elements and takes part in nothing.
//   Clamp and lerp are lowered by the frontend:
//   clamp(x, lo, hi) = Min(Max(x, lo), hi); lerp(a, b, t) = a + t * (b - a).
#define NYTO_IR_OPS(X)                                                                           \
  X(Const, 0)   /* attr.value: the literal, in double                                    */      \
  X(Input, 0)   /* attr.index: index into Graph::inputs (particle, swarm or scalar)      */      \
  X(Param, 0)   /* attr.index: index into Graph::params (scalar hyper-parameter)         */      \
  X(Rand, 0)    /* attr.index: random call site (0, 1, ...), uniform [0, 1)              */      \
  X(Randn, 0)   /* attr.index: random call site, standard normal                         */      \
  X(MRand, 0)   /* attr.index: random call site; one uniform double per member           */      \
  X(MRandn, 0)  /* attr.index: random call site; one standard normal double per member   */      \
  X(Member, 0)  /* this member's index, 0-based (member scalar)                          */      \
  X(Members, 0) /* the number of members M of the run (scalar)                           */      \
  X(MSum, 1)    /* sum over the members, in member order 0..M-1 (drops the member axis) */      \
  X(MMin, 1)    /* minimum over the members (IEEE minimum, as Min)                       */      \
  X(MMax, 1)    /* maximum over the members (IEEE maximum, as Max)                       */      \
  X(MRead, 2)   /* args (src, index); attr.index: check site. src at member `index`      */      \
  X(KRand, 2)   /* args (k, j); attr.index: check site. keyed uniform [0, 1), rand(k, j) */      \
  X(Rank, 1)    /* 0-based ascending rank of a per-member value, ties averaged           */      \
  X(CRank, 1)   /* centered rank: rank / (M - 1) - 0.5, 0 when M = 1                     */      \
  X(ArgMin, 1)  /* first member with the smallest value (NaN never wins): a scalar       */      \
  X(ArgMax, 1)  /* first member with the largest value (NaN never wins): a scalar        */      \
  X(Pick, 0)    /* attr.index = k: the k-th of a random choice among the other members   */      \
  X(KRandn, 2)  /* args (k, j); attr.index: check site. keyed standard normal            */      \
  X(Neg, 1) X(Abs, 1) X(Sqrt, 1) X(Exp, 1) X(Log, 1) X(Sin, 1) X(Cos, 1) X(Tanh, 1)               \
  X(Sigmoid, 1) X(Sign, 1) X(Floor, 1) X(Ceil, 1) X(Acos, 1) X(Asin, 1) X(Atan, 1)              \
  X(Add, 2) X(Sub, 2) X(Mul, 2) X(Div, 2) X(Pow, 2) X(Min, 2) X(Max, 2) X(Mod, 2) X(Atan2, 2)   \
  X(Lt, 2) X(Le, 2) X(Gt, 2) X(Ge, 2) X(Eq, 2) X(Ne, 2)                                          \
  X(Select, 3)                                                                                   \
  X(TSum, 1)    /* sum over the elements of each parameter tensor (a tensor scalar)      */      \
  X(TMin, 1)    /* minimum over each tensor's elements (as Min)                          */      \
  X(TMax, 1)    /* maximum over each tensor's elements (as Max)                          */      \
  X(PSum, 1)    /* sum over the particle's operational elements (a scalar per member)    */      \
  X(PMin, 1)    /* minimum over the particle's operational elements                      */      \
  X(PMax, 1)    /* maximum over the particle's operational elements                      */      \
  X(TKth, 2)    /* args (e, k): the k-th largest e within each tensor                    */      \
  X(PKth, 2)    /* args (e, k): the k-th largest e within the particle                   */      \
  X(Numel, 0)   /* the number of elements of the current tensor (a tensor scalar)        */      \
  X(Elem, 0)    /* flat index of the element among the particle's operational elements   */      \
  X(Elems, 0)   /* the number P of the particle's operational elements (scalar)          */

enum class Op : uint8_t {
#define NYTO_IR_ENUM(name, arity) name,
  NYTO_IR_OPS(NYTO_IR_ENUM)
#undef NYTO_IR_ENUM
};

// Number of node kinds (the last enumerator + 1), for loops over every op.
#define NYTO_IR_COUNT(name, arity) +1
constexpr int kNumOps = 0 NYTO_IR_OPS(NYTO_IR_COUNT);
#undef NYTO_IR_COUNT

const char* op_name(Op op);  // "add", "rand", ... (lower case, used by the text form)
int op_arity(Op op);
/// A reduction over the member axis: MSum, MMin, MMax.
inline bool is_member_reduce(Op op) { return op == Op::MSum || op == Op::MMin || op == Op::MMax; }
/// Per-member scalar work across the members (rank, centered_rank, argmin, argmax): computed by
/// the prelude, on values without the element axis.
inline bool is_member_scalar_op(Op op) {
  return op == Op::Rank || op == Op::CRank || op == Op::ArgMin || op == Op::ArgMax;
}
/// A node whose value at member m needs other members' values (a reduction, a member read, a
/// ranking or pick): where the block-outer, member-inner schedule splits into stages
/// (ir/Schedule.h), or prelude work for values without the element axis.
inline bool crosses_members(Op op) {
  return is_member_reduce(op) || op == Op::MRead || is_member_scalar_op(op) || op == Op::Pick;
}
/// A keyed draw rand(k, j) / randn(k, j): a pure function of (seed, k, j, group, element), so two
/// identical ones are one draw (CSE may merge them), unlike rand() and randn().
inline bool is_keyed(Op op) { return op == Op::KRand || op == Op::KRandn; }
/// A node whose run-time arguments are checked before anything is written (MRead's index, a keyed
/// draw's keys); attr.index is its check site, which the frontend maps to the source.
inline bool is_checked(Op op) { return op == Op::MRead || is_keyed(op); }
/// A reduction or selection along the parameter axis: the rule runs in passes (ir/ParamAxis.h).
inline bool is_tensor_reduce(Op op) { return op == Op::TSum || op == Op::TMin || op == Op::TMax || op == Op::TKth; }
inline bool is_particle_reduce(Op op) { return op == Op::PSum || op == Op::PMin || op == Op::PMax || op == Op::PKth; }
inline bool is_param_reduce(Op op) { return is_tensor_reduce(op) || is_particle_reduce(op); }
/// A leaf or reduction of the parameter axis, which only the pass driver (ir/ParamAxis.h) runs.
inline bool is_param_axis(Op op) { return is_param_reduce(op) || op == Op::Numel || op == Op::Elem || op == Op::Elems; }
/// A random draw with its own call site (attr.index < Graph::rand_sites): never merged by CSE.
inline bool is_random(Op op) {
  return op == Op::Rand || op == Op::Randn || op == Op::MRand || op == Op::MRandn;
}
/// A draw per element (rand(), randn() and the keyed rand(k, j), randn(k, j)): Philox blocks.
inline bool is_element_draw(Op op) { return op == Op::Rand || op == Op::Randn || is_keyed(op); }
/// A transcendental function (ir/Math.h): a SLEEF call in the JIT, many times an add's cost.
inline bool is_transcendental(Op op) {
  switch (op) {
    case Op::Exp: case Op::Log: case Op::Sin: case Op::Cos: case Op::Tanh: case Op::Acos: case Op::Asin:
    case Op::Atan: case Op::Sigmoid: case Op::Pow: case Op::Atan2: return true;
    default: return false;
  }
}

// A node's type: what its value is (a number or a mask) and along which axes of the iteration
// space (member m of the swarm, element e of the storage) it varies. A value without the element
// axis is computed in double, one with it in the kernel's dtype (the numerics rule above); a mask
// is a boolean, compared in the dtype when either operand has the element axis.
//   Scalar        {}                  a constant, a param, a scalar input: the same everywhere
//   MemberScalar  {member}            a per-member vector input: one double per member
//   Elem          {element}           a particle value: the same for every member
//   Swarm         {member, element}   a swarm value, a random draw
// and, with the parameter axis, `tensor`: constant within each parameter tensor but varying
// across them (numel(), tsum(x)): a *tensor scalar* {tensor} or {member, tensor}. A value with
// the element axis never carries the tensor bit (one canonical type per set of axes).
// The frontend does not know how the host binds an input: it types an input by its uses (Elem or
// Scalar); specialize_inputs() retypes a graph for a binding (bind_type in backend/Kernel.h),
// which adds the member axis where a swarm or a per-member vector is bound.
struct Type {
  bool mask = false;     // a boolean (a comparison), else a number
  bool member = false;   // varies per member
  bool element = false;  // varies per element
  bool tensor = false;   // varies per parameter tensor only (never with `element`)
  static const Type Scalar, MemberScalar, Elem, Swarm;
  /// The same axes, as a mask / as a number.
  constexpr Type as_mask() const { return {true, member, element, tensor}; }
  constexpr Type as_value() const { return {false, member, element, tensor}; }
  /// The axes of both (a value of the kind of `this`).
  constexpr Type join(Type o) const {
    const bool e = element || o.element;
    return {mask, member || o.member, e, !e && (tensor || o.tensor)};
  }
  constexpr uint8_t bits() const {
    return uint8_t(mask) | uint8_t(member) << 1 | uint8_t(element) << 2 | uint8_t(tensor) << 3;
  }
  friend constexpr bool operator==(Type a, Type b) { return a.bits() == b.bits(); }
  friend constexpr bool operator!=(Type a, Type b) { return !(a == b); }
};
inline constexpr Type Type::Scalar{false, false, false};
inline constexpr Type Type::MemberScalar{false, true, false};
inline constexpr Type Type::Elem{false, false, true};
inline constexpr Type Type::Swarm{false, true, true};

/// "scalar", "member scalar", "elem", "member elem", or "mask" / "scalar mask" / "member mask" /
/// "member scalar mask" for masks (the text form's type names).
std::string type_name(Type t);

using NodeId = int32_t;

struct Node {
  Op op;
  Type type;
  NodeId args[3] = {-1, -1, -1};
  double value = 0.0;  // Const only
  int32_t index = 0;   // Input, Param, random draws (site), MRead (read site)
};

// A name the host binds. `type` is what the frontend inferred for how the rule uses it; an input
// used only in scalar positions may still be bound to a particle (then it is Elem at bind time),
// so backends are specialized on the binding, not on this field.
struct InputDecl {
  std::string name;
};

struct ParamDecl {
  std::string name;
  double default_value;
};

// One result of the rule. `target` is the input index it updates in place when the host bound
// that name (x = x + v with x an input), or -1 when it is a new particle the rule returns.
struct Output {
  std::string name;
  NodeId node;
  int32_t target = -1;
};

// A rule (or a fused kernel): nodes in topological order (every arg id < the node's id).
struct Graph {
  std::vector<Node> nodes;
  std::vector<InputDecl> inputs;
  std::vector<ParamDecl> params;
  std::vector<Output> outputs;
  int32_t rand_sites = 0;  // number of Rand/Randn call sites (their attr.index < rand_sites)
};

/// The type a node of kind `op` has given its arguments' types: the only source of types (the
/// Builder, verify() and specialize_inputs() all use it). Const/Param Scalar; Input `input_type`;
/// Rand/Randn Swarm (a draw differs per member and element); MRand/MRandn and Member MemberScalar; Members Scalar
/// (one count for the run, known when it runs); unary ops their argument's type;
/// binary ops and Select a value with the axes of all arguments; comparisons a mask with the axes
/// of both operands; member reductions their argument's axes without the member axis; MRead the
/// element axis of its source and the member axis of its index.
Type infer_type(Op op, Type input_type, const Type* arg_types);

// Hash-consing builder: identical (op, args, attr) nodes are one node, so CSE of what is built
// through it is free. Constant folding and simplification are separate passes. Each add is O(1)
// expected (a hash table of the nodes built so far), so building or rebuilding a graph is linear.
class Builder {
 public:
  explicit Builder(Graph& g);
  NodeId constant(double v);
  NodeId input(int32_t index, Type type);
  NodeId param(int32_t index);
  NodeId rand(bool normal);  // a fresh call site each time: never merged
  NodeId member_rand(bool normal);  // Op::MRand / MRandn: a fresh call site each time
  NodeId member_reduce(Op op, NodeId a);  // MSum, MMin, MMax
  NodeId member_read(NodeId src, NodeId index, int32_t site);  // Op::MRead
  NodeId keyed_rand(bool normal, NodeId k, NodeId j, int32_t site);  // Op::KRand / KRandn
  NodeId pick(int32_t k);    // Op::Pick
  NodeId member();           // Op::Member
  NodeId members();          // Op::Members
  NodeId unary(Op op, NodeId a);
  NodeId binary(Op op, NodeId a, NodeId b);
  NodeId select(NodeId m, NodeId a, NodeId b);
  NodeId add(const Node& n);  // general entry: validates arity/args, infers nothing
  NodeId add_typed(const Node& n);  // add() of n typed by infer_type from its arguments
 private:
  Node typed(Node n) const;  // n with the type infer_type gives it from its arguments
  NodeId find(const Node& n, uint64_t hash) const;  // the node equal to n, or -1
  void insert(NodeId id, uint64_t hash);
  Graph& g_;
  // Open addressing with linear probing (no allocation per node): slot -> node id (-1 = empty)
  // and that node's hash; the capacity is a power of two, at most half full.
  std::vector<NodeId> slot_id_;
  std::vector<uint64_t> slot_hash_;
  size_t used_ = 0;
};

// True when a and b have the same nodes (bit-equal attributes), inputs, params, outputs and
// rand_sites: the optimizer's fixpoint test, linear in the graph's size.
bool same_graph(const Graph& a, const Graph& b);

// The readable text form, one node a line, e.g.
//   %3 = mul %1, %2 : elem
//   out x = %7 -> input x
std::string print(const Graph& g);

// A double as the shortest text that reads back to it ("0.729", "-0", "inf", "nan").
std::string print_number(double v);

// One node as its line of print(g) without the newline, e.g. "%3 = mul %1, %2 : elem".
std::string print_node(const Graph& g, NodeId id);

}  // namespace nyto::ir
