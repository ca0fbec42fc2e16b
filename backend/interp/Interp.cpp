// The reference interpreter. Kept deliberately naive (no vectorization, no hoisting of Scalar
// nodes out of the element loop: recomputing a Scalar node per element in double gives the same
// value every time), so it is easy to trust. The op semantics come from ir/Eval.h, which constant
// folding shares.
#include "backend/interp/Interp.h"

#include <vector>

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
  InterpKernel(ir::Graph g, KernelSpec spec) : g_(std::move(g)), spec_(std::move(spec)) {}

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
    for (size_t i = 0; i < ni; ++i)
      NYTO_INTERNAL_ASSERT(spec_.kinds[i] == BindKind::Scalar || a.in[i] != nullptr,
                           "interp: null pointer for input " + g_.inputs[i].name);
    for (size_t o = 0; o < no; ++o)
      NYTO_INTERNAL_ASSERT(a.out[o] != nullptr, "interp: null pointer for output " +
                                                    g_.outputs[o].name);
  }

  template <class T>
  void run_typed(const KernelArgs& a) const {
    const size_t n = g_.nodes.size();
    // One slot per node; a node uses the slot of its type (IR.h numerics rule).
    std::vector<double> s(n);  // values without the element axis, in double
    std::vector<T> e(n);       // values with the element axis, in the dtype
    std::vector<char> m(n);    // Mask nodes
    auto as_t = [&](NodeId id) { return g_.nodes[id].type.element ? e[id] : T(s[id]); };
    const rng::Key key{a.seed, a.invocation, a.group};

    for (int64_t member = 0; member < a.members; ++member)
      for (const auto& [begin, end] : a.ranges)
        for (int64_t el = begin; el < end; ++el) {
          // Loads and compute for (member, el): every input is read before any output is
          // written, so an output aliasing its input (in place) sees the old value.
          for (size_t i = 0; i < n; ++i) {
            const ir::Node& nd = g_.nodes[i];
            const NodeId x = nd.args[0], y = nd.args[1];
            switch (nd.op) {
              case Op::Const: s[i] = nd.value; break;
              case Op::Param: s[i] = a.params[nd.index]; break;
              case Op::Member: s[i] = double(member); break;
              case Op::MRand:
              case Op::MRandn:
                s[i] = rng::member_draw(key, uint32_t(nd.index), nd.op == Op::MRandn, uint32_t(member));
                break;
              case Op::Members: s[i] = double(a.members); break;
              case Op::Input: {
                const int k = nd.index;
                switch (spec_.kinds[k]) {
                  case BindKind::Scalar: s[i] = a.scalar[k]; break;
                  case BindKind::MemberScalar: s[i] = static_cast<const double*>(a.in[k])[member]; break;
                  case BindKind::Particle: e[i] = static_cast<const T*>(a.in[k])[el]; break;
                  case BindKind::Swarm:
                    e[i] = static_cast<const T*>(a.in[k])[member * a.in_stride[k] + el];
                    break;
                }
                break;
              }
              case Op::Rand:
              case Op::Randn: {
                const bool normal = nd.op == Op::Randn;
                if constexpr (sizeof(T) == 4)
                  e[i] = rng::draw_f32(key, uint32_t(nd.index), normal, uint32_t(member), uint32_t(el));
                else
                  e[i] = rng::draw_f64(key, uint32_t(nd.index), normal, uint32_t(member), uint32_t(el));
                break;
              }
              case Op::Select:
                if (nd.type.element)
                  e[i] = m[x] ? as_t(nd.args[1]) : as_t(nd.args[2]);
                else
                  s[i] = m[x] ? s[nd.args[1]] : s[nd.args[2]];
                break;
              default:
                if (ir::is_compare_op(nd.op)) {
                  // Compared in double when neither side has the element axis, else in the dtype.
                  bool scalar = !nd.type.element;
                  m[i] = scalar ? ir::eval_compare<double>(nd.op, s[x], s[y])
                                : ir::eval_compare<T>(nd.op, as_t(x), as_t(y));
                } else if (ir::op_arity(nd.op) == 1) {
                  if (!nd.type.element)
                    s[i] = ir::eval_unary<double>(nd.op, s[x]);
                  else
                    e[i] = ir::eval_unary<T>(nd.op, e[x]);
                } else {
                  if (!nd.type.element)
                    s[i] = ir::eval_binary<double>(nd.op, s[x], s[y]);
                  else
                    e[i] = ir::eval_binary<T>(nd.op, as_t(x), as_t(y));
                }
            }
          }
          for (size_t o = 0; o < g_.outputs.size(); ++o)
            static_cast<T*>(a.out[o])[member * a.out_stride[o] + el] = as_t(g_.outputs[o].node);
        }
  }

  ir::Graph g_;  // retyped for the binding
  KernelSpec spec_;
};

}  // namespace

std::unique_ptr<nyto::Kernel> compile(const ir::Graph& g, const KernelSpec& spec) {
  ir::verify(g);
  NYTO_INTERNAL_ASSERT(spec.kinds.size() == g.inputs.size(),
                       "interp::compile: KernelSpec::kinds needs one BindKind per input");
  std::vector<Type> types;
  for (BindKind k : spec.kinds)
    types.push_back(bind_type(k));
  ir::Graph typed = ir::specialize_inputs(g, types);
  ir::verify(typed);
  return std::make_unique<InterpKernel>(std::move(typed), spec);
}

}  // namespace nyto::interp
