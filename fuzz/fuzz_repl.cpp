// (d) The REPL's line handling: the input's lines go to a fresh session through LineFeeder, as
// `nyto repl < file` feeds them. A session reports every failure and carries on; a report that
// says "internal error" is a finding (see FuzzUtil.h: NYTO_FUZZ_ALLOW_INTERNAL).
// The session runs in the scratch directory; lines that could name a file elsewhere ('/', '..',
// '~') and meta-commands with numbers of more than 4 digits (:new mlp hidden=10^9 would only
// measure the allocator) are skipped.
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "cli/Repl.h"
#include "fuzz/FuzzUtil.h"

namespace {

bool allowed(const std::string& line) {
  if (line.find('/') != std::string::npos || line.find("..") != std::string::npos ||
      line.find('~') != std::string::npos)
    return false;
  size_t b = line.find_first_not_of(" \t");
  if (b != std::string::npos && line[b] == ':') {
    int digits = 0;
    for (char c : line) {
      digits = (c >= '0' && c <= '9') ? digits + 1 : 0;
      if (digits > 4) return false;
    }
  }
  return true;
}

}  // namespace

// Runs the session in the scratch directory and comes back (libFuzzer's own paths may be relative).
struct InScratch {
  std::string home = std::filesystem::current_path().string();
  InScratch() {
    if (::chdir(nyto::fuzz::scratch_dir().c_str()) != 0) nyto::fuzz::fail("cannot enter the scratch directory");
  }
  ~InScratch() {
    if (::chdir(home.c_str()) != 0) nyto::fuzz::fail("cannot return to " + home);
  }
};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nyto::cli;
  ReplConfig config;
  config.backend = (size > 0 && data[0] % 3 == 1) ? nyto::Backend::Interp : nyto::Backend::Llvm;
  config.threads = 1;
  std::ostringstream out;
  {
    InScratch here;
    ReplSession session(config, out, out);
    LineFeeder feeder(session);
    std::string text(reinterpret_cast<const char*>(data), size);
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
      if (allowed(line) && !feeder.feed(line)) break;
    feeder.finish();
    // Counted by the session, not searched for in its output: a diagnostic echoes the user's
    // line, which may hold any words.
    if (session.internal_errors() > 0) {
      const std::string o = out.str();
      size_t at = o.find("internal error (this is a bug in nyto)");
      nyto::fuzz::internal_error(std::runtime_error(at == std::string::npos ? o : o.substr(at, 400)),
                                 "ReplSession::handle");
    }
  }
  return 0;
}
