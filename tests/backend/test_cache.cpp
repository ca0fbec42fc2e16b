// KernelCache: one compile per (structure, spec, backend), thread-safe, exact keys.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "backend/KernelCache.h"
#include "backend/llvm/LlvmBackend.h"
#include "tests/backend/Rules.h"

using namespace nyto;

namespace {
KernelSpec pso_spec(DType dt = DType::F32) {
  return {dt, {BindKind::Swarm, BindKind::Swarm, BindKind::Swarm, BindKind::Particle}};
}
}  // namespace

TEST_CASE("cache: same rule and binding compile once; other spec/structure compile again") {
  KernelCache cache;
  auto k1 = cache.get(test::pso_graph(), pso_spec());
  auto k2 = cache.get(test::pso_graph(), pso_spec());
  CHECK((k1 == k2));
  CHECK((cache.stats().misses == 1));
  CHECK((cache.stats().hits == 1));
  auto k3 = cache.get(test::pso_graph(), pso_spec(DType::F64));
  CHECK((k3 != k1));
  KernelSpec particle_x = pso_spec();
  particle_x.kinds[0] = BindKind::Particle;
  CHECK((cache.get(test::pso_graph(), particle_x) != k1));
  // A different constant is a different kernel; different names/defaults are not.
  ir::Graph g = test::pso_graph();
  g.params[0].default_value = 0.5;
  g.inputs[0].name = "position";
  CHECK((cache.get(g, pso_spec()) == k1));
  CHECK((structural_hash(g) == structural_hash(test::pso_graph())));
  ir::Graph h;
  h.inputs = {{"x"}};
  ir::Builder b(h);
  h.outputs = {{"y", b.binary(ir::Op::Mul, b.input(0, ir::Type::Elem), b.constant(0.5)), -1}};
  ir::Graph h2 = h;
  for (auto& n : h2.nodes)
    if (n.op == ir::Op::Const) n.value = 0.25;
  CHECK((structural_hash(h) != structural_hash(h2)));
  KernelSpec s1{DType::F32, {BindKind::Particle}};
  CHECK((cache.get(h, s1) != cache.get(h2, s1)));
  CHECK((cache.stats().misses == 5));
  CHECK_THROWS_AS(cache.get(h, s1, Backend::Aten), std::invalid_argument);
  auto ki = cache.get(h, s1, Backend::Interp);  // built in
  CHECK((ki != cache.get(h, s1)));
  CHECK((ki == cache.get(h, s1, Backend::Interp)));
  cache.set_factory(Backend::Aten, [&](const ir::Graph& gg, const KernelSpec& ss) {
    return llvm_backend::compile(cache.jit(), gg, ss);  // any Kernel will do for the test
  });
  CHECK((cache.get(h, s1, Backend::Aten) != cache.get(h, s1)));
}

TEST_CASE("cache: concurrent requests for one key compile once") {
  KernelCache cache;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<const Kernel>> got(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { got[i] = cache.get(test::pso_graph(), pso_spec()); });
  for (auto& t : threads) t.join();
  for (auto& k : got) CHECK((k == got[0]));
  CHECK((cache.stats().misses == 1));
  CHECK((cache.stats().hits == 3));
}

TEST_CASE("cache: kernels outlive the cache and its JIT owner; default cache shuts down") {
  std::shared_ptr<const Kernel> k;
  {
    KernelCache cache;
    k = cache.get(test::pso_graph(), pso_spec());
  }
  std::vector<float> x(40, 1), v(40, 0), pb(40, 2), gb(20, 3);
  KernelArgs a;
  a.members = 2;
  a.ranges = {{0, 20}};
  a.in = {x.data(), v.data(), pb.data(), gb.data()};
  a.in_stride = {20, 20, 20, 0};
  a.scalar = {0, 0, 0, 0};
  a.params = {0.7, 1.5, 1.5};
  a.out = {v.data(), x.data()};
  a.out_stride = {20, 20};
  k->run(a);
  CHECK(x[0] > 1);
  auto& c = default_cache();
  auto k2 = c.get(test::pso_graph(), pso_spec());
  shutdown_default_cache();
  k2->run(a);
  // Left alive on purpose: the atexit handler must destroy it before LLVM's statics.
  default_cache().get(test::pso_graph(), pso_spec());
}
