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


// Which kernels a member window leaves to the window's members (windowed): those that read a
// swarm's rows, store an output, or read a temporary only they compute. The others (keyed noise,
// per-member scalars, particles) run for every member, so a member reduction of them is whole on
// every rank of a distributed run (OpenAI-ES's tell step). A reduction of a windowed value is a
// member fold: the window folds its members onto the fold of the members before it, which the
// caller brings (KernelArgs::fold; CEM's msum(where(rank(f) < n, x, 0))). A member read of a
// windowed value (`x[0]`) takes the rows it reads outside the window from the caller
// (KernelArgs::outside_rows).
struct WindowPlan {
  std::vector<bool> windowed;            // per kernel of the schedule
  std::vector<int> extra;                // per stage: a kernel split off its member kernel, run first (-1: none)
  std::vector<std::vector<bool>> reads;  // per stage, per crossing: a member read of a windowed value
  std::vector<std::vector<int>> folds;   // per stage, per crossing: its number among the member folds, or -1
  int nfolds = 0;
  bool any_reads = false;
};
// A per-member kernel whose outputs are some windowed and some not (OpenAI-ES reading x[0] in
// the stage that computes its reduction's argument) is split in two, so the reduction's
// argument is still computed for every member: `s` gains the second kernel.
WindowPlan window_plan(ir::Schedule& s, const KernelSpec& spec) {
  WindowPlan p;
  p.windowed.assign(s.kernels.size(), false);
  p.extra.assign(s.stages.size(), -1);
  std::vector<char> full(s.temps.size(), 1);  // every member's row is computed
  auto windowed_input = [&](const StageInput& in) {
    return (in.from == StageInput::From::Input && spec.kinds.at(size_t(in.index)) == BindKind::Swarm) ||
           (in.from == StageInput::From::Temp && s.temps[size_t(in.index)].member && !full[size_t(in.index)]);
  };
  for (size_t si = 0; si < s.stages.size(); ++si) {
    const ir::Stage& st = s.stages[si];
    std::vector<bool>& reads = p.reads.emplace_back(st.crossings.size(), false);
    std::vector<int>& folds = p.folds.emplace_back(st.crossings.size(), -1);
    for (size_t ci = 0; ci < st.crossings.size(); ++ci) {
      const ir::Crossing& c = st.crossings[ci];
      const bool src_full = !s.temps[size_t(c.src)].member || full[size_t(c.src)];
      if (c.op == Op::MRead) {  // the rows the window reads are computed; a per-member result holds the window's
        reads[ci] = !src_full;
        p.any_reads = p.any_reads || !src_full;
        full[size_t(c.dst)] = src_full || !s.temps[size_t(c.dst)].member;
      } else if (!src_full) {  // its result has no member axis: every rank gets the whole fold
        folds[ci] = p.nfolds++;
      }
    }
    if (st.member >= 0) {
      // The member kernel's outputs that need the window: stored ones, and those whose value
      // reads a swarm's rows or a temporary only the window has. The kernel is windowed when
      // there are any; when some outputs need it and others do not, the others go to a kernel
      // of their own that runs for every member.
      const ir::StageKernel& sk = s.kernels[size_t(st.member)];
      std::vector<char> dep(sk.graph.nodes.size(), 0);
      for (size_t n = 0; n < sk.graph.nodes.size(); ++n) {
        const ir::Node& nd = sk.graph.nodes[n];
        if (nd.op == Op::Input) dep[n] = windowed_input(sk.inputs[size_t(nd.index)]);
        for (int a = 0; a < ir::op_arity(nd.op); ++a) dep[n] = dep[n] || dep[size_t(nd.args[a])];
      }
      std::vector<size_t> wo, fo;
      for (size_t o = 0; o < sk.outputs.size(); ++o)
        (!sk.outputs[o].temp || dep[size_t(sk.graph.outputs[o].node)] ? wo : fo).push_back(o);
      if (!wo.empty() && !fo.empty()) {
        auto part = [&](const std::vector<size_t>& outs) {
          ir::StageKernel k;
          k.inputs = sk.inputs;
          k.per_member = true;
          ir::Graph g = sk.graph;
          g.outputs.clear();
          for (size_t o : outs) g.outputs.push_back(sk.graph.outputs[o]), k.outputs.push_back(sk.outputs[o]);
          k.graph = ir::dce(g);
          return k;
        };
        ir::StageKernel full_part = part(fo), window_part = part(wo);
        s.kernels[size_t(st.member)] = std::move(window_part);
        s.kernels.push_back(std::move(full_part));
        p.windowed.push_back(false);
        p.extra[si] = int(s.kernels.size()) - 1;
      }
      p.windowed[size_t(st.member)] = !wo.empty();
    }
    // The invariant kernel runs once, whole; the member kernels as decided above.
    for (int ki : {st.invariant, p.extra[si], st.member})
      if (ki >= 0)
        for (const ir::StageOutput& o : s.kernels[size_t(ki)].outputs)
          if (o.temp) full[size_t(o.index)] = !p.windowed[size_t(ki)];
  }
  return p;
}

class StagedKernel final : public Kernel {
 public:
  // broadcast[o]: output o's value has no member axis and is stored once, so rows the caller
  // laid out per member get a copy of row 0.
  // `s` as window_plan() left it, `p` its plan.
  StagedKernel(ir::Schedule s, KernelSpec spec, std::vector<std::shared_ptr<Kernel>> kernels,
               std::vector<bool> broadcast, WindowPlan p)
      : s_(std::move(s)), spec_(std::move(spec)), kernels_(std::move(kernels)),
        broadcast_(std::move(broadcast)), windowed_(std::move(p.windowed)), extra_(std::move(p.extra)),
        reads_(std::move(p.reads)), folds_(std::move(p.folds)), nfolds_(p.nfolds), any_reads_(p.any_reads) {
    for (const auto& k : kernels_) window_ok_ = window_ok_ && k->member_window();
    for (size_t si = 0; si < folds_.size(); ++si)
      if (std::any_of(folds_[si].begin(), folds_[si].end(), [](int f) { return f >= 0; })) fold_stages_.push_back(si);
  }

  bool member_window() const override { return window_ok_; }
  bool member_folds() const override { return nfolds_ > 0; }
  bool member_reads() const override { return any_reads_; }

  std::vector<int64_t> rows_read(const KernelArgs& a) const override {
    if (a.members <= 0 || !window_ok_ || !any_reads_) return {};
    KernelArgs all = a;
    all.member_begin = 0, all.member_end = -1;
    const PreludeValues pre = evaluate_prelude(s_.graph, spec_.kinds, all);
    std::vector<char> read(size_t(a.members), 0);
    for (size_t si = 0; si < s_.stages.size(); ++si)
      for (size_t c = 0; c < s_.stages[si].crossings.size(); ++c)
        if (reads_[si][c])
          for (int64_t m = 0; m < a.members; ++m) read[size_t(pre.at(s_.stages[si].crossings[c].index, m))] = 1;
    std::vector<int64_t> r;
    for (int64_t m = 0; m < a.members; ++m)
      if (read[size_t(m)]) r.push_back(m);
    return r;
  }

  void run(const KernelArgs& a) const override {
    if (a.members <= 0) return;
    const PreludeValues pre = evaluate_prelude(s_.graph, spec_.kinds, a);  // may throw: nothing written yet
    const std::vector<DrawPlan> plans = plan_draws(pre);
    // Member folds without a fold callback: every member is computed, the window ignored. With
    // one, a window covering the population still takes part in the folds (the other ranks wait
    // for its callbacks).
    const bool phased = nfolds_ > 0 && window_ok_ && a.fold;
    Window w;
    if (nfolds_ > 0 && !phased)
      w.end = a.members;
    else
      w = window_of(a, pre);  // may throw: nothing written yet
    w.phased = phased;
    if (spec_.dtype == DType::F32)
      run_typed<float>(a, pre, plans, w);
    else
      run_typed<double>(a, pre, plans, w);
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

  // The members one run computes: the window [begin, end), then the outside rows' members (only
  // through windowed kernels, into scratch), each with its pointer per input.
  struct Window {
    int64_t begin = 0, end = 0;
    bool partial = false;  // a window smaller than the population
    bool phased = false;   // member folds over windows (KernelArgs::fold): run in phases
    std::vector<std::pair<int64_t, std::vector<const void*>>> outside;
  };
  Window window_of(const KernelArgs& a, const PreludeValues& pre) const {
    Window w;
    w.begin = a.member_begin, w.end = a.member_end < 0 ? a.members : a.member_end;
    w.partial = w.begin != 0 || w.end != a.members;
    if (!w.partial) return w;
    NYTO_INTERNAL_ASSERT(window_ok_, "staged: a member window for stage kernels that ignore it");
    std::vector<char> have(size_t(a.members), 0);
    for (int64_t m = w.begin; m < w.end; ++m) have[size_t(m)] = 1;
    for (const auto& [m, ptrs] : a.outside_rows) {
      NYTO_INTERNAL_ASSERT(m >= 0 && m < a.members && ptrs.size() == a.in.size(), "staged: bad outside row");
      if (have[size_t(m)]) continue;
      have[size_t(m)] = 1;
      w.outside.emplace_back(m, ptrs);
    }
    // Every row a computed member reads must be computed too.
    std::vector<int64_t> missing;
    auto check = [&](int64_t m) {
      for (size_t si = 0; si < s_.stages.size(); ++si)
        for (size_t c = 0; c < s_.stages[si].crossings.size(); ++c)
          if (reads_[si][c]) {
            const int64_t r = int64_t(pre.at(s_.stages[si].crossings[c].index, m));
            if (!have[size_t(r)] && std::find(missing.begin(), missing.end(), r) == missing.end()) missing.push_back(r);
          }
    };
    for (int64_t m = w.begin; m < w.end; ++m) check(m);
    for (const auto& o : w.outside) check(o.first);
    if (!missing.empty()) {
      std::sort(missing.begin(), missing.end());
      throw RowsNeededError(std::move(missing));
    }
    for (const auto& o : w.outside)
      for (size_t i = 0; i < a.in.size(); ++i)
        NYTO_INTERNAL_ASSERT(spec_.kinds[i] != BindKind::Swarm || o.second[i] != nullptr,
                             "staged: an outside row without a pointer for a swarm input");
    return w;
  }

  // Elements per block: the temporaries of one block ([M x B] values each) stay within a few
  // hundred KiB, so a stage reads back what the stage before wrote from L2, not memory. A multiple
  // of kAlign, and blocks start on multiples of B (but a range's first): a draw kernel's
  // iterations are whole Philox blocks of 80 (float32) / 32 (float64) elements (backend/Random.h),
  // and a block of 1024 cut one of them at each end.
  static constexpr int64_t kAlign = 320;  // lcm(64, 80), a multiple of 32
  static int64_t block_size(int64_t members) {
    int64_t b = std::clamp<int64_t>(32768 / std::max<int64_t>(members, 1), kAlign, 4096);
    return b / kAlign * kAlign;
  }

  template <class T>
  void run_typed(const KernelArgs& a, const PreludeValues& pre, const std::vector<DrawPlan>& plans,
                 const Window& w) const {
    // A block never exceeds the longest range (rounded up to whole vectors): a tiny swarm does
    // not pay for temporaries the size of a big one's.
    int64_t longest = 0, first = a.ranges.empty() ? 0 : a.ranges.front().first, last = first;
    for (const auto& [begin, end] : a.ranges)
      longest = std::max(longest, end - begin), first = std::min(first, begin), last = std::max(last, end);
    const int64_t M = a.members, B = std::min(block_size(M), (longest + kAlign - 1) / kAlign * kAlign);
    std::vector<std::pair<int64_t, int64_t>> blocks;
    for (const auto& [begin, end] : a.ranges)
      for (int64_t b = begin, next; b < end; b = next) {
        next = (b / B + 1) * B;
        blocks.emplace_back(b, std::min(end, next));
      }
    if (blocks.empty()) return;  // no chunk, so no fold callback either

    // Member folds over windows run in phases: phase p computes the stages up to the p-th stage
    // with folds, folds the window's members onto what Receive brought, and stores nothing; the
    // last phase runs every stage with the folds' results and stores. The stages before a fold
    // are computed again in each phase: temporaries stay a block's, not the population's.
    // Each fold's elements [first, last) of the ranges, addressed by element (the parameter-axis
    // driver runs one block of a big particle at a time); gaps between ranges stay 0.
    std::vector<std::unique_ptr<T[]>> folded(static_cast<size_t>(nfolds_));
    std::vector<T*> acc;
    std::vector<char> got(static_cast<size_t>(nfolds_), 0);
    for (auto& f : folded) {
      f.reset(new T[size_t(std::max<int64_t>(last - first, 1))]());
      acc.push_back(static_cast<T*>(rebase_block(f.get(), first, sizeof(T))));
    }
    const size_t phases = w.phased ? fold_stages_.size() + 1 : 1;
    for (size_t phase = 0; phase + 1 < phases; ++phase) {
      const size_t stop = fold_stages_[phase];
      auto each_fold = [&](KernelArgs::FoldStep step, int64_t e0, int64_t n) {
        for (int f : folds_[stop])
          if (f >= 0) {
            const bool r = a.fold(step, acc[size_t(f)] + e0, n);
            if (step == KernelArgs::FoldStep::Receive) got[size_t(f)] = r;
          }
      };
      // Pipelined: the fold passes on in chunks of elements, so the next window starts on a
      // chunk as soon as this one has folded it (the windows fold at once, not one after
      // another); the whole fold comes back in the same chunks.
      std::vector<std::pair<int64_t, int64_t>> chunks;  // first element, elements
      for (size_t c0 = 0; c0 < blocks.size();) {
        size_t c1 = c0 + 1;
        while (c1 < blocks.size() && blocks[c1].second - blocks[c0].first <= a.fold_chunk) ++c1;
        const auto [e0, n] = chunks.emplace_back(blocks[c0].first, blocks[c1 - 1].second - blocks[c0].first);
        each_fold(KernelArgs::FoldStep::Receive, e0, n);
        run_phase<T>(a, pre, plans, w, {blocks.begin() + ptrdiff_t(c0), blocks.begin() + ptrdiff_t(c1)}, B, stop,
                     false, acc, got);
        each_fold(KernelArgs::FoldStep::Send, e0, n);
        c0 = c1;
      }
      for (const auto& [e0, n] : chunks) each_fold(KernelArgs::FoldStep::Share, e0, n);
    }
    run_phase<T>(a, pre, plans, w, blocks, B, s_.stages.size(), true, acc, got);
  }


  // One phase of run_typed over every block: stages [0, stop] (the crossings of stage `stop`
  // only, folding into `acc`) when not `last`, else every stage with the folds taken from `acc`.
  template <class T>
  void run_phase(const KernelArgs& a, const PreludeValues& pre, const std::vector<DrawPlan>& plans, const Window& w,
                 const std::vector<std::pair<int64_t, int64_t>>& blocks, int64_t B, size_t stop, bool last,
                 const std::vector<T*>& acc, const std::vector<char>& got) const {
    const int64_t M = a.members;
    at::parallel_for(0, int64_t(blocks.size()), 1, [&](int64_t lo, int64_t hi) {
      // This thread's temporaries and the argument blocks of every kernel, reused across blocks.
      // Uninitialized: every element a stage reads was written by an earlier one in this block.
      std::vector<std::unique_ptr<T[]>> temps(s_.temps.size());
      for (size_t t = 0; t < temps.size(); ++t) temps[t].reset(new T[size_t(s_.temps[t].member ? M * B : B)]);
      // Outputs of a phase before the last go to scratch (the inputs they may alias are read
      // again), and so do rows an empty window would store once per member (it has none).
      std::unique_ptr<T[]> sink(new T[size_t(B)]);
      std::vector<std::vector<char>> sunk(kernels_.size());
      std::vector<KernelArgs> ka(kernels_.size());
      for (size_t k = 0; k < kernels_.size(); ++k) {
        const ir::StageKernel& sk = s_.kernels[k];
        KernelArgs& c = ka[k];
        c.members = sk.per_member ? M : 1;
        if (w.partial && windowed_[k]) c.member_begin = w.begin, c.member_end = w.end;
        c.ranges.assign(1, {0, 0});
        c.params = a.params;
        c.seed = a.seed, c.invocation = a.invocation, c.group = a.group;
        c.in.assign(sk.inputs.size(), nullptr);
        c.in_stride.assign(sk.inputs.size(), 0);
        c.scalar.assign(sk.inputs.size(), 0.0);
        c.out.assign(sk.outputs.size(), nullptr);
        c.out_stride.assign(sk.outputs.size(), 0);
        sunk[k].assign(sk.outputs.size(), 0);
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
            // A value stored once per member row (broadcast_) is written to the window's first row
            // and copied to the others: rows outside the window may not exist.
            const bool per_row = w.partial && !sk.per_member && broadcast_[size_t(out.index)] && c.out_stride[o] != 0;
            if (per_row) c.out[o] = static_cast<char*>(c.out[o]) + w.begin * c.out_stride[o] * int64_t(sizeof(T));
            if (!last || (per_row && w.end <= w.begin)) sunk[k][o] = 1, c.out_stride[o] = 0;
          }
        }
      }
      // An outside row's pass through a windowed kernel: its swarm inputs from the caller's row,
      // its stored outputs into scratch (only its temporaries are wanted).
      std::unique_ptr<T[]> scratch(w.outside.empty() ? nullptr : new T[size_t(B)]);
      auto run_outside = [&](size_t k, int64_t b0) {
        for (const auto& [m, ptrs] : w.outside) {
          KernelArgs c = ka[k];
          c.member_begin = m, c.member_end = m + 1;
          const ir::StageKernel& sk = s_.kernels[k];
          for (size_t i = 0; i < sk.inputs.size(); ++i) {
            const StageInput& in = sk.inputs[i];
            if (in.from == StageInput::From::Input && spec_.kinds[size_t(in.index)] == BindKind::Swarm)
              c.in[i] = static_cast<const char*>(ptrs[size_t(in.index)]) - m * c.in_stride[i] * int64_t(sizeof(T));
          }
          for (size_t o = 0; o < sk.outputs.size(); ++o)
            if (!sk.outputs[o].temp) c.out[o] = rebase_block(scratch.get(), b0, sizeof(T)), c.out_stride[o] = 0;
          kernels_[k]->run(c);
        }
      };
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
        for (size_t si = 0; si < s_.stages.size() && si <= stop; ++si) {
          const ir::Stage& st = s_.stages[si];
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
          for (size_t ci = 0; ci < st.crossings.size(); ++ci) {
            const ir::Crossing& c = st.crossings[ci];
            const int f = w.phased ? folds_[si][ci] : -1;
            if (f < 0)
              cross<T>(c, temps, pre, M, B, len, w.partial && reads_[si][ci] ? &w : nullptr);
            else if (si < stop)  // folded in an earlier phase
              std::memcpy(temps[size_t(c.dst)].get(), acc[size_t(f)] + b0, size_t(len) * sizeof(T));
            else
              fold<T>(c.op, temps[size_t(c.src)].get(), B, len, w.begin, w.end, got[size_t(f)], acc[size_t(f)] + b0);
          }
          if (si == stop) break;  // a phase before the last: this stage's folds are all it needs
          for (int ki : {st.invariant, extra_[si], st.member}) {
            if (ki < 0) continue;
            const ir::StageKernel& sk = s_.kernels[size_t(ki)];
            KernelArgs& c = ka[size_t(ki)];
            c.ranges[0] = {b0, b1};
            for (size_t i = 0; i < sk.inputs.size(); ++i)
              if (sk.inputs[i].from == StageInput::From::Temp)
                c.in[i] = rebase_block(temps[size_t(sk.inputs[i].index)].get(), b0, sizeof(T));
            for (size_t o = 0; o < sk.outputs.size(); ++o)
              if (sk.outputs[o].temp)
                c.out[o] = rebase_block(temps[size_t(sk.outputs[o].index)].get(), b0, sizeof(T));
              else if (sunk[size_t(ki)][o])
                c.out[o] = rebase_block(sink.get(), b0, sizeof(T));
            kernels_[size_t(ki)]->run(c);
            if (w.partial && windowed_[size_t(ki)]) run_outside(size_t(ki), b0);
          }
        }
        if (!last) continue;
        for (size_t o = 0; o < a.out.size(); ++o)
          if (broadcast_[o] && a.out_stride[o] != 0) {
            const int64_t first = w.partial ? w.begin : 0, end = w.partial ? w.end : M;
            if (end <= first) continue;
            T* base = static_cast<T*>(a.out[o]) + b0 + first * a.out_stride[o];
            for (int64_t m = first + 1; m < end; ++m)
              std::memcpy(static_cast<T*>(a.out[o]) + b0 + m * a.out_stride[o], base, size_t(len) * sizeof(T));
          }
      }
    });
  }

  // A member fold of a windowed value over the window [begin, end) of the block's first `len`
  // elements (row stride B), onto `acc` when `onto` (the members before the window), else
  // starting at the window's first member: the same operations, in the same order, as cross()'s
  // fold over every member.
  template <class T>
  static void fold(Op op, const T* src, int64_t B, int64_t len, int64_t begin, int64_t end, bool onto, T* acc) {
    if (!onto) {
      if (end <= begin) return;
      std::memcpy(acc, src + begin * B, size_t(len) * sizeof(T));
      ++begin;
    }
    for (int64_t m = begin; m < end; ++m) fold_row(op, acc, src + m * B, len);
  }
  template <class T>
  static void fold_row(Op op, T* dst, const T* r, int64_t len) {
    if (op == Op::MSum)
      for (int64_t e = 0; e < len; ++e) dst[e] = dst[e] + r[e];
    else if (op == Op::MMin)
      for (int64_t e = 0; e < len; ++e) dst[e] = ir::ieee_minimum(dst[e], r[e]);
    else
      for (int64_t e = 0; e < len; ++e) dst[e] = ir::ieee_maximum(dst[e], r[e]);
  }

  // One member-crossing node over the block's first `len` elements (row stride B). `w`: a member
  // read of a windowed source under a member window (only the computed members' rows).
  template <class T>
  void cross(const ir::Crossing& c, std::vector<std::unique_ptr<T[]>>& temps, const PreludeValues& pre,
             int64_t M, int64_t B, int64_t len, const Window* w) const {
    const bool src_member = s_.temps[size_t(c.src)].member;
    const T* src = temps[size_t(c.src)].get();
    T* dst = temps[size_t(c.dst)].get();
    auto row = [&](int64_t m) { return src + (src_member ? m * B : 0); };
    if (c.op == Op::MRead) {
      const bool dst_member = s_.temps[size_t(c.dst)].member;
      auto read = [&](int64_t m) {
        std::memcpy(dst + m * B, row(int64_t(pre.at(c.index, m))), size_t(len) * sizeof(T));
      };
      if (!dst_member) {
        read(0);
      } else if (!w) {
        for (int64_t m = 0; m < M; ++m) read(m);
      } else {  // a windowed source: the members computed, the window and the outside rows
        for (int64_t m = w->begin; m < w->end; ++m) read(m);
        for (const auto& o : w->outside) read(o.first);
      }
      return;
    }
    // A fold in member order 0..M-1, element by element (the loop over elements is innermost so
    // it vectorizes; each element still adds its members in order).
    std::memcpy(dst, row(0), size_t(len) * sizeof(T));
    for (int64_t m = 1; m < M; ++m) fold_row(c.op, dst, row(m), len);
  }

  ir::Schedule s_;
  KernelSpec spec_;
  std::vector<std::shared_ptr<Kernel>> kernels_;  // identical stage kernels share one
  std::vector<bool> broadcast_;
  std::vector<bool> windowed_;  // per kernel: runs on the member window only (window_plan())
  std::vector<int> extra_;      // per stage: the kernel split off its member kernel, or -1
  std::vector<std::vector<bool>> reads_;  // per stage, per crossing: a member read of a windowed value
  std::vector<std::vector<int>> folds_;   // per stage, per crossing: its member fold's number, or -1
  int nfolds_ = 0;
  std::vector<size_t> fold_stages_;       // the stages with member folds, ascending
  bool any_reads_ = false;
  bool window_ok_ = true;
};

}  // namespace

std::vector<bool> per_member_store(const ir::Graph& typed, const KernelSpec& spec) {
  std::vector<bool> r;
  for (const ir::Output& o : typed.outputs)
    r.push_back(o.target >= 0 ? spec.kinds.at(size_t(o.target)) == BindKind::Swarm
                              : typed.nodes[o.node].type.member);
  return r;
}

bool windowable(const ir::Graph& g, const KernelSpec& spec) {
  ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  std::vector<bool> store = per_member_store(typed, spec);
  if (!ir::needs_schedule(typed, store))
    return std::none_of(typed.nodes.begin(), typed.nodes.end(), [](const ir::Node& n) { return ir::crosses_members(n.op); });
  return true;  // the staged driver windows every schedule (window_plan)
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

WindowNeeds window_needs(const ir::Graph& g, const KernelSpec& spec) {
  if (!needed(g, spec)) return {};
  ir::Schedule s = schedule_of(g, spec);
  const WindowPlan p = window_plan(s, spec);
  return {p.nfolds > 0, p.any_reads};
}

std::vector<std::pair<ir::Graph, KernelSpec>> stage_kernels(const ir::Graph& g, const KernelSpec& spec) {
  std::vector<std::pair<ir::Graph, KernelSpec>> r;
  ir::Schedule s = schedule_of(g, spec);
  window_plan(s, spec);
  for (const ir::StageKernel& k : s.kernels) r.emplace_back(k.graph, stage_spec(k, spec));
  return r;
}

std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec, const CompileFn& compile) {
  NYTO_INTERNAL_ASSERT(!spec.has_chunk_outputs(), "staged driver: no chunk outputs (KernelSpec::chunk)");
  std::vector<bool> store;
  ir::Schedule s = schedule_of(g, spec, &store);
  WindowPlan plan = window_plan(s, spec);
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
  return std::make_unique<StagedKernel>(std::move(s), spec, std::move(kernels), std::move(broadcast), std::move(plan));
}

}  // namespace nyto::staged
