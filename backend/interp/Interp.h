// The reference interpreter: the oracle every other backend is tested against. It evaluates the
// graph as simply as possible, one (member, element) at a time, single-threaded.
#pragma once

#include <memory>

#include "backend/Kernel.h"
#include "ir/IR.h"

namespace nyto::interp {

/// Compiles `g` for `spec` (dtype, one BindKind per g.inputs). The graph is verified and retyped
/// for the binding (ir::specialize_inputs: Scalar/MemberScalar inputs are Scalar, Particle/Swarm
/// Elem); then, per IR.h, Scalar nodes compute in double and Elem nodes in spec.dtype, a Scalar
/// operand of an Elem node rounded to dtype. Random draws use backend/Random.h with
/// counter (element index in the member's flat storage, member, invocation, group<<16 | site).
/// Throws std::logic_error (nyto internal error) on an invalid graph or spec, and run() does on
/// KernelArgs whose vector sizes do not match the graph.
std::unique_ptr<nyto::Kernel> compile(const ir::Graph& g, const KernelSpec& spec);

}  // namespace nyto::interp
