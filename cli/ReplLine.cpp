// Reading the REPL's input: libedit on a terminal (history in ~/.nyto_history, tab completion of
// session names, built-in functions, keywords and meta-commands), plain lines otherwise.
#include <editline/readline.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/Parse.h"
#include "cli/Repl.h"

namespace nyto::cli {

int paren_balance(const std::string& line) {
  int depth = 0;
  bool comment = false;
  for (char c : line) {
    if (c == '\n') comment = false;
    if (c == '#') comment = true;
    if (comment) continue;
    if (c == '(') ++depth;
    if (c == ')') --depth;
  }
  return depth;
}

namespace {

const ReplSession* g_session = nullptr;  // for the completion callbacks (libedit takes C pointers)
std::vector<std::string> g_candidates;
size_t g_next = 0;

char* next_candidate(const char* /*text*/, int state) {
  if (state == 0) g_next = 0;
  if (g_next < g_candidates.size()) return strdup(g_candidates[g_next++].c_str());
  return nullptr;
}

// libedit's file name completion, with '/' after a directory so completion can go on into it.
char* path_candidate(const char* text, int state) {
  char* match = rl_filename_completion_function(text, state);
  if (!match) return nullptr;
  struct stat st;
  size_t n = strlen(match);
  if (n && match[n - 1] != '/' && stat(match, &st) == 0 && S_ISDIR(st.st_mode)) {
    char* longer = static_cast<char*>(realloc(match, n + 2));
    if (!longer) return match;
    longer[n] = '/', longer[n + 1] = '\0';
    return longer;
  }
  return match;
}

// Which candidates fit the word being completed at [start, end) of the line.
char** complete(const char* text, int start, int /*end*/) {
  std::string line = rl_line_buffer ? std::string(rl_line_buffer) : std::string();
  std::string before = line.substr(0, size_t(start));
  std::string word = text;
  size_t first = before.find_first_not_of(" \t");
  bool at_line_start = first == std::string::npos;
  // Paths after ":load NAME " / ":save NAME ": libedit's file name completion.
  if (!at_line_start && before[first] == ':') {
    std::string cmd = before.substr(first, before.find_first_of(" \t", first) - first);
    int words = 0;
    bool in_word = false;
    for (size_t i = first; i < before.size(); ++i) {
      bool space = before[i] == ' ' || before[i] == '\t';
      if (!space && !in_word) ++words;
      in_word = !space;
    }
    if ((cmd == ":load" || cmd == ":save") && words >= 2) {
      rl_attempted_completion_over = 1;
      rl_completion_append_character = '\0';  // a directory ends in '/', a file is not closed
      return rl_completion_matches(text, path_candidate);
    }
  }
  rl_attempted_completion_over = 1;
  rl_completion_append_character = ' ';
  g_candidates.clear();
  std::vector<std::string> pool;
  if (at_line_start && starts_with(word, ":")) {
    pool = meta_commands();
  } else {
    if (g_session) pool = g_session->names();
    for (const auto& w : language_words()) pool.push_back(w);
  }
  for (const auto& c : pool)
    if (starts_with(c, word)) g_candidates.push_back(c);
  if (g_candidates.empty()) return nullptr;
  return rl_completion_matches(text, next_candidate);
}

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

enum class Read { Line, Interrupted, End };

// One line from the terminal. Ctrl-C abandons the line being typed (libedit's read is
// interrupted: our handler does not restart it) instead of ending the session.
Read read_tty_line(const char* prompt, std::string& line) {
  g_interrupted = 0;
  char* raw = readline(prompt);
  if (g_interrupted) {
    free(raw);
    return Read::Interrupted;
  }
  if (!raw) return Read::End;
  line = raw;
  free(raw);
  return Read::Line;
}

}  // namespace

bool LineFeeder::feed(std::string line) {
  ++line_no_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (input_.empty()) first_ = line_no_;
  input_ += line;
  input_ += '\n';
  if (paren_balance(input_) > 0) return true;
  bool go_on = session_.handle(input_, first_);
  input_.clear();
  return go_on;
}

void LineFeeder::finish() {
  if (!input_.empty()) session_.handle(input_, first_);
  input_.clear();
}

int run_repl(const ReplConfig& config) {
  ReplSession session(config, std::cout, config.interactive ? std::cerr : std::cout);
  if (!config.interactive) {
    // No prompts, no colours: a transcript in, its output out (errors in order with the rest).
    LineFeeder feeder(session);
    std::string line;
    while (std::getline(std::cin, line)) {
      bool go_on = feeder.feed(std::move(line));
      std::cout.flush();
      if (!go_on) return 0;
    }
    feeder.finish();
    std::cout.flush();
    return 0;
  }

  g_session = &session;
  rl_readline_name = "nyto";
  rl_attempted_completion_function = complete;
  rl_completion_append_character = ' ';
  // Operators and parentheses end a word, so `0.5*ne<TAB>` completes `ne`. Not ':' (meta-commands)
  // nor '.' and '/' (paths after :load and :save).
  static char breaks[] = " \t\n\"'()+-*,;=<>!#";
  rl_basic_word_break_characters = breaks;
  rl_completer_word_break_characters = breaks;
  if (!config.history_file.empty()) read_history(config.history_file.c_str());
  struct sigaction sa = {}, old_sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the terminal read returns, and readline with it
  sigaction(SIGINT, &sa, &old_sa);
  std::cout << "nyto repl: rule statements, or :help for the commands; :quit or Ctrl-D to leave\n";
  std::string line, input;
  int line_no = 0, first = 1;
  bool go_on = true;
  while (go_on) {
    const char* prompt = input.empty() ? "nyto> " : "  ... ";
    Read r = read_tty_line(prompt, line);
    if (r == Read::Interrupted) {
      std::cout << "^C\n";
      input.clear();
      continue;
    }
    if (r == Read::End) {
      std::cout << "\n";
      break;
    }
    ++line_no;
    if (input.empty()) first = line_no;
    input += line;
    input += '\n';
    if (paren_balance(input) > 0) continue;
    std::string entry = input.substr(0, input.size() - 1);
    if (entry.find_first_not_of(" \t\n") != std::string::npos) {
      // One history entry per input (a multi-line one on one line: it still parses the same).
      // Comments are dropped so that joining the lines cannot comment out the rest.
      std::string flat;
      bool comment = false;
      for (char c : entry) {
        if (c == '\n') comment = false, c = ' ';
        if (c == '#') comment = true;
        if (!comment) flat += c;
      }
      add_history(flat.c_str());
    }
    go_on = session.handle(input, first);
    std::cout.flush();
    input.clear();
  }
  if (!config.history_file.empty()) {
    write_history(config.history_file.c_str());
    history_truncate_file(config.history_file.c_str(), 1000);
  }
  sigaction(SIGINT, &old_sa, nullptr);
  g_session = nullptr;
  return 0;
}

}  // namespace nyto::cli
