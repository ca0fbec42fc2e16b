// `nyto train`: a swarm of zoo models trained on (Fashion-)MNIST, in two loops:
//   hybrid  every member trains with SGD on the same batches; every swarm_every batches a random
//           subset of swarm_size members is ranked by latest loss and every member of the subset
//           but the best is moved by the rule (x, gbest) -- nytorch's documented algorithm;
//   evolve  gradient-free: per generation, the fitness f of every member of x (mean NLL loss on a
//           batch of training images), then one run of a generation rule, which keeps its own
//           state (`state` declarations, docs/language.md); `pso` is evolve with
//           examples/rules/pso.nyto and a fixed fitness batch.
// No LibTorch in this header: the CLI wiring (cmd_train.cpp) stays cheap to compile.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cli/Data.h"
#include "cli/Dist.h"
#include "cli/Zoo.h"

namespace nyto::cli {

struct TrainOptions {
  std::string model = "mlp";
  int64_t hidden = 256;
  std::string mode = "hybrid";
  int64_t particles = 4;
  int64_t epochs = 2;
  int64_t batches = 0;  ///< a limit on the total number of steps (0: none)
  int64_t batch_size = 64;
  double lr = 0.1;
  double momentum = 0.0;
  int64_t swarm_every = 10;
  int64_t swarm_size = 3;
  std::string rule;  ///< empty: the built-in copy of examples/rules/{apso,pso}.nyto
  std::vector<std::string> set;  ///< NAME=VALUE overrides of the rule's params
  uint64_t seed = 0;
  int threads = 0;  ///< 0: every core
  int64_t eval_every = 200;
  int64_t eval_size = 10000;  ///< test images of a periodic evaluation; the last one uses all
  int64_t fitness_size = 1000;  ///< evolve: training images per fitness evaluation
  bool fixed_batch = false;     ///< evolve: one fitness batch (the first images) for every generation
  std::string fitness_strategy = "auto";  ///< evolve: auto, loop, threads or batched (cli/Fitness.h)
  int64_t generations = 0;      ///< evolve: generations (0: --batches, else epochs x batches per epoch)
  std::string data;  ///< empty: kDefaultDataDir
  std::string init;  ///< start from these weights: a model file (every member) or a swarm of them
  std::string classes;  ///< train on these classes only ("0-4", "5,7,9"); empty: all

  std::string metrics, plot, checkpoint, save;
  bool resume = false;
  int64_t kill_at_step = -1;  ///< testing: SIGKILL ourselves after this step
  int kill_rank = -1;          ///< testing: only this rank kills itself (-1: every rank)
  DistOptions dist;            ///< --nprocs, --world-size, --rank, --master, --timeout
};

/// One name the trainer binds for its rule in a mode, and whether the rule may assign it.
struct TrainerBinding {
  std::string name;
  /// x (and v in pso): the members the rule moves. Everything else (gbest, pbest, loss, step...)
  /// is the trainer's own state, bound as an input only: a rule assigning it is refused (E0205).
  bool assignable = false;
};
/// What the trainer binds in each mode: the one list the compile options and the runs follow.
std::vector<TrainerBinding> trainer_bindings(const std::string& mode);
/// The names a rule may read in each mode (anything else is rejected with a suggestion).
std::vector<std::string> trainer_inputs(const std::string& mode);
/// The names a rule must not assign in each mode (the bindings that are not assignable).
std::vector<std::string> trainer_read_only(const std::string& mode);

/// A classifier on the first `n` images of `test` (all when n exceeds them), in batches of 1,000:
/// mean NLL loss, and correct answers in all and per class. `nyto train`'s evaluations and
/// `nyto eval` both use it, so their accuracies agree.
struct TestResult {
  int64_t images = 0;
  double loss = 0;
  int64_t correct = 0;
  std::vector<int64_t> correct_per_class;  // 10 entries
};
TestResult test_classifier(Classifier& net, const ImageSet& test, int64_t n);

/// Runs the training; prints progress to stdout. Throws UsageError, CompileError, BindError for
/// the user's mistakes (exit 2), IOError and nyto::Error otherwise.
void run_training(const TrainOptions& options);

}  // namespace nyto::cli
