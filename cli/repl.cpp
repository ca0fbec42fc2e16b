// Placeholder until the subcommand lands; registers nothing so 'nyto --help' stays honest.
#include "cli/Commands.h"
void nyto::cli::add_repl(CLI::App&) {}
