// What the runtime hands a backend to run one fused kernel over one storage group (one dtype,
// one device). No LibTorch here: pointers and strides only, so interp and llvm stay light.
//
// Iteration space: for every member m in [0, members) and every element e in each of `ranges`
// (the operational segments of a member's flat storage, sorted, disjoint), compute the graph and
// store each output. Inputs are loaded before outputs are stored for the same (m, e), so an output
// may alias an input at the same address (in-place x = x + v); no other overlap is allowed.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ir/IR.h"

namespace nyto {

enum class DType : uint8_t { F32, F64 };

// How one Graph input is bound. The kernel is specialized on these (and on dtype).
enum class BindKind : uint8_t {
  Scalar,        // one value for all members: KernelArgs::scalar[i]
  MemberScalar,  // one double per member: ((const double*)in[i])[m]
  Particle,      // one flat array shared by all members: in[i][e]
  Swarm,         // one row per member: in[i][m * in_stride[i] + e]
};

/// The IR type of an input bound this way (ir::specialize_inputs): the axes the binding varies along.
constexpr ir::Type bind_type(BindKind k) {
  switch (k) {
    case BindKind::Scalar: return ir::Type::Scalar;
    case BindKind::MemberScalar: return ir::Type::MemberScalar;
    case BindKind::Particle: return ir::Type::Elem;
    case BindKind::Swarm: break;
  }
  return ir::Type::Swarm;
}

/// bind_type of each binding kind: the input types a graph is specialized to
/// (ir::specialize_inputs) for these kinds.
inline std::vector<ir::Type> bind_types(const std::vector<BindKind>& kinds) {
  std::vector<ir::Type> t;
  t.reserve(kinds.size());
  for (BindKind k : kinds) t.push_back(bind_type(k));
  return t;
}

/// For drivers that run a kernel on one block of elements out of a buffer holding only that
/// block: a pointer `first` elements before `block`. Kernels index their arrays by the element's
/// index in the member's storage (the random stream is keyed by it), so a block buffer whose
/// entry 0 is element `first` is passed through this base; only the block's elements are ever
/// accessed through it.
inline void* rebase_block(void* block, int64_t first, size_t elem_size) {
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(block) - uintptr_t(first) * elem_size);
}

/// How a chunk output (KernelSpec::chunk) reduces each chunk.
enum class ChunkReduce : uint8_t { None, Sum, Min, Max };

struct KernelSpec {
  DType dtype = DType::F32;
  std::vector<BindKind> kinds;  // one per Graph::inputs
  // Per output (or empty: none): a value output, computed by a parameter-axis rule's driver
  // (backend/ParamAxis.h) into one double per member instead of stored per element.
  std::vector<bool> values;
  // Per output (missing entries: None): a chunk output. Instead of the value per element, the
  // kernel stores one double per 1024-element chunk (ir::kParamChunk) of it: Sum, the chunk's sum
  // in the order of ir/IR.h's parameter-axis sums (in double, 32 lanes, folded in halves); Min /
  // Max, its IEEE minimum / maximum (ir::ieee_minimum, in the dtype, then widened). out[o] points
  // to doubles, member m's row at m * out_stride[o]; the chunks of each range start at its first
  // element, and range k's chunks follow range k-1's in the row. The parameter-axis driver
  // (backend/ParamAxis.h) asks for it so that a pass kernel reduces in registers instead of
  // writing the reduction's argument to a temporary. Only the llvm backend
  // (llvm_backend::compile) implements it; every other compile function rejects such a spec.
  std::vector<ChunkReduce> chunk;
  bool has_chunk_outputs() const {
    for (ChunkReduce c : chunk)
      if (c != ChunkReduce::None) return true;
    return false;
  }
};

struct KernelArgs {
  int64_t members = 1;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end) element ranges per member
  // The parameter tensors (operational, non-empty, in parameter order) as [begin, end) element
  // ranges covering `ranges`; read by parameter-axis rules only (backend/ParamAxis.h). Empty:
  // each range is one tensor.
  std::vector<std::pair<int64_t, int64_t>> tensors;
  std::vector<const void*> in;                      // per input; nullptr for Scalar
  std::vector<int64_t> in_stride;                   // per input; elements between member rows
  std::vector<double> scalar;                       // per input; used for Scalar
  std::vector<double> params;                       // per Graph::params
  std::vector<void*> out;                           // per output: base of row 0
  std::vector<int64_t> out_stride;                  // per output; elements between member rows
  // The member window: only members [member_begin, member_end) are computed and stored (-1: to
  // `members`), numbered as in the whole swarm (member(), the random stream, swarm rows,
  // per-member scalars). Only for a kernel whose member_window() is true; what one rank of a
  // distributed run owns (docs/distributed.md).
  int64_t member_begin = 0, member_end = -1;
  // With a member window, the rows of members outside it that the window's member reads (x[i])
  // reach (Kernel::rows_read): per such member, a pointer per input to that member's row of it
  // (element 0 at the pointer; nullptr for an input not bound to a swarm). Only the staged
  // driver reads them; they are read, never written.
  std::vector<std::pair<int64_t, std::vector<const void*>>> outside_rows;
  // With a member window, for a kernel with member_folds(): a member reduction (msum, mmin,
  // mmax) of a value only the window computes (a swarm's rows) is folded in member order over
  // the windows of every rank, as one process folds it, so every rank gets the same bits as a
  // run on the whole population. Per stage of such folds (schedule order), per chunk of at most
  // `fold_chunk` elements (whole blocks, ascending; the same chunks on every rank), the driver
  // calls fold(Receive, acc, n) for each fold of the stage: fill acc (the chunk's n elements)
  // with the fold of the members before the window and return true, or return false when there
  // is none (the fold starts at the window's first member); folds the window's members on the
  // chunk; calls fold(Send, acc, n) for each (the fold up to the window's end; nothing when the
  // window is empty and Receive returned false). After the last chunk, fold(Share, acc, n) for
  // each chunk and fold, after which acc must hold the fold of every member. Chunks pipeline
  // the fold: the next rank folds a chunk while this one folds the next. The calls are the same
  // on every rank, whatever its window. Unset: such a kernel computes every member (the window
  // is ignored).
  enum class FoldStep : uint8_t { Receive, Send, Share };
  std::function<bool(FoldStep step, void* acc, int64_t n)> fold;
  // 1 MB of float32: each chunk costs a message (0.2-0.3 ms of Gloo over loopback, measured: 64
  // Ki-element chunks made CEM's rule 50% slower on 2 ranks), and on 10 GbE its transfer (0.8
  // ms) is what each further rank adds to the fold.
  int64_t fold_chunk = int64_t(1) << 18;
  uint64_t seed = 0;                                // see backend/Random.h for the key layout
  uint64_t invocation = 0;
  uint32_t group = 0;
};

/// Thrown by Kernel::run, before anything is written, when a checked argument is out of range for
/// some member: a member read's index (ir::Op::MRead) not an integer in [0, members), or a keyed
/// draw's key (ir::Op::KRand/KRandn; `key` 0 for k, 1 for j) not an integer in [0, 2^32). `site`
/// is the node's check site (the runtime maps it to the source); the first failure in node order,
/// then member order, is reported.
class MemberIndexError : public std::runtime_error {
 public:
  MemberIndexError(int32_t site, int64_t member, double index, int64_t members, int key = -1)
      : std::runtime_error("check site " + std::to_string(site) + ": value " + std::to_string(index) +
                           " at member " + std::to_string(member) + " is out of range"),
        site(site), member(member), index(index), members(members), key(key) {}
  int32_t site;
  int64_t member;
  double index;     // the offending value
  int64_t members;
  int key;          // -1: a member index; 0 / 1: key k / j of a keyed draw
};

/// Thrown by Kernel::run, before anything is written, when a member window's member reads (x[i])
/// reach rows that neither the window nor KernelArgs::outside_rows hold: `members`, sorted.
class RowsNeededError : public std::runtime_error {
 public:
  explicit RowsNeededError(std::vector<int64_t> m)
      : std::runtime_error("member reads need rows outside the member window"), members(std::move(m)) {}
  std::vector<int64_t> members;
};

/// 64-bit hash of everything that changes generated code: every node (op, type, args, constant
/// bits, index), the input/param/output counts, output nodes and targets, and rand_sites.
/// Names and parameter defaults are not part of it (parameters are passed at run time).
uint64_t structural_hash(const ir::Graph& graph);

/// The exact key of (graph, spec) behind structural_hash: equal keys <=> equal generated code,
/// whatever the names. KernelCache keys its map by it (plus the backend); the staged driver
/// compiles stage kernels with equal keys once; the llvm backend's disk cache keys files by it.
std::string kernel_key(const ir::Graph& graph, const KernelSpec& spec);

// A runnable kernel, produced by a backend from (Graph, KernelSpec). Thread-safe to run.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(const KernelArgs& args) const = 0;
  /// Whether run() honours KernelArgs' member window: members outside the window can be left
  /// out, because no member reads another's values, or the staged driver brings in what they
  /// read (rows through KernelArgs::outside_rows, member folds through KernelArgs::fold).
  virtual bool member_window() const { return false; }
  /// Whether a member window needs KernelArgs::fold: the kernel reduces a windowed value over
  /// the members (msum(x) of a swarm's rows). Without it, run() computes every member.
  virtual bool member_folds() const { return false; }
  /// Whether a member window may read rows outside it (x[0]: Kernel::rows_read, KernelArgs::outside_rows).
  virtual bool member_reads() const { return false; }
  /// The members whose rows a member read (x[i]) of a windowed value reads, at any member of the
  /// population (so the same on every rank of a distributed run), sorted: the rows a window must
  /// hold or get through KernelArgs::outside_rows. Reads only what the prelude reads (scalars,
  /// per-member vectors, params): array pointers may be null. Empty for most kernels.
  virtual std::vector<int64_t> rows_read(const KernelArgs&) const { return {}; }
};

}  // namespace nyto
