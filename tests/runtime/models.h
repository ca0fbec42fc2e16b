// Small modules for the runtime tests.
#pragma once

#include <nyto/particle.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/linear.h>

#include <exception>
#include <functional>
#include <string>

// The message of the E (or derived) that f throws; "" when f returns. Any other exception
// propagates and fails the test.
template <class E = std::exception>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Where a tensor's data is (sharing checks).
inline const void* ptr(const at::Tensor& t) { return t.data_ptr(); }

// Two linear layers: l1 (2 -> 3), l2 (3 -> 1).
struct NetImpl : torch::nn::Cloneable<NetImpl> {
  NetImpl() { reset(); }
  void reset() override {
    l1 = register_module("l1", torch::nn::Linear(2, 3));
    l2 = register_module("l2", torch::nn::Linear(3, 1));
  }
  at::Tensor forward(const at::Tensor& x) { return l2(torch::relu(l1(x))); }
  torch::nn::Linear l1{nullptr}, l2{nullptr};
};

// A module with a float64 parameter next to float32 ones: two storage groups.
struct MixedImpl : torch::nn::Cloneable<MixedImpl> {
  MixedImpl() { reset(); }
  void reset() override {
    a = register_parameter("a", torch::ones({4}));
    b = register_parameter("b", torch::full({2, 2}, 2.0, torch::kFloat64));
    c = register_parameter("c", torch::full({3}, 3.0));
  }
  at::Tensor a, b, c;
};

// A Linear(1, 1) particle with the given weight and bias.
inline nyto::Particle<torch::nn::Linear> linear_particle(double weight, double bias) {
  auto p = nyto::make_particle<torch::nn::Linear>(1, 1);
  torch::NoGradGuard g;
  p->weight.fill_(weight);
  p->bias.fill_(bias);
  return p;
}
