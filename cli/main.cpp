// The nyto command: check, compile, run, train, repl.
#include <c10/util/Exception.h>
#include <nyto/errors.h>
#include <nyto/rule.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "frontend/Source.h"

namespace {
// Bind-time errors are rendered diagnostics already ("file:line:col: error[E0502]: ..."): print
// them as compile errors are, without a second "error" prefix.
void print_error(const std::exception& e) {
  std::string what = e.what();
  if (what.find("error[E") != std::string::npos)
    std::cerr << what << (!what.empty() && what.back() == '\n' ? "" : "\n");
  else
    std::cerr << "nyto: error: " << what << "\n";
}

// `nyto bogus` and a bare `nyto`: CLI11 would say only "A subcommand is required". Returns the
// message, or "" when the command line names a command (or asks for --help or --version).
std::string command_error(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  list = "the commands are " + list + " (nyto --help describes them)";
  if (argc < 2) return "no command given; " + list;
  // The top-level options (--help, --version) take no value: the first other word is the command.
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    std::string opt = argv[i];
    if (opt != "-h" && opt != "--help" && opt != "--version")
      return "unknown option '" + opt + "' before the command (a command's options follow it)\n" + list;
  }
  if (i == argc) return "";
  std::string word = argv[i];
  for (const auto& n : names)
    if (n == word) return "";
  std::string best = nyto::frontend::closest_match(word, names);
  return "unknown command '" + word + "'" + (best.empty() ? "" : "; did you mean '" + best + "'?") +
         "\n" + list;
}
}  // namespace

int main(int argc, char** argv) {
  nyto::cli::command_line().assign(argv, argv + argc);
  CLI::App app{"nyto: evolve and combine whole neural networks with compiled update rules"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nyto 0.1.0");
  nyto::cli::add_check(app);
  nyto::cli::add_compile(app);
  nyto::cli::add_run(app);
  nyto::cli::add_train(app);
  nyto::cli::add_eval(app);
  nyto::cli::add_repl(app);
  // Exit codes (docs/cli.md): 2 for the user's mistakes on the command line or in a script, 1 for
  // a failure while running (I/O, a corrupt file, memory), "internal error" only for nyto's bugs.
  try {
    if (std::string why = command_error(app, argc, argv); !why.empty()) {
      std::cerr << "nyto: error: " << why << "\n";
      return 2;
    }
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help or the parse error
    return rc == 0 ? 0 : 2;
  } catch (const nyto::cli::UsageError& e) {
    std::cerr << "nyto: error: " << e.what() << "\n";
    return 2;
  } catch (const nyto::CompileError& e) {
    std::cerr << e.rendered();
    return 2;
  } catch (const nyto::BindError& e) {
    print_error(e);
    return 2;
  } catch (const nyto::SpeciesError& e) {
    print_error(e);
    return 2;
  } catch (const nyto::ShapeError& e) {
    std::cerr << "nyto: error: " << e.what() << "\n";
    return 2;
  } catch (const nyto::Error& e) {
    std::cerr << "nyto: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch refusing what it was given (data from a file, a size): a failure of this run,
    // reported without LibTorch's C++ backtrace.
    std::cerr << "nyto: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "nyto: error: out of memory\n";
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "nyto: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "nyto: internal error (this is a bug in nyto): " << e.what() << "\n";
    return 1;
  }
  return 0;
}
