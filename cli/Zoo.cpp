// The model zoo: mlp (784-H-10) and cnn (the ConvNet of nytorch's documentation example).
#include "cli/Zoo.h"

#include <ATen/ATen.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cli/Limits.h"

namespace nyto::cli {
namespace {

// 784 -> hidden -> 10, ReLU, log-softmax.
struct MlpImpl : torch::nn::Cloneable<MlpImpl>, Classifier {
  explicit MlpImpl(int64_t hidden) : hidden_(hidden) { reset(); }
  void reset() override {
    fc1 = register_module("fc1", torch::nn::Linear(784, hidden_));
    fc2 = register_module("fc2", torch::nn::Linear(hidden_, 10));
  }
  at::Tensor forward(const at::Tensor& images) override {
    at::Tensor x = images.reshape({images.size(0), 784});
    return at::log_softmax(fc2(at::relu(fc1(x))), 1);
  }
  int64_t hidden_;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

// conv 1->10 k5, ReLU, max-pool 2; conv 10->20 k3, ReLU; linear 2000->10; log-softmax.
struct CnnImpl : torch::nn::Cloneable<CnnImpl>, Classifier {
  CnnImpl() { reset(); }
  void reset() override {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 10, 5)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(10, 20, 3)));
    fc = register_module("fc", torch::nn::Linear(2000, 10));
  }
  at::Tensor forward(const at::Tensor& images) override {
    at::Tensor x = images.reshape({images.size(0), 1, 28, 28});
    x = at::max_pool2d(at::relu(conv1(x)), {2, 2});  // [B, 10, 12, 12]
    x = at::relu(conv2(x));                           // [B, 20, 10, 10]
    return at::log_softmax(fc(x.reshape({x.size(0), 2000})), 1);
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc{nullptr};
};

}  // namespace

const std::vector<ZooEntry>& zoo_models() {
  static const std::vector<ZooEntry> models = {
      {"mlp", "784-H-10 perceptron with ReLU (H = --hidden, default 256)"},
      {"cnn", "conv 1->10 k5, ReLU, max-pool 2; conv 10->20 k3, ReLU; linear 2000->10"},
  };
  return models;
}

std::vector<std::string> zoo_model_names() {
  std::vector<std::string> names;
  for (const auto& m : zoo_models()) names.push_back(m.name);
  return names;
}

double param_bytes(const AnyParticle& particle) {
  double bytes = 0;
  for (const auto& t : particle.param_tensors()) bytes += double(t.numel()) * double(t.element_size());
  return bytes;
}

AnyParticle make_model(const std::string& name, const ZooOptions& options) {
  if (name == "mlp") {
    if (options.hidden < 1 || options.hidden > kMaxHidden)
      throw Error("mlp needs a hidden width from 1 to " + std::to_string(kMaxHidden) + " (got " +
                  std::to_string(options.hidden) + ")");
    return AnyParticle::adopt(std::make_shared<MlpImpl>(options.hidden));
  }
  if (name == "cnn") return AnyParticle::adopt(std::make_shared<CnnImpl>());
  std::string known;
  for (const auto& m : zoo_models()) known += (known.empty() ? "" : ", ") + m.name;
  throw Error("unknown model '" + name + "'; the zoo has " + known);
}

Classifier& classifier(const AnyParticle& particle) {
  auto* c = dynamic_cast<Classifier*>(particle.module_ptr().get());
  if (!c) throw Error("the particle's module (" + particle.module_ptr()->name() + ") is not a zoo classifier");
  return *c;
}

at::Tensor classify(const AnyParticle& particle, const at::Tensor& images) {
  return classifier(particle).forward(images);
}

}  // namespace nyto::cli
