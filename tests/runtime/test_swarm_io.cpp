// Swarms and saving / loading particles and swarms.
#include "tests/doctest_torch.h"
#include <nyto/nyto.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/runtime/models.h"

namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("nyto-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};
}  // namespace

TEST_CASE("a swarm keeps its members in one [N, P] storage") {
  auto seed = nyto::make_particle<NetImpl>();
  nyto::Swarm<NetImpl> swarm(seed, 5);
  CHECK(swarm.size() == 5);
  REQUIRE(swarm.storage().size() == 1);
  CHECK((swarm.storage()[0].sizes() == at::IntArrayRef{5, 13}));
  for (int i = 0; i < 5; ++i) CHECK(at::equal(swarm.storage()[0][i], seed.storage()[0]));
  auto m2 = swarm[2];
  CHECK(m2.same_species(seed));
  CHECK(m2->l1->weight.data_ptr() == swarm.storage()[0][2].data_ptr());
  m2 *= 0;  // writes row 2 only
  CHECK(swarm.storage()[0][2].abs().sum().item<double>() == 0);
  CHECK(swarm.storage()[0][1].abs().sum().item<double>() > 0);
  CHECK(swarm[2]->l1->weight.data_ptr() == m2->l1->weight.data_ptr());  // the same member
  auto sum = swarm[0] + seed;
  CHECK(at::allclose(sum.storage()[0], seed.storage()[0] * 2));
  CHECK_THROWS_AS(swarm[5], nyto::Error);
  CHECK_THROWS_AS(nyto::Swarm<NetImpl>(seed, 0), nyto::Error);
}

TEST_CASE("swarm init: rand and randn, ParamConfig honoured") {
  auto seed = nyto::make_particle<NetImpl>();
  seed.set_param_config(false, false, "l2.bias");
  torch::manual_seed(3);
  nyto::Swarm<NetImpl> r(seed, 4, nyto::SwarmInit::Rand);
  CHECK(r[0]->l1->weight.min().item<double>() >= 0);
  CHECK_FALSE(at::equal(r[0]->l1->weight, r[1]->l1->weight));
  CHECK(r[3]->l2->bias.data_ptr() == seed->l2->bias.data_ptr());  // shared, as configured
  nyto::Swarm<NetImpl> n(seed, 4, nyto::SwarmInit::Randn);
  CHECK(n[1]->l1->weight.min().item<double>() < 0);
}

TEST_CASE("save and load a particle, bit for bit") {
  TempDir dir;
  auto net = nyto::make_particle<NetImpl>();
  net.save(dir / "net.pt");
  auto other = net.randn();
  other.load(dir / "net.pt");
  CHECK(at::equal(other.storage()[0], net.storage()[0]));
  auto mixed = nyto::make_particle<MixedImpl>();
  mixed *= 1.0 / 3.0;
  mixed.save(dir / "mixed.pt");
  auto m2 = mixed.rand();
  m2.load(dir / "mixed.pt");
  CHECK(at::equal(m2.storage()[1], mixed.storage()[1]));
  CHECK(at::equal(m2.storage()[0], mixed.storage()[0]));
  std::set<std::string> names;  // no temporary file is left beside them
  for (const auto& e : fs::directory_iterator(dir.path)) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"mixed.pt", "net.pt"});
}

TEST_CASE("load errors are clear and change nothing") {
  TempDir dir;
  auto net = nyto::make_particle<NetImpl>();
  at::Tensor before = net.storage()[0].clone();
  std::string msg;
  try {
    net.load(dir / "missing.pt");
  } catch (const nyto::IOError& e) {
    msg = e.what();
  }
  CHECK(msg.find("missing.pt") != std::string::npos);

  { std::ofstream(dir / "junk.pt") << "not a checkpoint at all"; }
  CHECK_THROWS_AS(net.load(dir / "junk.pt"), nyto::IOError);

  // Truncated: the first half of a real file.
  net.save(dir / "good.pt");
  {
    std::ifstream in(dir / "good.pt", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / "cut.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  CHECK_THROWS_AS(net.load(dir / "cut.pt"), nyto::IOError);

  auto lin = nyto::make_particle<torch::nn::Linear>(2, 3);
  lin.save(dir / "lin.pt");
  msg.clear();
  try {
    net.load(dir / "lin.pt");
  } catch (const nyto::ShapeError& e) {
    msg = e.what();
  }
  CHECK(msg.find("'weight'") != std::string::npos);
  CHECK(msg.find("'l1.weight'") != std::string::npos);

  auto lin_big = nyto::make_particle<torch::nn::Linear>(2, 4);
  CHECK_THROWS_AS(lin_big.load(dir / "lin.pt"), nyto::ShapeError);

  nyto::Swarm<NetImpl> swarm(net, 2);
  swarm.save(dir / "swarm.pt");
  CHECK_THROWS_AS(net.load(dir / "swarm.pt"), nyto::IOError);  // a swarm is not a particle
  CHECK(at::equal(net.storage()[0], before));
  CHECK_THROWS_AS(net.save((dir / "no-such-dir") + "/x.pt"), nyto::IOError);
}

TEST_CASE("save and load a swarm") {
  TempDir dir;
  auto seed = nyto::make_particle<NetImpl>();
  nyto::Swarm<NetImpl> swarm(seed, 3, nyto::SwarmInit::Randn);
  swarm.save(dir / "s.pt");
  nyto::Swarm<NetImpl> other(seed, 3);
  other.load(dir / "s.pt");
  CHECK(at::equal(other.storage()[0], swarm.storage()[0]));
  nyto::Swarm<NetImpl> four(seed, 4);
  at::Tensor before = four.storage()[0].clone();
  CHECK_THROWS_AS(four.load(dir / "s.pt"), nyto::ShapeError);
  CHECK(at::equal(four.storage()[0], before));
}
