// nyto repl: an interactive session (cli/Repl.h). On a terminal: libedit with history in
// ~/.nyto_history and tab completion; otherwise commands are read line by line without prompts or
// colours, so a transcript can be piped in and its output compared.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "cli/Commands.h"
#include "cli/Repl.h"

void nyto::cli::add_repl(CLI::App& app) {
  auto* cmd = app.add_subcommand("repl", "Interactive session: rule statements on named particles, "
                                         "swarms and scalars, and :commands (:help)");
  struct Opts {
    std::string backend = "llvm";
    uint64_t seed = 0;
    bool no_history = false;
    bool no_color = false;
    int threads = 0;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--backend", opts->backend, "Backend that runs statements")
      ->check(CLI::IsMember({"llvm", "interp", "aten"}))
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Initial seed (as :seed S)")->check(seed_validator())->capture_default_str();
  cmd->add_option("--threads", opts->threads,
                  "Intra-op threads (default: the number of cores; at most 4 per core)")
      ->check(threads_validator());
  cmd->add_flag("--no-history", opts->no_history, "Do not read or write ~/.nyto_history");
  cmd->add_flag("--no-color", opts->no_color, "No colours on a terminal");
  cmd->callback([opts] {
    ReplConfig config;
    config.interactive = isatty(0) != 0;
    config.color = config.interactive && isatty(2) && !opts->no_color && !std::getenv("NO_COLOR");
    config.backend = opts->backend == "interp" ? Backend::Interp
                     : opts->backend == "aten" ? Backend::Aten
                                               : Backend::Llvm;
    config.seed = opts->seed;
    config.threads = opts->threads > 0 ? opts->threads
                                       : int(std::max(1u, std::thread::hardware_concurrency()));
    const char* home = std::getenv("HOME");
    if (config.interactive && !opts->no_history && home && *home)
      config.history_file = std::string(home) + "/.nyto_history";
    int rc = run_repl(config);
    if (rc != 0) std::exit(rc);
  });
}
