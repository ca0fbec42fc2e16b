// Where the rendezvous is, and the `--nprocs` launcher (cli/Dist.h).
#include "cli/Dist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <nyto/errors.h>

#include "cli/Commands.h"

namespace nyto::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A whole decimal number in [lo, hi], or nothing.
bool parse_int(const std::string& s, long lo, long hi, long& out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = std::stol(s);
  return out >= lo && out <= hi;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}


}  // namespace

Rendezvous resolve_rendezvous(const DistOptions& o) {
  Rendezvous r;
  r.timeout = o.timeout;
  const bool flags = o.world_size > 0 || o.rank >= 0 || !o.master.empty();
  r.source = flags ? "flags" : "environment";
  auto need = [&](const std::string& what) {
    throw UsageError(what);
  };
  long v = 0;
  if (o.world_size > 0) {
    r.world_size = o.world_size;
  } else if (std::string s = env("WORLD_SIZE"); !s.empty()) {
    if (!parse_int(s, 1, 4096, v)) need("WORLD_SIZE must be a whole number in 1..4096, got '" + s + "'");
    r.world_size = int(v);
  }
  if (o.rank >= 0) {
    r.rank = o.rank;
  } else if (std::string s = env("RANK"); !s.empty()) {
    if (!parse_int(s, 0, 4095, v)) need("RANK must be a whole number, got '" + s + "'");
    r.rank = int(v);
  } else if (r.world_size > 1) {
    need(std::string(o.world_size > 0 ? "--world-size" : "WORLD_SIZE") + " is " +
         std::to_string(r.world_size) + " but this process's rank is not set (--rank R or RANK)");
  }
  if (r.rank >= r.world_size)
    need(fmt::format("rank {} is out of range for a world of {} process{} (ranks 0..{})", r.rank, r.world_size,
                     r.world_size == 1 ? "" : "es", r.world_size - 1));
  if (std::string s = env("LOCAL_RANK"); !s.empty() && parse_int(s, 0, 4095, v)) r.local_rank = int(v);
  std::string port;
  if (!o.master.empty()) {
    const size_t colon = o.master.rfind(':');
    if (colon == std::string::npos || colon == 0)
      need("--master must be HOST:PORT, got '" + o.master + "'");
    r.host = o.master.substr(0, colon);
    port = o.master.substr(colon + 1);
  } else {
    r.host = env("MASTER_ADDR");
    port = env("MASTER_PORT");
  }
  if (r.world_size == 1) return r;
  if (r.host.empty())
    need("a world of " + std::to_string(r.world_size) +
         " processes needs the master's address: --master HOST:PORT, or MASTER_ADDR and MASTER_PORT");
  if (!parse_int(port, 1, 65535, v))
    need("the master's port must be a whole number in 1..65535, got '" + port + "' (" +
         (o.master.empty() ? "MASTER_PORT" : "--master") + ")");
  r.port = int(v);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The launcher.

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("--nprocs: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw Error(std::string("--nprocs: cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

int launch_local(int nprocs, const std::vector<std::string>& args, double timeout) {
  const int port = free_port();
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int r = 0; r < nprocs; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids) ::kill(p, SIGKILL);
      throw Error(std::string("--nprocs: cannot start a process: ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nprocs).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      if (r != 0) {
        if (FILE* f = std::freopen("/dev/null", "w", stdout); !f) std::_Exit(1);
      }
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "nyto: error: rank %d: cannot start /proc/self/exe: %s\n", r, std::strerror(errno));
      std::_Exit(1);
    }
    pids.push_back(pid);
  }
  std::vector<int> code(size_t(nprocs), -1);
  int first_failed = -1, left = nprocs;
  std::string first_how;
  Clock::time_point deadline{};
  while (left > 0) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid <= 0) {
      if (first_failed >= 0 && Clock::now() > deadline) {
        for (int r = 0; r < nprocs; ++r)
          if (code[size_t(r)] < 0) ::kill(pids[size_t(r)], SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const int r = int(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    if (r >= nprocs) continue;
    --left;
    const bool signaled = WIFSIGNALED(status);
    code[size_t(r)] = signaled ? 1 : WEXITSTATUS(status);
    if (code[size_t(r)] != 0 && first_failed < 0) {
      first_failed = r;
      first_how = signaled ? fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)))
                           : fmt::format("exited with code {}", code[size_t(r)]);
      deadline = Clock::now() + std::chrono::milliseconds(int64_t((timeout + 10) * 1000));
    }
  }
  if (first_failed < 0) return 0;
  std::fprintf(stderr, "nyto: error: rank %d of %d (pid %d) %s\n", first_failed, nprocs, int(pids[size_t(first_failed)]),
               first_how.c_str());
  return code[size_t(first_failed)];
}

void launch_if_requested(const DistOptions& o, int64_t most, const std::string& what) {
  if (o.nprocs <= 0) return;
  if (o.world_size > 0 || o.rank >= 0 || !o.master.empty())
    throw UsageError("--nprocs starts its own processes: it takes no --world-size, --rank or --master");
  if (most > 0 && o.nprocs > most)
    throw UsageError(fmt::format("{} is fewer than the {} processes: every rank needs a member", what, o.nprocs));
  if (o.nprocs == 1) return;
  std::vector<std::string> args;  // this command line without --nprocs
  const std::vector<std::string>& cl = command_line();
  for (size_t i = 0; i < cl.size(); ++i) {
    if (cl[i] == "--nprocs") {
      ++i;
      continue;
    }
    if (cl[i].rfind("--nprocs=", 0) == 0) continue;
    args.push_back(cl[i]);
  }
  std::exit(launch_local(o.nprocs, args, o.timeout));
}

}  // namespace nyto::cli
