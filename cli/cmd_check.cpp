// nyto check FILE...        diagnostics of every file on stderr; exit 0 if all are clean, else 2
// nyto compile FILE --emit  a compiler stage on stdout
#include <nyto/errors.h>
#include <nyto/rule.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/Commands.h"

void nyto::cli::add_check(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Check rule scripts: print every diagnostic of every file; exit 0 if all are clean");
  cmd->add_option("FILE", *files, "rule scripts (.nyto)")->required();
  cmd->callback([files] {
    int failed = 0;
    for (const auto& f : *files) {
      try {
        nyto::compile_file(f);
      } catch (const nyto::CompileError& e) {
        std::cerr << e.rendered();
        ++failed;
      } catch (const nyto::IOError& e) {
        std::cerr << "nyto: error: " << e.what() << "\n";
        ++failed;
      }
    }
    if (failed)
      throw nyto::CompileError("nyto: " + std::to_string(failed) + " of " +
                               std::to_string(files->size()) + " files failed the check\n");
  });
}

void nyto::cli::add_compile(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto emit = std::make_shared<std::string>("ir");
  CLI::App* cmd = app.add_subcommand("compile", "Compile a rule script and print a compiler stage");
  cmd->add_option("FILE", *file, "rule script (.nyto)")->required();
  cmd->add_option("--emit", *emit,
                  "stage to print: ast (syntax tree), ir (as lowered), ir-opt (the fused kernel "
                  "after the passes), llvm (LLVM IR of the float32 swarm kernel)")
      ->check(CLI::IsMember({"ast", "ir", "ir-opt", "llvm"}))
      ->capture_default_str();
  auto trace = std::make_shared<bool>(false);
  cmd->add_flag("--print-after-all", *trace,
                "print the IR after every pass of the pipeline, with each pass's time, to stderr");
  cmd->callback([file, emit, trace] {
    // A file that cannot be read is the user's mistake on the command line: exit 2, as check.
    nyto::Rule rule = [&] {
      try {
        return nyto::compile_file(*file);
      } catch (const nyto::IOError& e) {
        throw UsageError(e.what());
      }
    }();
    if (*trace) std::cerr << rule.pass_trace();
    std::cout << rule.emit(*emit);
    std::cout.flush();
  });
}
