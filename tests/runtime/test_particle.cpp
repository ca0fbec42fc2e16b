// The seeds' "Particle operation" chapter, translated, and the flat-storage contract.
#include "tests/doctest_torch.h"
#include <nyto/nyto.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/sgd.h>

#include "tests/runtime/models.h"

using nyto::AnyParticle;
using nyto::Particle;

namespace {
// The seeds' example model: one weight 2 and one bias 1.
Particle<torch::nn::Linear> seed_linear() { return linear_particle(2, 1); }
double w(const Particle<torch::nn::Linear>& p) { return p->weight.item<double>(); }
double b(const Particle<torch::nn::Linear>& p) { return p->bias.item<double>(); }
}  // namespace

TEST_CASE("net + 10 adds to every parameter and leaves the operand alone") {
  auto net = seed_linear();
  auto net2 = net + 10;
  CHECK(w(net2) == 12);
  CHECK(b(net2) == 11);
  CHECK(w(net) == 2);
  CHECK(b(net) == 1);
  CHECK(net2.same_species(net));
}

TEST_CASE("scalar operations, reflected forms, unary and pow") {
  auto net = seed_linear();
  CHECK(w(net - 1) == 1);
  CHECK(w(net * 3) == 6);
  CHECK(w(net / 4) == 0.5);
  CHECK(w(10 - net) == 8);
  CHECK(b(10 - net) == 9);
  CHECK(w(2 / net) == 1);
  CHECK(b(2 / net) == 2);
  CHECK(w(3 * net) == 6);
  CHECK(w(1 + net) == 3);
  CHECK(w(-net) == -2);
  CHECK(w(+net) == 2);
  CHECK(ptr((+net)->weight) != ptr(net->weight));
  CHECK(w(nyto::pow(net, 2)) == 4);
  CHECK(b(nyto::pow(net, 2)) == 1);
  CHECK(w(nyto::pow(2, net)) == 4);
  CHECK(b(nyto::pow(2, net)) == 2);
  CHECK(w(0.5 * net + 10) == 11);
}

TEST_CASE("operations between particles of one species") {
  auto net = seed_linear();
  auto twice = net + net;
  CHECK(w(twice) == 4);
  CHECK(b(twice) == 2);
  auto three = net * 3;
  CHECK(w(three - net) == 4);
  CHECK(w(three * net) == 12);
  CHECK(w(three / net) == 3);
  CHECK(w(nyto::pow(three, net)) == 36);
  CHECK(b(nyto::pow(three, net)) == 3);
}

TEST_CASE("in-place operations modify the particle") {
  auto net = seed_linear();
  const void* before = ptr(net->weight);
  net += 1;
  CHECK(w(net) == 3);
  net *= 2;
  CHECK(w(net) == 6);
  net -= 1;
  net /= 5;
  CHECK(w(net) == 1);
  CHECK(b(net) == doctest::Approx(0.6));
  auto other = net.clone();
  net += other;
  CHECK(w(net) == 2);
  net *= other;
  net -= other;
  net /= other;
  CHECK(w(net) == 1);
  CHECK(ptr(net->weight) == before);  // same storage
}

TEST_CASE("different species: SpeciesError naming both, operands unchanged") {
  auto a = seed_linear();
  auto c = seed_linear();
  std::string msg;
  try {
    (void)(a + c);
  } catch (const nyto::SpeciesError& e) {
    msg = e.what();
  }
  CHECK(msg.find(a.species()->name()) != std::string::npos);
  CHECK(msg.find(c.species()->name()) != std::string::npos);
  CHECK_THROWS_AS(a += c, nyto::SpeciesError);
  CHECK_THROWS_AS((void)nyto::pow(a, c), nyto::SpeciesError);
  CHECK(w(a) == 2);
  CHECK(w(c) == 2);
}

TEST_CASE("clone copies, detach shares the tensors under a new species") {
  auto net = seed_linear();
  auto cl = net.clone();
  CHECK(cl.same_species(net));
  CHECK(ptr(cl->weight) != ptr(net->weight));
  CHECK(cl.storage()[0].data_ptr() != net.storage()[0].data_ptr());
  CHECK(w(cl) == 2);

  auto de = net.detach();
  CHECK_FALSE(de.same_species(net));
  CHECK(ptr(de->weight) == ptr(net->weight));
  CHECK(de.storage()[0].data_ptr() == net.storage()[0].data_ptr());
  de += 1;  // shows in net: same tensors
  CHECK(w(net) == 3);
  CHECK_THROWS_AS((void)(de + net), nyto::SpeciesError);
  CHECK(w(de * 2) == 6);
}

TEST_CASE("clone_from copies another species' values; other structures are a ShapeError") {
  auto net = seed_linear();
  auto other = nyto::make_particle<torch::nn::Linear>(1, 1);
  auto copy = net.clone_from(other);
  CHECK(copy.same_species(net));
  CHECK(w(copy) == other->weight.item<double>());
  CHECK(ptr(copy->weight) != ptr(other->weight));

  auto wide = nyto::make_particle<torch::nn::Linear>(2, 1);
  std::string msg;
  try {
    (void)net.clone_from(wide);
  } catch (const nyto::ShapeError& e) {
    msg = e.what();
  }
  CHECK(msg.find("'weight'") != std::string::npos);
  CHECK(msg.find("[1, 1]") != std::string::npos);
  CHECK(msg.find("[1, 2]") != std::string::npos);

  auto deep = nyto::make_particle<NetImpl>();
  CHECK_THROWS_AS((void)net.clone_from(deep), nyto::ShapeError);
}

TEST_CASE("rand and randn") {
  auto big = nyto::make_particle<torch::nn::Linear>(1000, 1000);
  torch::manual_seed(1);
  auto n = big.randn();
  CHECK(n.same_species(big));
  at::Tensor flat = n.storage()[0];
  CHECK(flat.mean().item<double>() == doctest::Approx(0.0).epsilon(0.01).scale(1));
  CHECK(flat.std().item<double>() == doctest::Approx(1.0).epsilon(0.01));
  auto u = big.rand();
  at::Tensor uf = u.storage()[0];
  CHECK(uf.min().item<double>() >= 0.0);
  CHECK(uf.max().item<double>() < 1.0);
  CHECK(uf.mean().item<double>() == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("flat storage: module parameters are views, both ways") {
  auto net = nyto::make_particle<NetImpl>();
  REQUIRE(net.storage().size() == 1);
  CHECK(net.storage()[0].numel() == 2 * 3 + 3 + 3 * 1 + 1);
  CHECK(net.params()[0].path == "l1.weight");
  CHECK(net.params()[3].path == "l2.bias");
  CHECK(net.params()[2].offset == 9);

  // An optimizer step through the module changes the flat storage.
  at::Tensor before = net.storage()[0].clone();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  at::Tensor x = torch::randn({8, 2});
  auto loss = net->forward(x).pow(2).mean();
  opt.zero_grad();
  loss.backward();
  CHECK(net->l2->bias.grad().defined());
  opt.step();
  CHECK_FALSE(at::equal(before, net.storage()[0]));
  CHECK(at::equal(net.storage()[0].narrow(0, 9, 3), net->l2->weight.detach().flatten()));

  // A particle operation on the storage shows through the module's parameters.
  net *= 0;
  CHECK(net->l1->weight.abs().sum().item<double>() == 0);
  CHECK(net->parameters()[0].is_leaf());
  CHECK(net->parameters()[0].requires_grad());
}

TEST_CASE("submodule operations make an independent particle of a new species") {
  auto net = nyto::make_particle<NetImpl>();
  auto l1 = net.sub<torch::nn::Linear>("l1");
  CHECK_FALSE(l1.same_species(net));
  CHECK(l1.params().size() == 2);
  CHECK(l1.params()[0].path == "weight");
  at::Tensor root_before = net.storage()[0].clone();
  auto doubled = l1 * 2;
  CHECK(at::allclose(doubled->weight, net->l1->weight * 2));
  doubled += 1;
  CHECK(at::equal(net.storage()[0], root_before));  // the root is untouched
  // Two views of the same submodule share one species.
  CHECK(net.sub("l1").same_species(l1));
  CHECK_FALSE(net.sub("l2").same_species(l1));
  // In place on the view writes through to the root, as in the seeds.
  l1 *= 0;
  CHECK(net->l1->weight.abs().sum().item<double>() == 0);
  CHECK(net->l2->weight.abs().sum().item<double>() > 0);
  CHECK_THROWS_AS(net.sub("l3"), nyto::NameError);
}

TEST_CASE("two storage groups for two dtypes") {
  auto m = nyto::make_particle<MixedImpl>();
  REQUIRE(m.storage().size() == 2);
  CHECK(m.storage()[0].numel() == 7);
  CHECK((m.storage()[1].scalar_type() == at::kDouble));
  auto r = m * 2 + 1;
  CHECK(r->a[0].item<double>() == 3);
  CHECK(r->b[0][0].item<double>() == 5);
  CHECK((r->b.scalar_type() == at::kDouble));
  CHECK(r->c[2].item<double>() == 7);
}

TEST_CASE("get_param_id and the parameter list") {
  auto net = nyto::make_particle<NetImpl>();
  CHECK(net.get_param_id("l1.bias") == 1);
  CHECK(net.get_param_id(net->l2->weight) == 2);
  CHECK_THROWS_AS(net.get_param_id("l1.nope"), nyto::NameError);
  CHECK_THROWS_AS(net.get_param_id("l1"), nyto::NameError);
  CHECK_THROWS_AS(net.get_param_id(torch::zeros({1})), nyto::NameError);
  CHECK((net.params()[2].shape == std::vector<int64_t>{1, 3}));
  CHECK((net.params()[2].dtype == at::kFloat));
}

TEST_CASE("an empty handle is an error, not a crash") {
  Particle<NetImpl> empty;
  CHECK_THROWS_AS((void)empty.clone(), nyto::Error);
}

TEST_CASE("a module with an unset optional parameter (Linear without bias)") {
  auto net = nyto::make_particle<torch::nn::Linear>(torch::nn::LinearOptions(2, 3).bias(false));
  CHECK(net.params().size() == 1);
  auto r = net * 2;
  CHECK(at::allclose(r->weight, net->weight * 2));
  CHECK_FALSE(r->bias.defined());
}

TEST_CASE("custom operators: unary_operator and binary_operator, as in the seeds") {
  auto net = seed_linear();
  net.set_param_config(false, true, "bias");
  auto clipped = net.unary_operator([&](const at::Tensor& p, const nyto::ParamConfig& c) {
    CHECK(c.operational);
    CHECK_FALSE(p.requires_grad());  // run under no-grad
    return p.clamp(0, 1.5);
  });
  CHECK(w(clipped) == 1.5);
  CHECK(b(clipped) == 1);  // non-operational: not computed
  CHECK(clipped.same_species(net));
  auto other = net * 3;
  nyto::Particle<torch::nn::Linear> mx = net.binary_operator(
      other, [](const at::Tensor& a, const at::Tensor& o, const nyto::ParamConfig&) { return at::maximum(a, o); });
  CHECK(w(mx) == 6);
  CHECK_THROWS_AS(net.binary_operator(seed_linear(), [](const at::Tensor& a, const at::Tensor&,
                                                        const nyto::ParamConfig&) { return a; }),
                  nyto::SpeciesError);
  std::string msg;
  try {
    net.unary_operator([](const at::Tensor&, const nyto::ParamConfig&) { return at::zeros({3}); });
  } catch (const nyto::ShapeError& e) {
    msg = e.what();
  }
  CHECK(msg.find("'weight'") != std::string::npos);
  CHECK(w(net) == 2);
}

namespace {
// Linear(3, 4), BatchNorm1d(4) (eval mode, running_mean 5), Linear(4, 2), as a particle.
AnyParticle norm_net() {
  torch::manual_seed(3);
  torch::nn::Sequential s(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4), torch::nn::Linear(4, 2));
  auto x = nyto::make_particle_from(s.ptr());
  at::NoGradGuard no_grad;
  x.module_ptr()->named_buffers()["1.running_mean"].fill_(5);
  x.module_ptr()->modules()[2]->eval();
  return x;
}
}  // namespace

TEST_CASE("a dead particle's module serves the next new one, with that particle's values, buffers and modes") {
  AnyParticle x = norm_net();
  std::weak_ptr<torch::nn::Module> was;
  {
    AnyParticle r = x.clone();
    was = r.module_ptr();
  }  // nothing else holds r's module: emptied, kept by the species
  REQUIRE_FALSE(was.expired());
  AnyParticle y = x * 2;  // a lazy expression's result
  CHECK(y.module_ptr() == was.lock());
  auto xp = x.param_tensors(), yp = y.param_tensors();
  const char* lo = static_cast<const char*>(y.storage()[0].data_ptr());
  const char* hi = lo + y.storage()[0].nbytes();
  for (size_t i = 0; i < xp.size(); ++i) {
    CHECK(at::equal(yp[i], xp[i] * 2));
    const char* p = static_cast<const char*>(yp[i].data_ptr());
    CHECK((p >= lo && p < hi));  // a view of y's own storage
  }
  auto xb = x.module_ptr()->named_buffers(), yb = y.module_ptr()->named_buffers();
  CHECK(at::equal(yb["1.running_mean"], xb["1.running_mean"]));
  CHECK(yb["1.running_mean"].data_ptr() != xb["1.running_mean"].data_ptr());  // a copy
  CHECK(y.module_ptr()->is_training());
  CHECK_FALSE(y.module_ptr()->modules()[2]->is_training());
  // And y's module is y's alone: changing y leaves x.
  const at::Tensor x0 = x.param_tensors()[0].clone();
  {
    at::NoGradGuard no_grad;
    y.storage()[0].add_(1);
  }
  CHECK(at::equal(x0 * 2 + 1, y.param_tensors()[0]));
  CHECK(at::equal(x0, x.param_tensors()[0]));
}

TEST_CASE("a module or parameter held outside the particle, or with a gradient, is never recycled") {
  AnyParticle x = norm_net();
  std::weak_ptr<torch::nn::Module> was;
  std::shared_ptr<torch::nn::Module> kept;
  {
    AnyParticle r = x.clone();
    kept = r.module_ptr();
  }
  AnyParticle y = x.clone();
  CHECK(y.module_ptr() != kept);
  CHECK(at::equal(kept->parameters()[0], x.param_tensors()[0]));  // untouched: not emptied
  at::Tensor held;
  {
    AnyParticle r = x.clone();
    was = r.module_ptr();
    held = r.param_tensors()[0];
  }
  CHECK(was.expired());
  CHECK(at::equal(held, x.param_tensors()[0]));
  {
    AnyParticle r = x.clone();
    was = r.module_ptr();
    r.param_tensors()[1].mutable_grad() = torch::ones_like(r.param_tensors()[1]);
  }
  CHECK(was.expired());
}
