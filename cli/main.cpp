// The nyto command: check, compile, run, train, repl.
#include <nyto/errors.h>
#include <nyto/rule.h>

#include <cstdio>
#include <iostream>

#include "cli/Commands.h"

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
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nyto: evolve and combine whole neural networks with compiled update rules"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nyto 0.1.0");
  nyto::cli::add_check(app);
  nyto::cli::add_compile(app);
  nyto::cli::add_run(app);
  nyto::cli::add_train(app);
  nyto::cli::add_repl(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help or the parse error
    return rc == 0 ? 0 : 2;
  } catch (const nyto::cli::UsageError& e) {
    std::cerr << "nyto: error: " << e.what() << "\n";
    return 2;
  } catch (const nyto::CompileError& e) {
    std::cerr << e.what();
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
  } catch (const std::exception& e) {
    std::cerr << "nyto: internal error (this is a bug in nyto): " << e.what() << "\n";
    return 1;
  }
  return 0;
}
