// nyto::ProcessGroup (include/nyto/distributed.h) on c10d: a TCPStore for the rendezvous and
// ProcessGroupGloo for the exchanges. The facts this relies on (verified on Debian 12's LibTorch
// 1.13): a SIGKILLed peer makes every survivor's wait() throw within a fraction of a second; a
// live peer that stops answering times out after Options::timeout; after an error the group is
// dead; a client whose store host is gone spins a core in the store's thread, so a failed group
// releases its store at once.
#include <nyto/distributed.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace nyto {

namespace {

using Clock = std::chrono::steady_clock;

std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::string fmt_seconds(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);
  if (!t.empty() && t.back() == '.') t.pop_back();
  return t;
}

}  // namespace

std::pair<int64_t, int64_t> member_block(int64_t members, int world, int rank) {
  const int64_t base = members / world, extra = members % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;  // null for a user's own group
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  int rank = 0, size = 1;
  double timeout = 60;
  uint64_t bytes_sent = 0;

  [[noreturn]] void fail(const std::string& what, const std::string& why) {
    // Which ranks are gone: every survivor says so in the store, then looks who did not.
    std::string who;
    if (store) {
      try {
        store->set("nyto/failed/" + std::to_string(rank), std::vector<uint8_t>{1});
        std::vector<bool> seen(size_t(size), false);
        seen[size_t(rank)] = true;
        const auto until = Clock::now() + std::chrono::milliseconds(int64_t(std::min(2.0, timeout) * 1000));
        while (Clock::now() < until) {
          bool all = true;
          for (int q = 0; q < size; ++q)
            if (!seen[size_t(q)]) {
              seen[size_t(q)] = store->check({"nyto/failed/" + std::to_string(q)});
              all = all && seen[size_t(q)];
            }
          if (all) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        std::string missing;
        for (int q = 0; q < size; ++q)
          if (!seen[size_t(q)]) missing += (missing.empty() ? "" : ", ") + std::to_string(q);
        if (!missing.empty()) who = "; rank " + missing + " stopped answering (died, killed, or hung)";
      } catch (const std::exception&) {
        who = "; rank 0, which hosts the rendezvous, is gone";
      }
    }
    pg.reset();
    store.reset();
    throw Error("rank " + std::to_string(rank) + ": " + what + " failed: " + why + who);
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& w, const std::string& what) {
    try {
      w->wait();
    } catch (const std::exception& e) {
      fail(what, message_of(e));
    }
  }

  void alive(const std::string& what) {
    if (!pg) throw Error("rank " + std::to_string(rank) + ": " + what + ": the process group failed before");
  }
};

ProcessGroup::ProcessGroup(const std::string& host, int port, int rank, int world_size, double timeout_s)
    : impl_(std::make_unique<Impl>()) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("nyto::ProcessGroup: rank " + std::to_string(rank) + " outside [0, " +
                                std::to_string(world_size) + ")");
  if (port < 1 || port > 65535) throw std::invalid_argument("nyto::ProcessGroup: port outside 1..65535");
  Impl& s = *impl_;
  s.rank = rank, s.size = world_size, s.timeout = timeout_s;
  const auto ms = std::chrono::milliseconds(int64_t(timeout_s * 1000));
  const std::string where = host + ":" + std::to_string(port), within = " within " + fmt_seconds(timeout_s) + " s";
  try {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(port);
    so.isServer = rank == 0;
    so.numWorkers = size_t(world_size);
    so.waitWorkers = false;  // the group's own rendezvous waits, with its error
    so.timeout = ms;
    s.store = c10::make_intrusive<c10d::TCPStore>(host, so);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank) + ": cannot " + (rank == 0 ? "host" : "reach") + " the rendezvous at " +
                where + within + ": " + message_of(e));
  }
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(ms);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "::1";
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;  // the exchanges are small; the cores are the trainer's
    s.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, rank, world_size, opts);
  } catch (const std::exception& e) {
    s.store.reset();
    throw Error("rank " + std::to_string(rank) + ": the " + std::to_string(world_size) +
                " processes did not all join the rendezvous at " + where + within + " (" + message_of(e) + ")");
  }
}

ProcessGroup ProcessGroup::from_environment(double timeout_s) {
  auto get = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    if (!v || !*v) throw Error(std::string("nyto::ProcessGroup::from_environment: ") + name + " is not set");
    return v;
  };
  auto number = [&](const char* name) {
    const std::string v = get(name);
    if (v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos)
      throw Error(std::string("nyto::ProcessGroup::from_environment: ") + name + " must be a whole number, got '" + v + "'");
    return std::stoi(v);
  };
  const int rank = number("RANK"), world = number("WORLD_SIZE"), port = number("MASTER_PORT");
  if (world < 1 || rank >= world)
    throw Error("nyto::ProcessGroup::from_environment: RANK " + std::to_string(rank) + " is outside a WORLD_SIZE of " +
                std::to_string(world));
  if (port < 1 || port > 65535) throw Error("nyto::ProcessGroup::from_environment: MASTER_PORT outside 1..65535");
  return ProcessGroup(get("MASTER_ADDR"), port, rank, world, timeout_s);
}

ProcessGroup::ProcessGroup(c10::intrusive_ptr<c10d::ProcessGroup> group) : impl_(std::make_unique<Impl>()) {
  if (!group) throw std::invalid_argument("nyto::ProcessGroup: a null c10d::ProcessGroup");
  impl_->rank = group->getRank();
  impl_->size = group->getSize();
  impl_->pg = std::move(group);
}

ProcessGroup::~ProcessGroup() = default;
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::size() const { return impl_->size; }
uint64_t ProcessGroup::bytes_sent() const { return impl_->bytes_sent; }

std::pair<int64_t, int64_t> ProcessGroup::block(int64_t members, int r) const {
  return member_block(members, impl_->size, r < 0 ? impl_->rank : r);
}

int ProcessGroup::owner(int64_t member, int64_t members) const {
  for (int r = 0; r < impl_->size; ++r)
    if (member < block(members, r).second) return r;
  return impl_->size - 1;
}

std::vector<double> ProcessGroup::allgather_members(const std::vector<double>& mine, int64_t members, int per_member,
                                                    const std::string& what) {
  Impl& s = *impl_;
  s.alive(what);
  const auto [b, e] = block(members);
  if (int64_t(mine.size()) != (e - b) * per_member)
    throw std::invalid_argument("nyto::ProcessGroup::allgather_members: " + std::to_string(mine.size()) +
                                " values for a block of " + std::to_string(e - b) + " members");
  const int64_t most = block(members, 0).second * per_member;  // rank 0's block is the largest
  at::Tensor in = at::zeros({std::max<int64_t>(most, 1)}, at::kDouble);
  std::copy(mine.begin(), mine.end(), in.data_ptr<double>());
  std::vector<std::vector<at::Tensor>> out(1);
  for (int q = 0; q < s.size; ++q) out[0].push_back(at::empty_like(in));
  std::vector<at::Tensor> ins{in};
  if (s.size > 1) s.wait(s.pg->allgather(out, ins), what);
  else out[0][0].copy_(in);
  s.bytes_sent += uint64_t(s.size - 1) * uint64_t(in.numel()) * sizeof(double);
  std::vector<double> all;
  all.reserve(size_t(members * per_member));
  for (int q = 0; q < s.size; ++q) {
    const auto [qb, qe] = block(members, q);
    const double* p = out[0][size_t(q)].data_ptr<double>();
    all.insert(all.end(), p, p + (qe - qb) * per_member);
  }
  return all;
}

void ProcessGroup::gather_rows(const AnySwarm& swarm, const std::string& what) {
  Impl& s = *impl_;
  s.alive(what);
  if (s.size == 1) return;
  at::NoGradGuard ng;
  for (const at::Tensor& rows : swarm.storage()) {
    const int64_t members = rows.size(0);
    const int64_t most = block(members, 0).second;
    std::vector<int64_t> shape = rows.sizes().vec();
    shape[0] = std::max<int64_t>(most, 1);
    const auto [b, e] = block(members);
    at::Tensor in = at::zeros(shape, rows.options());
    if (e > b) in.narrow(0, 0, e - b).copy_(rows.narrow(0, b, e - b));
    std::vector<std::vector<at::Tensor>> out(1);
    for (int q = 0; q < s.size; ++q) out[0].push_back(at::empty_like(in));
    std::vector<at::Tensor> ins{in};
    s.wait(s.pg->allgather(out, ins), what);
    s.bytes_sent += uint64_t(s.size - 1) * uint64_t(in.numel()) * in.element_size();
    for (int q = 0; q < s.size; ++q) {
      if (q == s.rank) continue;
      const auto [qb, qe] = block(members, q);
      if (qe > qb) rows.narrow(0, qb, qe - qb).copy_(out[0][size_t(q)].narrow(0, 0, qe - qb));
    }
  }
}

void ProcessGroup::gather_blocks(const AnySwarm& mine, int64_t members, const AnySwarm& whole, int root,
                                 const std::string& what) {
  Impl& s = *impl_;
  s.alive(what);
  auto bad = [](const std::string& why) { throw std::invalid_argument("nyto::ProcessGroup::gather_blocks: " + why); };
  if (root < 0 || root >= s.size) bad("root outside the group");
  const auto [b, e] = block(members);
  if (mine.size() != e - b) bad("this rank's block has " + std::to_string(e - b) + " members, the swarm given " +
                                std::to_string(mine.size()));
  if (s.rank == root) {
    if (whole.size() != members) bad("the whole swarm has " + std::to_string(whole.size()) + " members, not " +
                                     std::to_string(members));
    if (whole.storage().size() != mine.storage().size()) bad("the whole swarm has other storage groups");
  }
  at::NoGradGuard ng;
  const int tag = 7301;  // any fixed tag: the sends of one group match their receives in order
  for (size_t g = 0; g < mine.storage().size(); ++g) {
    const at::Tensor& rows = mine.storage()[g];
    if (s.rank != root) {
      if (e > b) {
        std::vector<at::Tensor> ts{rows.contiguous()};
        s.wait(s.pg->send(ts, root, tag), what);
        s.bytes_sent += uint64_t(ts[0].numel()) * ts[0].element_size();
      }
      continue;
    }
    const at::Tensor& all = whole.storage()[g];
    if (all.size(1) != rows.size(1) || all.scalar_type() != rows.scalar_type())
      bad("the whole swarm's group " + std::to_string(g) + " differs from the block's");
    if (e > b) all.narrow(0, b, e - b).copy_(rows);
    for (int q = 0; q < s.size; ++q) {
      const auto [qb, qe] = block(members, q);
      if (q == root || qe == qb) continue;
      std::vector<at::Tensor> ts{all.narrow(0, qb, qe - qb)};  // rows of a row-major tensor: contiguous
      s.wait(s.pg->recv(ts, q, tag), what);
    }
  }
}

void ProcessGroup::broadcast(const AnyParticle& particle, int root, const std::string& what) {
  Impl& s = *impl_;
  s.alive(what);
  if (root < 0 || root >= s.size) throw std::invalid_argument("nyto::ProcessGroup::broadcast: root outside the group");
  if (s.size == 1) return;
  at::NoGradGuard ng;
  for (const at::Tensor& t : particle.storage()) {
    at::Tensor c = t.contiguous();
    std::vector<at::Tensor> ts{c};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    s.wait(s.pg->broadcast(ts, bo), what);
    if (!c.is_same(t)) t.copy_(c);
    if (root == s.rank) s.bytes_sent += uint64_t(s.size - 1) * uint64_t(t.numel()) * t.element_size();
  }
}

bool ProcessGroup::fold(FoldStep step, const at::Tensor& acc, int64_t members, const std::string& what) {
  Impl& s = *impl_;
  s.alive(what);
  if (!acc.is_contiguous()) throw std::invalid_argument("nyto::ProcessGroup::fold: a non-contiguous tensor");
  // Ranks [0, with) have members (blocks are contiguous, the larger first).
  const int with = int(std::min<int64_t>(s.size, members));
  const bool mine = s.rank < with;
  if (s.size == 1 || with == 0) return false;
  at::NoGradGuard ng;
  const int tag = 7302;  // the sends of one group match their receives in order
  std::vector<at::Tensor> ts{acc};
  switch (step) {
    case FoldStep::Receive:
      if (!mine || s.rank == 0) return false;
      s.wait(s.pg->recv(ts, s.rank - 1, tag), what);
      return true;
    case FoldStep::Send:
      if (mine && s.rank + 1 < with) {
        s.wait(s.pg->send(ts, s.rank + 1, tag), what);
        s.bytes_sent += uint64_t(acc.numel()) * acc.element_size();
      }
      return false;
    case FoldStep::Share: {
      // Around a ring that starts at the last rank with members: each rank receives the fold
      // from the rank before it and passes it on, so each sends it once (a broadcast would
      // have the last rank send it W-1 times).
      const int pos = (s.rank - (with - 1) + s.size) % s.size;  // 0 on the last rank with members
      if (pos > 0) s.wait(s.pg->recv(ts, (s.rank + s.size - 1) % s.size, tag), what);
      if (pos + 1 < s.size) {
        s.wait(s.pg->send(ts, (s.rank + 1) % s.size, tag), what);
        s.bytes_sent += uint64_t(acc.numel()) * acc.element_size();
      }
      return false;
    }
  }
  return false;
}

std::string ProcessGroup::compare_settings(const std::string& settings) {
  Impl& s = *impl_;
  if (!s.store) throw std::logic_error("nyto::ProcessGroup::compare_settings: a group without nyto's store");
  std::vector<std::string> all(static_cast<size_t>(s.size));
  try {
    s.store->set("nyto/settings/" + std::to_string(s.rank), std::vector<uint8_t>(settings.begin(), settings.end()));
    for (int q = 0; q < s.size; ++q) {
      std::vector<uint8_t> v = s.store->get("nyto/settings/" + std::to_string(q));
      all[size_t(q)].assign(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    s.fail("the check of every rank's settings", message_of(e));
  }
  auto split = [](const std::string& text) {
    std::vector<std::string> t;
    for (size_t i = 0; i < text.size();) {
      size_t j = text.find(' ', i);
      if (j == std::string::npos) j = text.size();
      if (j > i) t.push_back(text.substr(i, j - i));
      i = j + 1;
    }
    return t;
  };
  const std::vector<std::string> ref = split(all[0]);
  for (size_t k = 0; k < ref.size(); ++k) {
    std::string differ, theirs;
    for (int q = 1; q < s.size; ++q) {
      const std::vector<std::string> t = split(all[size_t(q)]);
      const std::string v = k < t.size() ? t[k] : "(nothing)";
      if (v != ref[k]) {
        differ += (differ.empty() ? "" : ", ") + std::to_string(q);
        if (theirs.empty()) theirs = v;
      }
    }
    if (!differ.empty()) return "rank " + differ + " has " + theirs + " where rank 0 has " + ref[k];
  }
  return "";
}

}  // namespace nyto
