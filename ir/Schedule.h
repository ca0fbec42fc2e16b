// The block-outer, member-inner schedule of a rule whose values cross members (member reductions
// msum/mmin/mmax, member reads x[i]): one pass over the elements, in blocks; inside a block, the
// rule runs in *stages* split where a value needs every member's value of an earlier one.
//
//   prelude                      every node without the element axis, once per run for all
//                                members (backend/Prelude.h); checks every member index
//   for each block of elements:   (each stage first does its shared keyed draws, SharedDraw)
//     stage 0: invariant kernel  element nodes without the member axis, once
//              member kernel     element nodes with it, for members 0..M-1
//     stage 1: crossings         msum/mmin/mmax and x[i] of stage-0 values, done by the driver
//                                from the block's temporaries (sums in member order)
//              invariant kernel, member kernel
//     ...
//
// A value used by another kernel than the one computing it lives in a *temporary* for the block
// ([B] or [M][B] values of the dtype, cache-resident), never in memory the size of the swarm: the
// OpenAI-ES update `mu = mu - lr*msum(w*eps); x = mu + sigma*eps` reads and writes each element of
// mu and x once. This is Halide's compute_at(block) and tinygrad's split at REDUCE_AXIS; the
// stage kernels are plain elementwise graphs, compiled by any backend as version-0 rules are.
//
// Aliasing: every element input is loaded by a stage-0 kernel (later kernels read it from a
// temporary), so an in-place output stored by any stage is never read back from memory; a value
// another member reads (x[i]) is always read from a temporary of this block. Hence an output may
// alias its input, and x = x[i] permutes a swarm in place.
#pragma once

#include <string>
#include <vector>

#include "ir/IR.h"

namespace nyto::ir {

/// How a stage kernel input is bound (the BindKind it gets follows from `member`/`element`).
struct StageInput {
  enum class From : uint8_t {
    Input,    // the rule's element input `index` (as the host bound it)
    Prelude,  // node `index` of the scheduled graph, a value without the element axis
    Temp,     // temporary `index` of the block
  };
  From from;
  int32_t index;
  bool member;  // varies per member: Swarm / MemberScalar, else Particle / Scalar
};

/// Where a stage kernel output goes.
struct StageOutput {
  bool temp;      // temporary `index`, else the rule's output `index` (Graph::outputs)
  int32_t index;
};

/// One elementwise kernel of a stage: no member-crossing op, no node without the element axis
/// but Const and Param (everything else of the prelude comes in as an input).
struct StageKernel {
  Graph graph;                       // inputs parallel to `inputs`, outputs to `outputs`
  std::vector<StageInput> inputs;
  std::vector<StageOutput> outputs;
  bool per_member = false;           // run for all members, else once (one member)
};

/// A block temporary: node `node`'s value over the block, per member ([M][B]) or not ([B]).
/// A mask is kept as 1 or 0 in the dtype.
struct Temp {
  NodeId node;
  bool member;
};

/// A member-crossing node computed by the driver: `dst` from `src` (temporaries); for MRead,
/// `index` is the prelude node of the member index and `site` the read site.
struct Crossing {
  NodeId node;
  Op op;
  int32_t src, dst;
  NodeId index = -1;
};

/// A keyed draw rand(k, j) / randn(k, j) whose keys vary per member, computed by the driver:
/// kernel `kernel` (one per_member StageKernel: the draw of its Prelude key inputs into `dst`) runs
/// once per distinct key pair, for the first member holding it, and the other members holding it
/// get a copy of its row. OpenAI-ES's antithetic members m and m + M/2 share their noise, so half
/// the draws (ten Philox rounds and a logarithm each) are not done.
struct SharedDraw {
  NodeId node;
  int32_t dst;  // a [M x B] temporary
  int kernel;   // index into Schedule::kernels
};

struct Stage {
  std::vector<SharedDraw> draws;    // first, in node order
  std::vector<Crossing> crossings;  // then these, in node order
  int invariant = -1, member = -1;  // then these kernels (indices into Schedule::kernels), or -1
};

struct Schedule {
  Graph graph;  // the (specialized) graph scheduled: the prelude is its nodes without the element axis
  std::vector<Temp> temps;
  std::vector<StageKernel> kernels;
  std::vector<Stage> stages;
};

/// Whether a graph specialized for a binding needs the staged schedule: it has a member-crossing
/// node or a keyed draw (whose keys the prelude checks), or an output without the member axis is stored once (`per_member_store[o]` false) while
/// other values vary per member (then the one store must not be repeated by every member).
bool needs_schedule(const Graph& g, const std::vector<bool>& per_member_store);

/// Schedules `g` (verified, specialized for its binding: ir::specialize_inputs). Output o is
/// stored for every member when `per_member_store[o]` (its target is a swarm), else once.
/// The element inputs are the rule's inputs with the element axis; `g`'s node types say which
/// vary per member.
Schedule schedule(const Graph& g, const std::vector<bool>& per_member_store);

/// The schedule as text (`nyto compile --emit ir-opt`): the prelude, then per stage its
/// crossings and kernels with their loads and stores.
std::string print(const Schedule& s);

}  // namespace nyto::ir
