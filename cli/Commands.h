// The nyto command's subcommands. Each add_* registers one CLI11 subcommand on `app`; its
// callback does the work and reports failure by throwing (main maps exceptions to exit codes:
// CLI11 parse errors, nyto::CompileError, BindError, SpeciesError, ShapeError and UsageError
// exit 2; IOError and other errors exit 1).
#pragma once

#include <CLI/CLI.hpp>

#include <stdexcept>
#include <string>

#include "cli/Parse.h"

namespace nyto::cli {

/// A user's mistake on the command line found after parsing (a bad NAME=VALUE, a missing file
/// argument...): printed as "nyto: error: <what>" and exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// --seed S of run, train and repl.
inline CLI::Validator seed_validator() {
  return CLI::Validator(
      [](std::string& s) {
        unsigned long long unused;
        return seed_error(s, &unused);
      },
      "UINT64");
}

void add_check(CLI::App& app);    // nyto check FILE...
void add_compile(CLI::App& app);  // nyto compile FILE --emit ast|ir|ir-opt|llvm
void add_run(CLI::App& app);      // nyto run FILE --load NAME=PATH ... --save NAME=PATH ...
void add_train(CLI::App& app);    // nyto train (Fashion-MNIST)
void add_repl(CLI::App& app);     // nyto repl

}  // namespace nyto::cli
