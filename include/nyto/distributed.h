// One swarm over several processes, for users' own trainers: a process group on PyTorch's c10d
// (the user's own c10d::ProcessGroup, or one made from torchrun's environment), the exchanges a
// swarm algorithm needs, and Rule::run over it (RunOptions::group). docs/distributed.md.
//
//   auto group = nyto::ProcessGroup::from_environment();      // RANK, WORLD_SIZE, MASTER_ADDR/PORT
//   auto [begin, end] = group.block(swarm.size());            // this rank's members
//   ... evaluate members [begin, end) ...
//   std::vector<double> f = group.allgather_members(mine, swarm.size());
//   nyto::RunOptions opt;
//   opt.group = &group;
//   pso.run({{"x", swarm}, {"v", v}, {"f", f}, {"best", best}}, opt);
//
// Members are split in contiguous blocks, the first M mod W ranks one more. A rank is
// authoritative for its own block's rows of every swarm; the other rows are brought to it only
// when something reads them (gather_rows, or a rule whose members read each other). Exchanges
// keep member order, so results do not depend on the number of processes.
#pragma once

#include <nyto/errors.h>
#include <nyto/particle.h>
#include <nyto/rule.h>
#include <nyto/swarm.h>

#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace c10d {
class ProcessGroup;
}

namespace nyto {

/// A rank's membership of a group of processes running one swarm. Every exchange blocks until
/// every rank takes part, and throws nyto::Error naming this rank, `what` it was doing and, where
/// the rendezvous store can tell, the ranks that stopped answering (a killed peer is noticed
/// within about a second, a hung one after the timeout). After a failure the group is dead.
class ProcessGroup {
 public:
  /// Joins the group at rank 0's store (host:port; rank 0 hosts it), within `timeout_s`
  /// seconds, over Gloo (the interface of GLOO_SOCKET_IFNAME, else 127.0.0.1 for a loopback host,
  /// else the hostname's). Throws nyto::Error for a port in use, an unreachable host or a rank
  /// that does not join in time; std::invalid_argument for rank outside [0, world_size).
  ProcessGroup(const std::string& host, int port, int rank, int world_size, double timeout_s = 60);
  /// The same from PyTorch's launch variables: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
  /// Throws nyto::Error naming a missing or malformed variable.
  static ProcessGroup from_environment(double timeout_s = 60);
  /// Over the user's own c10d process group (any backend whose allgather and broadcast take CPU
  /// tensors). Failures are reported without naming the ranks that stopped.
  explicit ProcessGroup(c10::intrusive_ptr<c10d::ProcessGroup> group);
  ~ProcessGroup();
  ProcessGroup(ProcessGroup&&) noexcept;
  ProcessGroup& operator=(ProcessGroup&&) noexcept;

  int rank() const;
  int size() const;
  /// Members [begin, end) of rank `r` (this rank by default) out of `members`.
  std::pair<int64_t, int64_t> block(int64_t members, int r = -1) const;
  /// The rank whose block holds `member`.
  int owner(int64_t member, int64_t members) const;

  /// Every member's values from their owners: `mine` holds `per_member` doubles for each member
  /// of this rank's block; returns members * per_member doubles in member order, the same on
  /// every rank. Sends (W-1) times the largest block's values.
  std::vector<double> allgather_members(const std::vector<double>& mine, int64_t members, int per_member = 1,
                                        const std::string& what = "an allgather of per-member values");
  /// Every member's rows of `swarm` (each storage group) from their owners, so that every rank
  /// holds the whole swarm. Sends (W-1) times the largest block's rows.
  void gather_rows(const AnySwarm& swarm, const std::string& what = "a gather of the swarm's members");
  /// The whole swarm on rank `root`, from every rank's own members: `mine` holds this rank's block
  /// (block(members) rows, member order) of a swarm of `members` members; on `root`, `whole`
  /// (`members` members of the same species) gets every block's rows, its own included; other
  /// ranks pass an empty handle. Point to point: a rank never holds more than its block and the
  /// root no more than the whole. Throws std::invalid_argument for a block or whole of the wrong
  /// size or layout.
  void gather_blocks(const AnySwarm& mine, int64_t members, const AnySwarm& whole, int root,
                     const std::string& what = "a gather of every rank's members");
  /// `particle`'s values (each storage group) from rank `root` to every rank.
  void broadcast(const AnyParticle& particle, int root, const std::string& what = "a broadcast of a particle");
  /// One step of a member fold over the ranks' blocks of `members` members, in member order
  /// (RunOptions::fold; Rule::run over the group passes it), on one chunk `acc` of the fold:
  /// Receive takes the fold of the blocks before this rank's from the rank before (false on
  /// rank 0 and on a rank without members), Send passes it on to the next rank with members,
  /// Share passes the whole fold around a ring from the last rank with members. Every rank thus
  /// gets the bits one process folding every member in order gets. Each rank sends the fold at
  /// most twice (W-1 ranks pass it on, W-1 pass the whole around); the chunks pipeline both.
  bool fold(FoldStep step, const at::Tensor& acc, int64_t members, const std::string& what = "a member fold");
  /// Bytes of data this rank has sent through this object (ring allgather: W-1 times its
  /// contribution; broadcast: the root W-1 times the particle), headers not counted.
  uint64_t bytes_sent() const;
  /// Each rank's `settings` ("name=value name=value ..."), compared with rank 0's through the
  /// store: "" when every rank has the same, else a sentence naming the first differing setting
  /// and the ranks that have it otherwise. Only for groups made from a host and port.
  std::string compare_settings(const std::string& settings);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Members [begin, end) of rank `rank` when `members` are split over `world` ranks in contiguous
/// blocks, the first members % world ranks one more.
std::pair<int64_t, int64_t> member_block(int64_t members, int world, int rank);

}  // namespace nyto
