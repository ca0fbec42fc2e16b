// The nyto command's subcommands. Each add_* registers one CLI11 subcommand on `app`; its
// callback does the work and reports failure by throwing (main maps exceptions to exit codes:
// CLI11 parse errors, nyto::CompileError, BindError, SpeciesError, ShapeError and UsageError
// exit 2; IOError and other errors exit 1).
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/Dist.h"
#include "cli/Parse.h"

namespace nyto::cli {

/// A user's mistake on the command line found after parsing (a bad NAME=VALUE, a missing file
/// argument...): printed as "nyto: error: <what>" and exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The process's command line (argv), as main received it: `--nprocs` starts copies of it.
inline std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

/// --seed S of run, train and repl.
inline CLI::Validator seed_validator() {
  return CLI::Validator(
      [](std::string& s) {
        unsigned long long unused;
        return seed_error(s, &unused);
      },
      "UINT64");
}

/// Every numeric flag is checked by this one validator: "--lr: must be a number in (0, 1e30], got 0".
/// NaN, infinities and values out of `iv` exit 2 before anything runs.
inline CLI::Validator in_interval(const Interval& iv) {
  return CLI::Validator([iv](std::string& s) { return interval_error(s, iv); }, interval_text(iv));
}

/// The most intra-op threads --threads accepts: 4 per core. More only adds thread start-up and
/// contention (4096 threads took 48 s per REPL statement on 2 cores).
inline int max_threads() {
  return 4 * int(std::max(1u, std::thread::hardware_concurrency()));
}

/// --threads N of run, train and repl: an integer from 1 to max_threads().
inline CLI::Validator threads_validator() {
  return in_interval(integers(1, max_threads()));
}

void add_check(CLI::App& app);    // nyto check FILE...
void add_compile(CLI::App& app);  // nyto compile FILE --emit ast|ir|ir-opt|llvm
void add_run(CLI::App& app);      // nyto run FILE --load NAME=PATH ... --save NAME=PATH ...
void add_train(CLI::App& app);    // nyto train (Fashion-MNIST)
void add_eval(CLI::App& app);     // nyto eval --model mlp FILE... (Fashion-MNIST test set)
void add_repl(CLI::App& app);     // nyto repl

/// The distribution flags of train and run (cli/Dist.h, docs/distributed.md), in their own group.
inline void add_dist_options(CLI::App* cmd, DistOptions& d) {
  cmd->add_option("--nprocs", d.nprocs, "run as K local processes (ranks 0..K-1 on 127.0.0.1)")
      ->check(in_interval(integers(1, 64)))
      ->group("Distribution");
  cmd->add_option("--world-size", d.world_size, "processes in all (default: WORLD_SIZE, else 1)")
      ->check(in_interval(integers(1, 4096)))
      ->group("Distribution");
  cmd->add_option("--rank", d.rank, "this process's rank, 0..world size - 1 (default: RANK)")
      ->check(in_interval(integers(0, 4095)))
      ->group("Distribution");
  cmd->add_option("--master", d.master, "HOST:PORT of rank 0's rendezvous (default: MASTER_ADDR:MASTER_PORT)")
      ->group("Distribution");
  cmd->add_option("--timeout", d.timeout, "seconds to wait for the other ranks (rendezvous and every exchange)")
      ->check(in_interval({0.1, 86400}))
      ->capture_default_str()
      ->group("Distribution");
}

}  // namespace nyto::cli
