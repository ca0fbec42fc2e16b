// c10d for `nyto train`: the rendezvous (TCPStore), the collectives (ProcessGroupGloo) and the
// local launcher. The facts this relies on (TOOLCHAIN-verified on Debian 12's LibTorch 1.13):
// a SIGKILLed peer makes every survivor's wait() throw within a fraction of a second; a live peer
// that stops answering times out after Options::timeout; after an error the group is dead; a
// client whose store host is gone spins a core in the store's thread, so a failed group releases
// its store at once.
#include "cli/Dist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

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

std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
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

std::pair<int64_t, int64_t> member_block(int64_t members, int world, int rank) {
  const int64_t base = members / world, extra = members % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
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

// ---------------------------------------------------------------------------------------------
// The process group.

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

ProcessGroup::ProcessGroup(const Rendezvous& r) : impl_(std::make_unique<Impl>()), rank_(r.rank), size_(r.world_size), timeout_(r.timeout) {
  const auto ms = std::chrono::milliseconds(int64_t(r.timeout * 1000));
  const std::string where = fmt::format("{}:{}", r.host, r.port);
  try {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(r.port);
    so.isServer = r.rank == 0;
    so.numWorkers = size_t(r.world_size);
    so.waitWorkers = false;  // the group's own rendezvous waits, with its error
    so.timeout = ms;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(r.host, so);
  } catch (const std::exception& e) {
    impl_.reset();
    throw Error(fmt::format("rank {}: cannot {} the rendezvous at {} within {} s: {}", r.rank,
                            r.rank == 0 ? "host" : "reach", where, r.timeout, message_of(e)));
  }
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(ms);
    const std::string ifname = env("GLOO_SOCKET_IFNAME");
    const bool loopback = r.host == "127.0.0.1" || r.host == "localhost" || r.host == "::1";
    if (!ifname.empty())
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;  // the collectives are small; the cores are the trainer's
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, r.rank, r.world_size, opts);
  } catch (const std::exception& e) {
    impl_.reset();
    throw Error(fmt::format("rank {}: the {} processes did not all join the rendezvous at {} within {} s ({})",
                            r.rank, r.world_size, where, r.timeout, message_of(e)));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const std::string& what, const std::string& why) {
  // Which ranks are gone: every survivor says so in the store, then looks who did not.
  std::string who;
  try {
    impl_->store->set("nyto/failed/" + std::to_string(rank_), std::vector<uint8_t>{1});
    std::vector<bool> seen(size_t(size_), false);
    seen[size_t(rank_)] = true;
    const auto until = Clock::now() + std::chrono::milliseconds(int64_t(std::min(2.0, timeout_) * 1000));
    while (Clock::now() < until) {
      bool all = true;
      for (int q = 0; q < size_; ++q)
        if (!seen[size_t(q)]) {
          seen[size_t(q)] = impl_->store->check({"nyto/failed/" + std::to_string(q)});
          all = all && seen[size_t(q)];
        }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string missing;
    for (int q = 0; q < size_; ++q)
      if (!seen[size_t(q)]) missing += (missing.empty() ? "" : ", ") + std::to_string(q);
    if (!missing.empty()) who = "; rank " + missing + " stopped answering (died, killed, or hung)";
  } catch (const std::exception&) {
    who = "; rank 0, which hosts the rendezvous, is gone";
  }
  impl_->pg.reset();
  impl_->store.reset();
  throw Error(fmt::format("rank {}: {} failed: {}{}", rank_, what, why, who));
}

void ProcessGroup::check_settings(const std::string& settings) {
  std::vector<std::string> all(static_cast<size_t>(size_));
  try {
    std::vector<uint8_t> mine(settings.begin(), settings.end());
    impl_->store->set("nyto/settings/" + std::to_string(rank_), mine);
    for (int q = 0; q < size_; ++q) {
      std::vector<uint8_t> v = impl_->store->get("nyto/settings/" + std::to_string(q));
      all[size_t(q)].assign(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    fail("the check of every rank's settings", message_of(e));
  }
  auto split = [](const std::string& s) {
    std::vector<std::string> t;
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find(' ', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) t.push_back(s.substr(i, j - i));
      i = j + 1;
    }
    return t;
  };
  const std::vector<std::string> ref = split(all[0]);
  for (size_t k = 0; k < ref.size(); ++k) {
    const std::string name = ref[k].substr(0, ref[k].find('='));
    std::string differ;
    std::string theirs;
    for (int q = 1; q < size_; ++q) {
      const std::vector<std::string> t = split(all[size_t(q)]);
      const std::string v = k < t.size() ? t[k] : "(nothing)";
      if (v != ref[k]) {
        differ += (differ.empty() ? "" : ", ") + std::to_string(q);
        if (theirs.empty()) theirs = v;
      }
    }
    if (!differ.empty())
      throw UsageError(fmt::format("the ranks were started with different settings: rank {} has {} where rank 0 has {}; "
                                   "start every rank with the same command line",
                                   differ, theirs, ref[k]));
  }
}

std::vector<double> ProcessGroup::allgather_members(const std::vector<double>& mine, int64_t members, int per_member,
                                                    const std::string& what) {
  const int64_t most = member_block(members, size_, 0).second * per_member;  // rank 0's block is the largest
  at::Tensor in = at::zeros({std::max<int64_t>(most, 1)}, at::kDouble);
  std::copy(mine.begin(), mine.end(), in.data_ptr<double>());
  std::vector<std::vector<at::Tensor>> out(1);
  for (int q = 0; q < size_; ++q) out[0].push_back(at::empty_like(in));
  std::vector<at::Tensor> ins{in};
  try {
    impl_->pg->allgather(out, ins)->wait();
  } catch (const std::exception& e) {
    fail(what, message_of(e));
  }
  bytes_sent_ += uint64_t(size_ - 1) * uint64_t(in.numel()) * sizeof(double);
  std::vector<double> all;
  all.reserve(size_t(members * per_member));
  for (int q = 0; q < size_; ++q) {
    const auto [b, e] = member_block(members, size_, q);
    const double* p = out[0][size_t(q)].data_ptr<double>();
    all.insert(all.end(), p, p + (e - b) * per_member);
  }
  return all;
}

void ProcessGroup::allgather_rows(at::Tensor& rows, const std::string& what) {
  const int64_t members = rows.size(0);
  const int64_t most = member_block(members, size_, 0).second;
  std::vector<int64_t> shape = rows.sizes().vec();
  shape[0] = std::max<int64_t>(most, 1);
  const auto [b, e] = block(members);
  at::Tensor in = at::zeros(shape, rows.options());
  if (e > b) in.narrow(0, 0, e - b).copy_(rows.narrow(0, b, e - b));
  std::vector<std::vector<at::Tensor>> out(1);
  for (int q = 0; q < size_; ++q) out[0].push_back(at::empty_like(in));
  std::vector<at::Tensor> ins{in};
  try {
    impl_->pg->allgather(out, ins)->wait();
  } catch (const std::exception& e) {
    fail(what, message_of(e));
  }
  bytes_sent_ += uint64_t(size_ - 1) * uint64_t(in.numel()) * in.element_size();
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    const auto [qb, qe] = member_block(members, size_, q);
    if (qe > qb) rows.narrow(0, qb, qe - qb).copy_(out[0][size_t(q)].narrow(0, 0, qe - qb));
  }
}

void ProcessGroup::broadcast(at::Tensor& t, int root, const std::string& what) {
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  try {
    impl_->pg->broadcast(ts, bo)->wait();
  } catch (const std::exception& e) {
    fail(what, message_of(e));
  }
  if (root == rank_) bytes_sent_ += uint64_t(size_ - 1) * uint64_t(t.numel()) * t.element_size();
}

}  // namespace nyto::cli
