// `nyto train`: hybrid SGD + swarm moves, or gradient-free generations of any rule, on
// (Fashion-)MNIST.
#include "cli/Train.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <nyto/any_module.h>
#include <nyto/distributed.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <nyto/rule.h>
#include <nyto/swarm.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "TrainRules.h"
#include "cli/Checkpoint.h"
#include "cli/Commands.h"
#include "cli/Data.h"
#include "cli/Dist.h"
#include "cli/Fitness.h"
#include "cli/Generation.h"
#include "cli/Hash.h"
#include "cli/Limits.h"
#include "cli/Zoo.h"

namespace fs = std::filesystem;

namespace nyto::cli {

std::vector<TrainerBinding> trainer_bindings(const std::string& mode) {
  // evolve (and pso): the population x moves; its fitness f, the generation g and the best
  // member so far are the trainer's. Everything else a rule reads is its own `state`.
  if (mode == "pso" || mode == "evolve") return {{"x", true}, {"f"}, {"g"}, {"best"}};
  // hybrid: member x moves towards gbest, the subset's best member itself.
  return {{"x", true}, {"gbest"}, {"loss"}, {"gbest_loss"}, {"step"}};
}

std::vector<std::string> trainer_inputs(const std::string& mode) {
  std::vector<std::string> out;
  for (const auto& b : trainer_bindings(mode)) out.push_back(b.name);
  return out;
}

std::vector<std::string> trainer_read_only(const std::string& mode) {
  std::vector<std::string> out;
  for (const auto& b : trainer_bindings(mode))
    if (!b.assignable) out.push_back(b.name);
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string fmt_time(double s) {
  int64_t t = int64_t(s);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

AnySwarm copy_swarm(const AnySwarm& s) {
  AnySwarm c(s.member(0), s.size());
  at::NoGradGuard ng;
  for (size_t g = 0; g < s.storage().size(); ++g) c.storage()[g].copy_(s.storage()[g]);
  return c;
}

// evolve: --metrics FILE.csv also writes FILE-fitness.csv, the fitness per generation.
std::string fitness_metrics_path(const std::string& metrics) {
  fs::path p(metrics);
  std::string ext = p.extension().string();
  return (p.parent_path() / (p.stem().string() + "-fitness" + (ext.empty() ? ".csv" : ext))).string();
}

struct Eval {
  double loss = 0, acc = 0;
};

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : o_(o) {}
  void run();

 private:
  void validate_flags();
  void compile_rule();
  void build_swarm();
  void check_rule_binds();
  RunOptions block_options();
  AnyParticle row_of(const std::string& input, int64_t m);
  Bindings evolve_bindings(bool copies);
  void step_hybrid(const at::Tensor& bx, const at::Tensor& by);
  void step_evolve();
  void fitness_batch();
  void evaluate_fitness();
  void report_extra();
  Eval evaluate(Classifier* net, int64_t n);
  void evaluate_all(bool final);
  void next_batch(at::Tensor& bx, at::Tensor& by);
  std::string config_string() const;
  void save_checkpoint();
  void remove_stale_parts(const std::string& keep) const;
  bool load_checkpoint();
  void write_metrics() const;
  void write_plot() const;
  void check_outputs() const;
  void progress(bool force);
  void check_finite(const char* what, double value, int64_t member);
  void clear_progress();
  void join_ranks();
  AnySwarm result_swarm();
  void share_best();
  bool lead() const { return rank_ == 0; }
  bool owns(int64_t i) const { return i >= mb_ && i < me_; }
  int owner_of(int64_t i) const { return pg_ ? pg_->owner(i, n_) : 0; }
  double elapsed() const {
    return elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
  }

  const TrainOptions& o_;
  // Distribution (cli/Dist.h): every rank holds the whole swarm and the rule's states, runs the
  // SGD steps or fitness evaluations of its own members [mb_, me_) only, and exchanges what the
  // others need: losses and fitness values (M scalars), gbest (one particle, hybrid) and, before
  // an evaluation, checkpoint or save, the members it trained (hybrid). A generation rule then
  // runs on every rank on the same inputs: the same bits everywhere, and as with one process.
  Rendezvous rdv_;
  std::unique_ptr<nyto::ProcessGroup> pg_;
  int rank_ = 0, world_ = 1;
  int64_t mb_ = 0, me_ = 0;
  uint64_t run_id_ = 0;      // names this run's checkpoint parts (rank 0's draw, shared)
  int64_t checkpoints_ = 0;  // checkpoints written by this run
  bool evolve_ = false;  // evolve or pso
  bool fixed_batch_ = false;
  bool tty_ = false;
  int threads_ = 1;
  int64_t n_ = 0;
  std::string rule_name_, rule_source_;
  std::unique_ptr<Rule> rule_;
  std::map<std::string, double> params_;
  ImageData data_;
  std::string classes_text_;   // --classes, normalized ("0,1,2"); empty: every class
  uint64_t init_digest_ = 0;   // a hash of the --init values; 0 without --init
  AnySwarm x_;                         // members [lo_, lo_ + x_.size())
  bool blocks_ = false;                // this rank holds its own block only (build_swarm)
  bool no_blocks_ = false;             // the step reduces rows of a swarm: every rank holds all
  int64_t lo_ = 0;                     // blocks_: mb_, else 0
  std::vector<AnyParticle> members_;   // x_'s rows: member i is members_[i - lo_]
  std::vector<Classifier*> nets_;      // the same
  AnyParticle gbest_buf_;              // hybrid, distributed: gbest when another rank owns it
  // hybrid
  std::vector<std::unique_ptr<torch::optim::SGD>> opt_;  // of members_
  std::vector<double> last_loss_;
  // evolve: the rule's states, the fitness of x, the best member so far
  std::unique_ptr<GenerationState> states_;
  std::vector<double> f_;
  std::unique_ptr<FitnessEvaluator> fitness_;
  AnyParticle best_;
  int64_t best_member_ = -1;  // the member best_ was taken from (its owner holds it)
  bool best_stale_ = false;   // distributed: best_ is only on its owner so far
  bool rule_reads_best_ = false;
  double best_f_ = std::numeric_limits<double>::infinity();
  int64_t best_step_ = -1;
  double eval_seconds_ = 0, rule_seconds_ = 0;  // this run: fitness evaluation and the rule
  double exchange_seconds_ = 0;                  // of eval_seconds_: waiting for the other ranks' fitness
  double loop_seconds_ = 0;                      // this run's generations (or steps), wall time
  std::vector<std::array<double, 4>> fit_rows_;  // generation, best, mean, worst fitness
  at::Tensor fit_x_, fit_y_;
  // progress of training
  int64_t step_ = 0, total_steps_ = 0, steps_per_epoch_ = 0, start_step_ = 0;
  at::Tensor perm_;
  std::mt19937_64 shuffle_rng_, subset_rng_;
  std::vector<double> loss_sum_;
  std::vector<int64_t> loss_count_;
  std::vector<MetricRow> rows_;
  double elapsed_before_ = 0;
  Clock::time_point start_, last_draw_;
  bool bar_shown_ = false;
  bool warned_not_finite_ = false;
};

void Trainer::validate_flags() {
  evolve_ = o_.mode == "pso" || o_.mode == "evolve";
  if (o_.mode != "hybrid" && !evolve_)
    throw UsageError("--mode must be hybrid, evolve or pso, not '" + o_.mode + "'");
  if (o_.mode == "evolve" && o_.rule.empty())
    throw UsageError("--mode evolve needs --rule FILE, a generation rule such as examples/rules/snes.nyto "
                     "(also openai_es, cem, de, ga, lbest_pso, pgpe, sep_cma_es, pso)");
  // PSO's fitness is measured on one batch, so a personal best stays comparable (as before
  // --mode pso was a rule).
  fixed_batch_ = o_.fixed_batch || o_.mode == "pso";
  if (o_.particles < 1) throw UsageError("--particles must be at least 1");
  if (o_.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  if (o_.resume && o_.checkpoint.empty())
    throw UsageError("--resume needs --checkpoint DIR (the directory to resume from)");
  if (!o_.rule.empty() && !fs::is_regular_file(o_.rule))
    throw UsageError("rule file '" + o_.rule + "' does not exist or is not a file");
  n_ = o_.particles;
  rdv_ = resolve_rendezvous(o_.dist);
  world_ = rdv_.world_size;
  rank_ = rdv_.rank;
  if (world_ > n_)
    throw UsageError(fmt::format("--particles {} is fewer than the {} processes: every rank needs a member", n_, world_));
  if (lead()) {
    if (!o_.plot.empty() && std::system("command -v gnuplot >/dev/null 2>&1") != 0)
      throw Error("--plot needs gnuplot, which is not installed (apt-get install gnuplot-nox)");
    check_outputs();
  }
}

// The rendezvous: every rank joins within --timeout, or every rank stops with the reason. Ranks
// other than 0 print nothing (their stdout goes to /dev/null; errors still reach stderr).
void Trainer::join_ranks() {
  std::tie(mb_, me_) = nyto::member_block(n_, world_, rank_);
  if (world_ == 1) return;
  pg_ = std::make_unique<nyto::ProcessGroup>(rdv_.host, rdv_.port, rdv_.rank, rdv_.world_size, rdv_.timeout);
  if (!lead()) {
    std::fflush(stdout);
    if (!std::freopen("/dev/null", "w", stdout)) throw Error("cannot redirect rank " + std::to_string(rank_) + "'s output");
  }
}

// The result, on rank 0: the whole population x, and the best member. Evolve: every rank holds x,
// but where the members are independent each rank moved only its own rows (RunOptions::
// member_range), so they are gathered. Hybrid: each rank holds its own block only; rank 0 gets the
// others' point to point. Evaluations and checkpoints need none of it: each rank tests and writes
// its own members. Other ranks get x_ back.
AnySwarm Trainer::result_swarm() {
  if (!pg_) return x_;
  share_best();
  at::NoGradGuard ng;
  const std::string what = fmt::format("the gather of the members after step {}", step_);
  if (blocks_) {
    // Only for a file (every rank knows: --save and --checkpoint are compared at the rendezvous).
    if (o_.save.empty() && o_.checkpoint.empty()) return x_;
    // Training is over (the last checkpoint is written): the gradients and momentum buffers go,
    // so that rank 0 holds little more than the whole swarm.
    opt_.clear();
    for (const AnyParticle& m : members_)
      for (at::Tensor p : m.module_ptr()->parameters()) p.mutable_grad() = at::Tensor();
    AnySwarm whole = lead() ? AnySwarm(members_[0], n_) : AnySwarm();
    pg_->gather_blocks(x_, n_, whole, 0, what);
    return lead() ? whole : x_;
  }
  if (rule_->members_independent()) pg_->gather_rows(x_, what);
  return x_;
}

// The best member so far, from the rank that owns it, when another rank needs it.
void Trainer::share_best() {
  if (!pg_ || !best_stale_) return;
  pg_->broadcast(best_, owner_of(best_member_),
                 fmt::format("the broadcast of the best member ({}) after generation {}", best_member_, step_));
  best_stale_ = false;
}

// Every output path is checked before training, so that a run never ends unable to save its
// result: a path of the wrong kind (a directory for a file, a file for --checkpoint DIR), a missing
// parent directory, or two outputs naming one file is a usage error (exit 2); a directory that
// refuses new files (permissions, a read-only file system) is an I/O error (exit 1).
void Trainer::check_outputs() const {
  std::vector<std::pair<std::string, std::string>> files;  // (flag, path)
  if (!o_.metrics.empty()) files.emplace_back("--metrics", o_.metrics);
  if (!o_.metrics.empty() && o_.mode != "hybrid") files.emplace_back("--metrics", fitness_metrics_path(o_.metrics));
  if (!o_.plot.empty()) files.emplace_back("--plot", o_.plot);
  if (!o_.save.empty()) files.emplace_back("--save", o_.save);
  std::error_code ec;
  if (!o_.checkpoint.empty()) {
    if (fs::exists(o_.checkpoint, ec) && !fs::is_directory(o_.checkpoint, ec))
      throw UsageError("--checkpoint " + o_.checkpoint + ": it exists and is not a directory");
    for (const char* f : {"checkpoint.pt", "swarm.pt"})
      files.emplace_back("--checkpoint", (fs::path(o_.checkpoint) / f).string());
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [flag, out] = files[i];
    if (fs::is_directory(out, ec))
      throw UsageError(flag + " " + out + ": it is a directory (give a file name)");
    fs::path parent = fs::path(out).parent_path();
    if (flag != "--checkpoint" && !parent.empty() && !fs::is_directory(parent, ec))
      throw UsageError("cannot write '" + out + "': directory '" + parent.string() + "' does not exist");
    io::check_writable(out, flag == "--checkpoint");  // the checkpoint directory may be created
    for (size_t j = 0; j < i; ++j)
      if (io::same_file(out, files[j].second))
        throw UsageError(flag + " " + out + ": it is the file that " + files[j].first + " writes (" +
                         files[j].second + ")");
  }
}

void Trainer::compile_rule() {
  if (o_.rule.empty()) {
    rule_name_ = evolve_ ? kPsoRulePath : kApsoRulePath;
    rule_source_ = evolve_ ? kPsoRule : kApsoRule;
  } else {
    rule_name_ = o_.rule;
    try {
      rule_source_ = read_rule_file(o_.rule);
    } catch (const IOError& e) {
      throw UsageError(e.what());
    }
  }
  // An input the trainer does not bind is a compile error with a suggestion (E0101); an
  // assignment to one it binds as an input only (gbest, ...) is one too (E0205).
  CompileOptions co;
  co.known_names = trainer_inputs(o_.mode);
  co.read_only = trainer_read_only(o_.mode);
  // The rule's states are names it may read too: a first compile finds them (a script that does
  // not compile fails there with every diagnostic).
  CompileOptions first;
  first.read_only = co.read_only;
  Rule found = compile(rule_source_, rule_name_, first);
  if (!evolve_ && !found.states().empty())
    throw UsageError(found.state_diagnostic(found.states()[0].name, "E0206",
                                            "a hybrid rule keeps no state of its own (x moves towards gbest); "
                                            "`state` declarations are for generation rules, --mode evolve"));
  if (evolve_) {
    for (const StateDecl& st : found.states()) co.known_names->push_back(st.name);
    co.init_known_names = std::vector<std::string>{"x", "g"};
  }
  rule_ = std::make_unique<Rule>(compile(rule_source_, rule_name_, co));
  auto outs = rule_->outputs();
  if (std::find(outs.begin(), outs.end(), "x") == outs.end())
    throw UsageError(rule_name_ + ": error: the rule does not assign 'x', so it would not move the members; " +
                     (evolve_ ? "a generation rule writes the next population into x, e.g. x = mu + sigma * randn()"
                              : "a hybrid rule updates x from x and gbest, e.g. x = (1 - alpha)*x + alpha*gbest"));
  if (evolve_) states_ = std::make_unique<GenerationState>(*rule_);
  std::vector<std::string> pnames;
  for (const auto& [name, def] : rule_->params()) pnames.push_back(name), params_[name] = def;
  for (const std::string& kv : o_.set) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--set wants NAME=VALUE, got '" + kv + "'");
    std::string name = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (!params_.count(name)) {
      std::string known;
      for (const auto& p : pnames) known += (known.empty() ? "" : ", ") + p;
      throw UsageError("--set " + name + ": rule " + rule_name_ + " has no param '" + name + "'" +
                       (known.empty() ? " (it has none)" : " (its params: " + known + ")"));
    }
    double d = 0;
    if (std::string why = number_error(value, &d); !why.empty())
      throw UsageError("--set " + name + ": " + why);
    params_[name] = d;
  }
}

void Trainer::build_swarm() {
  ZooOptions zo;
  zo.hidden = o_.hidden;
  at::manual_seed(o_.seed);
  AnyParticle seed = make_model(o_.model, zo);
  // x_ holds members [lo_, lo_ + rows). Over several processes a rank holds only its own block
  // (blocks_): in hybrid mode (its members, their gradients and momentum never leave it but for
  // gbest and the result), and in evolve mode when the rule runs on blocks (Rule::runs_on_blocks:
  // PSO, OpenAI-ES, CEM, PGPE, sep-CMA-ES; swarm states are blocks too). Otherwise (a rule that
  // reads rows at a per-member index, or reduces each member's values along the parameter axis)
  // every rank holds the whole population.
  blocks_ = pg_ && !no_blocks_;
  if (blocks_ && evolve_) {  // the init is asked here (x not made yet: only kinds matter), the step once started
    const std::optional<Rule> init = rule_->init();
    blocks_ = !init || init->runs_on_blocks(GenerationState::init_bindings(AnySwarm()));
  }
  lo_ = blocks_ ? mb_ : 0;
  const int64_t rows = blocks_ ? me_ - mb_ : n_;
  // The members, their gradients and momentum (hybrid) or a rule's states (evolve; PSO keeps
  // velocities and personal bests): about three copies of the swarm. Refused before allocating when memory cannot hold them.
  if (std::string why = memory_error(3 * param_bytes(seed) * double(rows), fmt::format("--particles {} of {}", n_, o_.model));
      !why.empty())
    throw UsageError(why);
  // Making particles draws nothing from the default generator (runtime/version.cpp,
  // clone_module), so a rank of fewer rows draws the members' initializations below as one
  // process does.
  x_ = AnySwarm(seed, rows);
  at::NoGradGuard ng;
  auto set_member = [&](int64_t i, const std::vector<at::Tensor>& src) {
    if (i < lo_ || i >= lo_ + rows) return;
    const auto& dst = x_.member(i - lo_).param_tensors();
    for (size_t k = 0; k < dst.size(); ++k) dst[k].copy_(src[k]);
  };
  // Every member its own initialization, drawn in member order on every rank (so member i starts
  // the same whatever the number of processes); a rank keeps its own.
  for (int64_t i = 1; i < n_; ++i) set_member(i, make_model(o_.model, zo).param_tensors());
  if (!o_.init.empty()) {
    // Every file is read and checked before it replaces the initialization: another structure is
    // a ShapeError naming the parameter (exit 2).
    LoadedModels m = load_models(o_.init);
    if (m.is_swarm() && m.swarm.size() != n_)
      throw UsageError(fmt::format("--init {}: a swarm of {} members for --particles {} (give a single model "
                                   "file to start every member from it)", o_.init, m.swarm.size(), n_));
    for (int64_t i = 0; i < n_; ++i) {
      const AnyParticle& src = m.is_swarm() ? m.swarm.member(i) : m.particle;
      AnyParticle fit;
      try {
        fit = seed.clone_from(src);
      } catch (const ShapeError& e) {
        throw ShapeError("--init " + o_.init + " does not hold " + (o_.model == "mlp" ? "an mlp with hidden width " +
                         std::to_string(o_.hidden) : "a " + o_.model) + ": " + e.what());
      }
      set_member(i, fit.param_tensors());
      // The initial values identify the run for --resume (a path may name other weights later).
      for (const at::Tensor& t : fit.param_tensors()) {
        at::Tensor c = t.contiguous();
        init_digest_ = fnv1a(c.data_ptr(), size_t(c.numel()) * c.element_size(), init_digest_);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    members_.push_back(x_.member(r));
    nets_.push_back(&classifier(members_.back()));
  }
  loss_sum_.assign(size_t(n_), 0.0);
  loss_count_.assign(size_t(n_), 0);
  if (!evolve_) {
    for (const AnyParticle& m : members_)
      opt_.push_back(std::make_unique<torch::optim::SGD>(m.module_ptr()->parameters(),
                                                         torch::optim::SGDOptions(o_.lr).momentum(o_.momentum)));
    last_loss_.assign(size_t(n_), 0.0);
    if (pg_) gbest_buf_ = members_[0].clone();  // gbest from another rank lands here
  } else {
    best_ = members_[0].clone();
    f_.assign(size_t(n_), std::numeric_limits<double>::quiet_NaN());
    const std::map<std::string, FitnessStrategy> strategies = {
        {"auto", FitnessStrategy::Auto}, {"loop", FitnessStrategy::Loop},
        {"threads", FitnessStrategy::MemberThreads}, {"batched", FitnessStrategy::Batched}};
    if (o_.model != "mlp" && o_.fitness_strategy == "batched")
      throw UsageError("--fitness-strategy batched is for the mlp; the " + o_.model + " takes auto, loop or threads");
    fitness_ = std::make_unique<FitnessEvaluator>(x_, o_.model, threads_, strategies.at(o_.fitness_strategy),
                                                  mb_ - lo_, me_ - lo_);
    states_->start(x_, params_, o_.seed, block_options());
    const std::vector<std::string> reads = rule_->signature().inputs;
    rule_reads_best_ = std::find(reads.begin(), reads.end(), "best") != reads.end();
    if (blocks_ && !rule_->runs_on_blocks(evolve_bindings(false))) {
      // The step reads rows at a per-member index (DE's p[pick(0)]) or reduces each member's
      // values along the parameter axis: every rank holds the whole population after all (the
      // same draws: build_swarm starts from the seed).
      no_blocks_ = true;
      members_.clear();
      nets_.clear();
      init_digest_ = 0;
      fitness_.reset();
      states_ = std::make_unique<GenerationState>(*rule_);
      build_swarm();
    }
  }
}

// Run options that make a rule run on this rank's block of rows (RunOptions::block_rows).
RunOptions Trainer::block_options() {
  RunOptions ro;
  if (blocks_ && evolve_) {
    ro.member_range = std::make_pair(mb_, me_);
    ro.block_rows = true;
    ro.population = n_;
    ro.row = [this](const std::string& input, int64_t m) { return row_of(input, m); };
    // A member reduction of rows (CEM's elite mean) is folded over the ranks in member order.
    ro.fold = [this, what = fmt::format("a member fold of rule {}", rule_name_)](FoldStep step, const at::Tensor& acc) {
      return pg_->fold(step, acc, n_, what);
    };
  }
  return ro;
}

// Member m's row of swarm `input` (x or a swarm state) on every rank, broadcast by its owner:
// what a rule on blocks reads through x[i] (OpenAI-ES's `state mu = x[0]`).
AnyParticle Trainer::row_of(const std::string& input, int64_t m) {
  const AnySwarm* s = input == "x" ? &x_ : states_->swarm(input);
  if (!s) throw std::logic_error("nyto internal error (this is a bug in nyto): the rule reads rows of '" + input +
                                 "', which is not a swarm the trainer binds");
  AnyParticle p = owns(m) ? s->member(m - lo_) : s->member(0).clone();
  pg_->broadcast(p, owner_of(m), fmt::format("the broadcast of member {}'s row of '{}', which rule {} reads", m, input,
                                             rule_name_));
  return p;
}

// What a generation's run of the rule binds: the population x, its fitness f, the generation g,
// the best member so far and the states. `copies`: for a dry run, which must change nothing.
Bindings Trainer::evolve_bindings(bool copies) {
  Bindings b = copies ? Bindings{{"x", copy_swarm(x_)}, {"f", std::vector<double>(size_t(n_), 0.0)}, {"g", 0.0},
                                 {"best", best_.clone()}}
                      : Bindings{{"x", x_}, {"f", f_}, {"g", double(step_)}, {"best", best_}};
  states_->bind(b, copies);
  return b;
}

// Runs the rule once on scratch copies, so a binding the rule cannot take (a scalar where it
// wants a particle...) fails before training starts, with the runtime's located message.
void Trainer::check_rule_binds() {
  RunOptions ro = block_options();
  ro.params = params_;
  ro.seed = o_.seed;
  ro.invocation = ~uint64_t(0);
  at::NoGradGuard ng;
  Bindings b;
  if (evolve_) {
    b = evolve_bindings(true);
  } else {
    b = {{"x", members_[0].clone()},
         {"gbest", members_[std::min<size_t>(1, members_.size() - 1)].clone()},
         {"loss", 0.0},
         {"gbest_loss", 0.0},
         {"step", 0.0}};
  }
  // trainer_bindings() (the compile options' known and read-only names) lists what is bound here.
  std::vector<std::string> bound, listed = trainer_inputs(o_.mode);
  for (const auto& kv : b) bound.push_back(kv.first);
  if (evolve_)
    for (const std::string& name : states_->names()) listed.push_back(name);
  std::sort(listed.begin(), listed.end());
  if (bound != listed)
    throw std::logic_error("nyto internal error (this is a bug in nyto): trainer_bindings() is "
                           "not what the trainer binds");
  auto out = rule_->run(b, ro);
  if (evolve_) states_->take(out, true);
}

void Trainer::next_batch(at::Tensor& bx, at::Tensor& by) {
  int64_t b = step_ % steps_per_epoch_;
  if (b == 0 || !perm_.defined()) {
    // A new epoch: a new order of the training images (our own Fisher-Yates over mt19937_64,
    // so the order is the same on every platform for a seed).
    int64_t n = data_.train.size();
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(idx[size_t(i)], idx[shuffle_rng_() % uint64_t(i + 1)]);
    perm_ = at::tensor(idx, at::kLong);
  }
  int64_t lo = b * o_.batch_size, hi = std::min(lo + o_.batch_size, data_.train.size());
  at::Tensor ids = perm_.slice(0, lo, hi);
  bx = data_.train.images.index_select(0, ids);
  by = data_.train.labels.index_select(0, ids);
}

void Trainer::step_hybrid(const at::Tensor& bx, const at::Tensor& by) {
  std::vector<double> mine;
  for (int64_t i = mb_; i < me_; ++i) {
    auto& opt = *opt_[size_t(i - lo_)];
    opt.zero_grad();
    at::Tensor loss = at::nll_loss(nets_[size_t(i - lo_)]->forward(bx), by);
    loss.backward();
    opt.step();
    mine.push_back(loss.item<double>());
  }
  const std::vector<double> all =
      pg_ ? pg_->allgather_members(mine, n_, 1, fmt::format("the exchange of the losses of step {}", step_ + 1)) : mine;
  for (int64_t i = 0; i < n_; ++i) {
    double l = all[size_t(i)];
    check_finite("training loss", l, i);
    last_loss_[size_t(i)] = l;
    loss_sum_[size_t(i)] += l;
    loss_count_[size_t(i)] += 1;
  }
  ++step_;
  if (o_.swarm_every <= 0 || n_ < 2 || step_ % o_.swarm_every != 0) return;
  // A random subset of swarm_size members (partial Fisher-Yates), ranked by latest loss; every
  // member but the subset's best moves by the rule with gbest = the best.
  int64_t k = std::min(o_.swarm_size, n_);
  std::vector<int64_t> ids(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) ids[size_t(i)] = i;
  for (int64_t i = 0; i < k; ++i) {
    int64_t j = i + int64_t(subset_rng_() % uint64_t(n_ - i));
    std::swap(ids[size_t(i)], ids[size_t(j)]);
  }
  ids.resize(size_t(k));
  std::sort(ids.begin(), ids.end());
  int64_t best = ids[0];
  for (int64_t i : ids)
    if (last_loss_[size_t(i)] < last_loss_[size_t(best)]) best = i;
  at::NoGradGuard ng;
  // gbest from its owner; each rank moves its own members of the subset.
  const AnyParticle& gbest = owns(best) ? members_[size_t(best - lo_)] : gbest_buf_;
  if (pg_) pg_->broadcast(gbest, owner_of(best), fmt::format("the broadcast of gbest (member {}) at step {}", best, step_));
  for (int64_t i : ids) {
    if (i == best || !owns(i)) continue;
    RunOptions ro;
    ro.params = params_;
    ro.seed = o_.seed;
    ro.invocation = uint64_t(step_) * uint64_t(n_) + uint64_t(i);
    rule_->run({{"x", members_[size_t(i - lo_)]},
                {"gbest", gbest},
                {"loss", last_loss_[size_t(i)]},
                {"gbest_loss", last_loss_[size_t(best)]},
                {"step", double(step_)}},
               ro);
  }
}

// The images of this generation's fitness: --fixed-batch, the first --fitness-size training
// images; else a new batch each generation, consecutive slices of a shuffled order (reshuffled,
// as SGD's epochs are, when the images run out).
void Trainer::fitness_batch() {
  const int64_t n = data_.train.size(), f = std::min<int64_t>(o_.fitness_size, n);
  if (fixed_batch_) {
    if (!fit_x_.defined()) {
      fit_x_ = data_.train.images.slice(0, 0, f);
      fit_y_ = data_.train.labels.slice(0, 0, f);
    }
    return;
  }
  const int64_t per_epoch = n / f, b = step_ % per_epoch;
  if (b == 0 || !perm_.defined()) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(idx[size_t(i)], idx[shuffle_rng_() % uint64_t(i + 1)]);
    perm_ = at::tensor(idx, at::kLong);
  }
  at::Tensor ids = perm_.slice(0, b * f, b * f + f);
  fit_x_ = data_.train.images.index_select(0, ids);
  fit_y_ = data_.train.labels.index_select(0, ids);
}

void Trainer::evaluate_fitness() {
  fitness_->evaluate(fit_x_, fit_y_, f_);
  if (pg_) {
    auto t = Clock::now();
    f_ = pg_->allgather_members(f_, n_, 1, fmt::format("the exchange of the fitness of generation {}", step_));
    exchange_seconds_ += std::chrono::duration<double>(Clock::now() - t).count();
  }
}

// One generation: the fitness of x, the best member so far, then the rule (tell and ask).
void Trainer::step_evolve() {
  auto t0 = Clock::now();
  fitness_batch();
  evaluate_fitness();
  auto t1 = Clock::now();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  for (int64_t i = 0; i < n_; ++i) {
    double f = f_[size_t(i)];
    check_finite("fitness", f, i);
    loss_sum_[size_t(i)] += f;
    loss_count_[size_t(i)] += 1;
    lo = std::min(lo, f), hi = std::max(hi, f), sum += f;
    if (f < best_f_) {  // strictly lower: the first of equal members, the earliest generation
      best_f_ = f;
      best_step_ = step_;
      best_member_ = i;
      at::NoGradGuard ng;
      // Distributed: only the owner's row is current (the rule ran on each rank's own members);
      // the others get it from the owner when they need it (share_best).
      if (owns(i))
        for (size_t g = 0; g < x_.storage().size(); ++g) best_.storage()[g].copy_(x_.storage()[g][i - lo_]);
      best_stale_ = pg_ != nullptr;
    }
  }
  fit_rows_.push_back({double(step_), lo, sum / double(n_), hi});
  at::NoGradGuard ng;
  RunOptions ro = block_options();
  ro.params = params_;
  ro.seed = o_.seed;
  ro.invocation = uint64_t(step_) + 1;
  if (pg_) {
    // Each rank moves its own members (on its block of rows, or on its rows of the whole
    // population); a rule whose members read each other runs on all of them (replicated, the
    // same bits on every rank).
    if (rule_->members_independent()) ro.member_range = std::make_pair(mb_, me_);
    if (rule_reads_best_) share_best();
  }
  states_->take(rule_->run(evolve_bindings(false), ro), false);
  auto t2 = Clock::now();
  eval_seconds_ += std::chrono::duration<double>(t1 - t0).count();
  rule_seconds_ += std::chrono::duration<double>(t2 - t1).count();
  ++step_;
}

Eval Trainer::evaluate(Classifier* net, int64_t n) {
  const TestResult r = test_classifier(*net, data_.test, n);
  return {r.loss, double(r.correct) / double(r.images)};
}

void Trainer::evaluate_all(bool final) {
  int64_t n = final ? data_.test.size() : o_.eval_size;
  std::string accs;
  int64_t best = 0;
  double best_acc = -1, train_mean = 0;
  std::vector<MetricRow> now;
  // Each rank tests its own members (current on it without a gather); every rank gets every result.
  std::vector<double> tested;
  for (int64_t i = mb_; i < me_; ++i) {
    Eval e = evaluate(nets_[size_t(i - lo_)], n);
    tested.insert(tested.end(), {e.loss, e.acc});
  }
  if (pg_) tested = pg_->allgather_members(tested, n_, 2, fmt::format("the exchange of the test results of step {}", step_));
  for (int64_t i = 0; i < n_; ++i) {
    // train loss: the member's mean SGD loss (hybrid) or fitness (evolve) since the last evaluation.
    Eval e{tested[size_t(2 * i)], tested[size_t(2 * i + 1)]};
    double tl = loss_count_[size_t(i)] ? loss_sum_[size_t(i)] / double(loss_count_[size_t(i)])
                                       : std::numeric_limits<double>::quiet_NaN();
    if (std::isnan(tl))  // no step since this step's evaluation (resuming a finished run)
      for (const auto& r : rows_)
        if (r.step == step_ && r.member == i) tl = r.train_loss;
    loss_sum_[size_t(i)] = 0;
    loss_count_[size_t(i)] = 0;
    train_mean += tl / double(n_);
    now.push_back({step_, i, tl, e.loss, e.acc});
    accs += fmt::format(" {:.4f}", e.acc);
    if (e.acc > best_acc) best_acc = e.acc, best = i;
  }
  // Replace rows of this step (a resumed run evaluating its last step again).
  rows_.erase(std::remove_if(rows_.begin(), rows_.end(), [&](const MetricRow& r) { return r.step == step_; }),
              rows_.end());
  rows_.insert(rows_.end(), now.begin(), now.end());
  clear_progress();
  int64_t epoch = std::min<int64_t>((step_ - 1) / steps_per_epoch_ + 1, o_.epochs);
  fmt::print("step {}/{}  epoch {}/{}  {}  train loss {:.4f}  test acc{} {}{}  best {:.4f} (member {})\n",
             step_, total_steps_, epoch, o_.epochs, fmt_time(elapsed()), train_mean,
             n_ <= 16 ? "" : " (first 16)", n_ <= 16 ? accs.substr(1) : accs.substr(1, 16 * 7 - 1),
             final || n >= data_.test.size() ? "" : fmt::format(" [{} images]", n), best_acc, best);
  std::fflush(stdout);
  if (lead() && !o_.metrics.empty()) write_metrics();
  if (!o_.checkpoint.empty()) save_checkpoint();
}

std::string Trainer::config_string() const {
  // What must match for --resume to continue the same run (epochs and --batches may change).
  // The data set is identified by its contents (a hash of the four files' bytes and the image
  // counts), not its path: the same files elsewhere resume, changed files do not.
  std::string set;
  for (const auto& [k, v] : params_) set += fmt::format("{}={} ", k, v);
  return fmt::format(
      "model={} hidden={} mode={} particles={} batch_size={} lr={} momentum={} swarm_every={} "
      "swarm_size={} seed={} eval_every={} eval_size={} fitness_size={} rule={:016x} params={}"
      " data={}+{}:{:016x} classes={} init={:016x}",
      o_.model, o_.model == "mlp" ? o_.hidden : 0, o_.mode, o_.particles, o_.batch_size, o_.lr,
      o_.momentum, o_.swarm_every, o_.swarm_size, o_.seed, o_.eval_every, o_.eval_size,
      o_.fitness_size, fnv1a(rule_source_), set, data_.train.size(), data_.test.size(), data_.digest,
      classes_text_, init_digest_);
}

// Every rank writes its part, the ranks exchange the parts' digests, and rank 0 writes the
// manifest that commits them (cli/Checkpoint.h). A rank's own rows are current on it without any
// gather: no particle crosses the network for a checkpoint.
void Trainer::save_checkpoint() {
  share_best();
  std::error_code ec;
  const std::string parts_dir = fmt::format("parts-{:x}-{}", run_id_, ++checkpoints_);
  const fs::path dir = fs::path(o_.checkpoint) / parts_dir;
  fs::create_directories(dir, ec);
  if (ec) throw IOError("cannot create checkpoint directory '" + dir.string() + "': " + ec.message());
  CheckpointWriter part, manifest;
  // A view's whole storage would be written: a rank's rows are copied out, unless they are all.
  auto mine = [&](const at::Tensor& t) {
    return mb_ == 0 && me_ == n_ ? t : t.narrow(0, mb_, me_ - mb_).clone();
  };
  part.put("format", c10::IValue(std::string(kCheckpointPartFormat)));
  part.put("members", c10::IValue(n_));
  part.put("begin", c10::IValue(mb_));
  part.put("end", c10::IValue(me_));
  for (size_t g = 0; g < x_.storage().size(); ++g)
    part.put("x_" + std::to_string(g), blocks_ ? x_.storage()[g].detach() : mine(x_.storage()[g].detach()));
  if (evolve_) {
    states_->save([&](const std::string& key, const c10::IValue& v, bool rows) {
      // A swarm state of a block is this rank's rows; a vector (one value per member) is not.
      if (rows)
        part.put(key, blocks_ && v.toTensor().size(0) == x_.size() ? v.toTensor() : mine(v.toTensor()));
      else
        manifest.put(key, v);
    });
  } else {
    for (int64_t i = mb_; i < me_; ++i) {
      torch::serialize::OutputArchive oa;
      opt_[size_t(i - lo_)]->save(oa);
      part.nest("opt_" + std::to_string(i), oa);
    }
  }
  const uint64_t digest = part.save((dir / checkpoint_part_name(mb_, me_)).string());
  // The exchange is also the barrier: once it returns, every part is in place.
  std::vector<double> digests{double(digest >> 32), double(digest & 0xffffffffu)};
  if (pg_)
    digests = pg_->allgather_members(digests, world_, 2, fmt::format("the exchange of the checkpoint's parts at step {}", step_));
  if (!lead()) return;
  manifest.put("format", c10::IValue(std::string(kCheckpointFormat)));
  manifest.put("config", c10::IValue(config_string()));
  manifest.put("step", c10::IValue(step_));
  manifest.put("elapsed", c10::IValue(elapsed()));
  manifest.put("members", c10::IValue(n_));
  if (evolve_) {
    for (size_t g = 0; g < x_.storage().size(); ++g) manifest.put("best_" + std::to_string(g), best_.storage()[g].detach());
    manifest.put("best_f", c10::IValue(best_f_));
    manifest.put("best_step", c10::IValue(best_step_));
    manifest.put("states", c10::IValue(states_->signature()));
    std::vector<double> fr;
    for (const auto& r : fit_rows_) fr.insert(fr.end(), r.begin(), r.end());
    manifest.put("fitness_rows", at::tensor(fr, at::kDouble).reshape({int64_t(fit_rows_.size()), 4}));
  } else {
    manifest.put("last_loss", at::tensor(last_loss_, at::kDouble));
  }
  manifest.put("loss_sum", at::tensor(loss_sum_, at::kDouble));
  manifest.put("loss_count", at::tensor(loss_count_, at::kLong));
  manifest.put("has_perm", c10::IValue(perm_.defined()));
  if (perm_.defined()) manifest.put("perm", perm_);
  std::ostringstream r1, r2;
  r1 << shuffle_rng_;
  r2 << subset_rng_;
  manifest.put("shuffle_rng", c10::IValue(r1.str()));
  manifest.put("subset_rng", c10::IValue(r2.str()));
  manifest.put("torch_rng", at::detail::getDefaultCPUGenerator().get_state());
  std::vector<double> flat;
  for (const auto& r : rows_) flat.insert(flat.end(), {double(r.step), double(r.member), r.train_loss, r.test_loss, r.test_acc});
  manifest.put("rows", at::tensor(flat, at::kDouble).reshape({int64_t(rows_.size()), 5}));
  manifest.put("parts_dir", c10::IValue(parts_dir));
  std::vector<int64_t> ranges, sums;
  for (int r = 0; r < world_; ++r) {
    const auto [b, e] = nyto::member_block(n_, world_, r);
    ranges.insert(ranges.end(), {b, e});
    sums.push_back(int64_t((uint64_t(digests[size_t(2 * r)]) << 32) | uint64_t(digests[size_t(2 * r + 1)])));
  }
  manifest.put("parts", at::tensor(ranges, at::kLong).reshape({world_, 2}));
  manifest.put("part_digests", at::tensor(sums, at::kLong));
  manifest.save((fs::path(o_.checkpoint) / "checkpoint.pt").string());
  remove_stale_parts(parts_dir);
}

// Parts directories the manifest does not name: the previous checkpoint's, or one a kill left
// half-written. Best effort: a directory left behind is only space.
void Trainer::remove_stale_parts(const std::string& keep) const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(o_.checkpoint, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("parts-", 0) == 0 && name != keep && entry.is_directory(ec)) fs::remove_all(entry.path(), ec);
  }
}

bool Trainer::load_checkpoint() {
  std::string path = (fs::path(o_.checkpoint) / "checkpoint.pt").string();
  if (!fs::exists(path)) return false;
  // A hybrid rank reads its own members' rows and SGD states only.
  TrainCheckpoint ck = read_train_checkpoint(path, {lo_, lo_ + x_.size()});
  std::string mine = config_string();
  if (ck.config != mine) {
    // Name the first differing setting.
    std::istringstream a(ck.config), b(mine);
    std::string ta, tb;
    while (a >> ta && b >> tb)
      if (ta != tb) break;
    throw UsageError("--resume: checkpoint '" + path + "' was made with " + ta + " but this run has " + tb +
                     "; resume with the same settings and data (only --epochs, --batches and outputs may change)");
  }
  // The same settings give the same structure; a file that does not fit is corrupt.
  auto unfit = [&](const std::string& what) {
    throw IOError("checkpoint '" + path + "' is corrupt: " + what + " does not fit this run's swarm");
  };
  if (ck.evolve != evolve_ || ck.members != n_ || int64_t(ck.x.size()) != int64_t(x_.storage().size()))
    unfit("its mode or structure");
  for (size_t g = 0; g < ck.x.size(); ++g)
    if (ck.x[g].sizes() != x_.storage()[g].sizes() || ck.x[g].scalar_type() != x_.storage()[g].scalar_type())
      unfit("field 'x_" + std::to_string(g) + "'");
  if (ck.perm.defined() && ck.perm.size(0) != data_.train.size()) unfit("field 'perm'");
  at::NoGradGuard ng;
  // evolve: every state as this run's init made it (name, kind, shape), checked before any is set.
  if (evolve_ && blocks_) {
    // A vector state (one value per member of the population) read for this block only: the
    // other members' entries are theirs to keep, and never read here (the rule runs on the block).
    for (const std::string& key : ck.row_fields) {
      at::Tensor t = ck.state_fields.at(key).toTensor();
      if (t.dim() != 1) continue;
      at::Tensor all = at::full({n_}, std::numeric_limits<double>::quiet_NaN(), t.options());
      all.narrow(0, ck.first, t.size(0)).copy_(t);
      ck.state_fields[key] = all;
    }
  }
  if (evolve_) states_->restore(ck.states, ck.state_fields, unfit);
  if (!evolve_) {
    for (int64_t i = lo_; i < lo_ + x_.size(); ++i) {
      auto& opt = *opt_[size_t(i - lo_)];
      std::string field = "checkpoint '" + path + "' is corrupt: field 'opt_" + std::to_string(i) + "'";
      try {
        opt.load(*ck.optimizers[size_t(i - lo_)]);
      } catch (const c10::Error& e) {
        throw IOError(field + " is not an SGD state: " + e.what_without_backtrace());
      }
      // LibTorch restores the options and momentum buffers without checking them.
      for (const auto& group : opt.param_groups()) {
        const auto& so = static_cast<const torch::optim::SGDOptions&>(group.options());
        if (so.lr() != o_.lr || so.momentum() != o_.momentum || so.dampening() != 0 ||
            so.weight_decay() != 0 || so.nesterov())
          throw IOError(field + " holds other SGD options than this run's --lr and --momentum");
        for (const auto& p : group.params()) {
          auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
          if (it == opt.state().end()) continue;
          const auto& buf = static_cast<const torch::optim::SGDParamState&>(*it->second).momentum_buffer();
          if (buf.defined() && (buf.sizes() != p.sizes() || buf.scalar_type() != p.scalar_type()))
            throw IOError(field + " holds a momentum buffer of another shape than its parameter");
        }
      }
    }
  }
  for (size_t g = 0; g < ck.x.size(); ++g) {
    x_.storage()[g].copy_(ck.x[g]);
    if (evolve_) best_.storage()[g].copy_(ck.best[g]);
  }
  if (evolve_) {
    best_f_ = ck.best_f;
    best_step_ = ck.best_step;
    fit_rows_ = ck.fitness_rows;
  } else {
    last_loss_ = ck.last_loss;
  }
  loss_sum_ = ck.loss_sum;
  loss_count_ = ck.loss_count;
  perm_ = ck.perm;
  shuffle_rng_ = ck.shuffle_rng;
  subset_rng_ = ck.subset_rng;
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(ck.torch_rng);
  rows_ = std::move(ck.rows);
  step_ = ck.step;
  elapsed_before_ = ck.elapsed;
  if (lead()) remove_stale_parts(ck.parts_dir);  // a kill may have left a half-written one
  return true;
}

void Trainer::write_metrics() const {
  std::string csv = "step,member,train_loss,test_loss,test_accuracy\n";
  for (const auto& r : rows_)
    csv += fmt::format("{},{},{:.6f},{:.6f},{:.4f}\n", r.step, r.member, r.train_loss, r.test_loss, r.test_acc);
  if (!evolve_) {
    io::write_file(o_.metrics, [&](io::FileWriter& w) { w.write(csv); });
    return;
  }
  std::string fit = "generation,best_fitness,mean_fitness,worst_fitness\n";
  for (const auto& r : fit_rows_) fit += fmt::format("{},{:.6f},{:.6f},{:.6f}\n", int64_t(r[0]), r[1], r[2], r[3]);
  io::Commit commit;  // both files, or neither
  io::write_file(commit.stage(o_.metrics), [&](io::FileWriter& w) { w.write(csv); });
  io::write_file(commit.stage(fitness_metrics_path(o_.metrics)), [&](io::FileWriter& w) { w.write(fit); });
  commit.commit();
}

void Trainer::write_plot() const {
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  // gnuplot draws into a staged file, which replaces the plot once it is complete.
  io::Commit commit;
  std::string png = commit.stage(o_.plot);
  std::string script = "set terminal pngcairo size 960,600 noenhanced\n";
  script += "set output " + quote(png) + "\n";
  script += fmt::format("set title 'nyto train: {} {}, {} members'\n", o_.model, o_.mode, n_);
  script += "set xlabel 'step'\nset ylabel 'test accuracy'\nset key bottom right\nset grid\n";
  for (int64_t i = 0; i < n_; ++i) {
    script += fmt::format("$m{} << EOD\n", i);
    for (const auto& r : rows_)
      if (r.member == i) script += fmt::format("{} {:.6f}\n", r.step, r.test_acc);
    script += "EOD\n";
  }
  script += "plot ";
  for (int64_t i = 0; i < n_; ++i)
    script += fmt::format("{}$m{} with linespoints title 'member {}'", i ? ", " : "", i, i);
  script += "\n";
  std::string gp = png + ".gp";
  io::write_file(gp, [&](io::FileWriter& w) { w.write(script); });
  int rc = std::system(("gnuplot " + quote(gp) + " 2>&1").c_str());
  std::error_code ec;
  fs::remove(gp, ec);
  if (rc != 0 || !fs::is_regular_file(png) || fs::file_size(png, ec) == 0)
    throw IOError("gnuplot could not draw '" + o_.plot + "' (exit status " + std::to_string(rc) + ")");
  commit.commit();
}

void Trainer::clear_progress() {
  if (tty_ && bar_shown_) fmt::print("\r\x1b[K");
  bar_shown_ = false;
}

void Trainer::progress(bool force) {
  if (!tty_) return;
  auto now = Clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double since = std::chrono::duration<double>(now - start_).count();
  double rate = since > 0 ? double(step_ - start_step_) / since : 0;
  double mean = 0;
  int64_t cnt = 0;
  for (int64_t i = 0; i < n_; ++i) {
    double l = evolve_ ? f_[size_t(i)] : last_loss_[size_t(i)];
    if (!std::isnan(l)) mean += l, cnt++;
  }
  const int width = 24;
  int filled = total_steps_ ? int(width * step_ / total_steps_) : width;
  std::string bar(size_t(filled), '#');
  bar += std::string(size_t(width - filled), '-');
  double eta = rate > 0 ? double(total_steps_ - step_) / rate : 0;
  // Throughput in steps and in images through a member's forward pass (and backward, hybrid).
  double images = evolve_ ? double(std::min(o_.fitness_size, data_.train.size()) * n_) : double(o_.batch_size * n_);
  fmt::print("\r[{}] {}/{}  {:.1f} steps/s {:.0f} img/s  loss {:.4f}  {} (eta {})\x1b[K", bar, step_,
             total_steps_, rate, rate * images, cnt ? mean / double(cnt) : 0.0, fmt_time(elapsed()),
             fmt_time(eta));
  std::fflush(stdout);
  bar_shown_ = true;
}

// Training goes on when a loss turns NaN or infinite (another member may still be fine), but the
// user hears of it once, on stderr, with where it happened and the likely cause.
void Trainer::check_finite(const char* what, double value, int64_t member) {
  if (std::isfinite(value) || warned_not_finite_) return;
  warned_not_finite_ = true;
  clear_progress();
  std::fflush(stdout);
  fmt::print(stderr, "nyto: warning: the {} of member {} is {} at step {}{}; training goes on\n", what, member,
             std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf", step_ + (evolve_ ? 0 : 1),
             evolve_ ? " (do the rule's params move the members too far?)"
                  : " (is --lr " + short_number(o_.lr) + " too large?)");
  std::fflush(stderr);
}

// evolve: the best member found (lowest fitness seen) and the search mean, on the full test set.
void Trainer::report_extra() {
  if (step_ > start_step_) {
    double all = eval_seconds_ + rule_seconds_, gens = double(step_ - start_step_);
    fmt::print("per generation: fitness {:.2f} ms ({:.0f} images/s), rule {:.2f} ms ({:.1f}% of the two)\n",
               1e3 * eval_seconds_ / gens,
               gens * double(std::min(o_.fitness_size, data_.train.size()) * n_) / std::max(eval_seconds_, 1e-9),
               1e3 * rule_seconds_ / gens, all > 0 ? 100 * rule_seconds_ / all : 0.0);
    if (pg_)
      fmt::print("per generation on rank 0: fitness of its {} members {:.2f} ms, waiting for the others' {:.2f} ms\n",
                 me_ - mb_, 1e3 * (eval_seconds_ - exchange_seconds_) / gens, 1e3 * exchange_seconds_ / gens);
    fmt::print("per generation in all: {:.2f} ms (wall time of the generations, evaluations included)\n",
               1e3 * loop_seconds_ / gens);
  }
  if (best_step_ >= 0) {
    Eval e = evaluate(&classifier(best_), data_.test.size());
    fmt::print("best so far (fitness {:.4f}, generation {}): test loss {:.4f}, test accuracy {:.4f}\n", best_f_,
               best_step_, e.loss, e.acc);
  }
  std::string name;
  if (const AnyParticle* mean = states_->mean(&name)) {
    Eval e = evaluate(&classifier(*mean), data_.test.size());
    fmt::print("search mean {}: test loss {:.4f}, test accuracy {:.4f}\n", name, e.loss, e.acc);
  }
}

void Trainer::run() {
  validate_flags();
  compile_rule();
  join_ranks();
  threads_ = o_.threads > 0 ? o_.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads_);
  tty_ = ::isatty(1);
  std::string dir = o_.data.empty() ? kDefaultDataDir : o_.data;
  data_ = load_image_data(dir);
  if (!o_.classes.empty()) {
    std::vector<int64_t> classes = parse_classes("--classes", o_.classes);
    for (int64_t c : classes) classes_text_ += (classes_text_.empty() ? "" : ",") + std::to_string(c);
    data_.train = select_classes(data_.train, classes);
    if (data_.train.size() == 0) throw UsageError("--classes " + o_.classes + ": no training image has these labels");
  }
  steps_per_epoch_ = (data_.train.size() + o_.batch_size - 1) / o_.batch_size;
  total_steps_ = steps_per_epoch_ * o_.epochs;
  if (o_.batches > 0) total_steps_ = std::min(total_steps_, o_.batches);
  if (evolve_ && o_.generations > 0) total_steps_ = o_.generations;
  shuffle_rng_.seed(o_.seed * 2 + 1);
  subset_rng_.seed(o_.seed * 2 + 2);
  build_swarm();
  check_rule_binds();
  if (pg_) {
    const std::string differ = pg_->compare_settings(
        config_string() + fmt::format(" steps={} fixed_batch={} fitness_strategy={} resume={} checkpoint={} save={}",
                                      total_steps_, fixed_batch_, o_.fitness_strategy, o_.resume,
                                      o_.checkpoint.empty() ? "no" : "yes", o_.save.empty() ? "no" : "yes"));
    if (!differ.empty())
      throw UsageError("the ranks were started with different settings: " + differ +
                       "; start every rank with the same command line");
  }
  // Rank 0's draw names this run's checkpoint parts, so that they never overwrite a part that a
  // manifest on disk (of an earlier run, or of this one) still names.
  std::vector<double> id{double(std::random_device()() & 0xffffffu), double(std::random_device()() & 0xffffffu)};
  if (pg_) id = pg_->allgather_members(id, world_, 2, "the exchange of the run's name");
  run_id_ = (uint64_t(id[0]) << 24) | uint64_t(id[1]);
  bool resumed = o_.resume && load_checkpoint();
  std::string work =
      evolve_ ? fmt::format("{} generations, fitness on {} {} images", total_steps_,
                            std::min(o_.fitness_size, data_.train.size()), fixed_batch_ ? "fixed" : "new")
              : fmt::format("{} steps of batch {}", total_steps_, o_.batch_size);
  fmt::print("nyto train: {} {} x{} on {} ({} train{} / {} test images){}, rule {}, {}, {} thread{}\n",
             o_.mode, o_.model, n_, dir, data_.train.size(),
             classes_text_.empty() ? "" : " of classes " + classes_text_, data_.test.size(),
             o_.init.empty() ? "" : ", from " + o_.init, rule_name_, work, threads_,
             threads_ == 1 ? "" : "s");
  if (evolve_) fmt::print("fitness evaluation: {}\n", fitness_->strategy());
  if (pg_)
    fmt::print("distributed: {} processes (rendezvous {}:{} from the {}), members in contiguous blocks (rank 0: {}-{}); {}\n",
               world_, rdv_.host, rdv_.port, rdv_.source, mb_, me_ - 1,
               blocks_ ? "each rank holds its own members only"
                       : fmt::format("each rank holds the whole population ({} reads rows at a per-member index, "
                                     "or reduces along the parameter axis a value that varies per member)",
                                     no_blocks_ ? "the rule" : "the rule's init"));
  if (o_.resume && !resumed)
    fmt::print("no checkpoint in {}: starting from step 0\n", o_.checkpoint);
  else if (resumed)
    fmt::print("resumed from {} at step {}\n", o_.checkpoint, step_);
  std::fflush(stdout);

  start_ = Clock::now();
  start_step_ = step_;
  const auto loop_start = Clock::now();
  const uint64_t bytes_before = pg_ ? pg_->bytes_sent() : 0;
  at::Tensor bx, by;
  while (step_ < total_steps_) {
    if (evolve_) {
      step_evolve();
    } else {
      next_batch(bx, by);
      step_hybrid(bx, by);
    }
    progress(false);
    bool last = step_ == total_steps_;
    if (!last && o_.eval_every > 0 && step_ % o_.eval_every == 0) evaluate_all(false);
    if (step_ == o_.kill_at_step && (o_.kill_rank < 0 || o_.kill_rank == rank_)) {
      std::fflush(stdout);
      ::raise(SIGKILL);
    }
  }
  loop_seconds_ = std::chrono::duration<double>(Clock::now() - loop_start).count();
  const uint64_t loop_bytes = pg_ ? pg_->bytes_sent() - bytes_before : 0;
  evaluate_all(true);
  const AnySwarm result = result_swarm();

  // The final table: every member on the full test set (the rows just written).
  std::vector<MetricRow> fin;
  for (const auto& r : rows_)
    if (r.step == step_) fin.push_back(r);
  if (evolve_)
    fmt::print("\n(the population x after the last generation; train loss = mean fitness since the last evaluation)");
  fmt::print("\n{:>6}  {:>10}  {:>9}  {:>8}\n", "member", "train loss", "test loss", "test acc");
  int64_t best = 0;
  for (const auto& r : fin) {
    fmt::print("{:>6}  {:>10.4f}  {:>9.4f}  {:>8.4f}\n", r.member, r.train_loss, r.test_loss, r.test_acc);
    if (r.test_acc > fin[size_t(best)].test_acc) best = r.member;
  }
  if (evolve_ && lead()) report_extra();
  if (lead()) {
    io::Commit commit;  // both files, or neither
    if (!o_.save.empty()) result.save(commit.stage(o_.save));
    if (!o_.checkpoint.empty()) result.save(commit.stage((fs::path(o_.checkpoint) / "swarm.pt").string()));
    commit.commit();
  }
  if (!o_.plot.empty() && lead()) write_plot();
  if (pg_)
    fmt::print("{} processes: {} members each at most; rank 0 sent {} bytes of data in the {} steps ({:.0f} per step), "
               "{} in all\n",
               world_, me_ - mb_, loop_bytes, step_ - start_step_,
               double(loop_bytes) / double(std::max<int64_t>(1, step_ - start_step_)), pg_->bytes_sent());
  fmt::print("trained in {} ({} steps this run)\n", fmt_time(elapsed()), step_ - start_step_);
  fmt::print("test accuracy: {:.4f} (best member {})\n", fin[size_t(best)].test_acc, best);
  std::fflush(stdout);
}


// LibTorch's OpenMP threads spin while they wait for work; on a loaded machine (or with more
// threads than free cores) the spinning threads steal the cores from the ones with work, and a
// 2-thread run was measured 10x slower than a 1-thread one. libgomp reads OMP_WAIT_POLICY once,
// when it is loaded, so the only way to set it is before the process starts: unless the user
// chose a policy, run this same command again with OMP_WAIT_POLICY=passive. Results do not
// depend on the policy.
//
// The same re-run sets GLOG_minloglevel=3 unless the user chose a level: c10d (distributed runs)
// logs through glog, whose warnings ("Logging before InitGoogleLogging()", a socket's retries)
// repeat what nyto's own error says.
void ensure_passive_openmp() {
  if (std::getenv("OMP_WAIT_POLICY") && std::getenv("GLOG_minloglevel")) return;
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.empty()) return;
  std::vector<std::string> args;
  for (size_t b = 0; b < all.size();) {
    size_t e = all.find('\0', b);
    if (e == std::string::npos) e = all.size();
    args.push_back(all.substr(b, e - b));
    b = e + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::setenv("OMP_WAIT_POLICY", "passive", 0);
  ::setenv("GLOG_minloglevel", "3", 0);
  std::fflush(stdout);
  ::execv("/proc/self/exe", argv.data());
}

}  // namespace

TestResult test_classifier(Classifier& net, const ImageSet& test, int64_t n) {
  at::NoGradGuard ng;
  n = std::min(n, test.size());
  double loss = 0;
  at::Tensor per_class = at::zeros({10}, at::kLong);
  for (int64_t lo = 0; lo < n; lo += 1000) {
    int64_t hi = std::min(lo + 1000, n);
    at::Tensor out = net.forward(test.images.slice(0, lo, hi));
    at::Tensor y = test.labels.slice(0, lo, hi);
    loss += at::nll_loss(out, y, {}, at::Reduction::Sum).item<double>();
    per_class += at::bincount(y.masked_select(out.argmax(1).eq(y)), {}, 10);
  }
  TestResult r;
  r.images = n;
  r.loss = loss / double(n);
  for (int64_t c = 0; c < 10; ++c) r.correct_per_class.push_back(per_class[c].item<int64_t>());
  for (int64_t c : r.correct_per_class) r.correct += c;
  return r;
}

void run_training(const TrainOptions& options) {
  launch_if_requested(options.dist, options.particles, fmt::format("--particles {}", options.particles));
  ensure_passive_openmp();
  Trainer t(options);
  t.run();
}

}  // namespace nyto::cli
