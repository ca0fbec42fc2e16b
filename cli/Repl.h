// `nyto repl`: an interactive session of particles, swarms and scalars driven by rule statements
// and meta-commands (:help lists them). Split in two so the line editor stays free of LibTorch:
//   Repl.cpp      the session (values, compiling and running statements, meta-commands)
//   ReplLine.cpp  reading input: libedit (history, completion) on a terminal, plain lines otherwise
#pragma once

#include <nyto/backend.h>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace nyto::cli {

struct ReplConfig {
  /// A terminal: prompts, colours, libedit, and diagnostics named `<repl>`. Otherwise no prompt
  /// and no colour; diagnostics are named `<stdin>` with the line numbers of standard input.
  bool interactive = false;
  bool color = false;
  Backend backend = Backend::Llvm;
  /// Key of the random draws and of LibTorch's generator for `:new` (`:seed S` changes both).
  uint64_t seed = 0;
  /// LibTorch's intra-op threads (rules and statistics); 0 leaves LibTorch's default.
  int threads = 0;
  /// Where libedit keeps the history ("" = none).
  std::string history_file;
};

/// One session. Every input either completes or leaves the session's values as they were.
class ReplSession {
 public:
  ReplSession(const ReplConfig& config, std::ostream& out, std::ostream& err);
  ~ReplSession();
  ReplSession(const ReplSession&) = delete;
  ReplSession& operator=(const ReplSession&) = delete;

  /// Handles one complete input: a meta-command line or a block of statements (several lines
  /// when a parenthesis was open). `first_line` numbers its first line for diagnostics.
  /// Returns false after `:quit`.
  bool handle(const std::string& input, int first_line);
  /// How many inputs so far failed with an exception nyto did not expect (reported as "internal
  /// error (this is a bug in nyto)"); the fuzz target fails on any.
  int64_t internal_errors() const;
  /// Completion candidates: session names, built-in functions, keywords.
  std::vector<std::string> names() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// The meta-commands, with their leading colon (":help", ...).
const std::vector<std::string>& meta_commands();
/// Built-in functions and keywords of the language, for completion.
const std::vector<std::string>& language_words();

/// Net parenthesis depth of `line` (one or more lines), ignoring comments: > 0 means the input continues on the next
/// line.
int paren_balance(const std::string& line);

/// Joins plain input lines into complete inputs (a statement continues while a parenthesis is
/// open) and hands each to a session, numbering lines from 1: how `nyto repl` reads a standard
/// input that is not a terminal (and what fuzz/fuzz_repl.cpp drives).
class LineFeeder {
 public:
  explicit LineFeeder(ReplSession& session) : session_(session) {}
  /// One line, without its '\n' (a trailing '\r' is dropped). Returns false after `:quit`.
  bool feed(std::string line);
  /// End of input: hands over an input left incomplete by an unclosed parenthesis.
  void finish();

 private:
  ReplSession& session_;
  std::string input_;
  int line_no_ = 0, first_ = 1;
};

/// Reads standard input until `:quit` or end of input. Returns the exit code (0).
int run_repl(const ReplConfig& config);

}  // namespace nyto::cli
