// Shared by the bench programs that go through the public API: the MLPs they run on and the
// median-of-samples timer.
#pragma once

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace nyto::bench {

/// An MLP of Linear layers of these widths with ReLU between them.
inline torch::nn::Sequential mlp(const std::vector<int64_t>& widths) {
  torch::nn::Sequential m;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    m->push_back(torch::nn::Linear(widths[i], widths[i + 1]));
    if (i + 2 < widths.size()) m->push_back(torch::nn::ReLU());
  }
  return m;
}

/// The swarms the API benches run on: "big", 32 MLPs 784-1024-256-10 (1,068,810 float32
/// parameters each), and "tiny", 8 MLPs 4-16-3 (131).
struct SwarmSize {
  const char* name;
  int64_t members;
  std::vector<int64_t> widths;
};
inline const std::vector<SwarmSize>& swarm_sizes() {
  static const std::vector<SwarmSize> sizes = {{"big", 32, {784, 1024, 256, 10}}, {"tiny", 8, {4, 16, 3}}};
  return sizes;
}

/// Median over `samples` of the mean time of `batch` calls of fn, in ms (one call first, untimed).
inline double median_ms(const std::function<void()>& fn, int samples, int batch) {
  using Clock = std::chrono::steady_clock;
  fn();
  std::vector<double> t;
  for (int s = 0; s < samples; ++s) {
    auto t0 = Clock::now();
    for (int b = 0; b < batch; ++b) fn();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / batch);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace nyto::bench
