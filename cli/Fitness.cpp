// Fitness of a swarm of zoo classifiers: mean NLL loss per member (cli/Fitness.h).
//
// What the strategies do and why (measured by bench/evolve_bench.cpp; bench/README.md, "Fitness
// evaluation"):
//  - Every strategy but Loop reads the members' parameters as views of the swarm's [M, P]
//    storage (narrow + view: no copy), and splits the members into one contiguous range per
//    thread, run under one at::parallel_for: inside it every LibTorch op runs single-threaded,
//    so there is one fork and one join per evaluation instead of one per op and member.
//  - mlp, Batched: for a group of G members the first layer is one GEMM, hT [G*H, B] = W1cat
//    [G*H, 784] x images^T, where W1cat gathers the group's first-layer weights (one copy of
//    G*H*784 floats; the members' rows are not evenly spaced in the storage, so no view can
//    make them one matrix). One GEMM with G*H columns reads the images once instead of G times:
//    on 64 members of hidden width 32 it takes 21 ms on one core where 64 member GEMMs take 34
//    (and the bmm of the strided views, zero copies, 35). The second layer is one baddbmm
//    [G, 10, H] x [G, H, B] on the storage views; log_softmax then runs over dim 1 of [G, 10, B]
//    (0.6 ms for 64 members, where dim 2 of [G, B, 10] takes 3.9).
//  - cnn, MemberThreads: each member's forward goes 50 images at a time (a chunk's activations
//    stay in the cache: conv1 on 1,000 images at once takes 4x the time of 20 chunks of 50) and
//    max-pools with two at::maximum on strided views (at::max_pool2d computes int64 indices too
//    and takes 13x as long here). relu(maxpool(c)) == maxpool(relu(c)) bit for bit, so the
//    pool comes first and relu runs on a quarter of the elements.
#include "cli/Fitness.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <nyto/errors.h>
#include <nyto/swarm.h>

#include <algorithm>
#include <utility>

#include "cli/Zoo.h"

namespace nyto::cli {
namespace {

/// Members of one mlp GEMM: G = kGemmColumns / hidden (at least 1), so a group's gathered
/// first-layer weights (1.6 MB) and hidden activations (2 MB for 1,000 images) stay small whatever
/// the width. OpenBLAS's float GEMM runs at the same speed per column from 256 to 2048 columns
/// here (about 150 GFLOP/s on one core); 32 columns, one member of hidden 32, take 1.9x as long.
constexpr int64_t kGemmColumns = 512;
/// Images per cnn forward step: conv1's output for 50 images (1.15 MB) stays in a 2 MB L2; 100 and
/// 200 measure the same within the noise, 1,000 at once 2.4x slower.
constexpr int64_t kCnnChunk = 50;

/// OpenBLAS's own thread count (LibTorch on Debian calls the system BLAS, OpenBLAS by default).
/// Looked up at run time, so another BLAS (which has no such call) is left alone.
struct OpenBlasThreads {
  using Get = int (*)();
  using Set = void (*)(int);
  Get get = nullptr;
  Set set = nullptr;
  static const OpenBlasThreads& api() {
    static const OpenBlasThreads a{
        reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")),
        reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))};
    return a;
  }
};

/// For the scope: at::get_num_threads() == threads (set when it differs, left so) and OpenBLAS on
/// one thread (restored after).
class ThreadBudget {
 public:
  explicit ThreadBudget(int threads) {
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
    const auto& blas = OpenBlasThreads::api();
    if (blas.get && blas.set) {
      saved_blas_ = blas.get();
      if (saved_blas_ != 1) blas.set(1);
    }
  }
  ~ThreadBudget() {
    if (saved_blas_ > 1) OpenBlasThreads::api().set(saved_blas_);
  }
  ThreadBudget(const ThreadBudget&) = delete;
  ThreadBudget& operator=(const ThreadBudget&) = delete;

 private:
  int saved_blas_ = 0;
};

struct Expected {
  const char* path;
  std::vector<int64_t> shape;  // -1: the mlp's hidden width
};

const std::vector<Expected>& expected_params(const std::string& model) {
  static const std::vector<Expected> mlp = {
      {"fc1.weight", {-1, 784}}, {"fc1.bias", {-1}}, {"fc2.weight", {10, -1}}, {"fc2.bias", {10}}};
  static const std::vector<Expected> cnn = {{"conv1.weight", {10, 1, 5, 5}},  {"conv1.bias", {10}},
                                            {"conv2.weight", {20, 10, 3, 3}}, {"conv2.bias", {20}},
                                            {"fc.weight", {10, 2000}},        {"fc.bias", {10}}};
  return model == "mlp" ? mlp : cnn;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

/// [M, shape...] view of one parameter of every member: storage columns [offset, offset + numel).
at::Tensor member_view(const at::Tensor& storage, int64_t offset, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  shape.insert(shape.begin(), storage.size(0));
  return storage.narrow(1, offset, numel).view(shape);
}

/// Per-thread working buffers, kept from one evaluate() to the next (resized when B changes).
struct Part {
  int64_t begin = 0, end = 0;  ///< members [begin, end)
  int64_t batch = -1;          ///< the B the buffers are sized for
  // mlp
  at::Tensor w1cat, b1cat;  ///< [G*H, 784], [G*H]: a group's gathered first layer
  at::Tensor hidden;        ///< [G*H, B]
  at::Tensor logits, logp;  ///< [G, 10, B]
  at::Tensor picked;        ///< [G, 1, B]: log p of each image's label
  at::Tensor sums;          ///< [G] double
  // cnn
  at::Tensor rows, pooled;  ///< [n, 10, 12, 24], [n, 10, 12, 12]: max-pool's two steps
  at::Tensor cnn_logits, cnn_logp, cnn_picked, cnn_sum;  ///< [n, 10], [n, 10], [n, 1], [] double
};

}  // namespace

struct FitnessEvaluator::Impl {
  AnySwarm swarm;
  std::string model;
  int threads = 1;
  FitnessStrategy kind = FitnessStrategy::Auto;
  int64_t members = 0;
  int64_t begin = 0, end = 0;    ///< the members evaluated
  int64_t hidden = 0;            ///< mlp
  int64_t group = 1;             ///< mlp: members per GEMM
  int64_t version = -1;          ///< the species version `offsets` were read at
  std::vector<int64_t> offsets;  ///< per expected_params(model) entry: offset in a storage row
  std::vector<Part> parts;
  int threads_used = 0;  ///< of the last evaluate()

  /// Reads the parameter offsets from the species, checking it is `model`'s. Throws nyto::Error.
  void layout() {
    const auto& species = *swarm.species();
    if (species.groups().size() != 1)
      throw Error("fitness: the swarm's parameters are in " +
                  std::to_string(species.groups().size()) + " storage groups; a zoo " + model +
                  " has one (float32, CPU)");
    std::vector<int64_t> offs;
    int64_t h = 0;
    for (const Expected& e : expected_params(model)) {
      const int64_t i = species.find(e.path);
      if (i < 0)
        throw Error("fitness: the swarm is not a zoo " + model + ": it has no parameter '" +
                    e.path + "'");
      const ParamInfo& p = species.params()[size_t(i)];
      if (model == "mlp" && h == 0 && !p.shape.empty()) h = p.shape[0];
      std::vector<int64_t> want = e.shape;
      for (int64_t& s : want)
        if (s < 0) s = h;
      if (p.shape != want)
        throw Error("fitness: the swarm is not a zoo " + model + ": '" + e.path + "' is " +
                    shape_text(p.shape) + ", expected " + shape_text(want));
      if (p.dtype != at::kFloat || !p.device.is_cpu())
        throw Error("fitness: the swarm's parameters must be float32 on the CPU ('" +
                    std::string(e.path) + "' is not)");
      offs.push_back(p.offset);
    }
    offsets = std::move(offs);
    hidden = h;
    group = kind == FitnessStrategy::Batched ? std::max<int64_t>(1, kGemmColumns / hidden) : 1;
    version = swarm.version();
    for (Part& part : parts) part.batch = -1;  // buffers sized again for this layout
  }

  std::vector<at::Tensor> views(const at::Tensor& storage) const {
    std::vector<at::Tensor> v;
    const auto& exp = expected_params(model);
    for (size_t i = 0; i < exp.size(); ++i) {
      std::vector<int64_t> shape = exp[i].shape;
      for (int64_t& s : shape)
        if (s < 0) s = hidden;
      v.push_back(member_view(storage, offsets[i], shape));
    }
    return v;
  }

  void run_mlp(Part& part, const std::vector<at::Tensor>& v, const at::Tensor& x,
               const at::Tensor& y, std::vector<double>& out) const;
  void run_cnn(Part& part, const std::vector<at::Tensor>& v, const at::Tensor& x,
               const at::Tensor& y, std::vector<double>& out) const;
};

// One part of the mlp: groups of `group` members, each group's first layer one GEMM (a single
// member's: its weights used in place).
void FitnessEvaluator::Impl::run_mlp(Part& part, const std::vector<at::Tensor>& v,
                                     const at::Tensor& x, const at::Tensor& y,
                                     std::vector<double>& out) const {
  const at::Tensor &w1 = v[0], &b1 = v[1], &w2 = v[2], &b2 = v[3];
  const int64_t B = x.size(0), H = hidden;
  const int64_t G = std::min(group, part.end - part.begin);
  if (part.batch != B) {  // G and H are fixed for the part
    if (G > 1) {
      part.w1cat = at::empty({G * H, 784}, x.options());
      part.b1cat = at::empty({G * H}, x.options());
    }
    part.hidden = at::empty({G * H, B}, x.options());
    part.logits = at::empty({G, 10, B}, x.options());
    part.logp = at::empty({G, 10, B}, x.options());
    part.picked = at::empty({G, 1, B}, x.options());
    part.sums = at::empty({G}, x.options().dtype(at::kDouble));
    part.batch = B;
  }
  const at::Tensor xt = x.t();  // [784, B]: a transposed operand, no copy
  for (int64_t m0 = part.begin; m0 < part.end; m0 += G) {
    const int64_t g = std::min(G, part.end - m0);
    at::Tensor wcat, bcat;
    if (g == 1) {
      wcat = w1[m0];  // [H, 784], contiguous in the storage row
      bcat = b1[m0];
    } else {
      wcat = part.w1cat.narrow(0, 0, g * H);
      bcat = part.b1cat.narrow(0, 0, g * H);
      wcat.view({g, H, 784}).copy_(w1.narrow(0, m0, g));
      bcat.view({g, H}).copy_(b1.narrow(0, m0, g));
    }
    at::Tensor hid = part.hidden.narrow(0, 0, g * H);
    at::addmm_out(hid, bcat.unsqueeze(1), wcat, xt);  // [g*H, B]
    hid.relu_();
    at::Tensor logits = part.logits.narrow(0, 0, g);
    at::baddbmm_out(logits, b2.narrow(0, m0, g).unsqueeze(2), w2.narrow(0, m0, g),
                    hid.view({g, H, B}));
    at::Tensor logp = part.logp.narrow(0, 0, g);
    at::log_softmax_out(logp, logits, 1);
    at::Tensor picked = part.picked.narrow(0, 0, g);
    at::gather_out(picked, logp, 1, y.view({1, 1, B}).expand({g, 1, B}));
    at::Tensor sums = part.sums.narrow(0, 0, g);
    at::sum_out(sums, picked, at::IntArrayRef{1, 2}, false, at::kDouble);
    const double* s = sums.data_ptr<double>();
    for (int64_t j = 0; j < g; ++j) out[size_t(m0 + j)] = -s[j] / double(B);
  }
}

// One part of the cnn: member after member, kCnnChunk images at a time.
void FitnessEvaluator::Impl::run_cnn(Part& part, const std::vector<at::Tensor>& v,
                                     const at::Tensor& x, const at::Tensor& y,
                                     std::vector<double>& out) const {
  const at::Tensor &c1w = v[0], &c1b = v[1], &c2w = v[2], &c2b = v[3], &fw = v[4], &fb = v[5];
  const int64_t B = x.size(0), N = std::min(kCnnChunk, B);
  if (part.batch != B) {
    part.rows = at::empty({N, 10, 12, 24}, x.options());
    part.pooled = at::empty({N, 10, 12, 12}, x.options());
    part.cnn_logits = at::empty({N, 10}, x.options());
    part.cnn_logp = at::empty({N, 10}, x.options());
    part.cnn_picked = at::empty({N, 1}, x.options());
    part.cnn_sum = at::empty({}, x.options().dtype(at::kDouble));
    part.batch = B;
  }
  for (int64_t m = part.begin; m < part.end; ++m) {
    const at::Tensor w1 = c1w[m], b1 = c1b[m], w2 = c2w[m], b2 = c2b[m], w3t = fw[m].t(),
                     b3 = fb[m];
    double total = 0;
    for (int64_t i0 = 0; i0 < B; i0 += N) {
      const int64_t n = std::min(N, B - i0);
      const at::Tensor c1 = at::conv2d(x.narrow(0, i0, n), w1, b1);  // [n, 10, 24, 24]
      // max_pool2d(relu(c1), 2) as relu(max(max(rows 2i, 2i+1), columns 2j, 2j+1)): same bits.
      const at::Tensor r = c1.view({n, 10, 12, 2, 24});
      at::Tensor rows = part.rows.narrow(0, 0, n);
      at::maximum_out(rows, r.select(3, 0), r.select(3, 1));  // [n, 10, 12, 24]
      const at::Tensor c = rows.view({n, 10, 12, 12, 2});
      at::Tensor pooled = part.pooled.narrow(0, 0, n);
      at::maximum_out(pooled, c.select(4, 0), c.select(4, 1));  // [n, 10, 12, 12]
      pooled.relu_();
      const at::Tensor c2 = at::conv2d(pooled, w2, b2).relu_();  // [n, 20, 10, 10]
      at::Tensor logits = part.cnn_logits.narrow(0, 0, n);
      at::addmm_out(logits, b3, c2.view({n, 2000}), w3t);
      at::Tensor logp = part.cnn_logp.narrow(0, 0, n);
      at::log_softmax_out(logp, logits, 1);
      at::Tensor picked = part.cnn_picked.narrow(0, 0, n);
      at::gather_out(picked, logp, 1, y.narrow(0, i0, n).view({n, 1}));
      at::sum_out(part.cnn_sum, picked, at::IntArrayRef{0, 1}, false, at::kDouble);
      total += *part.cnn_sum.data_ptr<double>();
    }
    out[size_t(m)] = -total / double(B);
  }
}

FitnessEvaluator::FitnessEvaluator(const AnySwarm& swarm, const std::string& model, int threads,
                                   FitnessStrategy strategy, int64_t begin, int64_t end)
    : impl_(std::make_unique<Impl>()) {
  if (model != "mlp" && model != "cnn")
    throw Error("fitness: unknown model '" + model + "'; the zoo has mlp, cnn");
  if (threads < 1)
    throw Error("fitness: threads must be at least 1 (got " + std::to_string(threads) + ")");
  if (!swarm.detail_state()) throw Error("fitness: use of an empty swarm handle");
  if (strategy == FitnessStrategy::Batched && model != "mlp")
    throw Error("fitness: the Batched strategy is for the mlp only (use MemberThreads for a " +
                model + ")");
  Impl& s = *impl_;
  s.swarm = swarm;
  s.model = model;
  s.threads = threads;
  s.members = swarm.size();
  if (end < 0) end = s.members;
  if (begin < 0 || begin > end || end > s.members)
    throw Error("fitness: member range [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is not within the swarm's " + std::to_string(s.members) + " members");
  s.begin = begin;
  s.end = end;
  s.kind = strategy == FitnessStrategy::Auto
               ? (model == "mlp" ? FitnessStrategy::Batched : FitnessStrategy::MemberThreads)
               : strategy;
  s.layout();
  const int64_t n = end - begin;
  const int64_t nparts =
      s.kind == FitnessStrategy::Loop ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, n));
  for (int64_t p = 0; p < nparts; ++p) {
    Part part;
    part.begin = begin + p * n / nparts;
    part.end = begin + (p + 1) * n / nparts;
    s.parts.push_back(std::move(part));
  }
}

FitnessEvaluator::~FitnessEvaluator() = default;
FitnessEvaluator::FitnessEvaluator(FitnessEvaluator&&) noexcept = default;
FitnessEvaluator& FitnessEvaluator::operator=(FitnessEvaluator&&) noexcept = default;

void FitnessEvaluator::evaluate(const at::Tensor& images, const at::Tensor& labels,
                                std::vector<double>& out) {
  Impl& s = *impl_;
  if (!images.defined() || !labels.defined())
    throw Error("fitness: images and labels must be defined tensors");
  if (images.scalar_type() != at::kFloat || !images.device().is_cpu())
    throw Error("fitness: images must be float32 on the CPU");
  if (labels.scalar_type() != at::kLong || !labels.device().is_cpu())
    throw Error("fitness: labels must be int64 on the CPU");
  const bool image_shape =
      (images.dim() == 4 && images.size(1) == 1 && images.size(2) == 28 && images.size(3) == 28) ||
      (images.dim() == 2 && images.size(1) == 784);
  if (!image_shape || images.size(0) < 1)
    throw Error("fitness: images must be [B, 1, 28, 28] or [B, 784] with B >= 1 (got " +
                shape_text(images.sizes().vec()) + ")");
  const int64_t B = images.size(0);
  if (labels.dim() != 1 || labels.size(0) != B)
    throw Error("fitness: labels must be [" + std::to_string(B) + "] for " + std::to_string(B) +
                " images (got " + shape_text(labels.sizes().vec()) + ")");
  at::NoGradGuard no_grad;
  const auto [lo, hi] = at::aminmax(labels);
  if (lo.item<int64_t>() < 0 || hi.item<int64_t>() > 9)
    throw Error("fitness: labels must be classes 0..9 (got " + std::to_string(lo.item<int64_t>()) +
                ".." + std::to_string(hi.item<int64_t>()) + ")");

  if (s.begin == s.end) {  // a rank that owns no member
    out.clear();
    return;
  }
  ThreadBudget budget(s.threads);
  const at::Tensor storage = s.swarm.storage()[0];  // brings the members to the species' version
  if (s.swarm.version() != s.version) s.layout();
  std::vector<double> result(size_t(s.members));
  int used = 1;

  if (s.kind == FitnessStrategy::Loop) {
    for (int64_t m = s.begin; m < s.end; ++m)
      result[size_t(m)] = at::nll_loss(classify(s.swarm.member(m), images), labels).item<double>();
  } else {
    const at::Tensor x = images.reshape({B, 784}).contiguous();
    const at::Tensor y = labels.contiguous();
    const std::vector<at::Tensor> v = s.views(storage);
    auto run = [&](int64_t p) {
      if (s.model == "mlp")
        s.run_mlp(s.parts[size_t(p)], v, x, y, result);
      else
        s.run_cnn(s.parts[size_t(p)], v, x.view({B, 1, 28, 28}), y, result);
    };
    const int64_t nparts = int64_t(s.parts.size());
    if (nparts == 1) {
      run(0);
      used = 1;
    } else {
      // One part per thread: the ops inside run single-threaded (at::in_parallel_region()).
      std::vector<int> thread_of(size_t(nparts), -1);
      at::parallel_for(0, nparts, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          thread_of[size_t(p)] = at::get_thread_num();
          run(p);
        }
      });
      std::sort(thread_of.begin(), thread_of.end());
      used = int(std::unique(thread_of.begin(), thread_of.end()) - thread_of.begin());
    }
  }
  s.threads_used = used;
  out.assign(result.begin() + s.begin, result.begin() + s.end);
}

std::string FitnessEvaluator::strategy() const {
  const Impl& s = *impl_;
  const std::string over =
      " over " + std::to_string(s.parts.size()) + (s.parts.size() == 1 ? " thread" : " threads");
  switch (s.kind) {
    case FitnessStrategy::Loop:
      return s.model + ": member after member through its module's forward (reference loop)";
    case FitnessStrategy::Batched:
      return s.model + ": members batched, first layers of up to " +
             std::to_string(std::min(s.group, s.parts[0].end - s.parts[0].begin)) +
             " members in one GEMM," + over;
    case FitnessStrategy::MemberThreads:
    case FitnessStrategy::Auto:
      break;
  }
  if (s.model == "cnn")
    return "cnn: members" + over + ", each forward single-threaded on " +
           std::to_string(kCnnChunk) + " images at a time";
  return s.model + ": members" + over + ", each forward single-threaded";
}

FitnessStrategy FitnessEvaluator::strategy_kind() const { return impl_->kind; }

int64_t FitnessEvaluator::members() const { return impl_->members; }

int FitnessEvaluator::threads_used() const { return impl_->threads_used; }

}  // namespace nyto::cli
