// The seeds' "Version Manager" chapter, translated: structure events, touch(), initiator and
// recipient objects, the local buffer, swarms, rules across a structure change, rollback; and the
// risky structures of the "Particle" chapter.
#include <nyto/nyto.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include "tests/doctest_torch.h"

#include <unistd.h>

#include <cstdio>

#include "runtime/detail.h"
#include "tests/runtime/models.h"

using nyto::AnyParticle;
using nyto::Particle;

namespace {

// The seeds' Linear(w, b): one weight and one bias of one element.
struct WBImpl : torch::nn::Cloneable<WBImpl> {
  WBImpl(double w = 1, double b = 2) : w0(w), b0(b) { reset(); }
  void reset() override {
    weight = register_parameter("weight", torch::full({1}, w0));
    bias = register_parameter("bias", torch::full({1}, b0));
  }
  double w0, b0;
  at::Tensor weight, bias;
};

bool has_param(const AnyParticle& p, const std::string& path) {
  return p.module_ptr()->named_parameters(true).contains(path);
}
bool has_buffer(const AnyParticle& p, const std::string& path) {
  return p.module_ptr()->named_buffers(true).contains(path);
}
const c10::TensorImpl* impl(const at::Tensor& t) { return t.unsafeGetTensorImpl(); }


// Captures warnings for the life of the object.
struct Warnings {
  std::vector<std::string> seen;
  nyto::WarningHandler previous;
  Warnings() {
    previous = nyto::set_warning_handler([this](const std::string& m) { seen.push_back(m); });
  }
  ~Warnings() { nyto::set_warning_handler(previous); }
};

// Makes the runtime throw at a named point of a structure update while alive.
struct Fault {
  explicit Fault(const std::string& where, int skip = 0) {
    nyto::detail::fault_hook = [where, skip](const std::string& at) mutable {
      if (at == where && skip-- == 0) throw std::runtime_error("injected failure at " + at);
    };
  }
  ~Fault() { nyto::detail::fault_hook = nullptr; }
};

}  // namespace

TEST_CASE("removing a parameter: a new version; the other particle follows on touch()") {
  auto net1 = nyto::make_particle<WBImpl>(1.0, 2.0);
  auto net2 = net1.randn();
  int64_t before = net1.version();
  CHECK(before == 0);
  net1.remove("weight");
  CHECK(net1.version() != before);
  CHECK(net1.species()->version() == net1.version());
  CHECK_FALSE(has_param(net1, "weight"));
  CHECK(net1.storage()[0].numel() == 1);
  CHECK(net1->bias.item<double>() == 2);
  // net2 keeps its structure and version until touched.
  CHECK(has_param(net2, "weight"));
  CHECK(net2.version() == before);
  at::Tensor bias2 = net2->bias.detach().clone();
  net2.touch();
  CHECK_FALSE(has_param(net2, "weight"));
  CHECK(net2.version() == net1.version());
  CHECK(at::equal(net2->bias, bias2));  // values survive the re-layout
  CHECK(net2.storage()[0].numel() == 1);
  CHECK(net2.species()->events().back().kind == nyto::StructureEvent::RemoveParameter);
  CHECK(net2.species()->events().back().path == "weight");
}

TEST_CASE("adding a parameter: the initiator keeps its tensor, a recipient gets a copy") {
  auto net1 = nyto::make_particle<WBImpl>(1.0, 2.0);
  auto net2 = net1.randn();
  at::Tensor added = torch::randn({1});
  at::Tensor value = added.detach().clone();
  at::Tensor returned = net1.add_parameter("add_parameter", added);
  net2.touch();
  CHECK(impl(net1.parameter("add_parameter")) == impl(added));  // net1.add_parameter is added
  CHECK(impl(returned) == impl(added));
  CHECK(impl(net2.parameter("add_parameter")) != impl(added));  // net2's is not ...
  CHECK(at::equal(net2.parameter("add_parameter"), added));     // ... but equal
  CHECK(at::equal(added, value));
  // The new parameter lives in the flat storage and takes part in operations.
  REQUIRE(net1.params().size() == 3);
  CHECK(net1.params()[2].path == "add_parameter");
  CHECK(net1.params()[2].config.operational);
  CHECK(net1.storage()[0].numel() == 3);
  CHECK(added.data_ptr() == static_cast<float*>(net1.storage()[0].data_ptr()) + 2);
  auto sum = net1 + net2;
  CHECK(at::allclose(sum.parameter("add_parameter"), value * 2));
  net1 += 1;
  CHECK(at::allclose(added, value + 1));  // in place through the storage shows in the tensor
  CHECK(added.requires_grad());
  CHECK(added.is_leaf());
}

TEST_CASE("adding a module: the initiator keeps it, a recipient gets a clone") {
  auto net1 = nyto::make_particle<WBImpl>(1.0, 2.0);
  auto net2 = net1.randn();
  torch::nn::Linear add_linear(3, 4);
  net1.add_module("add_linear", add_linear);
  net2.touch();
  CHECK(net1.submodule("add_linear").get() == add_linear.ptr().get());
  CHECK(net2.submodule("add_linear").get() != add_linear.ptr().get());
  CHECK(at::equal(net2.parameter("add_linear.weight"), add_linear->weight));
  CHECK(at::equal(net2.parameter("add_linear.bias"), add_linear->bias));
  CHECK(impl(net1.parameter("add_linear.weight")) == impl(add_linear->weight));
  CHECK(net2.params().size() == 4);
  // Typed access through the particle's module still works for the added module.
  auto lin = std::dynamic_pointer_cast<torch::nn::LinearImpl>(net2.submodule("add_linear"));
  REQUIRE(lin);
  CHECK(lin->forward(torch::ones({2, 3})).sizes() == c10::IntArrayRef({2, 4}));
  // New particles carry the added module (LibTorch's clone() alone would refuse the structure).
  auto net3 = net1 * 2;
  CHECK(at::allclose(net3.parameter("add_linear.weight"), add_linear->weight * 2));
  CHECK(net3.submodule("add_linear").get() != add_linear.ptr().get());
  // A removed module is gone for all.
  net2.remove("add_linear");
  net1.touch();
  CHECK_THROWS_AS(net1.submodule("add_linear"), nyto::NameError);
  CHECK(net1.params().size() == 2);
  CHECK(net3.touch().params().size() == 2);
}

TEST_CASE("adding a buffer: every particle holds the very same tensor") {
  auto net1 = nyto::make_particle<WBImpl>(1.0, 2.0);
  auto net2 = net1.randn();
  at::Tensor add_tensor = torch::randn({3, 3});
  net1.register_buffer("add_tensor", add_tensor);
  net2.touch();
  CHECK(impl(net1.buffer("add_tensor")) == impl(add_tensor));
  CHECK(impl(net2.buffer("add_tensor")) == impl(add_tensor));
  CHECK(impl((net1 + 1).buffer("add_tensor")) == impl(add_tensor));
  CHECK(net1.params().size() == 2);  // buffers are not in the flat storage
  net2.remove("add_tensor");
  CHECK_FALSE(has_buffer(net1.touch(), "add_tensor"));
}

TEST_CASE("the running mean: a shared buffer, and set_local_buffer to keep it per particle") {
  // The seeds' MyModule: a layer and a mean buffer. Registered through the particle, the buffer is
  // one tensor for the species, so an update of one particle's mean shows in every particle.
  auto model = nyto::make_particle<torch::nn::Linear>(4, 1);
  model.register_buffer("mean", torch::zeros({1}));
  auto model_clone = model.clone();
  torch::manual_seed(0);
  at::Tensor y = model->forward(torch::randn({10, 4}));
  {
    torch::NoGradGuard g;
    at::Tensor m = model.buffer("mean");
    m.copy_(0.5 * m + 0.5 * y.mean());  // in place: the update every particle sees
  }
  double updated = model.buffer("mean").item<double>();
  CHECK(updated != 0);
  CHECK(model_clone.touch().buffer("mean").item<double>() == updated);

  // The fix: replace this particle's buffer only, with no version event.
  int64_t version = model.version();
  {
    torch::NoGradGuard g;
    at::Tensor m = model.buffer("mean");
    model.set_local_buffer("mean", 0.5 * m + 0.5 * y.mean());
  }
  CHECK(model.version() == version);
  CHECK(model.species()->version() == version);
  CHECK(model.buffer("mean").item<double>() != updated);
  CHECK(model_clone.touch().buffer("mean").item<double>() == updated);
  CHECK_THROWS_AS(model.set_local_buffer("nope", torch::zeros({1})), nyto::NameError);
  CHECK_THROWS_AS(model.set_local_buffer("mean", torch::zeros({2})), nyto::ShapeError);
  // Replacing the buffer through the version manager shares the new tensor again.
  at::Tensor fresh = torch::ones({1});
  model.register_buffer("mean", fresh);
  CHECK(impl(model_clone.touch().buffer("mean")) == impl(fresh));
}

TEST_CASE("particle operations touch their operands first") {
  auto net1 = nyto::make_particle<NetImpl>();
  auto net2 = net1.randn();
  auto net3 = net1.rand();
  net1.add_parameter("l1.extra", torch::full({2}, 5.0));
  CHECK(net2.version() == 0);
  nyto::Particle<NetImpl> r = net2 * 2;  // evaluated here: touches net2
  CHECK(net2.version() == 1);
  CHECK(at::allclose(r.parameter("l1.extra"), torch::full({2}, 10.0)));
  net3 += net2;  // touches net3
  CHECK(at::allclose(net3.parameter("l1.extra"), torch::full({2}, 10.0)));
  // paths follow named_parameters(): the new parameter comes after l1's own two
  CHECK(net1.params()[2].path == "l1.extra");
  CHECK(net1.params()[3].path == "l2.weight");
  // save and load follow the newest version
  std::string file = "/tmp/nyto_test_version_" + std::to_string(::getpid()) + ".pt";
  net3.save(file);
  net2.load(file);
  CHECK(at::equal(net2.storage()[0], net3.storage()[0]));
  std::remove(file.c_str());
  // detach and clone_from work on the new structure
  auto d = net1.detach();
  CHECK(d.version() == net1.version());
  CHECK(impl(d.parameter("l1.extra")) != impl(net1.parameter("l1.extra")));
  CHECK(d.parameter("l1.extra").data_ptr() == net1.parameter("l1.extra").data_ptr());
  auto d2 = d * 3;
  CHECK(at::allclose(d2.parameter("l1.extra"), torch::full({2}, 15.0)));
  auto copy = net1.clone_from(d2);
  CHECK(at::allclose(copy.parameter("l1.extra"), torch::full({2}, 15.0)));
}

TEST_CASE("configs of existing parameters are kept across versions") {
  auto net = nyto::make_particle<NetImpl>();
  net.set_param_config(false, true, "l2");
  auto other = net.clone();
  net.add_parameter("extra", torch::ones({3}));
  CHECK_FALSE(net.params()[net.get_param_id("l2.weight")].config.operational);
  CHECK(net.params()[net.get_param_id("extra")].config.operational);
  at::Tensor l2 = other.touch()->l2->weight.detach().clone();
  other += 1;
  CHECK(at::equal(other->l2->weight, l2));  // still not operational
  CHECK(at::allclose(other.parameter("extra"), torch::full({3}, 2.0)));
}

TEST_CASE("a non-operational parameter shared by the species stays shared across versions") {
  auto net = nyto::make_particle<NetImpl>();
  net.set_param_config(false, false, "l1.weight");
  auto other = net + 1;
  CHECK(other->l1->weight.data_ptr() == net->l1->weight.data_ptr());
  net.add_parameter("extra", torch::ones({1}));
  other.touch();
  CHECK(other->l1->weight.data_ptr() == net->l1->weight.data_ptr());
}

TEST_CASE("swarms follow their species' versions") {
  auto seed = nyto::make_particle<NetImpl>();
  nyto::Swarm<NetImpl> swarm(seed, 3, nyto::SwarmInit::Randn);
  at::Tensor before = swarm.storage()[0].clone();
  int64_t p = before.size(1);
  at::Tensor extra = torch::full({2}, 7.0);
  seed.add_parameter("l2.extra", extra);
  CHECK(swarm.version() == 0);
  CHECK(swarm.storage()[0].size(1) == p + 2);
  CHECK(swarm.version() == 1);
  CHECK(at::equal(swarm.storage()[0].narrow(1, 0, p), before));
  for (int64_t i = 0; i < 3; ++i) {
    auto m = swarm.member(i);
    CHECK(m.version() == 1);
    CHECK(at::equal(m.parameter("l2.extra"), extra));
    CHECK(impl(m.parameter("l2.extra")) != impl(extra));
    CHECK(m.storage()[0].data_ptr() == swarm.storage()[0][i].data_ptr());
    CHECK(m.parameter("l2.extra").data_ptr() ==
          static_cast<float*>(swarm.storage()[0][i].data_ptr()) + p);
  }
  // A member as the initiator: the whole swarm is laid out again as one.
  at::Tensor mine = torch::full({1}, 3.0);
  swarm[1].add_parameter("l2.more", mine);
  CHECK(swarm.version() == 2);  // re-laid out at once, before any touch
  CHECK(swarm.detail_state()->storage[0].size(1) == p + 3);
  CHECK(impl(swarm[1].parameter("l2.more")) == impl(mine));
  CHECK(impl(swarm[0].parameter("l2.more")) != impl(mine));
  CHECK(at::equal(swarm[2].parameter("l2.more"), mine));
  // the initiator's tensor now views its row of the swarm storage (after l2.extra)
  CHECK(mine.data_ptr() == static_cast<float*>(swarm.storage()[0][1].data_ptr()) + p + 2);
  CHECK(at::equal(swarm.storage()[0][1].narrow(0, 0, p), before[1]));
  // The seed is a recipient of the member's event.
  CHECK(seed.touch().params().back().path == "l2.more");
  // Removal and swarm save/load on the new layout.
  seed.remove("l2.extra");
  CHECK(swarm.storage()[0].size(1) == p + 1);
  std::string file = "/tmp/nyto_test_version_swarm_" + std::to_string(::getpid()) + ".pt";
  swarm.save(file);
  nyto::Swarm<NetImpl> other(seed, 3);
  other.load(file);
  CHECK(at::equal(other.storage()[0], swarm.storage()[0]));
  std::remove(file.c_str());
}

TEST_CASE("one compiled rule runs before and after a structure change") {
  auto rule = nyto::compile("x = x*2 + y");
  for (nyto::Backend b : {nyto::Backend::Llvm, nyto::Backend::Interp, nyto::Backend::Aten}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    auto x = nyto::make_particle<NetImpl>();
    auto y = x.rand();
    at::Tensor x0 = x.storage()[0].clone();
    rule.run({{"x", x}, {"y", y}}, opt);
    CHECK(at::allclose(x.storage()[0], x0 * 2 + y.storage()[0]));
    // a parameter in the middle of the storage: every range moves
    y.add_parameter("l1.extra", torch::full({5}, 3.0));
    at::Tensor x1 = x.touch().storage()[0].clone();
    CHECK(at::allclose(x.parameter("l1.extra"), torch::full({5}, 3.0)));
    rule.run({{"x", x}, {"y", y}}, opt);  // x and y are of the newest version
    CHECK(at::allclose(x.parameter("l1.extra"), torch::full({5}, 9.0)));
    CHECK(at::allclose(x.storage()[0], x1 * 2 + y.storage()[0]));
    // a swarm bound to the rule, changed by a member
    nyto::AnySwarm xs(x, 4, nyto::SwarmInit::Randn);
    at::Tensor s0 = xs.storage()[0].clone();
    rule.run({{"x", xs}, {"y", y}}, opt);
    CHECK(at::allclose(xs.storage()[0], s0 * 2 + y.storage()[0].unsqueeze(0)));
    xs.member(2).remove("l1.extra");
    at::Tensor s1 = xs.storage()[0].clone();
    CHECK(s1.size(1) == s0.size(1) - 5);
    auto out = rule.run({{"x", xs}, {"y", y}}, opt);  // y is touched by the run
    CHECK(at::allclose(xs.storage()[0], s1 * 2 + y.storage()[0].unsqueeze(0)));
  }
}

TEST_CASE("a rule run touches a stale operand before binding") {
  auto rule = nyto::compile("z = x + y");
  auto x = nyto::make_particle<NetImpl>();
  auto y = x.rand();
  x.add_parameter("extra", torch::ones({4}));
  CHECK(y.version() == 0);
  auto z = rule.run({{"x", x}, {"y", y}}).at("z").particle();
  CHECK(y.version() == 1);
  CHECK(at::allclose(z.parameter("extra"), torch::full({4}, 2.0)));
}

TEST_CASE("bad input: a nyto::Error that names the path, and nothing changed") {
  auto net = nyto::make_particle<NetImpl>();
  auto other = net.clone();
  const void* storage = net.storage()[0].data_ptr();
  auto check_unchanged = [&] {
    CHECK(net.version() == 0);
    CHECK(net.species()->version() == 0);
    CHECK(net.storage()[0].data_ptr() == storage);
    CHECK(net.params().size() == 4);
    CHECK(net->l1->weight.data_ptr() == storage);
    CHECK(other.touch().version() == 0);
  };
  std::string msg = error_of<nyto::Error>([&] { net.remove("l1.nope"); });
  CHECK(contains(msg, "'l1.nope'"));
  CHECK_THROWS_AS(net.remove("l1.nope"), nyto::NameError);
  CHECK_THROWS_AS(net.remove("l3.weight"), nyto::NameError);
  CHECK_THROWS_AS(net.remove(""), nyto::NameError);
  msg = error_of<nyto::Error>([&] { net.add_parameter("l1.bias", torch::zeros({3})); });
  CHECK(contains(msg, "'l1.bias'"));
  CHECK_THROWS_AS(net.add_parameter("l1.bias", torch::zeros({3})), nyto::NameError);
  msg = error_of<nyto::Error>([&] { net.add_parameter("l1.weight", torch::zeros({2, 2})); });
  CHECK(contains(msg, "'l1.weight'"));
  CHECK(contains(msg, "[3, 2]"));
  CHECK_THROWS_AS(net.add_parameter("l1.weight", torch::zeros({2, 2})), nyto::ShapeError);
  msg = error_of<nyto::Error>([&] { net.add_parameter("l9.extra", torch::zeros({2})); });
  CHECK(contains(msg, "'l9.extra'"));
  CHECK_THROWS_AS(net.add_parameter("l9.extra", torch::zeros({2})), nyto::NameError);
  CHECK_THROWS_AS(net.add_parameter("l1..x", torch::zeros({2})), nyto::NameError);
  CHECK_THROWS_AS(net.add_module("l1", torch::nn::Linear(1, 1)), nyto::NameError);
  check_unchanged();
  CHECK_THROWS_AS(net.register_buffer("l2.weight", torch::zeros({1})), nyto::NameError);
  net.register_buffer("l2.buf", torch::zeros({2}));  // a real change ...
  msg = error_of<nyto::Error>([&] { net.register_buffer("l2.buf", torch::zeros({3})); });
  CHECK(contains(msg, "'l2.buf'"));
  CHECK_THROWS_AS(net.register_buffer("l2.buf", torch::zeros({3})), nyto::ShapeError);
  net.remove("l2.buf");  // ... undone by another
  CHECK(net.version() == 2);
  // A module LibTorch cannot clone: refused before anything changes.
  struct Plain : torch::nn::Module {
    Plain() { register_parameter("p", torch::ones({1})); }
  };
  auto fresh = nyto::make_particle<NetImpl>();
  auto fresh2 = fresh.clone();
  const void* fs = fresh.storage()[0].data_ptr();
  msg = error_of<nyto::Error>([&] { fresh.add_module("plain", std::make_shared<Plain>()); });
  CHECK(contains(msg, "'plain'"));
  CHECK(fresh.version() == 0);
  CHECK(fresh.storage()[0].data_ptr() == fs);
  CHECK_FALSE(fresh.module_ptr()->named_children().contains("plain"));
  CHECK(fresh2.touch().version() == 0);
}

TEST_CASE("a particle whose module was changed outside nyto cannot be reconciled") {
  auto net1 = nyto::make_particle<NetImpl>();
  auto net2 = net1.clone();
  // net2's module gets an 'extra' behind nyto's back, then net1 adds one through nyto.
  net2->l1->register_parameter("extra", torch::ones({1}));
  net1.add_parameter("l1.extra", torch::ones({2}));
  const void* storage = net2.detail_state()->storage[0].data_ptr();
  std::string msg = error_of<nyto::Error>([&] { net2.touch(); });
  CHECK(contains(msg, "'l1.extra'"));
  CHECK_THROWS_AS(net2.touch(), nyto::ShapeError);
  CHECK(net2.version() == 0);
  CHECK(net2.detail_state()->storage[0].data_ptr() == storage);
  CHECK(net2->l1->named_parameters(false).size() == 3);
  // A rule bound to both: the same error, nothing run.
  auto rule = nyto::compile("x = x + y");
  at::Tensor x0 = net1.storage()[0].clone();
  msg = error_of<nyto::Error>([&] { rule.run({{"x", net1}, {"y", net2}}); });
  CHECK(contains(msg, "'l1.extra'"));
  CHECK(at::equal(net1.storage()[0], x0));
  CHECK(net2.version() == 0);
}

TEST_CASE("a structure change that fails part-way is rolled back") {
  auto net = nyto::make_particle<NetImpl>();
  auto other = net.clone();
  nyto::Swarm<NetImpl> swarm(net, 2);
  const void* storage = net.storage()[0].data_ptr();
  at::Tensor values = net.storage()[0].clone();
  std::vector<const void*> ptrs;
  for (const auto& t : net.param_tensors()) ptrs.push_back(t.data_ptr());
  auto check_net_unchanged = [&] {
    CHECK(net.version() == 0);
    CHECK(net.species()->version() == 0);
    CHECK(net.species()->params().size() == 4);
    CHECK(net.detail_state()->storage[0].data_ptr() == storage);
    CHECK(at::equal(net.detail_state()->storage[0], values));
    for (size_t i = 0; i < ptrs.size(); ++i)
      CHECK(net.detail_state()->params[i].data_ptr() == ptrs[i]);
    CHECK_FALSE(has_param(net, "l1.extra"));
    CHECK(net.module_ptr()->named_parameters(true).size() == 4);
  };
  for (const char* where : {"relayout", "repoint"}) {
    CAPTURE(where);
    {
      Fault f(where, /*skip=*/where == std::string("repoint") ? 2 : 0);
      CHECK_THROWS(net.add_parameter("l1.extra", torch::ones({2})));
    }
    check_net_unchanged();
    {
      Fault f(where);
      CHECK_THROWS(net.remove("l1"));
    }
    check_net_unchanged();
    CHECK(net->l1->weight.data_ptr() == storage);
  }
  // A recipient whose touch fails is left at its old version, whole.
  at::Tensor added = torch::ones({2});
  net.add_parameter("l1.extra", added);
  const void* other_storage = other.detail_state()->storage[0].data_ptr();
  for (const char* where : {"replay", "relayout", "repoint"}) {
    CAPTURE(where);
    Fault f(where, where == std::string("repoint") ? 3 : 0);
    CHECK_THROWS(other.touch());
    CHECK(other.version() == 0);
    CHECK(other.detail_state()->storage[0].data_ptr() == other_storage);
    CHECK(other->l1->weight.data_ptr() == other_storage);
    CHECK_FALSE(has_param(other, "l1.extra"));
  }
  CHECK(at::equal(other.touch().parameter("l1.extra"), added));
  // A swarm whose re-layout fails keeps every member at the old version.
  swarm.member(0);  // touched: fine
  net.remove("l1.extra");
  const void* swarm_storage = swarm.detail_state()->storage[0].data_ptr();
  {
    Fault f("repoint", 5);
    CHECK_THROWS(swarm.touch());
  }
  CHECK(swarm.version() == 1);
  CHECK(swarm.detail_state()->storage[0].data_ptr() == swarm_storage);
  for (const auto& m : swarm.detail_state()->members) {
    CHECK(m->version == 1);
    CHECK(m->module->named_parameters(true).contains("l1.extra"));
  }
  CHECK(swarm.touch().version() == 2);
  CHECK_FALSE(has_param(swarm.member(1), "l1.extra"));
}

TEST_CASE("an undo step that throws is reported, not a terminate; the other steps still run") {
  auto net = nyto::make_particle<NetImpl>();
  int undo_failures = 0;
  nyto::detail::fault_hook = [&](const std::string& at) {
    if (at == "relayout") throw std::runtime_error("injected failure at relayout");
    if (at == "rollback" && undo_failures++ == 0) throw std::runtime_error("injected undo failure");
  };
  std::string msg;
  try {
    net.add_parameter("l1.extra", torch::ones({2}));
  } catch (const nyto::Error& e) {
    msg = e.what();
  }
  nyto::detail::fault_hook = nullptr;
  CHECK(msg.find("injected failure at relayout") != std::string::npos);
  CHECK(msg.find("undoing the update failed too (injected undo failure)") != std::string::npos);
  CHECK(undo_failures > 1);  // the steps after the failed one ran
  CHECK(net.species()->version() == 0);
}

TEST_CASE("a module of another particle moves with a warning naming both") {
  Warnings w;
  auto a = nyto::make_particle<NetImpl>();
  auto b = nyto::make_particle<WBImpl>();
  CHECK(nyto::is_root(*a.module_ptr()));
  CHECK_FALSE(nyto::is_root(*a->l1));
  CHECK(a.suspicious_submodules().empty());
  CHECK(w.seen.empty());
  b.add_module("borrowed", a->l1.ptr());
  REQUIRE(w.seen.size() == 1);
  CHECK(contains(w.seen[0], a.species()->name()));
  CHECK(contains(w.seen[0], b.species()->name()));
  CHECK(contains(w.seen[0], "'l1'"));
  CHECK(contains(w.seen[0], "'borrowed'"));
  // the module now belongs to b: a lists it as suspicious
  CHECK((a.suspicious_submodules() == std::vector<std::string>{"l1"}));
  CHECK(b.suspicious_submodules().empty());
  CHECK(b.parameter("borrowed.weight").data_ptr() != a.storage()[0].data_ptr());
  // A silenced handler gets nothing; the old handler comes back.
  auto previous = nyto::set_warning_handler(nullptr);
  auto c = nyto::make_particle<WBImpl>();
  c.add_module("again", b.submodule("borrowed"));
  nyto::set_warning_handler(previous);
  CHECK(w.seen.size() == 1);
  CHECK((b.suspicious_submodules() == std::vector<std::string>{"borrowed"}));
}

TEST_CASE("a module of a live particle wrapped by make_particle_from: warning, is_root moves") {
  Warnings w;
  auto inner = nyto::make_particle<NetImpl>();
  struct Wrap : torch::nn::Cloneable<Wrap> {
    explicit Wrap(std::shared_ptr<NetImpl> n) { net = register_module("net", std::move(n)); }
    void reset() override { net = register_module("net", std::make_shared<NetImpl>()); }
    std::shared_ptr<NetImpl> net;
  };
  CHECK(nyto::is_root(*inner.module_ptr()));
  auto outer = nyto::make_particle<Wrap>(inner.module());
  REQUIRE(w.seen.size() == 1);
  CHECK(contains(w.seen[0], inner.species()->name()));
  CHECK(contains(w.seen[0], outer.species()->name()));
  CHECK_FALSE(nyto::is_root(*inner.module_ptr()));
  CHECK(nyto::is_root(*outer.module_ptr()));
  // inner's whole tree moved: its submodules now point at another particle
  CHECK((inner.suspicious_submodules() == std::vector<std::string>{"l1", "l2"}));
  CHECK((outer.suspicious_submodules().empty()));
}

TEST_CASE("a root module referenced from its own submodule: warning, refused, is_root unchanged") {
  Warnings w;
  auto net = nyto::make_particle<NetImpl>();
  auto other = net.clone();
  std::string msg = error_of<nyto::Error>([&] { net.add_module("l1.root", net.module_ptr()); });
  CHECK(contains(msg, "'l1.root'"));
  REQUIRE(w.seen.size() == 1);
  CHECK(contains(w.seen[0], "root module"));
  CHECK(contains(w.seen[0], "'l1.root'"));
  CHECK(nyto::is_root(*net.module_ptr()));
  CHECK(net.version() == 0);
  CHECK(net.module_ptr()->named_modules().size() == 3);
  CHECK_THROWS_AS(net.add_module("l2.loop", net->l2.ptr()), nyto::Error);
  CHECK_THROWS_AS(net.add_module("alias", net->l2.ptr()), nyto::Error);
  CHECK(w.seen.size() == 1);
  CHECK(other.touch().version() == 0);
}

TEST_CASE("submodule views follow their root's versions; structure changes go through the root") {
  auto net = nyto::make_particle<NetImpl>();
  auto l1 = net.sub<torch::nn::Linear>("l1");
  net.add_parameter("l1.extra", torch::full({2}, 4.0));
  CHECK(l1.params().size() == 3);  // touched: the view is derived again
  CHECK(l1.storage()[0].data_ptr() == net.storage()[0].data_ptr());
  auto twice = l1 * 2;  // a new particle of the changed submodule
  CHECK(at::allclose(twice.parameter("extra"), torch::full({2}, 8.0)));
  CHECK(at::allclose(twice->weight, net->l1->weight * 2));
  l1 *= 0;  // in place on the view writes through to the root
  CHECK(net.parameter("l1.extra").abs().sum().item<double>() == 0);
  CHECK(net.sub("l1").same_species(l1));
  std::string msg = error_of<nyto::Error>([&] { l1.add_parameter("more", torch::ones({1})); });
  CHECK(contains(msg, "'l1.more'"));
  CHECK(net.version() == 1);
  // A view of a view is a view of the root.
  auto net2 = nyto::make_particle<NetImpl>();
  net2.add_module("l1.inner", torch::nn::Linear(1, 2));
  auto inner = net2.sub("l1").sub("inner");
  CHECK(inner.same_species(net2.sub("l1.inner")));
  nyto::AnyParticle inner2 = inner * 3;  // an AnyExpr, evaluated here
  CHECK(at::allclose(inner2.parameter("weight"), net2.parameter("l1.inner.weight") * 3));
  net2.remove("l1.inner");
  CHECK_THROWS_AS(inner.touch(), nyto::NameError);
}

TEST_CASE("a root module registered in its own submodule is refused by make_particle_from") {
  Warnings w;
  auto a = std::make_shared<NetImpl>();
  a->l1->register_module("root", a);  // a cycle, built with LibTorch directly
  std::string msg = error_of<nyto::Error>([&] { (void)nyto::make_particle_from(a); });
  a->l1->unregister_module("root");  // break the cycle again (it would leak)
  CHECK(contains(msg, "'l1.root'"));
  REQUIRE(w.seen.size() == 1);
  CHECK(contains(w.seen[0], "root module"));
  CHECK(nyto::make_particle_from(a).params().size() == 4);
}

TEST_CASE("parameters of another dtype open a storage group; duplicates are refused") {
  auto net = nyto::make_particle<NetImpl>();
  auto other = net.clone();
  net.add_parameter("l2.wide", torch::full({3}, 1.5, torch::kFloat64));
  REQUIRE(net.storage().size() == 2);
  CHECK((net.storage()[1].scalar_type() == at::kDouble));
  auto r = other.touch() * 2;
  CHECK(at::allclose(r.parameter("l2.wide"), torch::full({3}, 3.0, torch::kFloat64)));
  CHECK_THROWS_AS(net.add_parameter("l2.again", net->l1->weight), nyto::Error);
  net.remove("l2.wide");
  CHECK(other.touch().storage().size() == 1);
}

namespace {
// The seeds' LSTMTagger, smaller: a pretrained embedding shared by the species (non-operational,
// clone = false) and a trained classifier.
struct TaggerImpl : torch::nn::Cloneable<TaggerImpl> {
  TaggerImpl() { reset(); }
  void reset() override {
    word_embeddings = register_module("word_embeddings", torch::nn::Embedding(32, 6));
    word_embeddings->weight.set_requires_grad(false);
    hidden2tag = register_module("hidden2tag", torch::nn::Linear(6, 3));
  }
  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Linear hidden2tag{nullptr};
};

// The seeds' MeanRecord: a buffer in a submodule built by reset() is each particle's own.
struct MeanRecordImpl : torch::nn::Cloneable<MeanRecordImpl> {
  MeanRecordImpl() { reset(); }
  void reset() override {
    layer = register_module("layer", torch::nn::Linear(4, 1));
    mean = register_buffer("mean", torch::zeros({1}));
  }
  torch::nn::Linear layer{nullptr};
  at::Tensor mean;
};
}  // namespace

TEST_CASE("the seeds' tagger: a new embedding replaces the old one in every particle") {
  auto net1 = nyto::make_particle<TaggerImpl>();
  net1.set_param_config(false, false, "word_embeddings");
  auto net2 = net1.randn();
  auto net3 = net1.randn();
  CHECK(net2->word_embeddings->weight.data_ptr() == net1->word_embeddings->weight.data_ptr());
  torch::nn::Embedding new_word_embeddings(64, 6);
  new_word_embeddings->weight.set_requires_grad(false);
  net1.remove("word_embeddings");
  net1.add_module("word_embeddings", new_word_embeddings);
  net1.set_param_config(false, false, "word_embeddings");  // a new parameter starts operational
  for (auto* p : {&net2, &net3}) {
    p->touch();
    auto emb = std::dynamic_pointer_cast<torch::nn::EmbeddingImpl>(p->submodule("word_embeddings"));
    REQUIRE(emb);
    CHECK(emb.get() != new_word_embeddings.get());
    CHECK(emb->weight.size(0) == 64);
    CHECK(at::equal(emb->weight, new_word_embeddings->weight));
    CHECK_FALSE(emb->weight.requires_grad());
    CHECK(p->version() == 2);
  }
  CHECK(net1.submodule("word_embeddings").get() == new_word_embeddings.get());
  at::Tensor emb = new_word_embeddings->weight.detach().clone();
  net2 += 1;  // the embedding is no longer operational
  CHECK(at::equal(net2.parameter("word_embeddings.weight"), emb));
  // note: the typed member net2->word_embeddings still holds the module the particle started
  // with; LibTorch members are not registry entries (use submodule() after structure changes)
}

TEST_CASE("the seeds' running mean, solution 1: a buffer of a submodule is each particle's own") {
  auto model = nyto::make_particle<MeanRecordImpl>();
  auto model_clone = model.clone();
  {
    torch::NoGradGuard g;
    model->mean.copy_(0.5 * model->mean + 0.5);
  }
  CHECK(model->mean.item<double>() == 0.5);
  CHECK(model_clone.touch()->mean.item<double>() == 0);
}

TEST_CASE("new particles keep requires_grad(false) of a frozen parameter") {
  auto net = nyto::make_particle<NetImpl>();
  net->l1->weight.set_requires_grad(false);
  CHECK_FALSE((net * 2)->l1->weight.requires_grad());
  CHECK((net * 2)->l1->bias.requires_grad());
  net.add_parameter("extra", torch::ones({1}), /*requires_grad=*/false);
  auto r = net + 1;  // through the prototype and the events
  CHECK_FALSE(r->l1->weight.requires_grad());
  CHECK_FALSE(r.parameter("extra").requires_grad());
}

TEST_CASE("a module changed outside the particle API: new particles fail with a nyto::Error") {
  auto m = std::make_shared<NetImpl>();
  m->l1->register_parameter("late", torch::ones({1}));  // not in reset(): clone() refuses
  auto p = nyto::make_particle_from(m);
  CHECK(p.params().size() == 5);
  std::string msg = error_of<nyto::Error>([&] { (void)(p * 2).eval(); });
  CHECK(contains(msg, "cannot make a new particle"));
  CHECK_THROWS_AS((void)p.clone(), nyto::Error);
}

TEST_CASE("the species does not keep a dead initiator's storage alive; recipients still follow") {
  auto net2 = nyto::make_particle<NetImpl>();
  c10::weak_intrusive_ptr<c10::StorageImpl> storage(c10::intrusive_ptr<c10::StorageImpl>{});
  {
    auto net1 = net2.clone();
    net1.add_parameter("extra", torch::full({3}, 2.0));
    net1.add_module("lin", torch::nn::Linear(2, 2));
    {
      torch::NoGradGuard g;
      net1.parameter("extra").fill_(5);  // recipients copy the value when they touch
    }
    storage = net1.storage()[0].storage().getWeakStorageImpl();
    CHECK_FALSE(storage.expired());
  }
  CHECK(storage.expired());
  net2.touch();
  // the initiator is gone: the value it had when it added the parameter
  CHECK(at::allclose(net2.parameter("extra"), torch::full({3}, 2.0)));
  CHECK(net2.parameter("lin.weight").sizes() == c10::IntArrayRef({2, 2}));
  auto live = net2.clone();
  net2.add_parameter("more", torch::ones({1}));
  {
    torch::NoGradGuard g;
    net2.parameter("more").fill_(7);
  }
  CHECK(live.touch().parameter("more").item<double>() == 7);  // the initiator lives: its value now
}
