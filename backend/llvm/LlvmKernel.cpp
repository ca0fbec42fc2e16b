#include "backend/llvm/LlvmKernel.h"

#include <ATen/Parallel.h>

#include <stdexcept>
#include <algorithm>
#include <numeric>
#include <string>

#include "backend/Random.h"
#include "ir/ParamAxis.h"

namespace nyto::llvm_backend {

namespace {
// Elements per work item, which is also the most a run does inline on the calling thread. 32K
// elements (128 KiB per float array, a few per L2) for streaming kernels: far more work than the
// pool's dispatch, small enough to balance 32 members over 2+ threads. A kernel that draws or calls
// a transcendental function costs several times more per element (PSO's two rand(): 0.6 ns on the
// Intel Xeon, where the pool's dispatch is 2-3 us), so a quarter of that, in whole Philox blocks:
// on 32 members x 256-1024 elements, 2 threads then took 13-38% less time than one, where the
// 32K threshold kept them inline.
int64_t default_chunk(const ir::Graph& g, const KernelSpec& spec, int loop_width) {
  const int64_t streaming = int64_t(loop_width) * 1024;
  if (spec.has_chunk_outputs()) return streaming;  // a multiple of the 1024 of a chunk output
  if (std::none_of(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) {
        return ir::is_element_draw(n.op) || (ir::is_transcendental(n.op) && n.type.element);
      }))
    return streaming;
  // Items start at whole blocks of draws, so none pays for a partial block at both ends.
  const int64_t unit = std::lcm(int64_t(loop_width), int64_t(rng::block_elems(spec.dtype == DType::F64)));
  return std::max<int64_t>(1, streaming / 4 / unit) * unit;
}
}  // namespace

LlvmKernel::LlvmKernel(KernelFn fn, const ir::Graph& graph, const KernelSpec& spec, int loop_width,
                       std::shared_ptr<void> keep_alive, std::function<void()> release, TierUp tier_up)
    : fn_(fn),
      n_inputs_(graph.inputs.size()),
      n_outputs_(graph.outputs.size()),
      n_params_(graph.params.size()),
      kinds_(spec.kinds),
      loop_width_(loop_width),
      chunked_(spec.has_chunk_outputs()),
      window_(std::none_of(graph.nodes.begin(), graph.nodes.end(),
                           [](const ir::Node& n) { return ir::crosses_members(n.op); })),
      chunk_(default_chunk(graph, spec, loop_width)),
      keep_alive_(std::move(keep_alive)),
      release_(std::move(release)),
      pending_(bool(tier_up.compile)),
      tier_up_(std::move(tier_up)) {}

LlvmKernel::~LlvmKernel() {
  if (tier_release_) tier_release_();
  if (release_) release_();
}

KernelFn LlvmKernel::function_for(int64_t elements) const {
  if (!pending_.load(std::memory_order_acquire)) return fn_.load(std::memory_order_acquire);
  std::lock_guard<std::mutex> lock(tier_mu_);
  if (pending_.load(std::memory_order_relaxed)) {
    tier_seen_ += elements;
    if (tier_seen_ >= tier_up_.after_elements) {
      try {
        auto [fn, release] = tier_up_.compile();
        tier_release_ = std::move(release);
        fn_.store(fn, std::memory_order_release);
        tiered_.store(true, std::memory_order_release);
      } catch (const std::exception&) {
        // The first tier computes the same values: it keeps running.
      }
      pending_.store(false, std::memory_order_release);
    }
  }
  return fn_.load(std::memory_order_acquire);
}

void LlvmKernel::set_chunk_elements(int64_t n) {
  // Loop widths are powers of two up to 128, so they divide the 1024 of a chunk.
  const int64_t unit = chunked_ ? std::max<int64_t>(loop_width_, ir::kParamChunk) : loop_width_;
  chunk_ = std::max<int64_t>(1, n / unit) * unit;
}

namespace {
struct Item {
  int64_t member, begin, end, slot;
};
}  // namespace

void LlvmKernel::run(const KernelArgs& a) const {
  auto bad = [](const std::string& what) { throw std::invalid_argument("nyto kernel arguments: " + what); };
  if (a.in.size() != n_inputs_ || a.in_stride.size() != n_inputs_ || a.scalar.size() != n_inputs_)
    bad("expected " + std::to_string(n_inputs_) + " inputs (in, in_stride, scalar)");
  if (a.out.size() != n_outputs_ || a.out_stride.size() != n_outputs_)
    bad("expected " + std::to_string(n_outputs_) + " outputs");
  if (a.params.size() != n_params_) bad("expected " + std::to_string(n_params_) + " params");
  for (size_t i = 0; i < n_inputs_; ++i)
    if (kinds_[i] != BindKind::Scalar && a.in[i] == nullptr) bad("input " + std::to_string(i) + " is null");
  for (size_t o = 0; o < n_outputs_; ++o)
    if (a.out[o] == nullptr) bad("output " + std::to_string(o) + " is null");
  if (a.members < 0) bad("negative member count");
  const int64_t m0 = a.member_begin, m1 = a.member_end < 0 ? a.members : a.member_end;
  if ((m0 != 0 || m1 != a.members) && !window_) bad("a member window for a kernel whose members read each other");
  if (m0 < 0 || m1 < m0 || m1 > a.members) bad("member window outside [0, members]");
  FlatArgs flat{a.in.data(),  a.in_stride.data(),  a.scalar.data(), a.params.data(),
                a.out.data(), a.out_stride.data(), a.seed,          a.invocation,
                a.group, a.members};
  int64_t total = 0;
  for (auto& r : a.ranges) {
    if (r.first < 0 || r.second < r.first) bad("bad element range");
    total += r.second - r.first;
  }
  total *= m1 - m0;
  if (total == 0) return;
  const KernelFn fn = function_for(total);
  // A chunk output's row holds the chunks of every range, one after another: each range starts
  // at the slot after the previous range's last chunk (kernels without such outputs ignore the
  // slot).
  constexpr int64_t C = ir::kParamChunk;
  auto chunks = [](const std::pair<int64_t, int64_t>& r) { return (r.second - r.first + C - 1) / C; };
  // Small work: run inline, the pool's wake-up would cost more than the work (pso-tiny).
  if (total <= chunk_ || at::get_num_threads() == 1) {
    for (int64_t m = m0; m < m1; ++m) {
      int64_t slot = 0;
      for (auto& r : a.ranges) {
        fn(&flat, m, r.first, r.second, slot);
        slot += chunks(r);
      }
    }
    return;
  }
  // Chunk boundaries at begin + k*chunk: a vector-width multiple from each range start, so only
  // a range's last chunk has a scalar tail (and, with chunk outputs, a multiple of the 1024 of a
  // chunk: no chunk is split). Results never depend on where chunks fall.
  std::vector<Item> items;
  for (int64_t m = m0; m < m1; ++m) {
    int64_t slot = 0;
    for (auto& r : a.ranges) {
      for (int64_t b = r.first; b < r.second; b += chunk_)
        items.push_back({m, b, std::min(r.second, b + chunk_), slot + (b - r.first) / C});
      slot += chunks(r);
    }
  }
  at::parallel_for(0, int64_t(items.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) fn(&flat, items[i].member, items[i].begin, items[i].end, items[i].slot);
  });
}

}  // namespace nyto::llvm_backend
