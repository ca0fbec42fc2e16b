// Model merging with the parameter axis (tsum, psum, tkth) through the public API (Rule::run,
// llvm backend), against eager LibTorch written per tensor the way mergekit writes it
// (github.com/arcee-ai/mergekit: merge_methods/generalized_task_arithmetic.py, sparsify.py,
// merge_methods/slerp.py), on the MLP 784-1024-256-10 of the population bench (1,068,810 float32
// parameters in 6 tensors). One JSON object per line, as nyto_bench_population, plus
// cpu_ms_median (process CPU per call), load_avg, and on eager lines rule_speedup (eager ms / rule
// ms at the same thread count, measured just before in the same run).
//
//   ties-big: TIES (mergekit "ties": magnitude sparsification, sum consensus, normalize) of a
//     swarm of 8 fine-tuned copies (base + 0.002 randn) onto the base, per-model weights
//     0.5, 0.6, ..., 1.2, density 0.2. impl rule: one rule, tkth for the k = int(density numel)
//     largest |delta| of each tensor of each member; impl eager: per tensor, 8 deltas sparsified
//     by argsort (mergekit since #265), stacked, weighted, sign consensus, masked weighted mean;
//     impl eager-topk: the same with torch.topk (mergekit before #265, the faster baseline).
//   slerp-big: SLERP (mergekit "slerp", t = 0.5) of two models per tensor: normalized copies,
//     dot, lerp where |dot| > 0.9995, else the sine formula. The weights are perturbed by half
//     their standard deviation (dot about 0.89: sine formula), the biases by 1% (lerp).
//   dare-big: DARE (mergekit "dare_linear": bernoulli(density) drop, L1-norm rescale per tensor,
//     weighted sum, no normalize) of the swarm of 8 onto the base, density 0.5. impl rule draws
//     rand() < density; impl eager at::bernoulli. The check reruns the eager merge on the
//     rule's own mask (a second rule with the same seed and invocation writes it).
//   clip-norm: x = x * min(1, max_norm / (||x|| + 1e-6)) per parameter tensor of each of 8
//     members (tsum), in place, max_norm 1; eager: torch::nn::utils::clip_grad_norm_ called per
//     tensor of each member on leaf tensors whose grads hold the data.
//   clip-norm-total: the same with the norm of the whole particle (psum), which is what
//     clip_grad_norm_ computes over a member's parameter list (eager: one call per member).
//
// Every case first runs both from the same inputs and compares (float32 tolerance: |d| <=
// 1e-6 + 1e-5 |eager|), and runs the rule at 2 and at 1 thread (same seed and invocation) to see
// the same bits (rule_threads_1_2_same_bits); a mismatch or a difference in bits prints
// "check": "FAIL" and the program exits with 1.
//
// Memory ("case": ..., "peak_extra_mb"): each (case, impl, threads) again in a child process
// (this program with --mem-child): inputs set up, one warm call (JIT compile, first touch),
// malloc_trim(0), VmHWM reset by writing 5 to /proc/self/clear_refs, VmRSS read, one call, VmHWM
// read: peak_extra_mb = (VmHWM - VmRSS before) / 2^20 bytes, the call's resident high-water mark
// above its inputs and outputs.
//
// Usage: nyto_bench_merge [--quick] [--case NAME] [--impl NAME] [--threads N] [--no-memory] [--samples N]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <nyto/nyto.h>
#include <torch/nn/utils/clip_grad.h>
#include <unistd.h>

#include "bench/bench_api.h"
#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using nyto::bench::load_avg;
using nyto::bench::mlp;
using nyto::bench::process_cpu_ms;

constexpr int64_t kMembers = 8;
constexpr double kTiesDensity = 0.2, kDareDensity = 0.5, kSlerpT = 0.5, kMaxNorm = 1.0;

const char* kTies = R"(param density = 0.2
let delta = ft - base
let tau = w * where(abs(delta) >= tkth(abs(delta), density * numel()), delta, 0)
let agree = sign(tau) == where(msum(tau) >= 0, 1, -1)
let d = msum(where(agree, w, 0))
merged = base + msum(where(agree, tau, 0)) / where(d == 0, 1, d)
)";

const char* kSlerp = R"(param t = 0.5
let na = sqrt(tsum(a * a))
let nb = sqrt(tsum(b * b))
let dot = tsum(a * b) / (where(na > 1e-8, na, 1) * where(nb > 1e-8, nb, 1))
let th = acos(dot)
let tht = th * t
let s0 = sin(th - tht) / sin(th)
let s1 = sin(tht) / sin(th)
merged = where(abs(dot) > 0.9995, (1 - t) * a + t * b, s0 * a + s1 * b)
)";

const char* kDare = R"(param density = 0.5
let delta = ft - base
let kept = where(rand() < density, delta, 0)
let before = tsum(abs(delta))
let after = tsum(abs(kept))
let s = where(before < 1e-7, 1, where(after < 1e-7, 1, before / after))
merged = base + msum(w * (kept * s))
)";

// The mask of kDare's rand() < density (the same site 0, seed and invocation give the same draws).
const char* kDareMask = R"(param density = 0.5
mk = where(rand() < density, 1, 0) + 0 * ft
)";

const char* kClip = R"(param max_norm = 1.0
x = x * min(1, max_norm / (sqrt(tsum(x * x)) + 1e-6))
)";

const char* kClipTotal = R"(param max_norm = 1.0
x = x * min(1, max_norm / (sqrt(psum(x * x)) + 1e-6))
)";

struct Timing {
  double ms, cpu_ms;
};

// Medians over `samples` calls of wall and process CPU time (one call first, untimed).
Timing time_it(const std::function<void()>& fn, int samples) {
  using Clock = std::chrono::steady_clock;
  fn();
  std::vector<double> wall, cpu;
  for (int s = 0; s < samples; ++s) {
    const double c0 = process_cpu_ms();
    const auto t0 = Clock::now();
    fn();
    wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    cpu.push_back(process_cpu_ms() - c0);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> r;
  for (const at::Tensor& t : ts) r.push_back(t.detach());
  return r;
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> r;
  for (const at::Tensor& t : ts) r.push_back(t.detach().clone());
  return r;
}

// ---------------------------------------------------------------- eager, as mergekit

// merge_methods/generalized_task_arithmetic.py GTATask.execute for one tensor: task vectors
// (get_task_vectors), sparsify each, stack, weight, consensus (get_mask "sum"), masked sum,
// divisor, normalize, add to base. `sparse(delta)` is sparsify.py's method; the result goes to
// `out` (add_out: the one change, so both impls write a preallocated merged model).
void gta_tensor(const at::Tensor& base, const std::vector<at::Tensor>& fts, const std::vector<double>& weights,
                bool consensus, bool normalize, const std::function<at::Tensor(const at::Tensor&, size_t)>& sparse,
                at::Tensor& out) {
  std::vector<at::Tensor> deltas;
  for (size_t j = 0; j < fts.size(); ++j) deltas.push_back(sparse(fts[j] - base, j));
  at::Tensor stacked = at::stack(deltas, 0);
  deltas.clear();
  at::Tensor w = at::tensor(weights, stacked.options().dtype(at::kDouble)).to(stacked.scalar_type());
  while (w.dim() < stacked.dim()) w.unsqueeze_(-1);
  at::Tensor weighted = stacked * w;
  at::Tensor mixed, divisor;
  if (consensus) {
    at::Tensor sign = weighted.sign();
    at::Tensor majority = (weighted.sum(0) >= 0).to(stacked.scalar_type()) * 2 - 1;
    at::Tensor mask = sign == majority;
    mixed = (weighted * mask).sum(0);
    divisor = (w * mask).sum(0);
    divisor.masked_fill_(divisor == 0, 1);  // divisor[divisor == 0] = 1
  } else {
    mixed = weighted.sum(0);
    divisor = w.sum(0);
    divisor.masked_fill_(divisor.abs() < 1e-8, 1);
  }
  if (normalize) mixed.div_(divisor);
  at::add_out(out, base, mixed);
}

// sparsify.py magnitude(): keep the k = int(density numel) largest |x| (argsort or topk).
at::Tensor magnitude(const at::Tensor& x, double density, bool topk) {
  const int64_t k = int64_t(density * double(x.numel()));
  at::Tensor mask = at::zeros_like(x);
  at::Tensor w = x.abs().view(-1);
  at::Tensor idx = topk ? std::get<1>(at::topk(w, k, 0, /*largest=*/true, /*sorted=*/true))
                        : at::argsort(w, /*dim=*/0, /*descending=*/true).slice(0, 0, k);
  mask.view(-1).index_put_({idx}, 1);
  return x * mask;  // rescaled_masked_tensor with norm None (TIES: rescale false)
}

// rescaled_masked_tensor(tensor, mask, l1): the masked tensor scaled to the L1 norm of tensor.
at::Tensor l1_rescaled(const at::Tensor& x, const at::Tensor& mask) {
  at::Tensor masked = x * mask;
  at::Tensor before = x.abs().sum(), after = masked.abs().sum();
  if (before.item<double>() < 1e-7 || after.item<double>() < 1e-7) return masked;
  return masked * (before / after);
}

// sparsify.py bernoulli() with rescale_norm l1 (dare_linear: rescale true).
at::Tensor bernoulli_l1(const at::Tensor& x, double density) {
  at::Tensor mask = at::bernoulli(at::full_like(x, density));
  return l1_rescaled(x, mask);
}

// merge_methods/slerp.py slerp() on one pair of tensors (numpy float32 there, ATen here).
void slerp_tensor(double t, const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  const double eps = 1e-8, threshold = 0.9995;
  at::Tensor v0_copy = a.clone(), v1_copy = b.clone();
  auto normalize = [&](const at::Tensor& v) {
    const float n = v.norm().item<float>();
    return n > eps ? v / n : v;
  };
  at::Tensor v0 = normalize(a), v1 = normalize(b);
  const float dot = (v0 * v1).sum().item<float>();
  if (std::abs(dot) > threshold) {
    at::add_out(out, v0_copy * float(1 - t), v1_copy, float(t));
    return;
  }
  const float theta_0 = std::acos(dot), sin_theta_0 = std::sin(theta_0);
  const float theta_t = theta_0 * float(t), sin_theta_t = std::sin(theta_t);
  const float s0 = std::sin(theta_0 - theta_t) / sin_theta_0, s1 = sin_theta_t / sin_theta_0;
  at::add_out(out, v0_copy * s0, v1_copy, s1);
}

// ---------------------------------------------------------------- cases

struct Check {
  double max_abs = 0;
  int64_t bad = 0, n = 0;
};

Check compare(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  Check c;
  for (size_t i = 0; i < got.size(); ++i) {
    at::Tensor g = got[i].detach().to(at::kDouble), w = want[i].detach().to(at::kDouble);
    at::Tensor d = (g - w).abs();
    c.max_abs = std::max(c.max_abs, d.max().item<double>());
    c.bad += (d > 1e-6 + 1e-5 * w.abs()).sum().item<int64_t>() + (g.isnan() != w.isnan()).sum().item<int64_t>();
    c.n += g.numel();
  }
  return c;
}

struct Impl {
  std::string name;
  std::function<void()> run;
};

// One case: its impls (the rule first), and a check run before the timings.
struct Case {
  std::string name;
  std::vector<Impl> impls;
  std::function<Check()> check;
  std::string check_note;
  std::function<bool()> same_bits;  // the rule's result at 1 thread has the bits of 2 threads
};

// Runs `prepare` then the rule (seed and invocation fixed) at 2 and at 1 thread; whether `result`
// holds the same bits after both (sums in a fixed blocked order: docs of ir/IR.h).
bool same_bits(const nyto::Rule& rule, const nyto::Bindings& b, const std::function<at::Tensor()>& result,
               const std::function<void()>& prepare) {
  nyto::RunOptions o;
  o.seed = 3;
  o.invocation = 777;
  at::set_num_threads(2);
  prepare();
  rule.run(b, o);
  const at::Tensor two = result().clone();
  at::set_num_threads(1);
  prepare();
  rule.run(b, o);
  const bool same = at::equal(two, result());
  at::set_num_threads(2);
  return same;
}

struct World {
  nyto::AnyParticle base;
  std::vector<at::Tensor> base_t;
  nyto::AnySwarm ft;
  std::vector<std::vector<at::Tensor>> ft_t;  // [member][tensor], views of ft's storage
  std::vector<double> w;
  World() {
    at::manual_seed(1);
    base = nyto::make_particle_from(mlp({784, 1024, 256, 10}).ptr());
    base_t = detached(base.param_tensors());
    ft = nyto::AnySwarm(base, kMembers, nyto::SwarmInit::Copies);
    {
      at::NoGradGuard no_grad;
      ft.storage()[0].add_(at::randn_like(ft.storage()[0]), 0.002);
    }
    for (int64_t m = 0; m < kMembers; ++m) {
      ft_t.push_back(detached(ft.member(m).param_tensors()));
      w.push_back(0.5 + 0.1 * double(m));
    }
  }
  std::vector<at::Tensor> empty_out() const {
    std::vector<at::Tensor> r;
    for (const at::Tensor& t : base_t) r.push_back(at::empty_like(t));
    return r;
  }
  std::vector<at::Tensor> fts_of(size_t i) const {
    std::vector<at::Tensor> r;
    for (const auto& m : ft_t) r.push_back(m[i]);
    return r;
  }
};

std::shared_ptr<World> world() {
  static std::shared_ptr<World> w = std::make_shared<World>();
  return w;
}

Case ties_case() {
  auto W = world();
  auto rule = std::make_shared<nyto::Rule>(nyto::compile(kTies, "ties.nyto"));
  auto merged = std::make_shared<nyto::AnyParticle>(W->base.clone());
  auto bind = std::make_shared<nyto::Bindings>(
      nyto::Bindings{{"ft", W->ft}, {"base", W->base}, {"w", W->w}, {"merged", *merged}});
  auto out_e = std::make_shared<std::vector<at::Tensor>>(W->empty_out());
  auto eager = [W, out_e](bool topk) {
    return [W, out_e, topk] {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < W->base_t.size(); ++i)
        gta_tensor(W->base_t[i], W->fts_of(i), W->w, true, true,
                   [&](const at::Tensor& d, size_t) { return magnitude(d, kTiesDensity, topk); }, (*out_e)[i]);
    };
  };
  Case c{"ties-big", {{"rule", [rule, bind] { rule->run(*bind); }}, {"eager", eager(false)}, {"eager-topk", eager(true)}}, {}, ""};
  c.check = [rule, bind, merged, out_e, eager] {
    rule->run(*bind);
    eager(true)();
    Check a = compare(merged->param_tensors(), *out_e);
    eager(false)();
    Check b = compare(merged->param_tensors(), *out_e);
    a.bad += b.bad, a.max_abs = std::max(a.max_abs, b.max_abs), a.n += b.n;
    return a;
  };
  c.check_note = "rule vs eager-topk and vs eager (argsort)";
  c.same_bits = [rule, bind, merged] { return same_bits(*rule, *bind, [merged] { return merged->storage()[0]; }, [] {}); };
  return c;
}

Case slerp_case() {
  auto W = world();
  auto rule = std::make_shared<nyto::Rule>(nyto::compile(kSlerp, "slerp.nyto"));
  auto a = std::make_shared<nyto::AnyParticle>(W->base.clone());
  auto b = std::make_shared<nyto::AnyParticle>(W->base.clone());
  {
    at::NoGradGuard no_grad;
    const auto& bt = b->param_tensors();
    for (size_t i = 0; i < bt.size(); ++i) {
      const double scale = (i % 2 == 0 ? 0.5 : 0.01) * bt[i].std().item<double>();
      bt[i].add_(at::randn_like(bt[i]), scale);
    }
  }
  auto merged = std::make_shared<nyto::AnyParticle>(W->base.clone());
  auto bind = std::make_shared<nyto::Bindings>(nyto::Bindings{{"a", *a}, {"b", *b}, {"merged", *merged}});
  auto out_e = std::make_shared<std::vector<at::Tensor>>(W->empty_out());
  auto at_ = std::make_shared<std::vector<at::Tensor>>(detached(a->param_tensors()));
  auto bt_ = std::make_shared<std::vector<at::Tensor>>(detached(b->param_tensors()));
  auto eager = [at_, bt_, out_e] {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < at_->size(); ++i) slerp_tensor(kSlerpT, (*at_)[i], (*bt_)[i], (*out_e)[i]);
  };
  Case c{"slerp-big", {{"rule", [rule, bind] { rule->run(*bind); }}, {"eager", eager}}, {}, ""};
  c.check = [rule, bind, merged, out_e, eager] {
    rule->run(*bind);
    eager();
    return compare(merged->param_tensors(), *out_e);
  };
  c.check_note = "weights take the sine formula, biases lerp";
  c.same_bits = [rule, bind, merged] { return same_bits(*rule, *bind, [merged] { return merged->storage()[0]; }, [] {}); };
  return c;
}

Case dare_case() {
  auto W = world();
  auto rule = std::make_shared<nyto::Rule>(nyto::compile(kDare, "dare.nyto"));
  auto merged = std::make_shared<nyto::AnyParticle>(W->base.clone());
  auto bind = std::make_shared<nyto::Bindings>(
      nyto::Bindings{{"ft", W->ft}, {"base", W->base}, {"w", W->w}, {"merged", *merged}});
  auto out_e = std::make_shared<std::vector<at::Tensor>>(W->empty_out());
  auto eager = [W, out_e] {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < W->base_t.size(); ++i)
      gta_tensor(W->base_t[i], W->fts_of(i), W->w, false, false,
                 [&](const at::Tensor& d, size_t) { return bernoulli_l1(d, kDareDensity); }, (*out_e)[i]);
  };
  Case c{"dare-big", {{"rule", [rule, bind] { rule->run(*bind); }}, {"eager", eager}}, {}, ""};
  c.check = [W, rule, bind, merged, out_e] {
    nyto::RunOptions opt;
    opt.seed = 5;
    opt.invocation = 12345;
    rule->run(*bind, opt);
    nyto::AnySwarm mk(W->base, kMembers, nyto::SwarmInit::Copies);
    nyto::compile(kDareMask, "dare_mask.nyto").run({{"ft", W->ft}, {"mk", mk}}, opt);
    std::vector<std::vector<at::Tensor>> mask_t;
    for (int64_t m = 0; m < kMembers; ++m) mask_t.push_back(detached(mk.member(m).param_tensors()));
    const double kept = mk.storage()[0].mean().item<double>();
    if (std::abs(kept - kDareDensity) > 0.01) {
      std::fprintf(stderr, "dare-big: the mask keeps %g of the elements, not %g\n", kept, kDareDensity);
      return Check{0, 1, 1};
    }
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < W->base_t.size(); ++i)
      gta_tensor(W->base_t[i], W->fts_of(i), W->w, false, false,
                 [&](const at::Tensor& d, size_t j) { return l1_rescaled(d, mask_t[j][i]); }, (*out_e)[i]);
    return compare(merged->param_tensors(), *out_e);
  };
  c.check_note = "eager merge on the rule's own mask (same seed and invocation)";
  c.same_bits = [rule, bind, merged] { return same_bits(*rule, *bind, [merged] { return merged->storage()[0]; }, [] {}); };
  return c;
}

Case clip_case(bool total) {
  auto rule = std::make_shared<nyto::Rule>(nyto::compile(total ? kClipTotal : kClip, "clip.nyto"));
  auto W = world();
  auto x = std::make_shared<nyto::AnySwarm>(W->base, kMembers, nyto::SwarmInit::Randn);
  auto x0 = std::make_shared<at::Tensor>(x->storage()[0].clone());
  auto bind = std::make_shared<nyto::Bindings>(nyto::Bindings{{"x", *x}});
  // Eager: per member, leaf tensors of the parameters' shapes whose grads hold the data.
  auto params = std::make_shared<std::vector<std::vector<at::Tensor>>>();
  for (int64_t m = 0; m < kMembers; ++m) {
    std::vector<at::Tensor> ps;
    for (const at::Tensor& t : x->member(m).param_tensors()) {
      at::Tensor p = at::empty_like(t.detach()).requires_grad_(true);
      p.mutable_grad() = t.detach().clone();
      ps.push_back(p);
    }
    params->push_back(ps);
  }
  auto eager = [params, total] {
    for (auto& ps : *params) {
      if (total)
        torch::nn::utils::clip_grad_norm_(ps, kMaxNorm);
      else
        for (const at::Tensor& p : ps) torch::nn::utils::clip_grad_norm_({p}, kMaxNorm);
    }
  };
  Case c{total ? "clip-norm-total" : "clip-norm", {{"rule", [rule, bind] { rule->run(*bind); }}, {"eager", eager}}, {}, ""};
  c.check = [x, x0, rule, bind, params, eager] {
    {
      at::NoGradGuard no_grad;
      x->storage()[0].copy_(*x0);
      for (int64_t m = 0; m < kMembers; ++m) {
        const auto& src = x->member(m).param_tensors();
        for (size_t i = 0; i < src.size(); ++i) (*params)[size_t(m)][i].mutable_grad().copy_(src[i].detach());
      }
    }
    rule->run(*bind);
    eager();
    Check r;
    for (int64_t m = 0; m < kMembers; ++m) {
      std::vector<at::Tensor> grads;
      for (const at::Tensor& p : (*params)[size_t(m)]) grads.push_back(p.grad());
      Check k = compare(x->member(m).param_tensors(), grads);
      r.bad += k.bad, r.n += k.n, r.max_abs = std::max(r.max_abs, k.max_abs);
    }
    return r;
  };
  c.same_bits = [rule, bind, x, x0] {
    return same_bits(*rule, *bind, [x] { return x->storage()[0]; }, [x, x0] {
      at::NoGradGuard no_grad;
      x->storage()[0].copy_(*x0);
    });
  };
  c.check_note = total ? "norm of the whole member (psum), clip_grad_norm_ over its 6 tensors"
                       : "norm per tensor (tsum), clip_grad_norm_ per tensor";
  return c;
}

Case make_case(const std::string& name) {
  if (name == "ties-big") return ties_case();
  if (name == "slerp-big") return slerp_case();
  if (name == "dare-big") return dare_case();
  if (name == "clip-norm") return clip_case(false);
  if (name == "clip-norm-total") return clip_case(true);
  std::fprintf(stderr, "unknown case %s\n", name.c_str());
  std::exit(2);
}

const std::vector<std::string> kCases = {"ties-big", "slerp-big", "dare-big", "clip-norm", "clip-norm-total"};

// ---------------------------------------------------------------- memory

int64_t status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t v = -1;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      v = std::atoll(line + n + 1);
      break;
    }
  std::fclose(f);
  return v;
}

int mem_child(const std::string& name, const std::string& impl, int threads) {
  at::set_num_threads(threads);
  Case c = make_case(name);
  for (const Impl& i : c.impls) {
    if (i.name != impl) continue;
    i.run();  // warm: JIT compile, first touch of the outputs
    malloc_trim(0);
    FILE* f = std::fopen("/proc/self/clear_refs", "w");
    const bool reset = f && std::fputs("5", f) >= 0 && std::fclose(f) == 0;
    const int64_t rss = status_kb("VmRSS");
    i.run();
    const int64_t hwm = status_kb("VmHWM");
    std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"peak_extra_mb\": %.3f, \"rss_before_mb\": %.1f, "
                "\"hwm_reset\": %s}\n",
                name.c_str(), impl.c_str(), threads, double(hwm - rss) / 1024.0, double(rss) / 1024.0,
                reset ? "true" : "false");
    return reset ? 0 : 1;
  }
  return 2;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string("nyto_bench_merge");
}

void host_line() {
  const nyto::bench::HostCpu host = nyto::bench::host_cpu();
  const std::string& model = host.model;
  const bool avx512 = host.avx512f;
  std::printf("{\"case\": \"host\", \"cpu\": \"%s\", \"logical_cpus\": %ld, \"avx512f\": %s, \"members\": %ld, "
              "\"params\": %ld, \"load_avg\": %.2f}\n",
              model.c_str(), sysconf(_SC_NPROCESSORS_ONLN), avx512 ? "true" : "false", long(kMembers),
              long(world()->base.storage()[0].numel()), load_avg());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, memory = true;
  int samples = 0;
  std::string only, only_impl;
  int only_threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--no-memory") memory = false;
    else if (a == "--case" && i + 1 < argc) only = argv[++i];
    else if (a == "--samples" && i + 1 < argc) samples = std::atoi(argv[++i]);
    else if (a == "--impl" && i + 1 < argc) only_impl = argv[++i];
    else if (a == "--threads" && i + 1 < argc) only_threads = std::atoi(argv[++i]);
    else if (a == "--mem-child" && i + 3 < argc) return mem_child(argv[i + 1], argv[i + 2], std::atoi(argv[i + 3]));
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--case %s] [--impl rule|eager|eager-topk] [--threads N] [--no-memory] [--samples N]\n", argv[0],
                   "ties-big|slerp-big|dare-big|clip-norm|clip-norm-total");
      return 2;
    }
  }
  if (samples <= 0) samples = quick ? 3 : 11;
  host_line();
  bool ok = true;
  for (const std::string& name : kCases) {
    if (!only.empty() && only != name) continue;
    Case c = make_case(name);
    at::set_num_threads(2);
    const Check k = c.check();
    const bool bits = c.same_bits();
    const bool pass = k.bad == 0 && bits;
    ok = ok && pass;
    std::printf("{\"case\": \"%s\", \"check\": \"%s\", \"elements\": %ld, \"mismatches\": %ld, \"max_abs_diff\": %.3g, "
                "\"rule_threads_1_2_same_bits\": %s, \"note\": \"%s\"}\n",
                name.c_str(), pass ? "ok" : "FAIL", long(k.n), long(k.bad), k.max_abs, bits ? "true" : "false",
                c.check_note.c_str());
    std::fflush(stdout);
    for (int t : {2, 1}) {
      if (only_threads > 0 && t != only_threads) continue;
      at::set_num_threads(t);
      double rule_ms = 0;
      for (const Impl& i : c.impls) {
        if (!only_impl.empty() && i.name != only_impl) continue;
        const Timing tm = time_it(i.run, samples);
        if (i.name == "rule") rule_ms = tm.ms;
        std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"ms_median\": %.6g, \"cpu_ms_median\": %.6g, "
                    "\"load_avg\": %.2f",
                    name.c_str(), i.name.c_str(), t, tm.ms, tm.cpu_ms, load_avg());
        if (i.name != "rule" && rule_ms > 0) std::printf(", \"rule_speedup\": %.3g", tm.ms / rule_ms);
        std::printf("}\n");
        std::fflush(stdout);
      }
    }
    if (memory)
      for (int t : {2, 1})
        for (const Impl& i : c.impls) {
          if ((only_threads > 0 && t != only_threads) || (!only_impl.empty() && i.name != only_impl)) continue;
          const std::string cmd = self_exe() + " --mem-child " + name + " " + i.name + " " + std::to_string(t);
          FILE* p = popen(cmd.c_str(), "r");
          char line[1024];
          bool got = false;
          while (p && std::fgets(line, sizeof line, p)) std::fputs(line, stdout), got = true;
          const int rc = p ? pclose(p) : -1;
          if (!got || rc != 0) std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"memory\": \"failed\"}\n",
                                           name.c_str(), i.name.c_str(), t);
          std::fflush(stdout);
        }
  }
  return ok ? 0 : 1;
}
