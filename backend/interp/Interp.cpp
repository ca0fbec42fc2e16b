// The reference interpreter. Kept deliberately naive (no vectorization, no blocking: every
// element node is evaluated for every member at one element, then that element's outputs are
// stored), so it is easy to trust. The op semantics come from ir/Eval.h, which constant
// folding shares.
#include "backend/interp/Interp.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/Prelude.h"
#include "backend/Random.h"
#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/Passes.h"

namespace nyto::interp {

namespace {

using ir::NodeId;
using ir::Op;
using ir::Type;

class InterpKernel final : public Kernel {
 public:
  InterpKernel(ir::Graph g, KernelSpec spec)
      : g_(std::move(g)),
        spec_(std::move(spec)),
        window_(std::none_of(g_.nodes.begin(), g_.nodes.end(),
                             [](const ir::Node& n) { return ir::crosses_members(n.op); })) {}

  bool member_window() const override { return window_; }

  void run(const KernelArgs& args) const override {
    check(args);
    if (spec_.dtype == DType::F32)
      run_typed<float>(args);
    else
      run_typed<double>(args);
  }

 private:
  void check(const KernelArgs& a) const {
    const size_t ni = g_.inputs.size(), no = g_.outputs.size();
    NYTO_INTERNAL_ASSERT(a.in.size() == ni && a.in_stride.size() == ni && a.scalar.size() == ni,
                         "interp: KernelArgs in/in_stride/scalar need one entry per input");
    NYTO_INTERNAL_ASSERT(a.params.size() == g_.params.size(),
                         "interp: KernelArgs::params needs one value per param");
    NYTO_INTERNAL_ASSERT(a.out.size() == no && a.out_stride.size() == no,
                         "interp: KernelArgs out/out_stride need one entry per output");
    // Member and element indices are 32-bit words of the Philox counter (backend/Random.h).
    NYTO_INTERNAL_ASSERT(a.members >= 0 && a.members <= (int64_t(1) << 32),
                         "interp: member count outside [0, 2^32]");
    int64_t last_end = 0;
    for (const auto& [begin, end] : a.ranges) {
      NYTO_INTERNAL_ASSERT(begin >= last_end && begin <= end && end <= (int64_t(1) << 32),
                           "interp: ranges must be sorted, disjoint and below 2^32");
      last_end = end;
    }
    const int64_t m1 = a.member_end < 0 ? a.members : a.member_end;
    NYTO_INTERNAL_ASSERT(a.member_begin >= 0 && a.member_begin <= m1 && m1 <= a.members,
                         "interp: member window outside [0, members]");
    NYTO_INTERNAL_ASSERT(window_ || (a.member_begin == 0 && m1 == a.members),
                         "interp: a member window for a graph whose members read each other");
    for (size_t i = 0; i < ni; ++i)
      NYTO_INTERNAL_ASSERT(spec_.kinds[i] == BindKind::Scalar || a.in[i] != nullptr,
                           "interp: null pointer for input " + g_.inputs[i].name);
    for (size_t o = 0; o < no; ++o)
      NYTO_INTERNAL_ASSERT(a.out[o] != nullptr, "interp: null pointer for output " +
                                                    g_.outputs[o].name);
  }

  // The values without the element axis come from the prelude (backend/Prelude.h), which checks
  // every member index before anything is written. Then, per element, every element node is
  // evaluated for all members before any output of that element is stored: member reductions and
  // reads see the whole swarm at that element, and an output that aliases its input (in place)
  // or is read by another member (x[i]) is still the old value.
  template <class T>
  void run_typed(const KernelArgs& a) const {
    const size_t n = g_.nodes.size();
    const int64_t M = a.members;
    if (M == 0) return;
    const PreludeValues pre = evaluate_prelude(g_, spec_.kinds, a);
    // The member window (a member-local graph only, check()): the others are not computed.
    const int64_t m0 = a.member_begin, m1 = a.member_end < 0 ? M : a.member_end;
    // One slot per (node, member); a node uses the slot of its type (IR.h numerics rule).
    std::vector<double> s(n * M);  // values without the element axis, in double
    std::vector<T> e(n * M);       // values with the element axis, in the dtype
    std::vector<char> mk(n * M);   // masks
    auto at = [M](NodeId id, int64_t m) { return size_t(id) * size_t(M) + size_t(m); };
    for (size_t i = 0; i < n * size_t(M); ++i) s[i] = pre.v[i], mk[i] = pre.v[i] != 0;
    auto as_t = [&](NodeId id, int64_t m) {
      return g_.nodes[id].type.element ? e[at(id, m)] : T(s[at(id, m)]);
    };
    const rng::Key key{a.seed, a.invocation, a.group};

    auto eval = [&](int64_t el) {
      for (size_t i = 0; i < n; ++i) {
        const ir::Node& nd = g_.nodes[i];
        if (!nd.type.element) continue;
        const NodeId x = nd.args[0], y = nd.args[1];
        for (int64_t member = m0; member < m1; ++member) {
          const size_t me = at(NodeId(i), member);
          switch (nd.op) {
            case Op::Input: {
              const int k = nd.index;
              e[me] = spec_.kinds[k] == BindKind::Particle
                          ? static_cast<const T*>(a.in[k])[el]
                          : static_cast<const T*>(a.in[k])[member * a.in_stride[k] + el];
              break;
            }
            case Op::Rand:
            case Op::Randn: {
              const bool normal = nd.op == Op::Randn;
              if constexpr (sizeof(T) == 4)
                e[me] = rng::draw_f32(key, uint32_t(nd.index), normal, uint32_t(member), uint64_t(el));
              else
                e[me] = rng::draw_f64(key, uint32_t(nd.index), normal, uint32_t(member), uint64_t(el));
              break;
            }
            case Op::KRand:
            case Op::KRandn: {  // keys checked by the prelude
              const bool normal = nd.op == Op::KRandn;
              const uint32_t kk = uint32_t(s[at(x, member)]), kj = uint32_t(s[at(y, member)]);
              if constexpr (sizeof(T) == 4)
                e[me] = rng::keyed_f32(key, kk, kj, normal, uint64_t(el));
              else
                e[me] = rng::keyed_f64(key, kk, kj, normal, uint64_t(el));
              break;
            }
            case Op::MSum:
            case Op::MMin:
            case Op::MMax: {
              // Folded left to right in member order 0..M-1 (IR.h).
              const Op f = nd.op == Op::MSum ? Op::Add : nd.op == Op::MMin ? Op::Min : Op::Max;
              T acc = as_t(x, 0);
              for (int64_t k = 1; k < M; ++k) acc = ir::eval_binary<T>(f, acc, as_t(x, k));
              e[me] = acc;
              break;
            }
            case Op::MRead:  // the index was checked by the prelude
              e[me] = as_t(x, int64_t(s[at(y, member)]));
              break;
            case Op::Select:
              e[me] = mk[at(x, member)] ? as_t(nd.args[1], member) : as_t(nd.args[2], member);
              break;
            default:
              if (ir::is_compare_op(nd.op))
                mk[me] = ir::eval_compare<T>(nd.op, as_t(x, member), as_t(y, member));
              else if (ir::op_arity(nd.op) == 1)
                e[me] = ir::eval_unary<T>(nd.op, e[at(x, member)]);
              else
                e[me] = ir::eval_binary<T>(nd.op, as_t(x, member), as_t(y, member));
          }
        }
      }
    };

    for (const auto& [begin, end] : a.ranges)
      for (int64_t el = begin; el < end; ++el) {
        eval(el);
        for (size_t o = 0; o < g_.outputs.size(); ++o)
          for (int64_t member = m0; member < m1; ++member)
            static_cast<T*>(a.out[o])[member * a.out_stride[o] + el] =
                as_t(g_.outputs[o].node, member);
      }
  }

  ir::Graph g_;  // retyped for the binding
  KernelSpec spec_;
  bool window_;  // no member-crossing node
};

}  // namespace

std::unique_ptr<nyto::Kernel> compile(const ir::Graph& g, const KernelSpec& spec) {
  ir::verify(g);
  NYTO_INTERNAL_ASSERT(spec.kinds.size() == g.inputs.size(),
                       "interp::compile: KernelSpec::kinds needs one BindKind per input");
  // The oracle keeps the plain path: the parameter-axis driver reduces what it stores.
  NYTO_INTERNAL_ASSERT(!spec.has_chunk_outputs(), "interp::compile: chunk outputs are llvm-only (KernelSpec::chunk)");
  ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  ir::verify(typed);
  return std::make_unique<InterpKernel>(std::move(typed), spec);
}

}  // namespace nyto::interp
