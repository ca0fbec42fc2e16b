#include "backend/Staged.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "backend/KernelCache.h"
#include "backend/Prelude.h"
#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/Passes.h"
#include "ir/Schedule.h"

namespace nyto::staged {

namespace {

using ir::Op;
using ir::StageInput;


BindKind kind_of(const StageInput& in, const KernelSpec& rule) {
  switch (in.from) {
    case StageInput::From::Input: return rule.kinds.at(size_t(in.index));
    case StageInput::From::Prelude: return in.member ? BindKind::MemberScalar : BindKind::Scalar;
    case StageInput::From::Temp: break;
  }
  return in.member ? BindKind::Swarm : BindKind::Particle;
}


class StagedKernel final : public Kernel {
 public:
  // broadcast[o]: output o's value has no member axis and is stored once, so rows the caller
  // laid out per member get a copy of row 0.
  StagedKernel(ir::Schedule s, KernelSpec spec, std::vector<std::shared_ptr<Kernel>> kernels,
               std::vector<bool> broadcast)
      : s_(std::move(s)), spec_(std::move(spec)), kernels_(std::move(kernels)),
        broadcast_(std::move(broadcast)) {}

  void run(const KernelArgs& a) const override {
    if (a.members <= 0) return;
    const PreludeValues pre = evaluate_prelude(s_.graph, spec_.kinds, a);  // may throw: nothing written yet
    const std::vector<DrawPlan> plans = plan_draws(pre);
    if (spec_.dtype == DType::F32)
      run_typed<float>(a, pre, plans);
    else
      run_typed<double>(a, pre, plans);
  }

 private:
  // One run's plan of a SharedDraw (per stage, in order): the distinct key pairs in order of the
  // first member holding each, and each member's pair.
  struct DrawPlan {
    int64_t distinct = 0;
    std::vector<int64_t> pair_of;               // per member: index of its key pair, <= member
    std::vector<std::vector<double>> key_rows;  // per per-member kernel input: its value per pair
  };
  std::vector<DrawPlan> plan_draws(const PreludeValues& pre) const {
    std::vector<DrawPlan> plans;
    const int64_t M = pre.members;
    for (const ir::Stage& st : s_.stages)
      for (const ir::SharedDraw& d : st.draws) {
        const ir::Node& nd = s_.graph.nodes[size_t(d.node)];
        DrawPlan p;
        p.pair_of.resize(size_t(M));
        std::vector<int64_t> first;  // first member of each pair
        std::map<std::pair<double, double>, int64_t> seen;
        for (int64_t m = 0; m < M; ++m) {
          auto [it, fresh] = seen.try_emplace({pre.at(nd.args[0], m), pre.at(nd.args[1], m)}, p.distinct);
          if (fresh) first.push_back(m), ++p.distinct;
          p.pair_of[size_t(m)] = it->second;
        }
        for (const StageInput& in : s_.kernels[size_t(d.kernel)].inputs) {
          std::vector<double> row;
          if (in.member)
            for (int64_t f : first) row.push_back(pre.at(in.index, f));
          p.key_rows.push_back(std::move(row));
        }
        plans.push_back(std::move(p));
      }
    return plans;
  }

  // Elements per block: the temporaries of one block ([M x B] values each) stay within a few
  // hundred KiB, so a stage reads back what the stage before wrote from L2, not memory.
  static int64_t block_size(int64_t members) {
    int64_t b = std::clamp<int64_t>(32768 / std::max<int64_t>(members, 1), 64, 4096);
    return b / 64 * 64;
  }

  template <class T>
  void run_typed(const KernelArgs& a, const PreludeValues& pre, const std::vector<DrawPlan>& plans) const {
    // A block never exceeds the longest range (rounded up to whole vectors): a tiny swarm does
    // not pay for temporaries the size of a big one's.
    int64_t longest = 0;
    for (const auto& [begin, end] : a.ranges) longest = std::max(longest, end - begin);
    const int64_t M = a.members, B = std::min(block_size(M), (longest + 63) / 64 * 64);
    std::vector<std::pair<int64_t, int64_t>> blocks;
    for (const auto& [begin, end] : a.ranges)
      for (int64_t b = begin; b < end; b += B) blocks.emplace_back(b, std::min(end, b + B));
    if (blocks.empty()) return;

    at::parallel_for(0, int64_t(blocks.size()), 1, [&](int64_t lo, int64_t hi) {
      // This thread's temporaries and the argument blocks of every kernel, reused across blocks.
      // Uninitialized: every element a stage reads was written by an earlier one in this block.
      std::vector<std::unique_ptr<T[]>> temps(s_.temps.size());
      for (size_t t = 0; t < temps.size(); ++t) temps[t].reset(new T[size_t(s_.temps[t].member ? M * B : B)]);
      std::vector<KernelArgs> ka(kernels_.size());
      for (size_t k = 0; k < kernels_.size(); ++k) {
        const ir::StageKernel& sk = s_.kernels[k];
        KernelArgs& c = ka[k];
        c.members = sk.per_member ? M : 1;
        c.ranges.assign(1, {0, 0});
        c.params = a.params;
        c.seed = a.seed, c.invocation = a.invocation, c.group = a.group;
        c.in.assign(sk.inputs.size(), nullptr);
        c.in_stride.assign(sk.inputs.size(), 0);
        c.scalar.assign(sk.inputs.size(), 0.0);
        c.out.assign(sk.outputs.size(), nullptr);
        c.out_stride.assign(sk.outputs.size(), 0);
        for (size_t i = 0; i < sk.inputs.size(); ++i) {
          const StageInput& in = sk.inputs[i];
          if (in.from == StageInput::From::Input) {
            c.in[i] = a.in[size_t(in.index)];
            c.in_stride[i] = a.in_stride[size_t(in.index)];
          } else if (in.from == StageInput::From::Prelude) {
            if (in.member)
              c.in[i] = pre.v.data() + size_t(in.index) * size_t(M);
            else
              c.scalar[i] = pre.at(in.index, 0);
          } else {
            c.in_stride[i] = in.member ? B : 0;
          }
        }
        for (size_t o = 0; o < sk.outputs.size(); ++o) {
          const ir::StageOutput& out = sk.outputs[o];
          if (out.temp) {
            c.out_stride[o] = s_.temps[size_t(out.index)].member ? B : 0;
          } else {
            c.out[o] = a.out[size_t(out.index)];
            c.out_stride[o] = a.out_stride[size_t(out.index)];
          }
        }
      }
      // Shared draws run for the distinct key pairs only: their per-member keys come from the plan.
      {
        size_t di = 0;
        for (const ir::Stage& st : s_.stages)
          for (const ir::SharedDraw& d : st.draws) {
            const DrawPlan& p = plans[di++];
            KernelArgs& c = ka[size_t(d.kernel)];
            c.members = p.distinct;
            const auto& ins = s_.kernels[size_t(d.kernel)].inputs;
            for (size_t i = 0; i < ins.size(); ++i)
              if (ins[i].member) c.in[i] = p.key_rows[i].data();
          }
      }
      for (int64_t bi = lo; bi < hi; ++bi) {
        const auto [b0, b1] = blocks[size_t(bi)];
        const int64_t len = b1 - b0;
        size_t di = 0;
        for (const ir::Stage& st : s_.stages) {
          for (const ir::SharedDraw& d : st.draws) {
            const DrawPlan& p = plans[di++];
            KernelArgs& c = ka[size_t(d.kernel)];
            c.ranges[0] = {b0, b1};
            T* dst = temps[size_t(d.dst)].get();
            c.out[0] = rebase_block(dst, b0, sizeof(T));
            kernels_[size_t(d.kernel)]->run(c);
            // Row p.pair_of[m] <= m holds member m's draws: copying from the last member down
            // never overwrites a row before it is read.
            for (int64_t m = M - 1; m >= 0; --m)
              if (p.pair_of[size_t(m)] != m)
                std::memcpy(dst + m * B, dst + p.pair_of[size_t(m)] * B, size_t(len) * sizeof(T));
          }
          for (const ir::Crossing& c : st.crossings) cross<T>(c, temps, pre, M, B, len);
          for (int ki : {st.invariant, st.member}) {
            if (ki < 0) continue;
            const ir::StageKernel& sk = s_.kernels[size_t(ki)];
            KernelArgs& c = ka[size_t(ki)];
            c.ranges[0] = {b0, b1};
            for (size_t i = 0; i < sk.inputs.size(); ++i)
              if (sk.inputs[i].from == StageInput::From::Temp)
                c.in[i] = rebase_block(temps[size_t(sk.inputs[i].index)].get(), b0, sizeof(T));
            for (size_t o = 0; o < sk.outputs.size(); ++o)
              if (sk.outputs[o].temp) c.out[o] = rebase_block(temps[size_t(sk.outputs[o].index)].get(), b0, sizeof(T));
            kernels_[size_t(ki)]->run(c);
          }
        }
        for (size_t o = 0; o < a.out.size(); ++o)
          if (broadcast_[o] && a.out_stride[o] != 0) {
            T* base = static_cast<T*>(a.out[o]) + b0;
            for (int64_t m = 1; m < M; ++m)
              std::memcpy(base + m * a.out_stride[o], base, size_t(len) * sizeof(T));
          }
      }
    });
  }

  // One member-crossing node over the block's first `len` elements (row stride B).
  template <class T>
  void cross(const ir::Crossing& c, std::vector<std::unique_ptr<T[]>>& temps, const PreludeValues& pre,
             int64_t M, int64_t B, int64_t len) const {
    const bool src_member = s_.temps[size_t(c.src)].member;
    const T* src = temps[size_t(c.src)].get();
    T* dst = temps[size_t(c.dst)].get();
    auto row = [&](int64_t m) { return src + (src_member ? m * B : 0); };
    if (c.op == Op::MRead) {
      const bool dst_member = s_.temps[size_t(c.dst)].member;
      for (int64_t m = 0; m < (dst_member ? M : 1); ++m)
        std::memcpy(dst + m * B, row(int64_t(pre.at(c.index, m))), size_t(len) * sizeof(T));
      return;
    }
    // A fold in member order 0..M-1, element by element (the loop over elements is innermost so
    // it vectorizes; each element still adds its members in order).
    std::memcpy(dst, row(0), size_t(len) * sizeof(T));
    for (int64_t m = 1; m < M; ++m) {
      const T* r = row(m);
      if (c.op == Op::MSum)
        for (int64_t e = 0; e < len; ++e) dst[e] = dst[e] + r[e];
      else if (c.op == Op::MMin)
        for (int64_t e = 0; e < len; ++e) dst[e] = ir::ieee_minimum(dst[e], r[e]);
      else
        for (int64_t e = 0; e < len; ++e) dst[e] = ir::ieee_maximum(dst[e], r[e]);
    }
  }

  ir::Schedule s_;
  KernelSpec spec_;
  std::vector<std::shared_ptr<Kernel>> kernels_;  // identical stage kernels share one
  std::vector<bool> broadcast_;
};

}  // namespace

std::vector<bool> per_member_store(const ir::Graph& typed, const KernelSpec& spec) {
  std::vector<bool> r;
  for (const ir::Output& o : typed.outputs)
    r.push_back(o.target >= 0 ? spec.kinds.at(size_t(o.target)) == BindKind::Swarm
                              : typed.nodes[o.node].type.member);
  return r;
}

bool needed(const ir::Graph& g, const KernelSpec& spec) {
  ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  return ir::needs_schedule(typed, per_member_store(typed, spec));
}

namespace {
ir::Schedule schedule_of(const ir::Graph& g, const KernelSpec& spec, std::vector<bool>* store_out = nullptr) {
  NYTO_INTERNAL_ASSERT(spec.kinds.size() == g.inputs.size(), "staged: one BindKind per input");
  ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  std::vector<bool> store = per_member_store(typed, spec);
  ir::Schedule s = ir::schedule(typed, store);
  if (store_out) *store_out = std::move(store);
  return s;
}
KernelSpec stage_spec(const ir::StageKernel& k, const KernelSpec& spec) {
  KernelSpec ks;
  ks.dtype = spec.dtype;
  for (const StageInput& in : k.inputs) ks.kinds.push_back(kind_of(in, spec));
  return ks;
}
}  // namespace

std::string describe(const ir::Graph& g, const KernelSpec& spec) { return ir::print(schedule_of(g, spec)); }

std::vector<std::pair<ir::Graph, KernelSpec>> stage_kernels(const ir::Graph& g, const KernelSpec& spec) {
  std::vector<std::pair<ir::Graph, KernelSpec>> r;
  for (const ir::StageKernel& k : schedule_of(g, spec).kernels) r.emplace_back(k.graph, stage_spec(k, spec));
  return r;
}

std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec, const CompileFn& compile) {
  NYTO_INTERNAL_ASSERT(!spec.has_chunk_outputs(), "staged driver: no chunk outputs (KernelSpec::chunk)");
  std::vector<bool> store;
  ir::Schedule s = schedule_of(g, spec, &store);
  // Every stage kernel is compiled before the first run, so a failure leaves nothing half done.
  // Stage kernels with the same structure and spec (OpenAI-ES's two shared draws) compile once.
  std::vector<std::shared_ptr<Kernel>> kernels;
  std::map<std::string, std::shared_ptr<Kernel>> seen;
  for (const ir::StageKernel& k : s.kernels) {
    const KernelSpec ks = stage_spec(k, spec);
    auto [it, fresh] = seen.try_emplace(kernel_key(k.graph, ks));
    if (fresh) it->second = compile(k.graph, ks);
    kernels.push_back(it->second);
  }
  std::vector<bool> broadcast(store.size());
  for (size_t o = 0; o < store.size(); ++o)
    broadcast[o] = !store[o] && !s.graph.nodes[size_t(s.graph.outputs[o].node)].type.member;
  return std::make_unique<StagedKernel>(std::move(s), spec, std::move(kernels), std::move(broadcast));
}

}  // namespace nyto::staged
