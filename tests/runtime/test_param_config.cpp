// Every ParamConfig case of the seeds: operational / non-operational, clone / share.
#include "tests/doctest_torch.h"
#include <nyto/nyto.h>

#include "tests/runtime/models.h"

using nyto::ParamConfig;

TEST_CASE("default config is operational and clone") {
  auto net = nyto::make_particle<NetImpl>();
  for (const auto& p : net.params()) CHECK(p.config == (ParamConfig{true, true}));
}

TEST_CASE("non-operational + clone: not computed, new particles get a copy") {
  auto net = nyto::make_particle<NetImpl>();
  net.set_param_config(false, true, "l1.weight");
  at::Tensor w0 = net->l1->weight.clone();
  auto r = net * 10;
  CHECK(at::equal(r->l1->weight, w0));                        // not computed
  CHECK(ptr(r->l1->weight) != ptr(net->l1->weight));          // a copy
  CHECK(at::allclose(r->l1->bias, net->l1->bias * 10));       // the rest is
  CHECK(r.params()[0].config == (ParamConfig{false, true}));    // shared by the species
  net *= 3;                                                   // in place: unchanged
  CHECK(at::equal(net->l1->weight, w0));
}

TEST_CASE("non-operational + no clone: new particles share the very tensor") {
  auto net = nyto::make_particle<NetImpl>();
  net.set_param_config(false, false, "l2");  // a submodule: both its parameters
  auto r = net + 1;
  CHECK(ptr(r->l2->weight) == ptr(net->l2->weight));
  CHECK(ptr(r->l2->bias) == ptr(net->l2->bias));
  CHECK(ptr(r->l1->weight) != ptr(net->l1->weight));
  // Shared: a change through one shows in the other.
  {
    torch::NoGradGuard g;
    r->l2->bias.fill_(42);
  }
  CHECK(net->l2->bias.item<double>() == 42);
  // Made operational again, the parameter is computed from each particle's own storage.
  net.set_param_config(true, true, "l2");
  auto s = r * 2;
  CHECK(s->l2->bias.item<double>() == 84);
  r += 1;
  CHECK(r->l2->bias.item<double>() == 43);
  CHECK(net->l2->bias.item<double>() == 42);  // no longer shared
}

TEST_CASE("apply_param_config and names") {
  auto net = nyto::make_particle<NetImpl>();
  net.apply_param_config([](const ParamConfig& c) { return ParamConfig{false, c.clone}; }, "l1");
  CHECK_FALSE(net.params()[0].config.operational);
  CHECK_FALSE(net.params()[1].config.operational);
  CHECK(net.params()[2].config.operational);
  net.set_param_config(true, false);  // "" = all
  for (const auto& p : net.params()) CHECK(p.config == (ParamConfig{true, false}));
  std::string msg;
  try {
    net.set_param_config(false, true, "l3");
  } catch (const nyto::NameError& e) {
    msg = e.what();
  }
  CHECK(msg.find("'l3'") != std::string::npos);
  CHECK(msg.find("l1.weight") != std::string::npos);
  // "l" is not a prefix match of "l1": names select whole path components.
  CHECK_THROWS_AS(net.set_param_config(false, true, "l"), nyto::NameError);
  // A throwing fn changes nothing.
  CHECK_THROWS(net.apply_param_config([](const ParamConfig&) -> ParamConfig {
    throw std::runtime_error("no");
  }));
  for (const auto& p : net.params()) CHECK(p.config == (ParamConfig{true, false}));
}

TEST_CASE("configs belong to the species") {
  auto net = nyto::make_particle<NetImpl>();
  auto other = net.clone();
  other.set_param_config(false, true, "l1.bias");
  CHECK_FALSE(net.params()[1].config.operational);
  auto detached = net.detach();  // a new species starts with a copy of the configs
  CHECK_FALSE(detached.params()[1].config.operational);
  detached.set_param_config(true, true);
  CHECK_FALSE(net.params()[1].config.operational);
}
