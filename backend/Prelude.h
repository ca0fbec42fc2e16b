// The scalar prelude of a kernel run: every node without the element axis (constants, params,
// scalar and per-member inputs, member(), members(), mrand(), member reductions of per-member
// values, member reads of per-member vectors and the arithmetic on them), evaluated once per
// run for all members, in double (ir/IR.h's numerics rule), before the element loop.
//
// It is where every member index (ir::Op::MRead) is checked: a run fails here, before anything is
// written. Shared by the interpreter and the staged driver (backend/Staged.h), so the per-member
// scalar work of all backends is one piece of code; the element work is not shared (the
// interpreter stays the independent oracle of the llvm kernels).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/Kernel.h"
#include "ir/IR.h"

namespace nyto {

/// The values of a graph's nodes without the element axis, for each of `members` members.
/// Nodes with the element axis have no entry (their slots hold 0).
struct PreludeValues {
  int64_t members = 0;
  std::vector<double> v;  // node * members + member; a mask is 0 or 1
  double at(ir::NodeId node, int64_t member) const { return v[size_t(node) * size_t(members) + size_t(member)]; }
};

/// Throws MemberIndexError unless `v`, member m's index of member read `n`, is an integer in
/// [0, M); check_key the same for key `key` (0: k, 1: j) of keyed draw `n`, in [0, 2^32).
void check_member_index(const ir::Node& n, int64_t m, double v, int64_t M);
void check_key(const ir::Node& n, int key, int64_t m, double v, int64_t M);

/// rank(f) (centered: centered_rank(f)) of the M per-member values f into out (ir/IR.h).
void member_ranks(const double* f, int64_t M, bool centered, double* out);
/// argmin(f) / argmax(f) (max) of the M per-member values f (ir/IR.h): NaN never wins.
int64_t member_arg_best(const double* f, int64_t M, bool max);
/// pick(k) of member m among M (ir/IR.h's shuffle); needs k < M - 1.
int64_t pick_member(uint64_t seed, uint64_t invocation, int64_t M, int64_t m, int32_t k);

/// Evaluates the prelude of `g` (typed for `kinds`, ir::specialize_inputs) with the run's
/// arguments. Throws MemberIndexError (backend/Kernel.h) for the first bad index, in node order,
/// then member order. With members == 0 nothing is evaluated.
PreludeValues evaluate_prelude(const ir::Graph& g, const std::vector<BindKind>& kinds,
                               const KernelArgs& args);

}  // namespace nyto
