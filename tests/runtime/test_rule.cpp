// Rules bound to particles, swarms and scalars: values, ParamConfig, errors, and agreement of
// the backends on real particles.
#include "tests/doctest_torch.h"
#include <ATen/Parallel.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nyto/distributed.h>
#include <nyto/nyto.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/nn/modules/batchnorm.h>

#include <array>
#include <functional>
#include <map>
#include <thread>
#include <set>
#include <cmath>
#include <limits>

#include "runtime/detail.h"
#include "tests/backend/FoldChain.h"
#include "tests/runtime/models.h"

using nyto::AnyParticle;
using nyto::Backend;
using nyto::Particle;
using nyto::Swarm;

namespace {
const char* kPso = R"(# standard PSO with inertia weight
param w  = 0.729
param c1 = 1.49445
param c2 = 1.49445

v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x)
x = x + v
)";


// Calls f with the run options of every backend at 1 and 2 threads (the thread count set, and
// captured for the assertions f makes); 1 thread after.
void on_every_backend(const std::function<void(const nyto::RunOptions&)>& f) {
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten})
    for (int threads : {1, 2}) {
      CAPTURE(int(b));
      CAPTURE(threads);
      at::set_num_threads(threads);
      nyto::RunOptions opt;
      opt.backend = b;
      f(opt);
    }
  at::set_num_threads(1);
}

// A new swarm holding members [lo, hi) of `src` (all of them when hi < 0), values copied.
Swarm<NetImpl> copy_rows(const Swarm<NetImpl>& src, int64_t lo = 0, int64_t hi = -1) {
  if (hi < 0) hi = src.size();
  Swarm<NetImpl> r(src[0], hi - lo);
  r.detail_state()->storage[0].copy_(src.storage()[0].narrow(0, lo, hi - lo));
  return r;
}

}  // namespace

TEST_CASE("the rule's signature") {
  auto pso = nyto::compile(kPso, "pso.nyto");
  CHECK((pso.inputs() == std::vector<std::string>{"v", "pbest", "x", "gbest"}));  // first-use order
  CHECK((pso.outputs() == std::vector<std::string>{"v", "x"}));
  REQUIRE(pso.params().size() == 3);
  CHECK(pso.params()[0].first == "w");
  CHECK(pso.params()[0].second == 0.729);
  CHECK(contains(pso.emit("ir-opt"), "store"));
  CHECK(contains(pso.emit("llvm"), "define"));
  CHECK_THROWS_AS(pso.emit("asm"), nyto::Error);
  // "llvm" specializes on the bindings as run() would: here the dtype of a float64 particle.
  auto lin = std::make_shared<torch::nn::LinearImpl>(2, 2);
  lin->to(torch::kFloat64);
  auto x64 = nyto::make_particle_from(lin);
  CHECK(contains(pso.emit("llvm"), " x float>"));
  CHECK(!contains(pso.emit("llvm"), " x double>"));
  std::string ir64 = pso.emit("llvm", {{"x", x64}, {"v", x64}, {"pbest", x64}, {"gbest", x64}});
  CHECK(contains(ir64, " x double>"));
  CHECK(!contains(ir64, " x float>"));
}

TEST_CASE("a generation rule: states, its init part and its step") {
  const char* es = R"(param sigma0 = 0.25
state mu = x[0]
state sigma: particle = sigma0
state pf: vector = inf
let h = members() / 2
let unused = f * 2
state x = mu + sigma * randn(0, member())
pf = where(f < pf, f, pf)
mu = mu + 0.5 * msum(where(rank(f) < h, x - mu, 0)) / h
x = mu + sigma * randn(g + 1, member())
)";
  auto rule = nyto::compile(es, "es.nyto");
  REQUIRE(rule.states().size() == 4);
  CHECK(rule.states()[0].name == "mu");
  CHECK(rule.states()[0].kind == "");
  CHECK(rule.states()[1].kind == "particle");
  CHECK(rule.states()[2].kind == "vector");
  CHECK(rule.states()[3].name == "x");
  // The step reads every state as an input and leaves the state statements out.
  const std::vector<std::string> inputs = rule.inputs();
  std::set<std::string> in(inputs.begin(), inputs.end());
  CHECK((in == std::set<std::string>{"f", "pf", "x", "mu", "sigma", "g"}));
  CHECK((rule.outputs() == std::vector<std::string>{"pf", "mu", "x"}));
  CHECK((rule.summands("x") == std::vector<std::string>{"mu"}));
  CHECK(rule.summands("pf").empty());
  // The init: the states as assignments, the lets they read (not `unused`, which reads f).
  auto init = rule.init();
  REQUIRE(init.has_value());
  CHECK((init->inputs() == std::vector<std::string>{"x"}));
  CHECK((init->outputs() == std::vector<std::string>{"mu", "sigma", "pf", "x"}));
  Swarm<NetImpl> x(nyto::make_particle<NetImpl>(), 4, nyto::SwarmInit::Randn);
  auto x0 = x.storage()[0].clone();
  nyto::RunOptions ro;
  ro.seed = 9;
  ro.invocation = 0;
  auto out = init->run({{"x", x}}, ro);
  CHECK(at::equal(out.at("mu").particle().storage()[0], x0[0]));
  CHECK(out.at("sigma").scalar() == 0.25);  // kind "particle": the host broadcasts it
  CHECK(std::isinf(out.at("pf").scalar()));
  // x was updated in place: mu + 0.25 * randn(0, member()), the keyed noise of generation 0.
  auto noise = nyto::compile("n = 0 * x + randn(0, member())").run({{"x", x}}, ro).at("n").swarm();
  CHECK(at::allclose(x.storage()[0], x0[0].unsqueeze(0) + 0.25f * noise.storage()[0], 1e-6, 1e-6));
  // A rule without states has no init part; diagnostics point at a state's kind.
  CHECK(!nyto::compile(kPso).init().has_value());
  CHECK(contains(rule.state_diagnostic("sigma", "E0510", "bad"), "es.nyto:3:14: error[E0510]: bad"));
  CHECK_THROWS_AS(rule.state_diagnostic("nope", "E0510", "bad"), std::invalid_argument);
  // The init reads only what the host binds before the first run.
  nyto::CompileOptions co;
  co.init_known_names = std::vector<std::string>{"x", "g"};
  std::string e = error_of([&] { nyto::compile("state m = f\nx = x + m\n", "r.nyto", co); });
  CHECK(contains(e, "r.nyto:1:11: error[E0101]: unknown name 'f'"));
  CHECK(contains(e, "when the host binds only x, g"));
}

TEST_CASE("a rule gives the same particle as the eager operations") {
  auto net = nyto::make_particle<NetImpl>();
  auto rule = nyto::compile("net2 = 0.5*net + 10");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    nyto::RunOptions opt;
    opt.backend = b;
    auto out = rule.run({{"net", net}}, opt);
    REQUIRE(out.count("net2") == 1);
    const AnyParticle& p = out.at("net2").particle();
    CHECK(p.same_species(net));
    CHECK(at::equal(p.storage()[0], (0.5 * net + 10).storage()[0]));
  }
  auto mix = nyto::compile("y = a*b - a/b + a**2 - 2**b + (-a)");
  auto a = net.randn();
  auto b = net.rand() + 0.5;
  auto eager = a * b - a / b + nyto::pow(a, 2) - nyto::pow(2, b) + (-a);
  auto ruled = mix.run({{"a", a}, {"b", b}}).at("y").particle();
  CHECK(at::allclose(ruled.storage()[0], eager.storage()[0], 1e-6, 1e-6));
}

TEST_CASE("PSO on a swarm: in place, all backends agree, threads do not change draws") {
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(7);
  Swarm<NetImpl> x0(seed, 6, nyto::SwarmInit::Randn), v0(seed, 6, nyto::SwarmInit::Randn),
      p0(seed, 6, nyto::SwarmInit::Randn);
  auto gbest = seed.randn();
  auto pso = nyto::compile(kPso, "pso.nyto");
  std::map<Backend, std::pair<at::Tensor, at::Tensor>> results;
  for (Backend b : {Backend::Interp, Backend::Llvm, Backend::Aten}) {
    Swarm<NetImpl> x = copy_rows(x0), v = copy_rows(v0);
    nyto::RunOptions opt;
    opt.backend = b;
    opt.seed = 42;
    opt.invocation = 3;
    auto out = pso.run({{"x", x}, {"v", v}, {"pbest", p0}, {"gbest", gbest}}, opt);
    CHECK(out.empty());  // both outputs are updated in place
    results[b] = {x.storage()[0].clone(), v.storage()[0].clone()};
    CHECK_FALSE(at::equal(x.storage()[0], x0.storage()[0]));
  }
  auto& ref = results[Backend::Interp];
  for (Backend b : {Backend::Llvm, Backend::Aten}) {
    CHECK(at::allclose(results[b].first, ref.first, 1e-5, 1e-6));
    CHECK(at::allclose(results[b].second, ref.second, 1e-5, 1e-6));
  }
  // The draws alone: bit-identical on every backend and thread count.
  auto draw = nyto::compile("u = 0*x + rand()\nn = 0*x + randn()");
  std::vector<at::Tensor> draws;
  int threads = at::get_num_threads();
  for (int t : {1, 2})
    for (Backend b : {Backend::Interp, Backend::Llvm, Backend::Aten}) {
      at::set_num_threads(t);
      nyto::RunOptions opt;
      opt.backend = b;
      opt.seed = 9;
      opt.invocation = 1;
      auto out = draw.run({{"x", x0}}, opt);
      draws.push_back(out.at("u").swarm().storage()[0]);
      draws.push_back(out.at("n").swarm().storage()[0]);
    }
  at::set_num_threads(threads);
  for (size_t i = 2; i < draws.size(); ++i) CHECK(at::equal(draws[i], draws[i % 2]));
  CHECK(draws[0].min().item<double>() >= 0);
  CHECK(draws[0].max().item<double>() < 1);
}

// RunOptions::member_range: one rank's block of a distributed run. A rule whose members do not
// read each other computes only the block's rows, bit-identical to the whole run's; the other
// rows keep their values. A rule with a member reduction computes every member.
TEST_CASE("member range: only the block's rows, with the whole run's bits") {
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(8);
  Swarm<NetImpl> x0(seed, 5, nyto::SwarmInit::Randn), v0(seed, 5, nyto::SwarmInit::Randn),
      p0(seed, 5, nyto::SwarmInit::Randn);
  auto gbest = seed.randn();
  auto pso = nyto::compile(kPso, "pso.nyto");
  for (Backend b : {Backend::Interp, Backend::Llvm}) {
    CAPTURE(int(b));
    auto run = [&](std::optional<std::pair<int64_t, int64_t>> range) {
      Swarm<NetImpl> x = copy_rows(x0), v = copy_rows(v0);
      nyto::RunOptions opt;
      opt.backend = b;
      opt.seed = 5;
      opt.invocation = 2;
      opt.member_range = range;
      pso.run({{"x", x}, {"v", v}, {"pbest", p0}, {"gbest", gbest}}, opt);
      return std::make_pair(x.storage()[0].clone(), v.storage()[0].clone());
    };
    const auto whole = run(std::nullopt);
    for (const auto& range : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {1, 3}, {4, 5}, {2, 2}}) {
      const int64_t lo = range.first, hi = range.second;  // not a structured binding: CAPTURE's lambda takes it
      CAPTURE(lo);
      CAPTURE(hi);
      const auto part = run(std::make_pair(lo, hi));
      for (int64_t m = 0; m < 5; ++m) {
        const bool in = m >= lo && m < hi;
        CHECK(at::equal(part.first[m], in ? whole.first[m] : x0.storage()[0][m]));
        CHECK(at::equal(part.second[m], in ? whole.second[m] : v0.storage()[0][m]));
      }
    }
  }
  // Members that read each other: every member is computed, as without the range.
  auto mean = nyto::compile("x = x + 0.5 * (msum(x) / members() - x)");
  for (Backend b : {Backend::Interp, Backend::Llvm}) {
    Swarm<NetImpl> a = copy_rows(x0), c = copy_rows(x0);
    nyto::RunOptions opt;
    opt.backend = b;
    mean.run({{"x", a}}, opt);
    opt.member_range = std::make_pair(int64_t(1), int64_t(3));
    mean.run({{"x", c}}, opt);
    CHECK(at::equal(a.storage()[0], c.storage()[0]));
  }
  nyto::RunOptions bad;
  bad.member_range = std::make_pair(int64_t(3), int64_t(6));
  Swarm<NetImpl> x(seed, 5), v(seed, 5);
  CHECK_THROWS_WITH_AS(pso.run({{"x", x}, {"v", v}, {"pbest", p0}, {"gbest", gbest}}, bad),
                       "member range [3, 6) is outside the 5 members the rule runs on", nyto::BindError);
}

// RunOptions::block_rows: swarms holding only members [b, e) of the population give the rows of
// the whole run, bit for bit (draws keyed by member number); vectors keep the population's size.
TEST_CASE("block rows: a block's swarms alone, with the whole run's bits") {
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(9);
  Swarm<NetImpl> x0(seed, 5, nyto::SwarmInit::Randn), v0(seed, 5, nyto::SwarmInit::Randn);
  auto gbest = seed.randn();
  auto rule = nyto::compile("param w = 0.7\nv = w*v + rand()*(gbest - x) + f*0.01\nx = x + v\n", "block.nyto");
  const std::vector<double> f{0.5, 1.5, -2.0, 3.0, 0.25};
  for (Backend b : {Backend::Interp, Backend::Llvm}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    opt.seed = 3;
    opt.invocation = 4;
    Swarm<NetImpl> x = copy_rows(x0), v = copy_rows(v0);
    rule.run({{"x", x}, {"v", v}, {"gbest", gbest}, {"f", f}}, opt);
    for (const auto& range : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {1, 3}, {4, 5}}) {
      const int64_t lo = range.first, hi = range.second;
      CAPTURE(lo);
      CAPTURE(hi);
      Swarm<NetImpl> bx = copy_rows(x0, lo, hi), bv = copy_rows(v0, lo, hi);
      nyto::RunOptions bo = opt;
      bo.member_range = std::make_pair(lo, hi);
      bo.block_rows = true;
      bo.population = 5;
      rule.run({{"x", bx}, {"v", bv}, {"gbest", gbest}, {"f", f}}, bo);
      CHECK(at::equal(bx.storage()[0], x.storage()[0].narrow(0, lo, hi - lo)));
      CHECK(at::equal(bv.storage()[0], v.storage()[0].narrow(0, lo, hi - lo)));
    }
  }
  CHECK(rule.runs_on_blocks({{"gbest", gbest}, {"f", f}}));
  CHECK(nyto::compile("x = x + msum(x) / members()").runs_on_blocks());  // with RunOptions::fold
  CHECK(nyto::compile("x = x + randn(1, member())").runs_on_blocks());
  CHECK_FALSE(nyto::compile("x = x / psum(x * x)").runs_on_blocks());
  // A reduction of what every member computes alone (keyed noise, a vector), and of a swarm's
  // rows (a member fold, RunOptions::fold): yes. Along the parameter axis: of a particle (PGPE,
  // and sep-CMA-ES's of a member sum of rows), yes; of each member's rows, no.
  auto es = nyto::compile("mu = mu - msum(f * randn(g, member()))\nx = mu + randn(g + 1, member())");
  CHECK(es.runs_on_blocks({{"mu", gbest}, {"f", f}, {"g", 0.0}}));
  CHECK(es.runs_on_blocks({{"mu", gbest}, {"g", 0.0}}));  // f a swarm
  auto pes = nyto::compile("mu = mu - msum(f * randn(g, member())) / psum(mu * mu)\nx = mu + randn(g + 1, member())");
  CHECK(pes.runs_on_blocks({{"mu", gbest}, {"f", f}, {"g", 0.0}}));
  auto sep = nyto::compile("let y = msum(x)\nmu = mu + y / psum(y * y)\nx = mu + randn(g + 1, member())");
  CHECK(sep.runs_on_blocks({{"mu", gbest}, {"g", 0.0}}));
  auto own = nyto::compile("mu = mu + psum(x * x)\nx = mu + randn(g + 1, member())");
  CHECK_FALSE(own.runs_on_blocks({{"mu", gbest}, {"g", 0.0}}));
  CHECK_FALSE(own.runs_on_blocks({{"mu", gbest}, {"g", 0.0}}));  // kept per kinds: the same answer
  // A member read at one index for every member: yes; at a per-member index: no.
  CHECK(nyto::compile("x = x + 0.5 * (x[0] - x)").runs_on_blocks());
  CHECK_FALSE(nyto::compile("x = x[pick(0)]").runs_on_blocks());
  nyto::RunOptions bo;
  bo.member_range = std::make_pair(int64_t(1), int64_t(3));
  bo.block_rows = true;
  bo.population = 5;
  Swarm<NetImpl> three(seed, 3), two(seed, 2), two_v(seed, 2);
  CHECK_THROWS_WITH_AS(rule.run({{"x", three}, {"v", three}, {"gbest", gbest}, {"f", f}}, bo),
                       "'x' holds 3 rows but the member range [1, 3) has 2 members", nyto::BindError);
  CHECK_THROWS_WITH_AS(rule.run({{"x", two}, {"v", two_v}, {"gbest", gbest}, {"f", std::vector<double>{1, 2}}}, bo),
                       doctest::Contains("'f' has 2 per-member values but the population has 5 members"), nyto::BindError);
  CHECK_THROWS_WITH_AS(nyto::compile("x = x / psum(x * x)", "norm.nyto").run({{"x", two}}, bo),
                       "rule norm.nyto cannot run on the rows of one block (RunOptions::block_rows): that takes the "
                       "llvm backend (or interp, for a rule whose members are independent), float32 or float64 "
                       "storage on the CPU, and no reduction along the parameter axis of a value that varies per "
                       "member; bind the whole swarm",
                       nyto::BindError);
  bo.population = 2;
  CHECK_THROWS_WITH_AS(rule.run({{"x", two}, {"v", two_v}, {"gbest", gbest}, {"f", f}}, bo),
                       "RunOptions::block_rows needs a member_range within RunOptions::population", nyto::BindError);
}

namespace {
// The block tests' inputs: 6 random members, a random mean and a fitness vector.
struct BlockInputs {
  Swarm<NetImpl> x0;
  nyto::Particle<NetImpl> mu0;
  std::vector<double> f{0.5, 1.5, -2.0, 3.0, 0.25, 1.0};
};
BlockInputs block_inputs(uint64_t seed_no) {
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(seed_no);
  Swarm<NetImpl> x0(seed, 6, nyto::SwarmInit::Randn);
  return {x0, seed.randn()};
}

// Runs `rule` on in.x0 and in.mu0 (with in.f and g = 2) whole, by interp (the oracle) and by
// llvm, and on each block of `blocks` by llvm with block_rows (`adjust` adds options, `after`
// checks each block's run): every block's rows of x and its mu are the whole run's bits.
void check_on_blocks(const nyto::Rule& rule, const BlockInputs& in, const std::vector<std::pair<int64_t, int64_t>>& blocks,
                     const std::function<void(nyto::RunOptions&)>& adjust = {},
                     const std::function<void()>& after = {}) {
  const Swarm<NetImpl>& x0 = in.x0;
  const nyto::Particle<NetImpl>& mu0 = in.mu0;
  const std::vector<double>& f = in.f;
  for (Backend b : {Backend::Interp, Backend::Llvm}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    opt.seed = 3;
    opt.invocation = 4;
    Swarm<NetImpl> x = copy_rows(x0);
    auto mu = mu0.clone();
    rule.run({{"x", x}, {"mu", mu}, {"f", f}, {"g", 2.0}}, opt);
    CHECK_FALSE(at::equal(mu.storage()[0], mu0.storage()[0]));
    opt.backend = Backend::Llvm;
    for (const auto& block : blocks) {
      const int64_t lo = block.first, hi = block.second;  // not a structured binding: CAPTURE takes it in a lambda
      CAPTURE(lo);
      Swarm<NetImpl> bx = copy_rows(x0, lo, hi);
      auto bmu = mu0.clone();
      nyto::RunOptions bo = opt;
      bo.member_range = std::make_pair(lo, hi);
      bo.block_rows = true;
      bo.population = x0.size();
      if (adjust) adjust(bo);
      rule.run({{"x", bx}, {"mu", bmu}, {"f", f}, {"g", 2.0}}, bo);
      if (after) after();
      CHECK(at::equal(bx.storage()[0], x.storage()[0].narrow(0, lo, hi - lo)));
      CHECK(at::equal(bmu.storage()[0], mu.storage()[0]));
    }
  }
}
}  // namespace

// A staged rule on blocks (OpenAI-ES's shape): the member reduction of keyed noise and a vector is
// computed for every member on every block; x[0] comes from RunOptions::row, asked alike on every
// block; the particle mu and every block's rows are the whole run's bits, the whole run on the
// interpreter (the oracle) or llvm. Blocks run on llvm's staged driver (the interpreter computes
// every member of a rule whose members read each other).
TEST_CASE("block rows: member reductions of keyed noise, and rows read from outside the block") {
  const BlockInputs in = block_inputs(10);  // named references, not a structured binding: lambdas take them
  const Swarm<NetImpl>& x0 = in.x0;
  const nyto::Particle<NetImpl>& mu0 = in.mu0;
  const std::vector<double>& f = in.f;
  auto rule = nyto::compile("let h = members() / 2\nlet s = where(member() < h, 1, -1)\nlet j = mod(member(), h)\n"
                            "mu = mu - 0.01 * msum(f * s * randn(g, j)) / members()\n"
                            "x = mu + 0.5 * x[0] + 0.1 * s * randn(g + 1, j)\n",
                            "es.nyto");
  std::vector<std::string> asked;
  check_on_blocks(
      rule, in, {{0, 2}, {2, 5}, {5, 6}},
      [&](nyto::RunOptions& bo) {
        asked.clear();
        bo.row = [&](const std::string& input, int64_t m) {
          asked.push_back(input + std::to_string(m));
          return x0.member(m).clone();
        };
      },
      [&] { CHECK(asked == std::vector<std::string>{"x0"}); });  // on every block, the one holding row 0 too
  // Without RunOptions::row, a block without row 0 cannot run; nothing is written.
  Swarm<NetImpl> bx = copy_rows(x0, 2, 5);
  auto bmu = mu0.clone();
  nyto::RunOptions bo;
  bo.member_range = std::make_pair(int64_t(2), int64_t(5));
  bo.block_rows = true;
  bo.population = 6;
  bo.backend = Backend::Interp;
  CHECK_THROWS_WITH_AS(rule.run({{"x", bx}, {"mu", bmu}, {"f", f}, {"g", 2.0}}, bo),
                       doctest::Contains("rule es.nyto cannot run on the rows of one block"), nyto::BindError);
  bo.backend = Backend::Llvm;
  CHECK_THROWS_WITH_AS(rule.run({{"x", bx}, {"mu", bmu}, {"f", f}, {"g", 2.0}}, bo),
                       "rule es.nyto reads member 0's row of 'x', which the block [2, 5) does not hold "
                       "(RunOptions::block_rows); give RunOptions::row, or bind the whole swarm",
                       nyto::BindError);
  CHECK(at::equal(bx.storage()[0], x0.storage()[0].narrow(0, 2, 3)));
  CHECK(at::equal(bmu.storage()[0], mu0.storage()[0]));
  // A row of another species.
  auto other = nyto::make_particle<torch::nn::Linear>(2, 2);
  bo.row = [&](const std::string&, int64_t) -> nyto::AnyParticle { return other; };
  CHECK_THROWS_AS(rule.run({{"x", bx}, {"mu", bmu}, {"f", f}, {"g", 2.0}}, bo), nyto::SpeciesError);
}

TEST_CASE("params: defaults and overrides") {
  auto net = nyto::make_particle<torch::nn::Linear>(1, 1);
  {
    torch::NoGradGuard g;
    net->weight.fill_(2);
    net->bias.fill_(1);
  }
  auto rule = nyto::compile("param t = 3\ny = t*x");
  auto y = rule.run({{"x", net}}).at("y").particle();
  CHECK(y.storage()[0][0].item<double>() == 6);
  nyto::RunOptions opt;
  opt.params["t"] = 5;
  y = rule.run({{"x", net}}, opt).at("y").particle();
  CHECK(y.storage()[0][0].item<double>() == 10);
  opt.params = {{"tt", 1}};
  std::string msg = error_of([&] { rule.run({{"x", net}}, opt); });
  CHECK(contains(msg, "E0504"));
  CHECK(contains(msg, "did you mean 't'"));
}

TEST_CASE("scalars, per-member scalars and a particle broadcast over a swarm") {
  auto seed = linear_particle(1, 1);
  Swarm<torch::nn::Linear> x(seed, 3);
  auto rule = nyto::compile("x = x*k + s + g");
  rule.run({{"x", x}, {"k", std::vector<double>{1, 2, 3}}, {"s", 10.0}, {"g", seed}});
  CHECK(x[0]->weight.item<double>() == 12);
  CHECK(x[1]->weight.item<double>() == 13);
  CHECK(x[2]->bias.item<double>() == 14);
  std::string msg = error_of([&] { rule.run({{"x", x}, {"k", std::vector<double>{1, 2}}, {"s", 1.0}, {"g", seed}}); });
  CHECK(contains(msg, "E0501"));
  CHECK(contains(msg, "<rule>:1:7: error[E0501]: 'k' has 2 per-member values"));
}

TEST_CASE("repeated runs replay the checked binding, and check again whatever changed") {
  // The second run of a binding takes the replay path (runtime/rule.cpp, fast_run); every value
  // it may change between calls (scalars, per-member vectors, params, ParamConfig, which swarm,
  // a parameter moved out of storage) must reach the kernel.
  auto seed = linear_particle(1, 1);
  Swarm<torch::nn::Linear> x(seed, 3), y(seed, 3);
  auto rule = nyto::compile("param t = 0\nx = x*k + s + t");
  auto weights = [](Swarm<torch::nn::Linear>& w) {
    return std::vector<double>{w[0]->weight.item<double>(), w[1]->weight.item<double>(), w[2]->weight.item<double>()};
  };
  rule.run({{"x", x}, {"k", std::vector<double>{1, 2, 3}}, {"s", 1.0}});
  CHECK(weights(x) == std::vector<double>{2, 3, 4});
  rule.run({{"x", x}, {"k", std::vector<double>{1, 2, 3}}, {"s", 1.0}});
  CHECK(weights(x) == std::vector<double>{3, 7, 13});
  rule.run({{"x", x}, {"k", std::vector<double>{0, 1, 1}}, {"s", -1.0}});  // new values, same binding
  CHECK(weights(x) == std::vector<double>{-1, 6, 12});
  nyto::RunOptions opt;
  opt.params["t"] = 10;
  rule.run({{"x", x}, {"k", std::vector<double>{1, 1, 1}}, {"s", 0.0}}, opt);
  CHECK(weights(x) == std::vector<double>{9, 16, 22});
  // Another swarm of the species: written, x left alone.
  rule.run({{"x", y}, {"k", std::vector<double>{1, 1, 1}}, {"s", 5.0}});
  rule.run({{"x", y}, {"k", std::vector<double>{1, 1, 1}}, {"s", 5.0}});
  CHECK(weights(y) == std::vector<double>{11, 11, 11});
  CHECK(weights(x) == std::vector<double>{9, 16, 22});
  // ParamConfig: the bias stops being computed (the species keeps its version).
  rule.run({{"x", x}, {"k", std::vector<double>{1, 1, 1}}, {"s", 0.0}});  // x's binding is the last one
  const double bias = x[1]->bias.item<double>();
  x[0].set_param_config(false, true, "bias");
  rule.run({{"x", x}, {"k", std::vector<double>{1, 1, 1}}, {"s", 1.0}});
  CHECK(x[1]->bias.item<double>() == bias);
  CHECK(weights(x) == std::vector<double>{10, 17, 23});
  // A parameter pointed out of storage by hand is moved back in before the kernel writes.
  {
    torch::NoGradGuard g;
    x[2]->weight.set_data(torch::full({1, 1}, 100.0f));
  }
  rule.run({{"x", x}, {"k", std::vector<double>{1, 1, 1}}, {"s", 1.0}});
  CHECK(weights(x) == std::vector<double>{11, 18, 101});
  CHECK(x.storage()[0][2][0].item<double>() == 101);
  // Pointed at another member's slot of the same storage (same storage, another offset): member
  // 2 gets member 1's value in its own slot, and member 1 is computed once.
  {
    torch::NoGradGuard g;
    x[2]->weight.set_data(x[1]->weight.detach());
  }
  rule.run({{"x", x}, {"k", std::vector<double>{1, 1, 1}}, {"s", 1.0}});
  CHECK(weights(x) == std::vector<double>{12, 19, 19});
  CHECK(x.storage()[0][1][0].item<double>() == 19);
  CHECK(x.storage()[0][2][0].item<double>() == 19);
  CHECK(x[2]->weight.data_ptr() != x[1]->weight.data_ptr());
  // A bad binding after replays is still a located error that changes nothing.
  std::string msg = error_of([&] { rule.run({{"x", x}, {"k", std::vector<double>{1, 2}}, {"s", 1.0}}); });
  CHECK(contains(msg, "E0501"));
  CHECK(weights(x) == std::vector<double>{12, 19, 19});
}

TEST_CASE("a one-member swarm is a copy of its seed, not a view (issue 13, defect 4)") {
  auto seed = linear_particle(1, 1);
  Swarm<torch::nn::Linear> x(seed, 1);
  CHECK(x.storage()[0].data_ptr() != seed.storage()[0].data_ptr());
  auto rule = nyto::compile("y = g + x");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    nyto::AnySwarm y = rule.run({{"g", seed}, {"x", x}}, opt).at("y").swarm();
    CHECK(Particle<torch::nn::Linear>(y.member(0))->weight.item<double>() == 2);
    CHECK(seed->weight.item<double>() == 1);  // the new swarm took g's structure, not its storage
    CHECK(x[0]->bias.item<double>() == 1);
  }
  nyto::compile("x = x + 1").run({{"x", x}});
  CHECK(x[0]->weight.item<double>() == 2);
  CHECK(seed->weight.item<double>() == 1);
}

TEST_CASE("outputs that swap two inputs: every backend reads both before it writes") {
  auto seed = nyto::make_particle<torch::nn::Linear>(1, 1);
  auto rule = nyto::compile("t = x\nx = v\nv = t\n");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    Swarm<torch::nn::Linear> x(seed, 2), v(seed, 2);
    {
      torch::NoGradGuard g;
      for (auto& t : x.storage()) t.fill_(1);
      for (auto& t : v.storage()) t.fill_(2);
    }
    nyto::RunOptions opt;
    opt.backend = b;
    rule.run({{"x", x}, {"v", v}}, opt);
    CHECK(x[1]->weight.item<double>() == 2);
    CHECK(v[1]->weight.item<double>() == 1);  // the aten backend gave 2: x was written first
  }
}

TEST_CASE("an input inside an in-place output is read as it was before the run") {
  auto seed = linear_particle(1, 1);
  Swarm<torch::nn::Linear> x(seed, 4);
  auto best = x[0];
  auto rule = nyto::compile("x = x + best");
  rule.run({{"x", x}, {"best", best}});
  for (int i = 0; i < 4; ++i) CHECK(x[i]->weight.item<double>() == 2);  // row 0 read before written
}

TEST_CASE("ParamConfig: non-operational parameters are not computed") {
  auto net = nyto::make_particle<torch::nn::Linear>(1, 1);
  {
    torch::NoGradGuard g;
    net->weight.fill_(2);
    net->bias.fill_(1);
  }
  net.set_param_config(false, true, "bias");
  auto rule = nyto::compile("y = x * 10");
  auto y = Particle<torch::nn::Linear>(rule.run({{"x", net}}).at("y").particle());
  CHECK(y->weight.item<double>() == 20);
  CHECK(y->bias.item<double>() == 1);
  CHECK(y->bias.data_ptr() != net->bias.data_ptr());
  net.set_param_config(false, false, "bias");
  y = Particle<torch::nn::Linear>(rule.run({{"x", net}}).at("y").particle());
  CHECK(y->bias.data_ptr() == net->bias.data_ptr());
  auto inplace = nyto::compile("x = x * 10");
  inplace.run({{"x", net}});
  CHECK(net->weight.item<double>() == 20);
  CHECK(net->bias.item<double>() == 1);
}

TEST_CASE("a new swarm: member i keeps member i's buffers and non-operational parameters") {
  auto seed = nyto::make_particle<torch::nn::BatchNorm1d>(3);
  seed.set_param_config(false, false, "bias");  // shared, not cloned: member i's very tensor
  Swarm<torch::nn::BatchNorm1d> x(seed, 3);
  for (int i = 0; i < 3; ++i) {
    torch::NoGradGuard g;
    x[i]->weight.fill_(i + 1);
    x[i]->running_mean.fill_(10 * i);
    x[i]->bias.set_data(torch::full({3}, -1.0 * i));
  }
  auto rule = nyto::compile("y = x * 2");
  for (Backend b : {Backend::Llvm, Backend::Aten}) {
    nyto::RunOptions opt;
    opt.backend = b;
    nyto::AnySwarm y = rule.run({{"x", x}}, opt).at("y").swarm();
    REQUIRE(y.size() == 3);
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      Particle<torch::nn::BatchNorm1d> yi(y.member(i));
      CHECK(yi->weight[0].item<double>() == 2 * (i + 1));
      CHECK(yi->running_mean[0].item<double>() == 10 * i);
      CHECK(yi->running_mean.data_ptr() != x[i]->running_mean.data_ptr());  // a copy
      CHECK(yi->bias.data_ptr() == x[i]->bias.data_ptr());
    }
  }
}

TEST_CASE("two storage groups: float32 and float64 both computed") {
  auto m = nyto::make_particle<MixedImpl>();
  auto rule = nyto::compile("y = x * 3 + 1");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    nyto::RunOptions opt;
    opt.backend = b;
    auto y = Particle<MixedImpl>(rule.run({{"x", m}}, opt).at("y").particle());
    CHECK(y->a[0].item<double>() == 4);
    CHECK(y->b[1][1].item<double>() == 7);
    CHECK(y->c[0].item<double>() == 10);
  }
}

TEST_CASE("member(), members() and mod(): per-member values on every backend and thread count") {
  auto seed = nyto::make_particle<MixedImpl>();
  const int64_t M = 5;
  auto rule = nyto::compile("y = x*0 + member()*10 + members()*1000 + mod(member() - 3, 4)*100000");
  on_every_backend([&](const nyto::RunOptions& opt) {
    nyto::AnySwarm y = rule.run({{"x", Swarm<MixedImpl>(seed, M)}}, opt).at("y").swarm();
    for (int64_t m = 0; m < M; ++m) {
      double want = 10.0 * double(m) + 1000.0 * double(M) + 100000.0 * double((m - 3 + 4) % 4);
      Particle<MixedImpl> ym(y.member(m));
      CHECK(ym->a[3].item<double>() == want);     // float32 group
      CHECK(ym->b[1][0].item<double>() == want);  // float64 group
    }
  });
}

TEST_CASE("mod(a, b) is Python's floored modulo, in double and in the dtype, on every backend") {
  // (a, b, a % b as Python computes it); NaN where Python raises or gives nan.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const std::vector<std::array<double, 3>> cases = {
      {5.5, 2, 1.5},  {-5.5, 2, 0.5}, {5.5, -2, -0.5}, {-5.5, -2, -1.5}, {4, 2, 0},
      {-4, 2, 0},     {4, -2, -0.0},  {-4, -2, -0.0},  {1, 0, nan},      {inf, 2, nan},
      {3, inf, 3},    {-3, inf, inf}, {3, -inf, -inf}, {nan, 2, nan},    {7, 7, 0}};
  std::vector<double> a, b;
  for (const auto& c : cases) a.push_back(c[0]), b.push_back(c[1]);
  auto seed = nyto::make_particle<MixedImpl>();
  Swarm<MixedImpl> x(seed, int64_t(cases.size()));
  // In double (no element axis; where() keeps a -0, which x*0 + ... would not), then in each
  // group's dtype (x*0 + a has the element axis).
  for (std::string src : {"y = where(x > -1, mod(a, b), x)", "y = mod(x*0 + a, b)"})
    for (Backend be : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
      CAPTURE(src);
      CAPTURE(int(be));
      nyto::RunOptions opt;
      opt.backend = be;
      nyto::AnySwarm y = nyto::compile(src).run({{"x", x}, {"a", a}, {"b", b}}, opt).at("y").swarm();
      for (size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i);
        Particle<MixedImpl> yi(y.member(int64_t(i)));
        for (double got : {yi->a[0].item<double>(), yi->b[0][0].item<double>()}) {
          if (std::isnan(cases[i][2])) {
            CHECK(std::isnan(got));
          } else {
            CHECK(got == cases[i][2]);
            CHECK(std::signbit(got) == std::signbit(cases[i][2]));
          }
        }
      }
    }
}

namespace {
// A float32 weight next to an int64 parameter (a count kept with the model).
struct CountedImpl : torch::nn::Cloneable<CountedImpl> {
  CountedImpl() { reset(); }
  void reset() override {
    w = register_parameter("w", torch::full({2}, 2.0));
    n = register_parameter("n", torch::full({3}, 4, torch::kLong), /*requires_grad=*/false);
  }
  at::Tensor w, n;
};
}  // namespace

TEST_CASE("integer parameters stay out of rules: a located error, not truncation (defect 7)") {
  auto m = nyto::make_particle<CountedImpl>();
  auto fresh = nyto::compile("y = x*0.5 + 1\n", "half.nyto");
  auto inplace = nyto::compile("x = x*0.5 + 1\n", "half.nyto");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    std::string msg = error_of([&] { fresh.run({{"x", m}}, opt); });
    CHECK(contains(msg, "half.nyto:1:5: error[E0505]: 'x' has the Long parameter 'n'"));
    CHECK(contains(msg, "operational=false"));
    CHECK_THROWS_AS(inplace.run({{"x", m}}, opt), nyto::BindError);
    CHECK(m->w[0].item<double>() == 2);  // nothing written
    CHECK(m->n[0].item<int64_t>() == 4);
  }
  // Left out of the rule, the integer parameter is kept (copied into a new particle).
  m.set_param_config(false, true, "n");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    nyto::RunOptions opt;
    opt.backend = b;
    auto y = Particle<CountedImpl>(fresh.run({{"x", m}}, opt).at("y").particle());
    CHECK(y->w[1].item<double>() == 2);
    CHECK(y->n[2].item<int64_t>() == 4);
  }
}

TEST_CASE("every group's kernel is compiled before the first group is written") {
  auto m = nyto::make_particle<MixedImpl>();
  std::vector<at::Tensor> before;
  for (const auto& t : m.storage()) before.push_back(t.clone());
  auto rule = nyto::compile("x = x * 3 + 1");
  int compiles = 0;
  nyto::detail::fault_hook = [&](const std::string& at) {
    if (at == "compile kernel" && compiles++ == 1) throw nyto::Error("injected compile failure");
  };
  std::string msg = error_of([&] { rule.run({{"x", m}}); });
  nyto::detail::fault_hook = nullptr;
  CHECK(contains(msg, "injected compile failure"));
  REQUIRE(m.storage().size() == 2);
  for (size_t g = 0; g < before.size(); ++g) CHECK(at::equal(m.storage()[g], before[g]));
  rule.run({{"x", m}});
  CHECK(m->a[0].item<double>() == 4);
  CHECK(m->b[0][0].item<double>() == 7);
}

TEST_CASE("bad bindings: located errors, nothing changed") {
  auto a = nyto::make_particle<NetImpl>();
  auto b = nyto::make_particle<NetImpl>();
  at::Tensor before = a.storage()[0].clone();
  auto rule = nyto::compile("x = x + v\n", "step.nyto");
  std::string msg = error_of([&] { rule.run({{"x", a}, {"v", b}}); });
  CHECK(contains(msg, "step.nyto:1:9: error[E0502]"));
  CHECK(contains(msg, a.species()->name()));
  CHECK(contains(msg, b.species()->name()));
  CHECK_THROWS_AS(rule.run({{"x", a}, {"v", b}}), nyto::SpeciesError);

  msg = error_of([&] { rule.run({{"x", a}}); });
  CHECK(contains(msg, "step.nyto:1:9: error[E0503]: input 'v' is not bound"));

  msg = error_of([&] { rule.run({{"x", 1.0}, {"v", a}}); });
  CHECK(contains(msg, "error[E0501]"));
  CHECK(contains(msg, "'x' is updated in place"));

  Swarm<NetImpl> s(a, 3);
  msg = error_of([&] { rule.run({{"x", a}, {"v", s}}); });
  CHECK(contains(msg, "'x' is a single particle"));

  Swarm<NetImpl> s2(a, 2);
  msg = error_of([&] { rule.run({{"x", s}, {"v", s2}}); });
  CHECK(contains(msg, "swarm of 2 members"));

  auto two = nyto::compile("x = x + 1\nv = v + 1");
  msg = error_of([&] { two.run({{"x", a}, {"v", a}}); });
  CHECK(contains(msg, "<rule>:2:1: error[E0501]: 'x' and 'v' are bound to the same storage"));

  // A value without the element axis is a scalar output (language v1); a particle value needs a
  // particle or swarm bound to take its structure from.
  CHECK(nyto::compile("y = k * 2").run({{"k", 1.5}}).at("y").scalar() == 3.0);
  auto fresh = nyto::compile("y = k * rand()");
  msg = error_of([&] { fresh.run({{"k", 1.0}}); });
  CHECK(contains(msg, "no input is a particle or swarm"));
  CHECK(at::equal(a.storage()[0], before));
}

TEST_CASE("CompileOptions::read_only: a rule may not assign an input the host owns (E0205)") {
  nyto::CompileOptions co;
  co.read_only = {"gbest", "loss"};
  std::string msg = error_of([&] { nyto::compile("x = x + 0.5*(gbest - x)\ngbest = x\n", "h.nyto", co); });
  CHECK(contains(msg, "h.nyto:2:1: error[E0205]: cannot assign to 'gbest'"));
  CHECK_THROWS_AS(nyto::compile("loss = loss * 2", "h.nyto", co), nyto::CompileError);
  auto ok = nyto::compile("x = x + 0.5*(gbest - x)", "h.nyto", co);  // reading is fine
  CHECK((ok.outputs() == std::vector<std::string>{"x"}));
}

TEST_CASE("compile errors carry every diagnostic") {
  std::string msg = error_of([] { nyto::compile("v = w*v + c1*rnd()*(pbest - x)\ny = (", "pso.nyto"); });
  CHECK(contains(msg, "pso.nyto:"));
  CHECK_THROWS_AS(nyto::compile("x = x +", "bad.nyto"), nyto::CompileError);
  msg = error_of([] { nyto::compile("v = v + rnd()\nx = clamp(x, 0)", "two.nyto"); });
  CHECK(contains(msg, "E0103"));
  CHECK(contains(msg, "E0104"));
  CHECK_THROWS_AS(nyto::compile_file("/nonexistent/rule.nyto"), nyto::IOError);
}

namespace {
// A swarm of M MixedImpl members whose parameters hold distinct values (member m, element e).
Swarm<MixedImpl> distinct_swarm(int64_t M, uint64_t seed) {
  auto base = nyto::make_particle<MixedImpl>();
  Swarm<MixedImpl> x(base, M);
  at::manual_seed(seed);
  torch::NoGradGuard g;
  for (int64_t m = 0; m < M; ++m) {
    Particle<MixedImpl> p(x.member(m));
    p->a.copy_(at::randn({4}));
    p->b.copy_(at::randn({2, 2}, at::kDouble));
    p->c.copy_(at::randn({3}));
  }
  return x;
}
std::vector<at::Tensor> params_of(const AnyParticle& p) {
  std::vector<at::Tensor> v;
  for (const auto& t : Particle<MixedImpl>(p)->parameters()) v.push_back(t.detach().clone());
  return v;
}
}  // namespace

TEST_CASE("msum, mmean, mmin, mmax: folded in member order, the same bits on every backend and thread count") {
  for (int64_t M : {1, 2, 3, 7}) {
    Swarm<MixedImpl> x = distinct_swarm(M, 7 + uint64_t(M));
    auto mu = Particle<MixedImpl>(x.member(0)).clone();
    auto rule = nyto::compile("s = msum(x)\nmean = mmean(x)\nlo = mmin(x)\nhi = mmax(x)\nmu = mu + msum(x * x)");
    // The expected values, folded by hand in member order in each parameter's dtype.
    std::vector<std::vector<at::Tensor>> rows;
    for (int64_t m = 0; m < M; ++m) rows.push_back(params_of(x.member(m)));
    std::vector<at::Tensor> sum = rows[0], sq, lo = rows[0], hi = rows[0];
    for (auto& t : rows[0]) sq.push_back(t * t);
    for (auto& t : sum) t = t.clone();
    for (int64_t m = 1; m < M; ++m)
      for (size_t k = 0; k < sum.size(); ++k) {
        sum[k] = sum[k] + rows[m][k];
        sq[k] = sq[k] + rows[m][k] * rows[m][k];
        lo[k] = at::minimum(lo[k], rows[m][k]);
        hi[k] = at::maximum(hi[k], rows[m][k]);
      }
    std::vector<at::Tensor> mu0 = params_of(mu);
    CAPTURE(M);
    on_every_backend([&](const nyto::RunOptions& opt) {
      auto mu_run = mu.clone();
      auto out = rule.run({{"x", x}, {"mu", mu_run}}, opt);
      auto s = params_of(out.at("s").particle()), mean = params_of(out.at("mean").particle());
      auto l = params_of(out.at("lo").particle()), h = params_of(out.at("hi").particle());
      auto mun = params_of(mu_run);
      for (size_t k = 0; k < sum.size(); ++k) {
        CHECK(at::equal(s[k], sum[k]));
        CHECK(at::equal(mean[k], sum[k] / double(M)));
        CHECK(at::equal(l[k], lo[k]));
        CHECK(at::equal(h[k], hi[k]));
        CHECK(at::equal(mun[k], mu0[k] + sq[k]));
      }
    });
  }
}

TEST_CASE("x[i] reads another member at the same element; x = x[...] permutes a swarm in place") {
  const int64_t M = 5;
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    Swarm<MixedImpl> x = distinct_swarm(M, 3);
    std::vector<std::vector<at::Tensor>> before;
    for (int64_t m = 0; m < M; ++m) before.push_back(params_of(x.member(m)));
    nyto::RunOptions opt;
    opt.backend = b;
    // Ring neighbour (lbest PSO), then a read of the new x by a later statement.
    auto rule = nyto::compile("x = x[mod(member() + 1, members())]\ny = x[0] + x[members() - 1]");
    auto out = rule.run({{"x", x}}, opt);
    for (int64_t m = 0; m < M; ++m) {
      auto now = params_of(x.member(m));
      for (size_t k = 0; k < now.size(); ++k) CHECK(at::equal(now[k], before[(m + 1) % M][k]));
    }
    auto y = params_of(out.at("y").particle());  // x[0] has no member axis: y is one particle
    for (size_t k = 0; k < y.size(); ++k) CHECK(at::equal(y[k], before[1][k] + before[0][k]));
    // Per-member vector index; an index out of range changes nothing and names the read.
    auto perm = nyto::compile("x = x[p]");
    perm.run({{"x", x}, {"p", std::vector<double>{4, 3, 2, 1, 0}}}, opt);
    for (size_t k = 0; k < before[0].size(); ++k)
      CHECK(at::equal(params_of(x.member(0))[k], before[(4 + 1) % M][k]));
    auto snapshot = [&] {
      std::vector<at::Tensor> all;
      for (int64_t m = 0; m < M; ++m)
        for (auto& t : params_of(x.member(m))) all.push_back(t);
      return all;
    };
    auto kept = snapshot();
    for (std::vector<double> bad : {std::vector<double>{0, 1, 2, 3, 5}, std::vector<double>{0, 1, 2.5, 3, 4},
                                    std::vector<double>{0, 1, 2, -1, 4}}) {
      try {
        perm.run({{"x", x}, {"p", bad}}, opt);
        FAIL("no error");
      } catch (const nyto::RunError& e) {
        std::string msg = e.what();
        CHECK(msg.find("error[E0601]") != std::string::npos);
        CHECK(msg.find("x[p]") != std::string::npos);
        CHECK(msg.find("nothing was written") != std::string::npos);
      }
      auto now = snapshot();
      for (size_t k = 0; k < now.size(); ++k) CHECK(at::equal(now[k], kept[k]));
    }
  }
}

namespace {
struct BigImpl : torch::nn::Cloneable<BigImpl> {
  BigImpl() { reset(); }
  void reset() override { w = register_parameter("w", torch::zeros({65536})); }
  at::Tensor w;
};
}  // namespace

TEST_CASE("keyed noise: the same (seed, k, j) is the same particle in any rule and run; other j are independent") {
  Swarm<MixedImpl> x = distinct_swarm(4, 11);
  auto flat = [](const AnyParticle& p) {
    std::vector<at::Tensor> v;
    for (auto& t : params_of(p)) v.push_back(t.reshape(-1).to(at::kDouble));
    return at::cat(v);
  };
  nyto::RunOptions opt;
  opt.seed = 1234;
  // Two rules that differ in everything but the draw, run at different invocations.
  auto r1 = nyto::compile("n = randn(g, 5) + 0*x");
  auto r2 = nyto::compile("let z = rand() * 0\nw = x*0 + z + randn(g, member() + 5 - member())");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    opt.backend = b;
    opt.invocation = 1;
    auto a = r1.run({{"x", x.member(0)}, {"g", 9.0}}, opt).at("n").particle();
    opt.invocation = 77;
    auto c = r2.run({{"x", x}, {"g", 9.0}}, opt).at("w").swarm();
    for (int64_t m = 0; m < 4; ++m) CHECK(at::equal(flat(c.member(m)), flat(a)));
  }
  // Independent streams: many j over a big particle; means, variances and correlations.
  auto big = nyto::make_particle<BigImpl>();
  nyto::AnySwarm s(big, 6);
  opt.backend = Backend::Llvm;
  auto noise = nyto::compile("n = randn(3, member()) + 0*x").run({{"x", s}}, opt).at("n").swarm();
  std::vector<at::Tensor> rows;
  for (int64_t m = 0; m < 6; ++m) rows.push_back(Particle<BigImpl>(noise.member(m))->w.detach().to(at::kDouble));
  const double n = double(rows[0].numel());
  for (int64_t m = 0; m < 6; ++m) {
    CHECK(std::abs(rows[m].mean().item<double>()) < 5 / std::sqrt(n));
    CHECK(std::abs(rows[m].var().item<double>() - 1) < 5 * std::sqrt(2 / n));
    for (int64_t k = m + 1; k < 6; ++k) {
      double r = (rows[m] * rows[k]).mean().item<double>();
      CHECK(std::abs(r) < 5 / std::sqrt(n));
    }
  }
  // A key out of range at run time changes nothing and names the draw.
  auto bad = nyto::compile("x = x + randn(1, j)");
  auto before = flat(x.member(0));
  try {
    bad.run({{"x", x}, {"j", std::vector<double>{0, 1, -1, 2}}}, opt);
    FAIL("no error");
  } catch (const nyto::RunError& e) {
    std::string msg = e.what();
    CHECK(msg.find("error[E0601]") != std::string::npos);
    CHECK(msg.find("key j = -1 (at member 2)") != std::string::npos);
    CHECK(msg.find("randn(1, j)") != std::string::npos);
  }
  CHECK(at::equal(flat(x.member(0)), before));
}

TEST_CASE("keyed noise shared by members with equal keys: drawn once, the same on every backend") {
  // llvm draws a member-varying keyed draw once per distinct key pair and copies it to the other
  // members holding the pair (backend/Staged.h); interp draws every member's own.
  Swarm<MixedImpl> x = distinct_swarm(7, 3);
  auto flat = [](const AnyParticle& p) {
    std::vector<at::Tensor> v;
    for (auto& t : params_of(p)) v.push_back(t.reshape(-1).to(at::kDouble));
    return at::cat(v);
  };
  auto rule = nyto::compile(
      "n = randn(g, mod(member(), 3)) + 0*x\n"
      "u = x + rand(mod(member(), 2), 4) - msum(randn(g, mod(member(), 3)) * where(member() < 3, 1, 0))\n");
  nyto::RunOptions opt;
  opt.seed = 99;
  std::vector<std::vector<at::Tensor>> got;
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    opt.backend = b;
    auto out = rule.run({{"x", x}, {"g", 5.0}}, opt);
    auto n = out.at("n").swarm(), u = out.at("u").swarm();
    std::vector<at::Tensor> rows;
    for (int64_t m = 0; m < 7; ++m) rows.push_back(at::cat({flat(n.member(m)), flat(u.member(m))}));
    for (int64_t m = 3; m < 7; ++m) CHECK(at::equal(flat(n.member(m)), flat(n.member(m - 3))));
    CHECK(!at::equal(flat(n.member(0)), flat(n.member(1))));
    CHECK(!at::equal(flat(n.member(1)), flat(n.member(2))));
    got.push_back(rows);
  }
  for (size_t b = 1; b < got.size(); ++b)
    for (int64_t m = 0; m < 7; ++m) CHECK(at::equal(got[b][size_t(m)], got[0][size_t(m)]));
}

TEST_CASE("rank, centered_rank, argmin, argmax and pick; scalar and per-member outputs are returned") {
  const int64_t M = 5;
  Swarm<MixedImpl> x = distinct_swarm(M, 5);
  const std::vector<double> f = {3, 1, 4, 1, std::nan("")};  // a tie, and a NaN that ranks last
  auto rule = nyto::compile(
      "s = msum(f)\nmean = mmean(f)\nrk = rank(f)\ncr = centered_rank(f)\nlo = argmin(f)\n"
      "hi = argmax(f)\nbest = x[argmin(f)]\na = pick(0)\nb = pick(1)\nc = pick(2)");
  std::vector<nyto::AnyParticle> before;
  for (int64_t m = 0; m < M; ++m) before.push_back(x.member(m));
  for (Backend be : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(be));
    nyto::RunOptions opt;
    opt.backend = be;
    opt.seed = 42;
    opt.invocation = 3;
    auto out = rule.run({{"x", x}, {"f", f}}, opt);
    CHECK(std::isnan(out.at("s").scalar()));
    CHECK(out.at("rk").member_scalars() == std::vector<double>{2, 0.5, 3, 0.5, 4});
    CHECK(out.at("cr").member_scalars() == std::vector<double>{0, -0.375, 0.25, -0.375, 0.5});
    CHECK(out.at("lo").scalar() == 1);
    CHECK(out.at("hi").scalar() == 2);
    auto best = params_of(out.at("best").particle());
    auto want = params_of(x.member(1));
    for (size_t k = 0; k < best.size(); ++k) CHECK(at::equal(best[k], want[k]));
    const auto &a = out.at("a").member_scalars(), &b = out.at("b").member_scalars(),
               &c = out.at("c").member_scalars();
    for (int64_t m = 0; m < M; ++m) {
      std::set<double> three = {a[m], b[m], c[m]};
      CHECK(three.size() == 3);
      CHECK(three.count(double(m)) == 0);
      for (double v : three) CHECK((v >= 0 && v < M && v == std::floor(v)));
    }
    // The same seed and invocation give the same picks on every backend.
    static std::vector<double> first_a;
    if (be == Backend::Llvm) first_a = a;
    CHECK(a == first_a);
  }
  // Without a swarm, a per-member vector sets the member count; pick needs enough members.
  auto only = nyto::compile("total = msum(f)\nr = centered_rank(f)").run({{"f", std::vector<double>{2, 7, 1}}});
  CHECK(only.at("total").scalar() == 10);
  CHECK(only.at("r").member_scalars() == std::vector<double>{0, 0.5, -0.5});
  CHECK_NOTHROW(nyto::compile("y = x[pick(3)]").run({{"x", x}}));  // 5 members: pick(3) is the last
  try {
    nyto::compile("y = x[pick(4)]").run({{"x", x}});
    FAIL("no error");
  } catch (const nyto::BindError& e) {
    std::string msg = e.what();
    CHECK(msg.find("error[E0508]") != std::string::npos);
    CHECK(msg.find("needs at least 6 members, but the rule runs on 5") != std::string::npos);
    CHECK(msg.find("y = x[pick(4)]") != std::string::npos);
  }
}

TEST_CASE("C++ member expressions: mu -= lr * nyto::msum(w * (eps - mu)) is one staged kernel") {
  const int64_t M = 4;
  Swarm<MixedImpl> eps = distinct_swarm(M, 21);
  Particle<MixedImpl> mu = Particle<MixedImpl>(eps.member(0)).clone();
  const std::vector<double> w = {0.5, -1, 2, 0.25};
  auto mu0 = params_of(mu);
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t m = 0; m < M; ++m) rows.push_back(params_of(eps.member(m)));
  mu -= 0.1 * nyto::msum(w * (eps - mu));
  auto now = params_of(mu);
  for (size_t k = 0; k < now.size(); ++k) {
    // Folded in member order in the parameter's dtype, as the rule language defines it.
    at::Tensor acc = (rows[0][k] - mu0[k]) * w[0];
    for (int64_t m = 1; m < M; ++m) acc = acc + (rows[m][k] - mu0[k]) * w[size_t(m)];
    CHECK(at::allclose(now[k], mu0[k] - 0.1 * acc, 1e-6, 1e-6));
  }
  // mmean / mmin / mmax of a swarm, and a member expression evaluated as a swarm.
  Particle<MixedImpl> mean(nyto::mmean(eps).eval());
  Particle<MixedImpl> hi(nyto::mmax(eps).eval());
  for (size_t k = 0; k < now.size(); ++k) {
    at::Tensor s = rows[0][k], h = rows[0][k];
    for (int64_t m = 1; m < M; ++m) s = s + rows[m][k], h = at::maximum(h, rows[m][k]);
    CHECK(at::equal(params_of(mean)[k], s / double(M)));
    CHECK(at::equal(params_of(hi)[k], h));
  }
  nyto::AnySwarm scaled = (w * eps).eval();
  for (int64_t m = 0; m < M; ++m)
    for (size_t k = 0; k < now.size(); ++k)
      CHECK(at::equal(params_of(scaled.member(m))[k], rows[m][k] * w[size_t(m)]));
  // Mistakes: a per-member expression used as a particle; a vector of the wrong length.
  CHECK_THROWS_AS(nyto::AnyParticle(nyto::AnyExpr(nyto::MemberExpr(eps).node())), nyto::Error);
  CHECK_THROWS_AS((std::vector<double>{1, 2} * eps).eval(), nyto::BindError);
}

namespace {
// A swarm of M NetImpl members with distinct parameters (l1: 2 -> 3, l2: 3 -> 1; four tensors).
Swarm<NetImpl> net_swarm(int64_t M, uint64_t seed) {
  Swarm<NetImpl> x(nyto::make_particle<NetImpl>(), M);
  at::manual_seed(seed);
  torch::NoGradGuard g;
  for (int64_t m = 0; m < M; ++m)
    for (auto& t : Particle<NetImpl>(x.member(m))->parameters()) t.copy_(at::randn(t.sizes()));
  return x;
}
}  // namespace

TEST_CASE("parameter axis: per-tensor and whole-particle reductions of a swarm; ParamConfig; value outputs") {
  const int64_t M = 3;
  on_every_backend([&](const nyto::RunOptions& opt) {
    Swarm<NetImpl> x = net_swarm(M, 3);
    // l1.bias takes part in nothing: not reduced, not written.
    x.member(0).set_param_config(false, false, "l1.bias");
    std::vector<std::vector<at::Tensor>> before;
    for (int64_t m = 0; m < M; ++m) {
      std::vector<at::Tensor> ps;
      for (auto& t : Particle<NetImpl>(x.member(m))->parameters()) ps.push_back(t.detach().clone());
      before.push_back(ps);
    }
    auto rule = nyto::compile(
        "n = numel()\nnorm = psum(x*x)\nP = elems()\nbig = pmax(abs(x))\n"
        "x = x / sqrt(tsum(x*x))\n");
    auto out = rule.run({{"x", x}}, opt);
    CHECK(out.at("P").scalar() == 6 + 3 + 1);  // l1.weight, l2.weight, l2.bias
    const std::vector<double> norm = out.at("norm").member_scalars(), big = out.at("big").member_scalars();
    REQUIRE(norm.size() == size_t(M));
    Particle<NetImpl> nm(out.at("n").particle());  // numel() does not vary per member
    for (int64_t m = 0; m < M; ++m) {
      Particle<NetImpl> xm(x.member(m));
      const auto& p = before[size_t(m)];  // l1.weight, l1.bias, l2.weight, l2.bias
      double sq = 0, mx = 0;
      for (size_t k : {0, 2, 3}) {
        sq += (p[k].to(at::kDouble) * p[k].to(at::kDouble)).sum().item<double>();
        mx = std::max(mx, p[k].abs().max().item<double>());
      }
      CHECK(norm[size_t(m)] == doctest::Approx(sq).epsilon(1e-6));
      CHECK(big[size_t(m)] == mx);
      CHECK(at::allclose(xm->l1->weight, p[0] / p[0].norm(), 1e-6, 1e-6));
      CHECK(at::equal(xm->l1->bias, p[1]));
      CHECK(at::allclose(xm->l2->weight, p[2] / p[2].norm(), 1e-6, 1e-6));
      CHECK(at::allclose(xm->l2->bias, p[3] / p[3].norm(), 1e-6, 1e-6));
      CHECK(nm->l1->weight[0][0].item<double>() == 6);
      CHECK(nm->l2->weight[0][2].item<double>() == 3);
      CHECK(nm->l2->bias[0].item<double>() == 1);
    }
  });
}

TEST_CASE("parameter axis: no operational parameter: empty reductions give their identities") {
  auto net = nyto::make_particle<NetImpl>();
  net.set_param_config(false, false, "");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    nyto::RunOptions opt;
    opt.backend = b;
    auto out = nyto::compile("s = psum(x)\nlo = pmin(x)\nhi = pmax(x)\nk = pkth(x, 1)\nn = elems()\ny = x + tsum(x)")
                   .run({{"x", net}}, opt);
    CHECK(out.at("s").scalar() == 0);
    CHECK(std::signbit(out.at("s").scalar()));  // the sum of nothing starts from -0 (ir/IR.h)
    CHECK(out.at("lo").scalar() == INFINITY);
    CHECK(out.at("hi").scalar() == -INFINITY);
    CHECK(std::isnan(out.at("k").scalar()));
    CHECK(out.at("n").scalar() == 0);
    CHECK(at::equal(Particle<NetImpl>(out.at("y").particle())->l1->weight, net->l1->weight));
  }
}

TEST_CASE("parameter axis: an index checked by a value output fails before the stores") {
  Swarm<NetImpl> x = net_swarm(3, 5);
  std::vector<at::Tensor> before;
  for (int64_t m = 0; m < 3; ++m) before.push_back(Particle<NetImpl>(x.member(m))->l1->weight.clone());
  // n needs psum, computed by the pass that stores x; f[i] is checked only when n is evaluated.
  auto rule = nyto::compile("x = x * 2\nn = psum(x * x) * f[i]");
  for (Backend b : {Backend::Llvm, Backend::Interp, Backend::Aten}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    std::string msg = error_of([&] {
      rule.run({{"x", x}, {"f", std::vector<double>{1, 2, 3}}, {"i", 7.0}}, opt);
    });
    CHECK(contains(msg, "E0601"));
    for (int64_t m = 0; m < 3; ++m) CHECK(at::equal(Particle<NetImpl>(x.member(m))->l1->weight, before[size_t(m)]));
    auto out = rule.run({{"x", x}, {"f", std::vector<double>{1, 2, 3}}, {"i", 1.0}}, opt);
    const auto n = out.at("n").member_scalars();
    for (int64_t m = 0; m < 3; ++m) {
      double sq = 0;
      for (auto& t : Particle<NetImpl>(x.member(m))->parameters()) sq += (t.to(at::kDouble) * t.to(at::kDouble)).sum().item<double>();
      CHECK(n[size_t(m)] == doctest::Approx(sq * 2).epsilon(1e-5));  // psum of x (now doubled), times f[1]
      Particle<NetImpl>(x.member(m))->l1->weight.detach().copy_(before[size_t(m)]);
    }
  }
}

TEST_CASE("parameter axis: bad bindings are located errors (E0507, E0509), nothing changed") {
  auto net = nyto::make_particle<NetImpl>();
  auto mixed = nyto::make_particle<MixedImpl>();
  std::string msg = error_of([&] { nyto::compile("n = psum(a * a)").run({{"a", 2.0}}); });
  CHECK(contains(msg, "E0509"));
  CHECK(contains(msg, "needs a particle or swarm"));
  auto before = mixed->a.clone();
  msg = error_of([&] { nyto::compile("x = x / psum(x * x)").run({{"x", mixed}}); });
  CHECK(contains(msg, "E0509"));
  CHECK(contains(msg, "2 storage groups"));
  CHECK(at::equal(mixed->a, before));
  // Per-tensor reductions work on several groups: each tensor is in one.
  auto y = Particle<MixedImpl>(nyto::compile("y = x / tsum(x)").run({{"x", mixed}}).at("y").particle());
  CHECK(y->b[0][0].item<double>() == doctest::Approx(0.25));
  CHECK(y->c[2].item<double>() == doctest::Approx(1.0 / 3));
  nyto::RunOptions aten;  // the aten backend, group by group (sums of small integers: exact)
  aten.backend = Backend::Aten;
  auto ya = Particle<MixedImpl>(nyto::compile("y = x / tsum(x)").run({{"x", mixed}}, aten).at("y").particle());
  CHECK(at::equal(ya->a, y->a));
  CHECK(at::equal(ya->b, y->b));
  CHECK(at::equal(ya->c, y->c));
  msg = error_of([&] { nyto::compile("y = where(x >= tkth(x, k), x, 0)").run({{"x", net}, {"k", net}}); });
  CHECK(contains(msg, "E0507"));
  CHECK(contains(msg, "the k of tkth"));
}

// ProcessGroup::gather_blocks in a group of one: the block is the whole swarm, copied into
// `whole`; sizes that do not fit are refused before anything is exchanged.
TEST_CASE("gather_blocks: a group of one, and blocks that do not fit") {
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    ::close(fd);
  }
  nyto::ProcessGroup group("127.0.0.1", port, 0, 1, 10);
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(3);
  Swarm<NetImpl> mine(seed, 4, nyto::SwarmInit::Randn), whole(seed, 4), small(seed, 3);
  group.gather_blocks(mine, 4, whole, 0);
  CHECK(at::equal(whole.storage()[0], mine.storage()[0]));
  CHECK_THROWS_WITH_AS(group.gather_blocks(small, 4, whole, 0),
                       "nyto::ProcessGroup::gather_blocks: this rank's block has 4 members, the swarm given 3",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(group.gather_blocks(mine, 4, small, 0),
                       "nyto::ProcessGroup::gather_blocks: the whole swarm has 3 members, not 4", std::invalid_argument);
  CHECK_THROWS_WITH_AS(group.gather_blocks(mine, 4, whole, 1), "nyto::ProcessGroup::gather_blocks: root outside the group",
                       std::invalid_argument);
}


// A member reduction of a swarm's rows on blocks (CEM's shape: the elite's mean, then their
// deviation from it): each block folds its members onto the fold of the blocks before it
// (RunOptions::fold), so mu, sigma and every block's rows are the whole run's bits (interp, the
// oracle, and llvm), with blocks run at once as ranks would. Without fold: a BindError for a
// block alone, every member computed for a whole swarm with member_range.
TEST_CASE("block rows: member folds of a swarm's rows across blocks") {
  auto seed = nyto::make_particle<NetImpl>();
  torch::manual_seed(12);
  Swarm<NetImpl> x0(seed, 7, nyto::SwarmInit::Randn);
  auto rule = nyto::compile("let n = 3\nlet elite = rank(f) < n\n"
                            "mu = msum(where(elite, x, 0)) / n\n"
                            "sigma = sqrt(msum(where(elite, (x - mu) * (x - mu), 0)) / (n - 1)) + mmax(x) - mmin(x)\n"
                            "x = mu + sigma * randn()\n",
                            "cem.nyto");
  const std::vector<double> f{0.5, 1.5, -2.0, 3.0, 0.25, 1.0, -1.0};
  CHECK(rule.runs_on_blocks({{"f", f}}));
  const std::vector<std::pair<int64_t, int64_t>> blocks{{0, 3}, {3, 5}, {5, 7}};
  for (Backend b : {Backend::Interp, Backend::Llvm}) {
    CAPTURE(int(b));
    nyto::RunOptions opt;
    opt.backend = b;
    opt.seed = 3;
    opt.invocation = 4;
    Swarm<NetImpl> x = copy_rows(x0);
    auto whole = rule.run({{"x", x}, {"f", f}}, opt);
    opt.backend = Backend::Llvm;
    nyto::test::FoldChain chain(blocks);
    std::vector<std::map<std::string, nyto::Value>> got(3);
    std::vector<Swarm<NetImpl>> bx;
    for (const auto& [lo, hi] : blocks) bx.push_back(copy_rows(x0, lo, hi));
    std::vector<std::string> errors(3);
    std::vector<std::thread> ranks;
    for (int k = 0; k < 3; ++k)
      ranks.emplace_back([&, k] {
        nyto::RunOptions bo = opt;
        bo.member_range = blocks[size_t(k)];
        bo.block_rows = true;
        bo.population = 7;
        bo.fold = [&chain, k](nyto::FoldStep step, const at::Tensor& acc) {
          return chain.step(k, nyto::KernelArgs::FoldStep(int(step)), acc.data_ptr(), int64_t(acc.nbytes()));
        };
        try {
          got[size_t(k)] = rule.run({{"x", bx[size_t(k)]}, {"f", f}}, bo);
        } catch (const std::exception& e) {
          errors[size_t(k)] = e.what();
        }
      });
    for (auto& t : ranks) t.join();
    for (int k = 0; k < 3; ++k) {
      CAPTURE(k);
      REQUIRE(errors[size_t(k)] == "");
      const auto [lo, hi] = blocks[size_t(k)];
      CHECK(at::equal(bx[size_t(k)].storage()[0], x.storage()[0].narrow(0, lo, hi - lo)));
      CHECK(at::equal(got[size_t(k)].at("mu").particle().storage()[0], whole.at("mu").particle().storage()[0]));
      CHECK(at::equal(got[size_t(k)].at("sigma").particle().storage()[0], whole.at("sigma").particle().storage()[0]));
    }
    // Four folds (two msum, mmax, mmin) in two stages: block 0 and 1 send each, block 2 shares each twice.
    CHECK(chain.messages() == 4 * (2 + 2));
  }
  // Without RunOptions::fold: a block alone cannot run, and nothing is written; a whole swarm
  // with a member range computes every member.
  Swarm<NetImpl> bx = copy_rows(x0, 3, 5);
  nyto::RunOptions bo;
  bo.member_range = std::make_pair(int64_t(3), int64_t(5));
  bo.block_rows = true;
  bo.population = 7;
  CHECK_THROWS_WITH_AS(rule.run({{"x", bx}, {"f", f}}, bo),
                       "rule cem.nyto reduces a swarm's rows over the members, which the block [3, 5) does not hold "
                       "(RunOptions::block_rows); give RunOptions::fold, or bind the whole swarm",
                       nyto::BindError);
  CHECK(at::equal(bx.storage()[0], x0.storage()[0].narrow(0, 3, 2)));
  nyto::RunOptions ro;
  ro.seed = 3;
  ro.invocation = 4;
  Swarm<NetImpl> x = copy_rows(x0), xr = copy_rows(x0);
  rule.run({{"x", x}, {"f", f}}, ro);
  ro.member_range = std::make_pair(int64_t(3), int64_t(5));
  rule.run({{"x", xr}, {"f", f}}, ro);
  CHECK(at::equal(xr.storage()[0].narrow(0, 3, 2), x.storage()[0].narrow(0, 3, 2)));
}

// A parameter-axis rule on blocks (PGPE's shape): its psum reduces what every member computes
// alike (a member sum of keyed noise), so each block gets it whole; the blocks' rows and the
// mean are the whole run's bits (interp, the oracle, and llvm).
TEST_CASE("block rows: a reduction along the parameter axis of what every member computes") {
  const BlockInputs in = block_inputs(14);
  auto rule = nyto::compile("let j = floor(member() / 2)\nlet s = where(mod(member(), 2) == 0, 1, -1)\n"
                            "let grad = msum(s * f * randn(g, j)) / members()\n"
                            "mu = mu - 0.01 * grad / sqrt(psum(grad * grad))\n"
                            "x = mu + s * 0.1 * randn(g + 1, j)\n",
                            "pgpe.nyto");
  CHECK(rule.runs_on_blocks({{"mu", in.mu0}, {"f", in.f}, {"g", 2.0}}));
  check_on_blocks(rule, in, {{0, 2}, {2, 5}, {5, 6}});
}
