// nyto train: a swarm of zoo models on Fashion-MNIST (cli/Train.h does the work).
#include <thread>

#include "cli/Commands.h"
#include "cli/Train.h"
#include "cli/Limits.h"

namespace nyto::cli {

void add_train(CLI::App& app) {
  auto opts = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a swarm of models on Fashion-MNIST: SGD + swarm moves (hybrid) or gradient-free generations of "
      "a rule (evolve: ES, CEM, DE, GA, PSO... as rule files; pso: evolve with examples/rules/pso.nyto)");
  // A flag given twice takes its last value (so `./demo.sh --epochs 1` overrides a default).
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--model", opts->model, "mlp (784-H-10) or cnn (nytorch's example ConvNet)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  cmd->add_option("--hidden", opts->hidden, "mlp: hidden width")->check(in_interval(integers(1, kMaxHidden)))->capture_default_str();
  cmd->add_option("--mode", opts->mode,
                  "hybrid (SGD + rule moves), evolve (gradient-free generations of --rule) or pso "
                  "(evolve with the built-in examples/rules/pso.nyto and --fixed-batch)")
      ->check(CLI::IsMember({"hybrid", "evolve", "pso"}))
      ->capture_default_str();
  cmd->add_option("--particles", opts->particles, "swarm members")->check(in_interval(integers(1, kMaxMembers)))->capture_default_str();
  cmd->add_option("--epochs", opts->epochs, "passes over the training set")->check(in_interval(integers(1, 1e6)))->capture_default_str();
  cmd->add_option("--batches", opts->batches, "stop after this many steps in all (0: no limit)")
      ->check(in_interval(integers(0, 1e12)))
      ->capture_default_str();
  cmd->add_option("--batch-size", opts->batch_size, "images per SGD batch")->check(in_interval(integers(1, 60000)))->capture_default_str();
  cmd->add_option("--lr", opts->lr, "SGD learning rate (hybrid)")->check(in_interval({0, 1e30, true}))->capture_default_str();
  cmd->add_option("--momentum", opts->momentum, "SGD momentum (hybrid)")->check(in_interval({0, 1}))->capture_default_str();
  cmd->add_option("--swarm-every", opts->swarm_every, "hybrid: a swarm move every K batches (0: never)")
      ->check(in_interval(integers(0, 1e12)))
      ->capture_default_str();
  cmd->add_option("--swarm-size", opts->swarm_size, "hybrid: members in each move's random subset (at most --particles)")
      ->check(in_interval(integers(2, kMaxMembers)))
      ->capture_default_str();
  cmd->add_option("--rule", opts->rule,
                  "rule file (default: examples/rules/apso.nyto for hybrid, pso.nyto for pso, built in; "
                  "evolve: required)");
  cmd->add_option("--set", opts->set, "override a param of the rule: NAME=VALUE (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--seed", opts->seed, "seed of initialization, batch order, subsets and rule draws")
      ->check(seed_validator())
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "LibTorch threads (default: every core; at most 4 per core)")->check(threads_validator());
  cmd->add_option("--eval-every", opts->eval_every, "evaluate (and checkpoint) every N steps (0: only at the end)")
      ->check(in_interval(integers(0, 1e12)))
      ->capture_default_str();
  cmd->add_option("--eval-size", opts->eval_size, "test images of a periodic evaluation (the last one uses all)")
      ->check(in_interval(integers(1, 1e9)))
      ->capture_default_str();
  cmd->add_option("--fitness-size", opts->fitness_size, "evolve: training images per fitness evaluation")
      ->check(in_interval(integers(1, 60000)))
      ->capture_default_str();
  cmd->add_flag("--fixed-batch", opts->fixed_batch,
                "evolve: measure fitness on the first --fitness-size images every generation (default: a new "
                "batch each generation; pso: always fixed)");
  cmd->add_option("--fitness-strategy", opts->fitness_strategy,
                  "evolve: how members are evaluated: auto (the fastest measured: mlp batched, cnn threads), "
                  "loop (member after member, the module's forward), threads (members over threads), "
                  "batched (mlp: members' layers as one matrix product)")
      ->check(CLI::IsMember({"auto", "loop", "threads", "batched"}))
      ->capture_default_str();
  cmd->add_option("--generations", opts->generations,
                  "evolve: generations to run (default: --batches, else --epochs x training images / --batch-size)")
      ->check(in_interval(integers(1, 1e12)));
  cmd->add_option("--data", opts->data, "directory of the (Fashion-)MNIST IDX files, gzipped or not (default: /usr/share/datasets/fashion-mnist)");
  cmd->add_option("--init", opts->init,
                  "start from saved weights: a model file (every member) or a swarm of --particles members "
                  "(member i from member i), anything nyto run --load reads");
  cmd->add_option("--classes", opts->classes,
                  "train on these classes only, e.g. 0-4 or 5,7,9 (the test set stays whole)");
  cmd->add_option("--metrics", opts->metrics, "write step,member,train_loss,test_loss,test_accuracy to this CSV (evolve: and "
                  "generation,best,mean,worst fitness to FILE-fitness.csv)");
  cmd->add_option("--plot", opts->plot, "draw test accuracy per member against step to this PNG (gnuplot)");
  cmd->add_option("--checkpoint", opts->checkpoint, "save swarm and trainer state in DIR at each evaluation");
  cmd->add_flag("--resume", opts->resume, "continue from the checkpoint in --checkpoint DIR");
  cmd->add_option("--save", opts->save, "write the final swarm to this file (nyto swarm format)");
  cmd->add_option("--kill-at-step", opts->kill_at_step, "testing: SIGKILL the process after this step")
      ->check(in_interval(integers(0, 1e12)))
      ->group("");  // hidden
  cmd->add_option("--kill-rank", opts->kill_rank, "testing: only this rank obeys --kill-at-step")
      ->check(in_interval(integers(0, 4095)))
      ->group("");  // hidden
  add_dist_options(cmd, opts->dist);  // PyTorch's launch convention (docs/distributed.md)
  cmd->callback([opts] { run_training(*opts); });
}

}  // namespace nyto::cli
