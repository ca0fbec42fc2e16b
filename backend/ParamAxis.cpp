#include "backend/ParamAxis.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/KernelCache.h"
#include "backend/Prelude.h"
#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/ParamAxis.h"
#include "ir/Passes.h"

namespace nyto::param_axis {

namespace {

using ir::Op;
using ir::PassInput;
constexpr int64_t C = ir::kParamChunk;
// Bytes of one root temporary per block (all members): small enough that what a pass kernel
// writes is still in L2 when the driver reduces it. (Blocks are this size when the kernel
// reduces its chunks itself too: it is also the unit of parallel work.)
constexpr int64_t kBlockBytes = 131072;

BindKind kind_of(const PassInput& in) {
  switch (in.from) {
    case PassInput::From::Reduction: return in.member ? BindKind::MemberScalar : BindKind::Scalar;
    case PassInput::From::Numel:
    case PassInput::From::Elems: return BindKind::Scalar;
    case PassInput::From::Elem: break;
  }
  return BindKind::Particle;
}

std::vector<BindKind> kinds_of(const std::vector<PassInput>& extras, const KernelSpec& spec) {
  std::vector<BindKind> k = spec.kinds;
  for (const PassInput& in : extras) k.push_back(kind_of(in));
  return k;
}

ir::ParamPlan plan_of(const ir::Graph& g, const KernelSpec& spec) {
  NYTO_INTERNAL_ASSERT(spec.kinds.size() == g.inputs.size(), "param axis: one BindKind per input");
  std::vector<bool> values = spec.values;
  values.resize(g.outputs.size(), false);
  return ir::plan_passes(g, bind_types(spec.kinds), values);
}

// The order-preserving key of a value's bits (larger value, larger key; -0 below +0; every NaN
// the largest key) and its radix digits, most significant first.
template <class T>
struct Keys;
template <>
struct Keys<float> {
  using U = uint32_t;
  static constexpr int W = 32, digits = 3, width[3] = {11, 11, 10};
};
template <>
struct Keys<double> {
  using U = uint64_t;
  static constexpr int W = 64, digits = 6, width[6] = {11, 11, 11, 11, 10, 10};
};
template <class T>
typename Keys<T>::U key_of(T v) {
  using U = typename Keys<T>::U;
  if (std::isnan(v)) return ~U(0);
  U u;
  std::memcpy(&u, &v, sizeof u);
  constexpr U sign = U(1) << (Keys<T>::W - 1);
  return (u & sign) ? ~u : (u | sign);
}
template <class T>
T value_of(typename Keys<T>::U key) {
  using U = typename Keys<T>::U;
  constexpr U sign = U(1) << (Keys<T>::W - 1);
  U u = (key & sign) ? (key & ~sign) : ~key;
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// One chunk's sum in the order of ir/IR.h: element i into lane i mod 32, the lanes folded in
// halves. Lanes start at -0, the identity of +, so a sum of -0s stays -0. 32 lanes are eight
// independent AVX2 (four AVX-512) accumulators, enough to hide the add's latency; compiled for
// those too (the library targets baseline x86-64, whose two-lane SSE2 made this loop most of a
// norm's time), chosen when the process starts. The order, hence the bits, is the same in every
// version, and in the llvm kernels that sum their chunks themselves (KernelSpec::chunk,
// backend/llvm/Codegen.cpp emit_chunks).
constexpr int kLanes = ir::kSumLanes;
template <class T>
inline double chunk_sum_impl(const T* x, int64_t n) {
  double l[kLanes];
  for (double& v : l) v = -0.0;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) l[j] += double(x[i + j]);
  for (int j = 0; i + j < n; ++j) l[j] += double(x[i + j]);
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) l[j] += l[j + w];
  return l[0];
}
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NYTO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NYTO_CLONES
#endif
NYTO_CLONES double chunk_sum_f32(const float* x, int64_t n) { return chunk_sum_impl(x, n); }
NYTO_CLONES double chunk_sum_f64(const double* x, int64_t n) { return chunk_sum_impl(x, n); }

// key_of over an array, without branches so that it vectorizes: a selection's digit passes
// spend most of their time here and in the count that follows.
template <class T>
inline void keys_impl(const T* x, int64_t n, typename Keys<T>::U* out) {
  using U = typename Keys<T>::U;
  using S = std::make_signed_t<U>;
  constexpr U sign = U(1) << (Keys<T>::W - 1);
  for (int64_t e = 0; e < n; ++e) {
    U u;
    std::memcpy(&u, &x[e], sizeof u);
    const U flip = U(S(u) >> (Keys<T>::W - 1)) | sign;
    out[e] = x[e] != x[e] ? ~U(0) : (u ^ flip);
  }
}
NYTO_CLONES void keys_f32(const float* x, int64_t n, uint32_t* out) { keys_impl(x, n, out); }
NYTO_CLONES void keys_f64(const double* x, int64_t n, uint64_t* out) { keys_impl(x, n, out); }
inline void keys_of(const float* x, int64_t n, uint32_t* out) { keys_f32(x, n, out); }
inline void keys_of(const double* x, int64_t n, uint64_t* out) { keys_f64(x, n, out); }
inline double chunk_sum(const float* x, int64_t n) { return chunk_sum_f32(x, n); }
inline double chunk_sum(const double* x, int64_t n) { return chunk_sum_f64(x, n); }

// Whether no reduction along the parameter axis of `plan` varies per member: a member window
// then computes each one whole (their arguments are what every member computes alike).
bool window_free(const ir::ParamPlan& plan) {
  for (ir::NodeId n : plan.reductions)
    if (plan.typed.nodes[size_t(n)].type.member) return false;
  return true;
}

class ParamKernel final : public Kernel {
 public:
  struct PassRt {
    std::shared_ptr<Kernel> kernel, roots_only;
    std::vector<BindKind> kinds;
    ir::Graph values_typed;
    std::vector<char> root_member;  // per root: varies per member
    std::vector<char> root_chunked;  // per root: the kernel reduces it per chunk (KernelSpec::chunk)
  };

  ParamKernel(ir::ParamPlan plan, KernelSpec spec, std::vector<PassRt> passes)
      : plan_(std::move(plan)), spec_(std::move(spec)), passes_(std::move(passes)) {
    value_kinds_ = kinds_of(plan_.value_extras, spec_);
    if (!plan_.value_outputs.empty()) values_typed_ = ir::specialize_inputs(plan_.values, bind_types(value_kinds_));
    window_ok_ = window_free(plan_);
    for (const PassRt& rt : passes_) {
      for (const Kernel* k : {rt.kernel.get(), rt.roots_only.get()})
        if (k) {
          window_ok_ = window_ok_ && k->member_window() && !k->member_reads();
          folds_ = folds_ || k->member_folds();
        }
      for (char member : rt.root_member) window_ok_ = window_ok_ && !member;
    }
  }

  // PGPE's and sep-CMA-ES's shape: the pass kernels run on the window's members (their keyed
  // noise and member sums of it for every member, member sums of rows folded over the windows,
  // as the staged driver does), and every reduction along the parameter axis is of values that
  // do not vary per member, so each rank gets them whole.
  bool member_window() const override { return window_ok_; }
  bool member_folds() const override { return folds_; }

  void run(const KernelArgs& a) const override {
    if (a.members <= 0) return;
    if (spec_.dtype == DType::F32)
      run_typed<float>(a);
    else
      run_typed<double>(a);
  }

 private:
  struct Slot {
    Op op;
    bool tensor;  // per tensor, else over the particle
    bool member;  // varies per member
  };

  // One run's state.
  struct State {
    int64_t M = 0, P = 0, T = 0, chunks = 0;
    std::vector<std::pair<int64_t, int64_t>> tensors;
    std::vector<int64_t> elem_offset, chunk_offset;  // per tensor
    std::vector<std::vector<double>> vals;           // per slot: [segment][member]
    std::vector<std::vector<double>> partial;        // per slot: [member][chunk] (sums, min, max)
    std::vector<std::vector<int64_t>> hist;          // per slot: [segment][member][bin]
    std::vector<std::vector<uint64_t>> prefix;       // per slot: [segment][member]
    std::vector<std::vector<int64_t>> krem;          // per slot: [segment][member]
  };

  Slot slot(int32_t s) const {
    const ir::Node& n = plan_.typed.nodes[size_t(plan_.reductions[size_t(s)])];
    return {n.op, ir::is_tensor_reduce(n.op), n.type.member};
  }
  int64_t segments(const State& st, int32_t s) const { return slot(s).tensor ? st.T : 1; }

  // The arguments of a kernel of `extras` for tensor t (ranges and the elem() input set per block).
  KernelArgs args_for(const KernelArgs& a, const std::vector<PassInput>& extras, const State& st, int64_t t) const {
    KernelArgs c;
    c.members = st.M;
    if (window_ok_) {
      c.member_begin = a.member_begin, c.member_end = a.member_end;
      c.fold = a.fold, c.fold_chunk = a.fold_chunk;
    }
    c.params = a.params;
    c.seed = a.seed, c.invocation = a.invocation, c.group = a.group;
    const size_t n = spec_.kinds.size();
    c.in.assign(a.in.begin(), a.in.begin() + std::ptrdiff_t(std::min(n, a.in.size())));
    c.in.resize(n, nullptr);
    c.in_stride.assign(a.in_stride.begin(), a.in_stride.begin() + std::ptrdiff_t(std::min(n, a.in_stride.size())));
    c.in_stride.resize(n, 0);
    c.scalar.assign(a.scalar.begin(), a.scalar.begin() + std::ptrdiff_t(std::min(n, a.scalar.size())));
    c.scalar.resize(n, 0.0);
    for (const PassInput& in : extras) {
      const void* ptr = nullptr;
      double scalar = 0.0;
      switch (in.from) {
        case PassInput::From::Reduction: {
          const int64_t seg = slot(in.index).tensor ? t : 0;
          const double* v = st.vals[size_t(in.index)].data() + seg * st.M;
          if (in.member) ptr = v; else scalar = v[0];
          break;
        }
        case PassInput::From::Numel:
          scalar = t < st.T ? double(st.tensors[size_t(t)].second - st.tensors[size_t(t)].first) : 0.0;
          break;
        case PassInput::From::Elems: scalar = double(st.P); break;
        case PassInput::From::Elem: break;
      }
      c.in.push_back(ptr);
      c.in_stride.push_back(0);
      c.scalar.push_back(scalar);
    }
    return c;
  }

  template <class T>
  void run_typed(const KernelArgs& a) const {
    State st;
    st.M = a.members;
    st.tensors = a.tensors.empty() ? a.ranges : a.tensors;
    st.T = int64_t(st.tensors.size());
    for (const auto& [b, e] : st.tensors) {
      st.elem_offset.push_back(st.P);
      st.chunk_offset.push_back(st.chunks);
      st.P += e - b;
      st.chunks += (e - b + C - 1) / C;
    }
    const size_t S = plan_.reductions.size();
    st.vals.resize(S), st.partial.resize(S), st.hist.resize(S), st.prefix.resize(S), st.krem.resize(S);
    for (size_t s = 0; s < S; ++s) st.vals[s].assign(size_t(std::max<int64_t>(segments(st, int32_t(s)), 1) * st.M), 0.0);

    const int32_t npass = int32_t(plan_.passes.size());
    for (int32_t p = 0; p < npass; ++p) {
      if (p == plan_.values_before) values(a, st);
      run_pass<T>(a, st, p);
    }
    if (plan_.values_before >= npass) values(a, st);
  }

  void values(const KernelArgs& a, const State& st) const {
    if (plan_.value_outputs.empty()) return;
    const KernelArgs c = args_for(a, plan_.value_extras, st, 0);
    const PreludeValues pre = evaluate_prelude(values_typed_, value_kinds_, c);
    for (auto [o, node] : plan_.value_outputs) {
      double* out = static_cast<double*>(a.out.at(size_t(o)));
      const bool member = values_typed_.nodes[size_t(node)].type.member;
      for (int64_t m = 0; m < (member ? st.M : 1); ++m) out[m] = pre.at(node, m);
    }
  }

  template <class T>
  void run_pass(const KernelArgs& a, State& st, int32_t p) const {
    using U = typename Keys<T>::U;
    const ir::Pass& pass = plan_.passes[size_t(p)];
    const PassRt& rt = passes_[size_t(p)];
    const int64_t M = st.M;
    // Each selection's state: k still to find, the key prefix chosen so far, the histogram of
    // the current digit, per segment (tensor, or the particle) and member.
    for (const ir::PassReduction& r : pass.reductions) {
      if (r.k < 0) continue;
      const size_t cells = size_t(segments(st, r.slot) * M);
      st.krem[size_t(r.slot)].assign(cells, 0);
      st.prefix[size_t(r.slot)].assign(cells, 0);
      st.hist[size_t(r.slot)].assign(cells * 2048, 0);
    }
    // The scalar prelude of every tensor first: it checks each index and key before the pass
    // (the storing one included) writes anything, and gives the k of each selection.
    std::vector<KernelArgs> targs;
    for (int64_t t = 0; t < st.T; ++t) {
      targs.push_back(args_for(a, pass.extras, st, t));
      const PreludeValues pre = evaluate_prelude(rt.values_typed, rt.kinds, targs.back());
      for (const ir::PassReduction& r : pass.reductions) {
        if (r.k < 0) continue;
        const Slot sl = slot(r.slot);
        if (!sl.tensor && t > 0) continue;
        const int64_t seg = sl.tensor ? t : 0;
        const int64_t n = sl.tensor ? st.tensors[size_t(t)].second - st.tensors[size_t(t)].first : st.P;
        auto& krem = st.krem[size_t(r.slot)];
        for (int64_t m = 0; m < M; ++m) {
          const double k = pre.at(r.k, m);
          const double kk = std::isnan(k) ? 1.0 : std::clamp(std::floor(k), 1.0, double(std::max<int64_t>(n, 1)));
          krem[size_t(seg * M + m)] = int64_t(kk);
        }
      }
    }
    for (const ir::PassReduction& r : pass.reductions)
      if (r.k < 0) st.partial[size_t(r.slot)].assign(size_t(M * st.chunks), 0.0);
    if (st.T == 0) {
      finish(st, pass, T{});
      return;
    }

    // Member folds over ranks: blocks of the fold's chunk (KernelArgs::fold_chunk), each a round
    // of messages; the roots are then particle-sized per block, not per member (window_ok_).
    const bool folding =
        window_ok_ && a.fold && (rt.kernel->member_folds() || (rt.roots_only && rt.roots_only->member_folds()));
    const int64_t B =
        folding ? std::max<int64_t>(C, a.fold_chunk / C * C)
                : std::clamp<int64_t>((kBlockBytes / int64_t(sizeof(T)) / std::max<int64_t>(M, 1)) / C * C, C, 16 * C);
    struct Block { int64_t t, b0, b1; };
    std::vector<Block> blocks;
    for (int64_t t = 0; t < st.T; ++t)
      for (int64_t b = st.tensors[size_t(t)].first; b < st.tensors[size_t(t)].second; b += B)
        blocks.push_back({t, b, std::min(st.tensors[size_t(t)].second, b + B)});
    int elem_input = -1;
    for (size_t i = 0; i < pass.extras.size(); ++i)
      if (pass.extras[i].from == PassInput::From::Elem) elem_input = int(spec_.kinds.size() + i);

    const int digits = pass.selects ? Keys<T>::digits : 1;
    int consumed = 0;
    for (int d = 0; d < digits; ++d) {
      const bool last = d == digits - 1;
      const Kernel& kernel = !last && rt.roots_only ? *rt.roots_only : *rt.kernel;
      const int width = Keys<T>::width[d];
      const int shift = Keys<T>::W - consumed - width;
      auto run_blocks = [&](int64_t lo, int64_t hi) {
        std::vector<std::vector<T>> temps(size_t(pass.roots));
        for (int32_t r = 0; r < pass.roots; ++r)
          if (!rt.root_chunked[size_t(r)]) temps[size_t(r)].resize(size_t((rt.root_member[size_t(r)] ? M : 1) * B));
        std::vector<T> iota(elem_input >= 0 ? size_t(B) : 0);
        std::vector<int64_t> local(2048);  // zero between uses
        std::vector<uint16_t> touched;
        std::vector<U> kb(static_cast<size_t>(B));
        touched.reserve(2048);
        KernelArgs c;  // this thread's, reassigned per block (its vectors keep their storage)
        for (int64_t bi = lo; bi < hi; ++bi) {
          const Block& bl = blocks[size_t(bi)];
          const int64_t len = bl.b1 - bl.b0;
          c = targs[size_t(bl.t)];
          c.ranges.assign(1, {bl.b0, bl.b1});
          if (elem_input >= 0) {
            const int64_t first = st.elem_offset[size_t(bl.t)] + (bl.b0 - st.tensors[size_t(bl.t)].first);
            for (int64_t e = 0; e < len; ++e) iota[size_t(e)] = T(first + e);
            c.in[size_t(elem_input)] = rebase_block(iota.data(), bl.b0, sizeof(T));
          }
          const int64_t first_chunk = st.chunk_offset[size_t(bl.t)] + (bl.b0 - st.tensors[size_t(bl.t)].first) / C;
          for (int32_t r = 0; r < pass.roots; ++r) {
            if (rt.root_chunked[size_t(r)]) {
              // The kernel writes this block's chunk partials straight into the reduction's: row
              // m (or row 0 for every member, when the argument does not vary per member).
              const int32_t slot = pass.reductions[size_t(r)].slot;
              c.out.push_back(st.partial[size_t(slot)].data() + first_chunk);
              c.out_stride.push_back(rt.root_member[size_t(r)] ? st.chunks : 0);
              continue;
            }
            c.out.push_back(rebase_block(temps[size_t(r)].data(), bl.b0, sizeof(T)));
            c.out_stride.push_back(rt.root_member[size_t(r)] ? B : 0);
          }
          if (&kernel == rt.kernel.get())
            for (int32_t o : pass.stores) {
              c.out.push_back(a.out.at(size_t(o)));
              c.out_stride.push_back(a.out_stride.at(size_t(o)));
            }
          kernel.run(c);
          // This block's part of each reduction.
          for (const ir::PassReduction& r : pass.reductions) {
            if (rt.root_chunked[size_t(r.root)]) continue;  // done by the kernel
            const Slot sl = slot(r.slot);
            const bool arg_member = rt.root_member[size_t(r.root)];
            const int64_t members = sl.member ? M : 1;
            const int64_t seg = sl.tensor ? bl.t : 0;
            for (int64_t m = 0; m < members; ++m) {
              const T* x = temps[size_t(r.root)].data() + (arg_member ? m * B : 0);
              if (r.k < 0) {
                if (d > 0) continue;
                double* part = st.partial[size_t(r.slot)].data() + m * st.chunks + first_chunk;
                for (int64_t c0 = 0; c0 < len; c0 += C) {
                  const int64_t n = std::min(C, len - c0);
                  if (sl.op == Op::TSum || sl.op == Op::PSum) {
                    part[c0 / C] = chunk_sum(x + c0, n);
                  } else {
                    const bool mn = sl.op == Op::TMin || sl.op == Op::PMin;
                    T acc = x[c0];
                    for (int64_t e = 1; e < n; ++e)
                      acc = mn ? ir::ieee_minimum(acc, x[c0 + e]) : ir::ieee_maximum(acc, x[c0 + e]);
                    part[c0 / C] = double(acc);
                  }
                }
                continue;
              }
              // A selection: count the keys that start with the chosen prefix by this digit.
              const size_t sm = size_t(seg * M + m);
              const U prefix = U(st.prefix[size_t(r.slot)][sm]);
              // Only the bins this block touched are flushed and cleared: keys of one tensor
              // share few leading digits, and scanning all 2048 bins per member and block cost
              // about as much as counting the block (ties-big at one thread).
              const U mask = (U(1) << width) - 1;
              keys_of(x, len, kb.data());
              const U* kp = kb.data();
              int64_t* loc = local.data();
              touched.clear();
              if (consumed == 0) {
                for (int64_t e = 0; e < len; ++e) {
                  const size_t b = size_t((kp[e] >> shift) & mask);
                  if (loc[b]++ == 0) touched.push_back(uint16_t(b));
                }
              } else {
                const int top = Keys<T>::W - consumed;
                for (int64_t e = 0; e < len; ++e) {
                  if ((kp[e] >> top) != prefix) continue;
                  const size_t b = size_t((kp[e] >> shift) & mask);
                  if (loc[b]++ == 0) touched.push_back(uint16_t(b));
                }
              }
              int64_t* h = st.hist[size_t(r.slot)].data() + sm * 2048;
              for (uint16_t b : touched) {
                __atomic_fetch_add(&h[b], local[b], __ATOMIC_RELAXED);
                local[b] = 0;
              }
            }
          }
        }
      };
      // Member folds over ranks (KernelArgs::fold) pass on block by block, in block order on
      // every rank: one block at a time, each folding over its own threads (the staged driver).
      if (folding)
        run_blocks(0, int64_t(blocks.size()));
      else
        at::parallel_for(0, int64_t(blocks.size()), 1, run_blocks);
      // Choose each selection's bin for this digit: the one holding the k-th largest key.
      for (const ir::PassReduction& r : pass.reductions) {
        if (r.k < 0) continue;
        const Slot sl = slot(r.slot);
        for (int64_t seg = 0; seg < segments(st, r.slot); ++seg)
          for (int64_t m = 0; m < (sl.member ? M : 1); ++m) {
            const size_t sm = size_t(seg * M + m);
            int64_t* h = st.hist[size_t(r.slot)].data() + sm * 2048;
            int64_t& krem = st.krem[size_t(r.slot)][sm];
            int64_t above = 0;
            int bin = 0;
            for (int b = (1 << width) - 1; b >= 0; --b) {
              if (above + h[b] >= krem) {
                bin = b;
                break;
              }
              above += h[b];
            }
            krem -= above;
            st.prefix[size_t(r.slot)][sm] = (st.prefix[size_t(r.slot)][sm] << width) | uint64_t(bin);
            std::fill(h, h + 2048, 0);
          }
      }
      consumed += width;
    }
    finish(st, pass, T{});
  }

  // The reductions of `pass`, from their chunk partials and selected keys.
  template <class T>
  void finish(State& st, const ir::Pass& pass, T) const {
    const int64_t M = st.M;
    for (const ir::PassReduction& r : pass.reductions) {
      const Slot sl = slot(r.slot);
      std::vector<double>& v = st.vals[size_t(r.slot)];
      const int64_t members = sl.member ? M : 1;
      for (int64_t m = 0; m < members; ++m) {
        if (r.k >= 0) {
          if (st.P == 0) {  // nothing to select from
            v[size_t(m)] = std::numeric_limits<double>::quiet_NaN();
            continue;
          }
          for (int64_t seg = 0; seg < segments(st, r.slot); ++seg)
            v[size_t(seg * M + m)] =
                double(value_of<T>(typename Keys<T>::U(st.prefix[size_t(r.slot)][size_t(seg * M + m)])));
          continue;
        }
        const double* part = st.partial[size_t(r.slot)].data() + m * st.chunks;
        const bool sum = sl.op == Op::TSum || sl.op == Op::PSum;
        const bool mn = sl.op == Op::TMin || sl.op == Op::PMin;
        const double identity = sum ? -0.0 : mn ? INFINITY : -INFINITY;
        auto fold = [&](double x, double y) { return sum ? x + y : mn ? ir::ieee_minimum(x, y) : ir::ieee_maximum(x, y); };
        double whole = identity;
        for (int64_t t = 0; t < st.T; ++t) {
          double acc = identity;
          const int64_t n = st.tensors[size_t(t)].second - st.tensors[size_t(t)].first;
          for (int64_t c = 0; c < (n + C - 1) / C; ++c) acc = fold(acc, part[st.chunk_offset[size_t(t)] + c]);
          if (sl.tensor) v[size_t(t * M + m)] = acc;
          whole = fold(whole, acc);
        }
        if (!sl.tensor) v[size_t(m)] = whole;
      }
      if (!sl.member)  // one value for every member
        for (int64_t seg = 0; seg < std::max<int64_t>(segments(st, r.slot), 1); ++seg)
          for (int64_t m = 1; m < M; ++m) v[size_t(seg * M + m)] = v[size_t(seg * M)];
    }
  }

  ir::ParamPlan plan_;
  KernelSpec spec_;
  std::vector<PassRt> passes_;
  bool window_ok_ = false;
  bool folds_ = false;  // some pass kernel folds a windowed value over the members
  ir::Graph values_typed_;
  std::vector<BindKind> value_kinds_;
};

// The spec of a pass kernel. With `chunk_outputs` (the backend implements KernelSpec::chunk),
// each root that is the argument of a sum, minimum or maximum is a chunk output: the kernel
// reduces it per chunk itself, as the block loop of run_pass does (sums in chunk_sum's order),
// and the block temporary is not needed. Not the argument of a selection (its radix passes read
// every element), nor in a pass that runs as a member loop (the staged driver stores every
// output).
KernelSpec pass_spec(const ir::ParamPlan& plan, const ir::Pass& pass, const KernelSpec& spec, bool chunk_outputs) {
  KernelSpec ks;
  ks.dtype = spec.dtype;
  ks.kinds = kinds_of(pass.extras, spec);
  if (!chunk_outputs || staged::needed(pass.kernel, ks)) return ks;
  ks.chunk.assign(size_t(pass.roots), ChunkReduce::None);
  for (const ir::PassReduction& r : pass.reductions) {
    switch (plan.typed.nodes[size_t(plan.reductions[size_t(r.slot)])].op) {
      case Op::TSum: case Op::PSum: ks.chunk[size_t(r.root)] = ChunkReduce::Sum; break;
      case Op::TMin: case Op::PMin: ks.chunk[size_t(r.root)] = ChunkReduce::Min; break;
      case Op::TMax: case Op::PMax: ks.chunk[size_t(r.root)] = ChunkReduce::Max; break;
      default: break;
    }
  }
  return ks;
}

}  // namespace

bool needed(const ir::Graph& g) { return ir::has_param_axis(g); }

std::string describe(const ir::Graph& g, const KernelSpec& spec) {
  const ir::ParamPlan plan = plan_of(g, spec);
  std::string text = ir::print(plan);
  // A pass kernel whose values cross members runs as a member loop: shown as the rule's would be.
  for (size_t p = 0; p < plan.passes.size(); ++p) {
    const KernelSpec ks = pass_spec(plan, plan.passes[p], spec, true);
    if (staged::needed(plan.passes[p].kernel, ks))
      text += "; pass " + std::to_string(p) + " runs as this member loop:\n" + staged::describe(plan.passes[p].kernel, ks);
    std::string reduced;
    for (size_t r = 0; r < ks.chunk.size(); ++r)
      if (ks.chunk[r] != ChunkReduce::None)
        reduced += std::string(reduced.empty() ? " " : ", ") + std::to_string(r) + " (" +
                   (ks.chunk[r] == ChunkReduce::Sum ? "sum" : ks.chunk[r] == ChunkReduce::Min ? "min" : "max") + ")";
    if (!reduced.empty())
      text += "; pass " + std::to_string(p) + ", llvm backend: the kernel reduces output" + reduced +
              " per 1024-element chunk itself (no temporary)\n";
  }
  return text;
}

std::vector<std::pair<ir::Graph, KernelSpec>> pass_kernels(const ir::Graph& g, const KernelSpec& spec, bool chunk_outputs) {
  std::vector<std::pair<ir::Graph, KernelSpec>> r;
  const ir::ParamPlan plan = plan_of(g, spec);
  for (const ir::Pass& p : plan.passes) r.emplace_back(p.kernel, pass_spec(plan, p, spec, chunk_outputs));
  return r;
}

bool windowable(const ir::Graph& g, const KernelSpec& spec) {
  const ir::ParamPlan plan = plan_of(g, spec);
  if (!window_free(plan)) return false;
  for (const ir::Pass& p : plan.passes) {
    const KernelSpec ks = pass_spec(plan, p, spec, false);
    const ir::Graph typed = ir::specialize_inputs(p.kernel, bind_types(ks.kinds));
    for (int32_t r = 0; r < p.roots; ++r)
      if (typed.nodes[size_t(typed.outputs[size_t(r)].node)].type.member) return false;
    for (const ir::Graph* k : {&p.kernel, &p.roots_only}) {
      if (k->outputs.empty()) continue;
      if (staged::window_needs(*k, ks).reads) return false;
    }
  }
  return true;
}

std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec, const staged::CompileFn& compile,
                                bool chunk_outputs) {
  ir::ParamPlan plan = plan_of(g, spec);
  // Every pass kernel is compiled before the first run: a failure leaves nothing half done.
  std::vector<ParamKernel::PassRt> rts;
  for (const ir::Pass& p : plan.passes) {
    ParamKernel::PassRt rt;
    const KernelSpec ks = pass_spec(plan, p, spec, chunk_outputs);
    rt.kinds = ks.kinds;
    rt.kernel = compile(p.kernel, ks);
    if (!p.roots_only.outputs.empty()) rt.roots_only = compile(p.roots_only, ks);
    rt.values_typed = ir::specialize_inputs(p.values, bind_types(ks.kinds));
    const ir::Graph typed = ir::specialize_inputs(p.kernel, bind_types(ks.kinds));
    for (int32_t r = 0; r < p.roots; ++r) {
      rt.root_member.push_back(typed.nodes[size_t(typed.outputs[size_t(r)].node)].type.member);
      rt.root_chunked.push_back(size_t(r) < ks.chunk.size() && ks.chunk[size_t(r)] != ChunkReduce::None);
    }
    // A chunk output writes the partials of its reduction's rows directly (run_pass): the
    // reduction varies per member exactly when its argument does.
    for (const ir::PassReduction& r : p.reductions)
      NYTO_INTERNAL_ASSERT(!rt.root_chunked[size_t(r.root)] ||
                               bool(rt.root_member[size_t(r.root)]) ==
                                   plan.typed.nodes[size_t(plan.reductions[size_t(r.slot)])].type.member,
                           "param axis: a chunk output and its reduction differ in the member axis");
    rts.push_back(std::move(rt));
  }
  return std::make_unique<ParamKernel>(std::move(plan), spec, std::move(rts));
}

}  // namespace nyto::param_axis
