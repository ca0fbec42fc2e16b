// The model zoo: shapes, species, and SGD on swarm members writing the swarm's storage.
#include "tests/doctest_torch.h"

#include <ATen/ATen.h>
#include <nyto/swarm.h>
#include <torch/optim/sgd.h>

#include "cli/Zoo.h"

using nyto::cli::classify;
using nyto::cli::make_model;

static nyto::cli::ZooOptions hidden(int64_t h) {
  nyto::cli::ZooOptions o;
  o.hidden = h;
  return o;
}

TEST_CASE("zoo: every model maps images to 10 log-probabilities") {
  at::manual_seed(0);
  at::Tensor x = at::rand({3, 1, 28, 28});
  for (const auto& name : nyto::cli::zoo_model_names()) {
    auto p = make_model(name);
    at::Tensor y = classify(p, x);
    CHECK(y.sizes() == at::IntArrayRef({3, 10}));
    CHECK(y.exp().sum(1).allclose(at::ones({3})));
  }
  // The ConvNet of nytorch's example: 260 + 1820 + 20010 parameters.
  CHECK(make_model("cnn").storage()[0].numel() == 260 + 1820 + 20010);
  CHECK(make_model("mlp").storage()[0].numel() == 784 * 256 + 256 + 256 * 10 + 10);
  CHECK(make_model("mlp", hidden(32)).storage()[0].numel() == 784 * 32 + 32 + 32 * 10 + 10);
}

TEST_CASE("zoo: unknown names and bad options name the problem") {
  CHECK_THROWS_WITH_AS(make_model("resnet"), doctest::Contains("unknown model 'resnet'"), nyto::Error);
  CHECK_THROWS_WITH_AS(make_model("mlp", hidden(0)), doctest::Contains("hidden"), nyto::Error);
}

TEST_CASE("zoo: an SGD step on a swarm member's module changes that member's row only") {
  at::manual_seed(1);
  auto seed = make_model("mlp", hidden(8));
  nyto::AnySwarm swarm(seed, 3);
  at::Tensor before = swarm.storage()[0].clone();
  auto m1 = swarm.member(1);
  torch::optim::SGD opt(m1.module_ptr()->parameters(), torch::optim::SGDOptions(0.1));
  at::Tensor loss = at::nll_loss(classify(m1, at::rand({4, 784})), at::tensor({1, 2, 3, 4}, at::kLong));
  loss.backward();
  opt.step();
  at::Tensor after = swarm.storage()[0];
  CHECK(after[0].equal(before[0]));
  CHECK(after[2].equal(before[2]));
  CHECK_FALSE(after[1].equal(before[1]));
}
