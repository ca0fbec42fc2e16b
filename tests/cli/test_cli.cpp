// End-to-end tests of the nyto command (check, compile, run) through the built binary: outputs,
// exit codes, values written, and that a failed command writes nothing and changes no file.
#include "tests/doctest_torch.h"  // first: LibTorch's glog CHECK would replace doctest's

#include <ATen/ATen.h>
#include <nyto/any_module.h>
#include <nyto/particle.h>
#include <nyto/swarm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/runtime/models.h"

namespace fs = std::filesystem;

namespace {

const std::string kNyto = NYTO_BIN;
const std::string kSource = NYTO_SOURCE_DIR;
const std::string kRules = kSource + "/examples/rules/";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct Result {
  int rc = -1;
  std::string out, err;
};

/// A scratch directory per test case, removed at the end.
struct Scratch {
  fs::path dir;
  Scratch() {
    char tmpl[] = "/tmp/nyto-cli-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }

  /// Runs `nyto ARGS` (a shell command line tail), capturing stdout and stderr.
  Result nyto(const std::string& args) const {
    std::string cmd = kNyto + " " + args + " >" + (*this / ".out") + " 2>" + (*this / ".err");
    int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(*this / ".out");
    r.err = slurp(*this / ".err");
    fs::remove(*this / ".out");
    fs::remove(*this / ".err");
    return r;
  }

  /// Every file under the directory with its contents: to show that nothing changed.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) out[e.path().string()] = slurp(e.path().string());
      else out[e.path().string() + "/"] = "";
    return out;
  }
};

std::map<std::string, at::Tensor> values_of(const nyto::AnyParticle& p) {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < p.params().size(); ++i) out[p.params()[i].path] = p.param_tensors()[i].detach();
  return out;
}

std::map<std::string, at::Tensor> load_values(const std::string& path) {
  return values_of(nyto::load_particle(path));
}

void check_close(const std::map<std::string, at::Tensor>& got,
                 const std::map<std::string, at::Tensor>& want) {
  REQUIRE(got.size() == want.size());
  for (const auto& entry : want) {
    const auto& k = entry.first;  // not a structured binding: C++17 lambdas (INFO) cannot capture one
    const auto& w = entry.second;
    INFO("parameter " << k);
    REQUIRE(got.count(k));
    CHECK(at::allclose(got.at(k), w, 1e-6, 1e-6));
  }
}

/// Writes three checkpoints of Net (l1: 2->3, l2: 3->1) with distinct values, one of Mixed (another
/// structure), and a swarm directory of three Net checkpoints.
void write_particles(const Scratch& s) {
  torch::manual_seed(1);
  auto base = nyto::make_particle<NetImpl>();
  base.save(s / "base.pt");
  nyto::AnyParticle(base + 1.0).save(s / "ft_a.pt");
  nyto::AnyParticle(base * 2.0).save(s / "ft_b.pt");
  nyto::make_particle<MixedImpl>().save(s / "mixed.pt");
  fs::create_directory(s / "swarm");
  for (int i = 0; i < 3; ++i) nyto::AnyParticle(base * double(i + 1) - 1.0).save(s / ("swarm/m" + std::to_string(i) + ".pt"));
}

void write_rule(const Scratch& s, const std::string& name, const std::string& text) {
  std::ofstream(s / name) << text;
}

}  // namespace

TEST_CASE("nyto check: clean files exit 0, any diagnostic exits 2 and all are printed") {
  Scratch s;
  auto ok = s.nyto("check " + kRules + "pso.nyto " + kRules + "apso.nyto " + kRules + "merge.nyto " +
                   kRules + "scale.nyto");
  CHECK(ok.rc == 0);
  CHECK(ok.err.empty());
  CHECK(ok.out.empty());

  write_rule(s, "bad.nyto", "v = w*v + c1*rnd()*(pbest - x)\nx = clamp(x, 0)\n");
  auto bad = s.nyto("check " + (s / "bad.nyto") + " " + kRules + "pso.nyto");
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("bad.nyto:1:14: error[E0103]: unknown function 'rnd'; did you mean 'rand'?") !=
        std::string::npos);
  CHECK(bad.err.find("bad.nyto:2:5: error[E0104]") != std::string::npos);
  CHECK(bad.err.find("1 of 2 files failed") != std::string::npos);

  write_rule(s, "syntax.nyto", "v = w*v +\n");
  CHECK(s.nyto("check " + (s / "syntax.nyto")).err.find("error[E0001]") != std::string::npos);
  auto missing = s.nyto("check " + (s / "nope.nyto"));
  CHECK(missing.rc == 2);
  CHECK(missing.err.find("cannot read rule") != std::string::npos);
  auto dir = s.nyto("check " + s.dir.string());  // not read as an empty script
  CHECK(dir.rc == 2);
  CHECK(dir.err.find("cannot read rule '" + s.dir.string() + "': it is a directory") != std::string::npos);
  CHECK(s.nyto("check").rc == 2);  // FILE is required
}

TEST_CASE("nyto compile --emit: every stage on stdout; ir of pso matches the golden file") {
  Scratch s;
  auto ir = s.nyto("compile " + kRules + "pso.nyto --emit ir");
  CHECK(ir.rc == 0);
  CHECK(ir.out == slurp(kSource + "/tests/cli/golden/pso.ir"));
  auto ast = s.nyto("compile " + kRules + "scale.nyto --emit ast");
  CHECK(ast.rc == 0);
  CHECK(ast.out.find("Assign net2") != std::string::npos);
  auto opt = s.nyto("compile " + kRules + "pso.nyto --emit ir-opt");
  CHECK(opt.rc == 0);
  CHECK(opt.out.find("store x = %18 -> input x (in place)") != std::string::npos);
  auto llvm = s.nyto("compile " + kRules + "apso.nyto --emit llvm");
  CHECK(llvm.rc == 0);
  CHECK(llvm.out.find("define void @nyto_kernel") != std::string::npos);

  CHECK(s.nyto("compile " + kRules + "pso.nyto --emit asm").rc == 2);
  CHECK(s.nyto("compile " + (s / "nope.nyto")).rc == 2);
  write_rule(s, "bad.nyto", "y = clamp(x, 0)\n");
  auto bad = s.nyto("compile " + (s / "bad.nyto") + " --emit ir");
  CHECK(bad.rc == 2);
  CHECK(bad.out.empty());
  CHECK(bad.err.find("error[E0104]") != std::string::npos);
}

TEST_CASE("nyto run on nyto checkpoints: new outputs, params, in-place swarms") {
  Scratch s;
  write_particles(s);
  auto base = load_values(s / "base.pt");
  auto a = load_values(s / "ft_a.pt");
  auto b = load_values(s / "ft_b.pt");

  SUBCASE("scale: net2 = 0.5*net + 10") {
    auto r = s.nyto("run " + kRules + "scale.nyto --load net=" + (s / "base.pt") + " --save net2=" +
                    (s / "net2.pt"));
    REQUIRE(r.rc == 0);
    std::map<std::string, at::Tensor> want;
    for (const auto& [k, v] : base) want[k] = 0.5 * v + 10;
    check_close(load_values(s / "net2.pt"), want);
  }
  SUBCASE("merge with --set t, on every backend") {
    for (std::string backend : {"llvm", "interp", "aten"}) {
      INFO("backend " << backend);
      auto r = s.nyto("run " + kRules + "merge.nyto --load base=" + (s / "base.pt") + " --load ft_a=" +
                      (s / "ft_a.pt") + " --load ft_b=" + (s / "ft_b.pt") + " --set t=0.25 --save merged=" +
                      (s / "merged.pt") + " --backend " + backend);
      REQUIRE(r.rc == 0);
      CHECK(r.err.empty());
      std::map<std::string, at::Tensor> want;
      for (const auto& [k, v] : base) want[k] = v + 0.25 * (a[k] - v) + 0.25 * (b[k] - v);
      check_close(load_values(s / "merged.pt"), want);
    }
  }
  SUBCASE("apso in place on a swarm directory, saved to another directory with the same names") {
    auto r = s.nyto("run " + kRules + "apso.nyto --load x=" + (s / "swarm") + " --load gbest=" +
                    (s / "ft_a.pt") + " --set alpha=0.25 --save x=" + (s / "out"));
    REQUIRE(r.rc == 0);
    for (int i = 0; i < 3; ++i) {
      std::string m = "m" + std::to_string(i) + ".pt";
      auto x = load_values(s / ("swarm/" + m));
      std::map<std::string, at::Tensor> want;
      for (const auto& [k, v] : x) want[k] = 0.75 * v + 0.25 * a[k];
      check_close(load_values(s / ("out/" + m)), want);
    }
    CHECK(std::distance(fs::directory_iterator(s / "out"), fs::directory_iterator()) == 3);
  }
  SUBCASE("results written over the files they were loaded from") {
    auto before = load_values(s / "swarm/m1.pt");
    auto r = s.nyto("run " + kRules + "apso.nyto --load x=" + (s / "swarm") + " --load gbest=" +
                    (s / "ft_a.pt") + " --save x=" + (s / "swarm"));
    REQUIRE(r.rc == 0);
    std::map<std::string, at::Tensor> want;
    for (const auto& [k, v] : before) want[k] = 0.5 * v + 0.5 * a[k];
    check_close(load_values(s / "swarm/m1.pt"), want);
    r = s.nyto("run " + kRules + "apso.nyto --load x=" + (s / "ft_b.pt") + " --load gbest=" +
               (s / "ft_a.pt") + " --save x=" + (s / "ft_b.pt") + " --set alpha=1");
    REQUIRE(r.rc == 0);
    check_close(load_values(s / "ft_b.pt"), a);
    // Nothing but the files written before: no temporary file or directory left behind.
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(s.dir)) names.insert(e.path().filename().string());
    CHECK(names == std::set<std::string>{"base.pt", "ft_a.pt", "ft_b.pt", "mixed.pt", "swarm"});
    CHECK(std::distance(fs::directory_iterator(s / "swarm"), fs::directory_iterator()) == 3);
  }
  SUBCASE("pso on a nyto swarm checkpoint: --seed makes runs reproducible") {
    auto seed = nyto::load_particle(s / "base.pt");
    nyto::AnySwarm(seed, 4, nyto::SwarmInit::Randn).save(s / "x.swarm");
    nyto::AnySwarm(seed, 4, nyto::SwarmInit::Randn).save(s / "v.swarm");
    auto cmd = [&](const std::string& seed, const std::string& tag) {
      return "run " + kRules + "pso.nyto --load x=" + (s / "x.swarm") + " --load v=" + (s / "v.swarm") +
             " --load pbest=" + (s / "x.swarm") + " --load gbest=" + (s / "ft_a.pt") + " --seed " + seed +
             " --save x=" + (s / ("x" + tag + ".swarm")) + " --save v=" + (s / ("v" + tag + ".swarm"));
    };
    REQUIRE(s.nyto(cmd("7", "1")).rc == 0);
    REQUIRE(s.nyto(cmd("7", "2")).rc == 0);
    REQUIRE(s.nyto(cmd("8", "3")).rc == 0);
    auto x1 = nyto::load_swarm(s / "x1.swarm"), x2 = nyto::load_swarm(s / "x2.swarm"),
         x3 = nyto::load_swarm(s / "x3.swarm"), x0 = nyto::load_swarm(s / "x.swarm"),
         v1 = nyto::load_swarm(s / "v1.swarm");
    CHECK(x1.size() == 4);
    CHECK(at::equal(x1.storage()[0], x2.storage()[0]));
    CHECK(!at::equal(x1.storage()[0], x3.storage()[0]));
    // x = x + v with the new v
    CHECK(at::allclose(x1.storage()[0], x0.storage()[0] + v1.storage()[0], 1e-5, 1e-5));
  }
}

TEST_CASE("nyto run: bad input gives a clear error and exit 2 (usage, compile) or 1 (runtime); "
          "nothing is written and no file changes") {
  Scratch s;
  write_particles(s);
  write_rule(s, "syntax.nyto", "merged = base + (ft_a\n");
  write_rule(s, "arity.nyto", "merged = clamp(base, 0)\n");
  write_rule(s, "two.nyto", "a2 = ft_a + 1\nb2 = ft_b * 2\n");
  const std::string merge = kRules + "merge.nyto";
  const std::string loads = " --load base=" + (s / "base.pt") + " --load ft_a=" + (s / "ft_a.pt") +
                            " --load ft_b=" + (s / "ft_b.pt");
  const std::string save = " --save merged=" + (s / "merged.pt");
  struct Case {
    std::string name, args;
    int rc;
    std::string message;
  };
  std::vector<Case> cases = {
      {"malformed script", "run " + (s / "syntax.nyto") + loads + save, 2, "error[E0001]"},
      {"wrong arity", "run " + (s / "arity.nyto") + loads + save, 2, "error[E0104]"},
      {"misspelt input", "run " + merge + " --load bse=" + (s / "base.pt") + " --load ft_a=" +
                             (s / "ft_a.pt") + " --load ft_b=" + (s / "ft_b.pt") + save,
       2, "error[E0101]: unknown name 'base'; did you mean 'bse'?"},
      {"missing rule file", "run " + (s / "nope.nyto") + loads + save, 2, "cannot read rule"},
      {"unknown flag", "run " + merge + loads + save + " --frobnicate 3", 2, "frobnicate"},
      {"bad --set value", "run " + merge + loads + save + " --set t=half", 2, "'half' is not a number"},
      {"--set value beyond double", "run " + merge + loads + save + " --set t=1e999", 2,
       "--set t=1e999: '1e999' is beyond the range of a double"},
      {"--set of no param", "run " + merge + loads + save + " --set tt=0.5", 2,
       "error[E0504]: the rule " + merge + " has no param 'tt'; did you mean 't'?"},
      {"bad --backend", "run " + merge + loads + save + " --backend gpu", 2, "gpu not in"},
      {"negative --seed", "run " + merge + loads + save + " --seed -1", 2,
       "--seed: expected a non-negative integer, got '-1'"},
      {"--seed past 2^64 - 1", "run " + merge + loads + save + " --seed 18446744073709551616", 2,
       "--seed: '18446744073709551616' is larger than 18446744073709551615"},
      {"bad --load syntax", "run " + merge + " --load " + (s / "base.pt") + save, 2, "--load expects NAME=PATH"},
      {"--load twice", "run " + merge + loads + " --load base=" + (s / "ft_a.pt") + save, 2, "given twice"},
      {"--save of nothing the rule produces", "run " + merge + loads + " --save mergd=" + (s / "merged.pt"),
       2, "produces no 'mergd' (it assigns 'merged'); did you mean 'merged'?"},
      {"in-place target bound to a scalar", "run " + kRules + "apso.nyto --set x=0.5 --load gbest=" +
                                                (s / "base.pt") + " --save x=" + (s / "merged.pt"),
       2, "error[E0501]"},
      {"operands of different species", "run " + merge + " --load base=" + (s / "base.pt") +
                                            " --load ft_a=" + (s / "ft_a.pt") + " --load ft_b=" +
                                            (s / "mixed.pt") + save,
       2, "note: the loaded files have different structures"},
      {"missing particle file", "run " + merge + " --load base=" + (s / "gone.pt") + " --load ft_a=" +
                                    (s / "ft_a.pt") + " --load ft_b=" + (s / "ft_b.pt") + save,
       1, "cannot open"},
      {"corrupt particle file", "run " + merge + " --load base=" + (s / "syntax.nyto") + " --load ft_a=" +
                                    (s / "ft_a.pt") + " --load ft_b=" + (s / "ft_b.pt") + save,
       1, "neither a nyto checkpoint nor a TorchScript archive"},
      {"--save of an input the rule does not assign",
       "run " + kRules + "apso.nyto --load x=" + (s / "swarm") + " --load gbest=" + (s / "ft_a.pt") +
           " --save x=" + (s / "out") + " --save gbest=" + (s / "g.pt"),
       2, "produces no 'gbest'"},
      {"unwritable output: the other output is not written either",
       "run " + (s / "two.nyto") + " --load ft_a=" + (s / "ft_a.pt") + " --load ft_b=" + (s / "ft_b.pt") +
           " --save a2=" + (s / "a2.pt") + " --save b2=" + (s / "no/such/dir/b2.pt"),
       1, "cannot write"},
      {"--save of a particle to a directory", "run " + kRules + "scale.nyto --load net=" + (s / "base.pt") +
                                                  " --save net2=" + (s / "swarm"),
       1, "it is a directory"},
      {"empty swarm directory", "run " + kRules + "apso.nyto --load x=" + (s / "empty") + " --load gbest=" +
                                    (s / "ft_a.pt") + " --save x=" + (s / "out"),
       1, "holds no model files"},
  };
  fs::create_directory(s / "empty");
  for (const auto& c : cases) {
    INFO(c.name << ": nyto " << c.args);
    auto before = s.snapshot();
    auto r = s.nyto(c.args);
    INFO("stderr: " << r.err);
    CHECK(r.rc == c.rc);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(s.snapshot() == before);
  }

  SUBCASE("a swarm directory whose files have different structures") {
    fs::copy_file(s / "mixed.pt", s / "swarm/m9.pt");
    auto before = s.snapshot();
    auto r = s.nyto("run " + kRules + "apso.nyto --load x=" + (s / "swarm") + " --load gbest=" +
                    (s / "ft_a.pt") + " --save x=" + (s / "swarm"));
    CHECK(r.rc == 2);
    CHECK(r.err.find("must have one structure") != std::string::npos);
    CHECK(s.snapshot() == before);
  }
}
