// End-to-end tests of the nyto command (check, compile, run) through the built binary: outputs,
// exit codes, values written, and that a failed command writes nothing and changes no file.
#include "tests/doctest_torch.h"  // first: LibTorch's glog CHECK would replace doctest's

#include <ATen/ATen.h>
#include <nyto/any_module.h>
#include <nyto/particle.h>
#include <nyto/swarm.h>
#include <sys/stat.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/archive_patch.h"
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

  /// Runs `nyto ARGS` (a shell command line tail), capturing stdout and stderr; `prefix` goes
  /// before the command (e.g. "NYTO_FAULT=write:eio " or "cd DIR && ").
  Result nyto(const std::string& args, const std::string& prefix = "") const {
    std::string cmd = prefix + kNyto + " " + args + " >" + (*this / ".out") + " 2>" + (*this / ".err");
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

TEST_CASE("nyto run --load of a param or of the rule's own output: exit 2, names it, says what "
          "would do") {
  Scratch s;
  write_particles(s);
  const std::string merge = kRules + "merge.nyto";
  const std::string loads = " --load base=" + (s / "base.pt") + " --load ft_a=" + (s / "ft_a.pt") +
                            " --load ft_b=" + (s / "ft_b.pt");
  auto before = s.snapshot();
  auto r = s.nyto("run " + merge + loads + " --load t=" + (s / "mixed.pt") + " --save merged=" +
                  (s / "merged.pt"));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--load t: 't' is a param of the rule") != std::string::npos);
  CHECK(r.err.find("--set t=VALUE") != std::string::npos);
  CHECK(s.snapshot() == before);
  r = s.nyto("run " + merge + loads + " --load merged=" + (s / "ft_a.pt") + " --save merged=" +
             (s / "merged.pt"));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--load merged: 'merged' is computed by the rule") != std::string::npos);
  CHECK(r.err.find("its inputs: 'base', 'ft_a', 'ft_b'") != std::string::npos);
  CHECK(s.snapshot() == before);
}

TEST_CASE("REPL :llvm shows what runs: the aten backend for a float16 particle") {
  Scratch s;
  auto half = std::make_shared<NetImpl>();
  half->to(torch::kHalf);
  nyto::AnyParticle::adopt(half).save(s / "half.pt");
  nyto::make_particle<NetImpl>().save(s / "single.pt");
  std::ofstream(s / "in.txt") << ":load h " << (s / "half.pt") << "\n:llvm h2 = h * 2\n:load f "
                              << (s / "single.pt") << "\n:llvm f2 = f * 2\n";
  auto r = s.nyto("repl < " + (s / "in.txt"));
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find("(Half on cpu): run by the aten backend") != std::string::npos);
  CHECK(r.out.find("x half>") == std::string::npos);
  CHECK(r.out.find("define") != std::string::npos);  // the float32 particle's kernel
  r = s.nyto("repl --backend aten < " + (s / "in.txt"));
  CHECK(r.out.find("define") == std::string::npos);
  CHECK(r.out.find("(Float on cpu): run by the aten backend") != std::string::npos);
}

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
  CHECK(opt.out.find("store x = %23 -> input x (in place)") != std::string::npos);
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
      // The step of the generation rule: its states v, pbest, pf bound as the trainer binds them.
      return "run " + kRules + "pso.nyto --load x=" + (s / "x.swarm") + " --load v=" + (s / "v.swarm") +
             " --load pbest=" + (s / "x.swarm") + " --load best=" + (s / "ft_a.pt") +
             " --set f=1,2,3,4 --set pf=2,2,2,2 --seed " + seed +
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

TEST_CASE("user mistakes exit 2 with a message, never 'internal error' or a backtrace") {
  Scratch s;
  struct Case {
    std::string args, message;
  };
  // Every numeric flag refuses nan, infinities and values out of its range before anything runs,
  // and prints the range readably (no 300-digit bound).
  std::vector<Case> cases = {
      {"train --lr nan", "--lr: expected a number in (0, 1e30], got 'nan'"},
      {"train --lr 0", "--lr: must be a number in (0, 1e30], got 0"},
      {"train --lr inf", "--lr: expected a number in (0, 1e30], got 'inf'"},
      {"train --lr 1e31", "--lr: must be a number in (0, 1e30], got 1e31"},
      {"train --momentum nan", "--momentum: expected a number in [0, 1], got 'nan'"},
      {"train --momentum -0.5", "--momentum: must be a number in [0, 1], got -0.5"},
      {"train --hidden 99999999999999999999", "--hidden: must be an integer in [1, 65536]"},
      {"train --hidden 1e3", "--hidden: expected an integer in [1, 65536], got '1e3'"},
      {"train --particles -1", "--particles: must be an integer in [1, 100000], got -1"},
      {"train --epochs 0", "--epochs: must be an integer in [1, 1e6], got 0"},
      {"train --batches -1", "--batches: must be an integer in [0, 1e12], got -1"},
      {"train --batch-size 1.5", "--batch-size: expected an integer in [1, 60000], got '1.5'"},
      {"train --swarm-every nan", "--swarm-every: expected an integer in [0, 1e12], got 'nan'"},
      {"train --swarm-size 1", "--swarm-size: must be an integer in [2, 100000], got 1"},
      {"train --eval-every -5", "--eval-every: must be an integer in [0, 1e12], got -5"},
      {"train --eval-size 0", "--eval-size: must be an integer in [1, 1e9], got 0"},
      {"train --fitness-size 60001", "--fitness-size: must be an integer in [1, 60000], got 60001"},
      {"train --threads 100000", "--threads: must be an integer in [1, "},
      {"run x.nyto --threads 0", "--threads: must be an integer in [1, "},
      {"repl --threads 4096", "--threads: must be an integer in [1, "},
      {"repl --threads -1", "--threads: must be an integer in [1, "},
      {"bogus", "nyto: error: unknown command 'bogus'\n"
                "the commands are check, compile, run, train, eval, repl (nyto --help describes them)"},
      {"chek x.nyto", "unknown command 'chek'; did you mean 'check'?"},
      {"", "nyto: error: no command given; the commands are check, compile, run, train, eval, repl"},
      {"--bogus check", "nyto: error: unknown option '--bogus' before the command"},
  };
  for (const auto& c : cases) {
    INFO("nyto " << c.args);
    auto r = s.nyto(c.args + " </dev/null");
    INFO("stderr: " << r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(r.err.find("internal error") == std::string::npos);
    CHECK(r.err.size() < 400);
  }
}

TEST_CASE("a rule path that is a device, a pipe or a huge file: read with a limit, a clear error") {
  Scratch s;
  // /dev/zero and /dev/urandom were read forever.
  for (std::string dev : {"/dev/zero", "/dev/urandom"}) {
    auto r = s.nyto("check " + dev);
    CHECK(r.rc == 2);
    CHECK(r.err.find("cannot read rule '" + dev + "': it is a device or socket, not a file") !=
          std::string::npos);
    CHECK(s.nyto("compile " + dev).rc == 2);
  }
  // A file beyond 16 MiB is refused without reading it (a sparse file: no disk used).
  fs::resize_file((std::ofstream(s / "huge.nyto"), s / "huge.nyto"), (16u << 20) + 1);
  auto huge = s.nyto("check " + (s / "huge.nyto"));
  CHECK(huge.rc == 2);
  CHECK(huge.err.find("it is larger than 16 MiB") != std::string::npos);
  // A pipe holds a script; an endless one stops at the limit.
  REQUIRE(::mkfifo((s / "fifo").c_str(), 0600) == 0);
  std::system(("printf 'y = x + 1\\n' >" + (s / "fifo") + " &").c_str());
  auto piped = s.nyto("check " + (s / "fifo"));
  CHECK(piped.rc == 0);
  CHECK(piped.err.empty());
  std::system(("yes 'y = x + 1' >" + (s / "fifo") + " 2>/dev/null &").c_str());
  auto endless = s.nyto("check " + (s / "fifo"));
  CHECK(endless.rc == 2);
  CHECK(endless.err.find("it is larger than 16 MiB") != std::string::npos);
}

TEST_CASE("diagnostics: a NUL byte is shown, not a cut; CR-only lines are counted and not echoed") {
  Scratch s;
  std::ofstream(s / "nul.nyto", std::ios::binary) << std::string("x = x + \0 v\ny = 2 +\n", 20);
  auto nul = s.nyto("check " + (s / "nul.nyto"));
  CHECK(nul.rc == 2);
  CHECK(nul.err.find('\0') == std::string::npos);
  CHECK(nul.err.find("nul.nyto:1:9: error[E0002]: unexpected character U+0000") != std::string::npos);
  CHECK(nul.err.find("x = x + \u2400 v\n        ^\n") != std::string::npos);
  // The diagnostics after the NUL, and the summary, are all printed.
  CHECK(nul.err.find("nul.nyto:2:8: error[E0001]") != std::string::npos);
  CHECK(nul.err.find("1 of 1 files failed the check") != std::string::npos);

  std::ofstream(s / "cr.nyto", std::ios::binary) << "x = 1\ry = 2 +\rz = 3\r";
  auto cr = s.nyto("check " + (s / "cr.nyto"));
  CHECK(cr.rc == 2);
  CHECK(cr.err.find('\r') == std::string::npos);
  CHECK(cr.err.find("cr.nyto:2:8: error[E0001]: unexpected end of line; expected an expression\n"
                    "y = 2 +\n"
                    "       ^\n") != std::string::npos);
}

namespace {
/// A 64 KiB tmpfs mounted at `dir` and filled to the last byte (needs root; else not mounted).
struct FullDisk {
  std::string dir;
  bool mounted = false;
  explicit FullDisk(const std::string& d) : dir(d) {
    fs::create_directory(dir);
    mounted = std::system(("mount -t tmpfs -o size=64k tmpfs '" + dir + "' 2>/dev/null").c_str()) == 0;
  }
  void fill() const {
    std::system(("cat /dev/zero > '" + dir + "/filler' 2>/dev/null").c_str());
  }
  ~FullDisk() {
    if (mounted) std::system(("umount '" + dir + "'").c_str());
  }
};

bool has_temp_name(const std::string& text) { return text.find(".nyto-tmp") != std::string::npos; }
}  // namespace

TEST_CASE("nyto run: a failed write (full disk, I/O error, failed rename) exits 1, names the "
          "target and the OS's reason, changes no file and leaves nothing beside") {
  Scratch s;
  write_particles(s);
  write_rule(s, "two.nyto", "a2 = ft_a + 1\nb2 = ft_b * 2\n");
  const std::string two = "run " + (s / "two.nyto") + " --load ft_a=" + (s / "ft_a.pt") +
                          " --load ft_b=" + (s / "ft_b.pt");
  fs::copy_file(s / "base.pt", s / "a2.pt");
  fs::copy_file(s / "base.pt", s / "b2.pt");
  const std::string saves = " --save a2=" + (s / "a2.pt") + " --save b2=" + (s / "b2.pt");

  SUBCASE("faults injected at each step of writing and committing two outputs") {
    // Staging writes a2 then b2 (renames 1, 2); the commit swaps a2 (swap 1), then b2 (swap 2):
    // a failure of the second swap must put the first target back.
    struct Case {
      std::string spec, reason;
    } cases[] = {{"write:enospc@3", "No space left on device"}, {"write:eio@2+", "Input/output error"},
                 {"fsync:eio@2", "Input/output error"},         {"close:edquot", "Disk quota exceeded"},
                 {"open:eacces@2", "Permission denied"},        {"rename:exdev@2", "Invalid cross-device link"},
                 {"swap:eio@1", "Input/output error"},          {"swap:eio@2", "Input/output error"},
                 {"swap:einval@1+,rename:eio@6", "Input/output error"}};
    for (const auto& c : cases) {
      INFO(c.spec);
      auto before = s.snapshot();
      auto r = s.nyto(two + saves, "NYTO_FAULT=" + c.spec + " ");
      INFO("stderr: " << r.err);
      CHECK(r.rc == 1);
      CHECK(r.err.find("nyto: error: cannot write '" + s.dir.string() + "/") == 0);
      CHECK(r.err.find(c.reason) != std::string::npos);
      CHECK_FALSE(has_temp_name(r.err));
      CHECK(s.snapshot() == before);
    }
    auto r = s.nyto(two + saves);  // and without a fault, both are written
    CHECK(r.rc == 0);
    check_close(load_values(s / "a2.pt"), values_of(nyto::load_particle(s / "ft_a.pt") + 1.0));
  }

  SUBCASE("a full disk (a 64 KiB tmpfs): exit 1, no abort, the old file intact") {
    FullDisk disk(s / "disk");
    if (!disk.mounted) {
      MESSAGE("skipped: cannot mount a tmpfs (needs root)");
      return;
    }
    fs::copy_file(s / "base.pt", s / "disk/keep.pt");
    disk.fill();
    auto before = s.snapshot();
    auto r = s.nyto(two + " --save a2=" + (s / "a2.pt") + " --save b2=" + (s / "disk/keep.pt"));
    INFO("stderr: " << r.err);
    CHECK(r.rc == 1);
    CHECK(r.err == "nyto: error: cannot write '" + (s / "disk/keep.pt") + "': No space left on device\n");
    CHECK(s.snapshot() == before);
    // The REPL's :save likewise: an error, the session goes on, the file is intact.
    std::ofstream(s / "cmds") << ":load n " << (s / "base.pt") << "\nn = n * 2\n:save n "
                              << (s / "disk/keep.pt") << "\n:new pop n swarm=3\n:save pop "
                              << (s / "disk/pop") << " format=torchscript\n:save pop "
                              << (s / "disk/pop.pt") << "\n";
    before = s.snapshot();
    r = s.nyto("repl < " + (s / "cmds"));
    INFO("repl: " << r.out << r.err);
    CHECK(r.out.find("error: cannot write '" + (s / "disk/keep.pt") + "': No space left on device") !=
          std::string::npos);
    CHECK(r.out.find("error: cannot write '" + (s / "disk/pop.pt") + "': No space left on device") !=
          std::string::npos);
    CHECK(s.snapshot() == before);
  }

  SUBCASE("one output file under two spellings is refused before anything is written") {
    auto before = s.snapshot();
    auto r = s.nyto(two + " --save a2=keep.pt --save b2=" + (s / "keep.pt"), "cd " + s.dir.string() + " && ");
    INFO("stderr: " << r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find("'" + (s / "keep.pt") + "' is the file that --save a2=keep.pt writes") !=
          std::string::npos);
    CHECK(s.snapshot() == before);
  }

  SUBCASE("--save into a missing directory: the OS's reason, no temporary name") {
    auto r = s.nyto(two + " --save a2=" + (s / "a2.pt") + " --save b2=" + (s / "no/such/b2.pt"));
    CHECK(r.rc == 1);
    CHECK(r.err == "nyto: error: cannot write '" + (s / "no/such/b2.pt") + "': No such file or directory\n");
  }
}

TEST_CASE("nyto run and the REPL: a swarm directory is replaced as a whole, a directory that is "
          "not a swarm is refused, and a failed save leaves no directory") {
  Scratch s;
  write_particles(s);
  write_rule(s, "double.nyto", "y = x * 2\n");
  fs::create_directory(s / "pop");
  for (int i = 0; i < 5; ++i) fs::copy_file(s / "mixed.pt", s / ("pop/m" + std::to_string(i) + ".pt"));
  auto r = s.nyto("run " + (s / "double.nyto") + " --load x=" + (s / "swarm") + " --save y=" + (s / "pop"));
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  std::vector<std::string> names;
  nyto::AnySwarm y = nyto::load_swarm(s / "pop", &names);  // no stale member of another structure
  CHECK(names == std::vector<std::string>{"m0.pt", "m1.pt", "m2.pt"});
  for (int i = 0; i < 3; ++i)
    check_close(values_of(y.member(i)), values_of(nyto::load_particle(s / ("swarm/m" + std::to_string(i) + ".pt")) * 2.0));

  fs::create_directory(s / "notes");
  std::ofstream(s / "notes/readme.txt") << "mine\n";
  auto before = s.snapshot();
  r = s.nyto("run " + (s / "double.nyto") + " --load x=" + (s / "swarm") + " --save y=" + (s / "notes"));
  CHECK(r.rc == 1);
  CHECK(r.err.find("cannot write swarm '" + (s / "notes") +
                   "': the directory exists and is not a swarm ('readme.txt' is not a model file)") !=
        std::string::npos);
  CHECK(s.snapshot() == before);

  // The REPL: a failed :save of a swarm as TorchScript creates no directory.
  std::ofstream(s / "cmds") << ":load n " << (s / "base.pt") << "\n:new pop n swarm=3\n:save pop "
                            << (s / "ts") << " format=torchscript\n";
  before = s.snapshot();
  r = s.nyto("repl < " + (s / "cmds"));
  INFO("repl: " << r.out << r.err);
  CHECK(r.out.find("error: cannot write '" + (s / "ts") + "/member-000.pt' as TorchScript") != std::string::npos);
  fs::remove(s / "cmds");
  before.erase(s / "cmds");
  CHECK(s.snapshot() == before);
}

namespace {

/// Writes `v` as Python's torch.save does (torch::pickle_save writes the same zip format).
void torch_save(const c10::IValue& v, const std::string& path) {
  std::vector<char> bytes = torch::jit::pickle_save(v);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

/// Member i of the swarm at `path` (a directory or a swarm checkpoint), parameter by parameter.
std::vector<std::map<std::string, at::Tensor>> members_of(const std::string& path) {
  nyto::AnySwarm sw = nyto::load_swarm(path);
  std::vector<std::map<std::string, at::Tensor>> out;
  for (int64_t i = 0; i < sw.size(); ++i) out.push_back(values_of(sw.member(i)));
  return out;
}

/// Checks that member i of `got` is member i of `in` plus `add[i]`.
void check_added(const std::vector<std::map<std::string, at::Tensor>>& got,
                 const std::vector<std::map<std::string, at::Tensor>>& in, const std::vector<double>& add) {
  REQUIRE(got.size() == add.size());
  REQUIRE(in.size() == add.size());
  for (size_t i = 0; i < add.size(); ++i) {
    INFO("member " << i);
    std::map<std::string, at::Tensor> want;
    for (const auto& entry : in[i]) want[entry.first] = entry.second + add[i];
    check_close(got[i], want);
  }
}

}  // namespace

TEST_CASE("nyto run --set NAME=V1,V2,...: a per-member vector, member i gets value i, on every "
          "backend") {
  Scratch s;
  write_particles(s);  // swarm/: 3 members
  write_rule(s, "add.nyto", "x = x + f\n");
  const auto in = members_of(s / "swarm");
  for (std::string backend : {"llvm", "interp", "aten"}) {
    INFO("backend " << backend);
    auto r = s.nyto("run " + (s / "add.nyto") + " --load x=" + (s / "swarm") + " --set f=1,2,3 --save x=" +
                    (s / "out_" + backend) + " --backend " + backend);
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());
    CHECK(r.out.empty());
    check_added(members_of(s / ("out_" + backend)), in, {1, 2, 3});
  }
  // Each value read as --set NAME=VALUE reads one (hexadecimal, exponents), spaces allowed.
  auto r = s.nyto("run " + (s / "add.nyto") + " --load x=" + (s / "swarm") + " --set 'f=0x1p-1, -2,1e1' --save x=" +
                  (s / "out"));
  REQUIRE(r.rc == 0);
  check_added(members_of(s / "out"), in, {0.5, -2, 10});
  // A swarm checkpoint and a param with the vector: x = x + a*f.
  nyto::load_swarm(s / "swarm").save(s / "swarm.ckpt");
  write_rule(s, "scaled.nyto", "param a = 1\nx = x + a*f\n");
  r = s.nyto("run " + (s / "scaled.nyto") + " --load x=" + (s / "swarm.ckpt") + " --set f=1,2,3 --set a=0.5 --save x=" +
             (s / "out.ckpt"));
  REQUIRE(r.rc == 0);
  check_added(members_of(s / "out.ckpt"), in, {0.5, 1, 1.5});
}

TEST_CASE("nyto run --load NAME=FILE of a 1-D tensor saved by torch.save: a per-member vector") {
  Scratch s;
  write_particles(s);
  write_rule(s, "add.nyto", "x = x + f\n");
  const auto in = members_of(s / "swarm");
  struct Case {
    std::string what;
    at::Tensor t;
    std::vector<double> want;
  };
  const Case cases[] = {
      {"float32", at::tensor({1.0f, 2.0f, 3.0f}), {1, 2, 3}},
      {"float64", at::tensor({0.25, -1.5, 1e3}, at::kDouble), {0.25, -1.5, 1e3}},
      {"int64", at::tensor({int64_t(-2), int64_t(0), int64_t(7)}), {-2, 0, 7}},
      {"int32", at::tensor({5, 6, 7}, at::kInt), {5, 6, 7}},
      {"float16", at::tensor({0.5, 1.5, 2.5}).to(at::kHalf), {0.5, 1.5, 2.5}},
      // A view: its storage holds 6 values, of which it reads every other one from the second.
      {"strided view", at::arange(6, at::kDouble).slice(0, 1, 6, 2), {1, 3, 5}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    torch_save(c.t, s / "f.pt");
    auto r = s.nyto("run " + (s / "add.nyto") + " --load x=" + (s / "swarm") + " --load f=" + (s / "f.pt") +
                    " --save x=" + (s / "out"));
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());
    check_added(members_of(s / "out"), in, c.want);
  }
}

TEST_CASE("per-member vectors: a wrong length, no swarm, a param, a bad number or file: exit 2 "
          "(1 for a damaged file) naming it, nothing written") {
  Scratch s;
  write_particles(s);
  write_rule(s, "add.nyto", "x = x + f\n");
  write_rule(s, "param.nyto", "param a = 1\nx = x + a*f\n");
  const std::string add = "run " + (s / "add.nyto") + " --load x=" + (s / "swarm");
  const std::string save = " --save x=" + (s / "out");
  torch_save(at::tensor({1.0, 2.0}, at::kDouble), s / "two.pt");
  torch_save(at::zeros({2, 3}), s / "matrix.pt");
  torch_save(at::scalar_tensor(3.0), s / "zero_d.pt");
  torch_save(at::tensor({1, 0, 1}).to(at::kBool), s / "bool.pt");
  torch_save(at::tensor({1.0, 2.0, 3.0}).to(at::kComplexFloat), s / "complex.pt");
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("w", at::zeros({3}));
  dict.insert("b", at::zeros({3}));
  torch_save(dict, s / "dict.pt");
  // A damaged file: its pickle declares 3 float32 values, its data record holds 1.
  torch_save(at::tensor({1.0f, 2.0f, 3.0f}), s / "damaged.pt");
  const float three[] = {1.0f, 2.0f, 3.0f};
  nyto::test::patch_archive(s / "damaged.pt", "data/0", std::string(reinterpret_cast<const char*>(three), 12),
                            std::string(reinterpret_cast<const char*>(three), 4));
  std::ofstream(s / "text.pt") << "not a tensor";
  struct Case {
    std::string what, args;
    int rc;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"too few values", add + " --set f=1,2" + save, 2, "--set f: 2 values for a swarm of 3 members ('x')"},
      {"too many values", add + " --set f=1,2,3,4" + save, 2, "--set f: 4 values for a swarm of 3 members ('x')"},
      {"a bad number", add + " --set f=1,zz,3" + save, 2, "--set f=1,zz,3: 'zz' (value 2 of 3) is not a number"},
      {"an empty value", add + " --set f=1,,3" + save, 2, "--set f=1,,3: value 2 of 3 is empty"},
      {"a trailing comma", add + " --set f=1,2," + save, 2, "--set f=1,2,: value 3 of 3 is empty"},
      {"beyond double", add + " --set f=1,1e999,3" + save, 2,
       "--set f=1,1e999,3: '1e999' (value 2 of 3) is beyond the range of a double"},
      // Without a swarm the vector gives the member count: x = x + f makes one x per member, which
      // a particle bound in place cannot hold (the runtime's located E0501).
      {"no swarm", "run " + (s / "add.nyto") + " --load x=" + (s / "base.pt") + " --set f=1,2,3 --save x=" +
                       (s / "out.pt"), 2, "error[E0501]: 'x' is a single particle but the rule computes one value per member of 3 members"},
      {"a vector for a param", "run " + (s / "param.nyto") + " --load x=" + (s / "swarm") + " --set f=1,2,3 --set a=1,2,3" + save,
       2, "--set a: 'a' is a param of the rule " + (s / "param.nyto") + ", one number for every member"},
      {"a vector the rule does not read", add + " --set f=1,2,3 --set g=1,2,3" + save, 2,
       "--set g: the rule " + (s / "add.nyto") + " reads no input 'g' to bind a per-member vector to (its inputs: 'x', 'f')"},
      {"a file of another length", add + " --load f=" + (s / "two.pt") + save, 2,
       "--load f: '" + (s / "two.pt") + "' holds 2 values for a swarm of 3 members ('x')"},
      {"a file and no swarm", "run " + (s / "add.nyto") + " --load x=" + (s / "base.pt") + " --load f=" + (s / "two.pt") +
                                  " --save x=" + (s / "out.pt"), 2, "computes one value per member of 2 members"},
      {"a 2-D tensor", add + " --load f=" + (s / "matrix.pt") + save, 2,
       "--load f: '" + (s / "matrix.pt") + "' holds a tensor of shape [2, 3]; a per-member vector is a 1-D tensor"},
      {"a 0-D tensor", add + " --load f=" + (s / "zero_d.pt") + save, 2, "holds a tensor of shape []"},
      {"a bool tensor", add + " --load f=" + (s / "bool.pt") + save, 2, "holds a tensor of dtype Bool"},
      {"a complex tensor", add + " --load f=" + (s / "complex.pt") + save, 2, "holds a tensor of dtype ComplexFloat"},
      {"a dict", add + " --load f=" + (s / "dict.pt") + save, 2, "holds a value of type Dict[str, Tensor] saved by torch.save, not a tensor"},
      {"a damaged file", add + " --load f=" + (s / "damaged.pt") + save, 1,
       "'" + (s / "damaged.pt") + "' is corrupt: tensor 'data' claims a storage of 12 bytes but the file holds 4"},
      {"neither a tensor nor a model", add + " --load f=" + (s / "text.pt") + save, 1,
       "neither a nyto checkpoint nor a TorchScript archive"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    auto before = s.snapshot();
    auto r = s.nyto(c.args);
    INFO(r.err);
    CHECK(r.rc == c.rc);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(r.err.find("internal error") == std::string::npos);
    // The CLI's own errors, or the runtime's located diagnostics (file:line:col: error[E...]).
    CHECK((r.err.find("nyto: error: ") == 0 || r.err.find(": error[E05") != std::string::npos));
    CHECK(s.snapshot() == before);
  }
}

TEST_CASE("REPL :load of a 1-D tensor saved by torch.save: a per-member vector") {
  Scratch s;
  write_particles(s);
  torch_save(at::tensor({1, 2, 3}, at::kLong), s / "f.pt");
  torch_save(at::zeros({3, 1}), s / "matrix.pt");
  std::ofstream(s / "in.txt") << ":load x " << (s / "swarm") << "\n:load f " << (s / "f.pt") << "\n:load m "
                              << (s / "matrix.pt") << "\n:ls\nx = x + f\n:save x " << (s / "out") << " format=nyto\n";
  auto r = s.nyto("repl < " + (s / "in.txt"));
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("f: vector of 3 values: 1,2,3 (torch.save)") != std::string::npos);
  CHECK(r.out.find("error: '" + (s / "matrix.pt") + "' holds a tensor of shape [3, 1]") != std::string::npos);
  CHECK(r.out.find("f     vector[3]") != std::string::npos);
  CHECK(r.out.find("\nm ") == std::string::npos);  // the failed :load bound nothing
  check_added(members_of(s / "out"), members_of(s / "swarm"), {1, 2, 3});
}

namespace {

/// Every parameter of every member of the swarm directory `dir`, by file name.
std::map<std::string, std::map<std::string, at::Tensor>> dir_values(const std::string& dir) {
  std::vector<std::string> names;
  nyto::AnySwarm sw = nyto::load_swarm(dir, &names);
  std::map<std::string, std::map<std::string, at::Tensor>> out;
  for (size_t i = 0; i < names.size(); ++i) out[names[i]] = values_of(sw.member(int64_t(i)));
  return out;
}

bool same_bits(const std::map<std::string, std::map<std::string, at::Tensor>>& a,
               const std::map<std::string, std::map<std::string, at::Tensor>>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [file, params] : a) {
    auto other = b.find(file);
    if (other == b.end() || other->second.size() != params.size()) return false;
    for (const auto& [path, t] : params)
      if (!other->second.count(path) || !at::equal(t, other->second.at(path))) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("nyto run --batch: swarm directories run a batch of members at a time give the bits of one "
          "run on the whole swarms; a failure in a later batch changes no file") {
  Scratch s;
  torch::manual_seed(3);
  auto base = nyto::make_particle<NetImpl>();
  base.save(s / "best.pt");
  for (std::string d : {"x", "v", "pbest"}) {
    fs::create_directory(s / d);
    for (int i = 0; i < 7; ++i) nyto::AnyParticle(base.randn()).save(s / (d + "/m" + std::to_string(i) + ".pt"));
  }
  // `nyto run pso.nyto` in the scratch's directory `dir` (x, v and pbest there), then `tail`.
  auto pso = [&](const std::string& dir, const std::string& tail, const std::string& env = "") {
    return s.nyto("run " + kRules + "pso.nyto --load x=x --load v=v --load pbest=pbest --load best=" + (s / "best.pt") +
                      " --set f=3,1,4,1,5,9,2 --set pf=inf,2,inf,0.5,inf,inf,1 --save x=x --save v=v " + tail,
                  "cd " + (s / dir) + " && " + env);
  };
  const std::string saves = "--save pbest=pbest --save pf=pf.txt --seed 7 ";
  auto copy_swarms = [&](const std::string& dir) {
    fs::create_directory(s / dir);
    for (std::string d : {"x", "v", "pbest"}) fs::copy(s / d, s / (dir + "/" + d), fs::copy_options::recursive);
  };
  copy_swarms("whole");
  auto whole = pso("whole", saves + "--batch 0");
  REQUIRE(whole.rc == 0);
  CHECK(whole.out == "pf = 3,1,4,0.5,5,9,1\n");
  CHECK(!same_bits(dir_values(s / "whole/x"), dir_values(s / "x")));  // the run moved x
  int run = 0;
  for (std::string flags : {"--batch 1", "--batch 3", "--batch 6", "", "--batch 2 --backend interp"}) {
    INFO("flags: " << flags);
    const std::string out = "b" + std::to_string(run++);
    copy_swarms(out);
    auto r = pso(out, saves + flags);
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());
    CHECK(r.out == whole.out);
    CHECK(slurp(s / (out + "/pf.txt")) == slurp(s / "whole/pf.txt"));
    for (std::string d : {"x", "v", "pbest"}) CHECK(same_bits(dir_values(s / (out + "/" + d)), dir_values(s / ("whole/" + d))));
  }

  // A rule whose members read each other runs on the whole swarms, whatever --batch says.
  write_rule(s, "center.nyto", "x = x - msum(x) / members()\n");
  for (std::string flags : {"--batch 0", "--batch 2"}) {
    auto r = s.nyto("run " + (s / "center.nyto") + " --load x=" + (s / "x") + " --save x=" + (s / ("c" + flags.substr(8))) +
                    " " + flags);
    REQUIRE(r.rc == 0);
  }
  CHECK(same_bits(dir_values(s / "c0"), dir_values(s / "c2")));

  // Bad input, as a whole run says it: a vector of the wrong length (exit 2), a member of
  // another structure (exit 2) or a corrupt member file (exit 1) in a later batch; no file changes.
  nyto::make_particle<MixedImpl>().save(s / "mixed.pt");
  copy_swarms("bad");
  auto before = s.snapshot();
  for (std::string flags : {"--batch 0", "--batch 2"}) {
    INFO("flags: " << flags);
    auto r = s.nyto("run " + kRules + "pso.nyto --load x=" + (s / "bad/x") + " --load v=" + (s / "bad/v") +
                    " --load pbest=" + (s / "bad/pbest") + " --load best=" + (s / "best.pt") +
                    " --set f=3,1,4 --set pf=1,2,3 --save x=" + (s / "bad/x") + " " + flags);
    CHECK(r.rc == 2);
    CHECK(r.err.find("--set f: 3 values for a swarm of 7 members") != std::string::npos);
  }
  CHECK(s.snapshot() == before);
  struct Damage {
    std::function<void()> make;
    int rc;
    std::string message;
  };
  for (const Damage& d :
       {Damage{[&] { fs::copy_file(s / "mixed.pt", s / "bad/v/m5.pt", fs::copy_options::overwrite_existing); }, 2,
               "the members of swarm 'v' must have one structure, but 'm0.pt' and 'm5.pt' differ"},
        Damage{[&] { std::ofstream(s / "bad/v/m5.pt", std::ios::trunc) << "not a model"; }, 1, "m5.pt"}}) {
    d.make();
    before = s.snapshot();
    for (std::string flags : {"--batch 0", "--batch 2"}) {
      INFO("flags: " << flags);
      auto r = pso("bad", saves + flags);
      INFO("stderr: " << r.err);
      CHECK(r.rc == d.rc);
      CHECK(r.err.find(d.message) != std::string::npos);
      CHECK(s.snapshot() == before);
    }
  }
  // The batches are real: batch 0's members are written before pbest/m5.pt (batch 2) is read,
  // so a failing first write stops a batched run before it reaches m5.pt; a whole run reads
  // m5.pt first.
  fs::copy_file(s / "best.pt", s / "bad/v/m5.pt", fs::copy_options::overwrite_existing);
  std::ofstream(s / "bad/pbest/m5.pt", std::ios::trunc) << "not a model";
  before = s.snapshot();
  auto w = pso("bad", "--batch 2", "NYTO_FAULT=open:eio ");
  INFO("stderr: " << w.err);
  CHECK(w.rc == 1);
  CHECK(w.err.find("m5.pt") == std::string::npos);
  CHECK(w.err.find("cannot write") != std::string::npos);
  w = pso("bad", "--batch 0", "NYTO_FAULT=open:eio ");
  CHECK(w.rc == 1);
  CHECK(w.err.find("pbest/m5.pt") != std::string::npos);
  CHECK(s.snapshot() == before);
}
