// One swarm over several processes: the rendezvous, the collectives `nyto train` needs, and the
// local launcher of `--nprocs K`, on PyTorch's own distributed runtime (c10d: a TCPStore for the
// rendezvous, ProcessGroupGloo for the collectives over TCP). docs/distributed.md is the user's
// side: launch conventions, what crosses the network, faults.
//
// Launch follows PyTorch's convention, so torchrun and SLURM scripts work unchanged: RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional) from the environment, or the flags
// --world-size/--rank/--master HOST:PORT, which win over the environment.
//
// Members are split in contiguous blocks over the ranks (block()). Every collective here keeps
// member order, so a result computed from gathered values is the same on every rank and the same
// as with one process. No LibTorch in this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace nyto::cli {

/// The distribution flags of a command.
struct DistOptions {
  int nprocs = 0;          ///< --nprocs K: start K local processes (0: not a launcher)
  int world_size = 0;      ///< --world-size (0: WORLD_SIZE from the environment, else 1)
  int rank = -1;           ///< --rank (-1: RANK from the environment)
  std::string master;      ///< --master HOST:PORT (empty: MASTER_ADDR and MASTER_PORT)
  double timeout = 60;     ///< --timeout, seconds: rendezvous, and any collective a peer misses
};

/// Where and who this process is.
struct Rendezvous {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  std::string host;  ///< the master's address: rank 0 hosts the store there
  int port = 0;
  double timeout = 60;
  std::string source;  ///< "flags" or "environment", for messages
};

/// Flags over environment. Throws UsageError (exit 2) naming the flag or variable for an
/// incomplete or malformed setting: a rank outside [0, world size), a port outside 1..65535, a
/// world size without a master, non-numbers. world_size 1 and no master: a single process.
Rendezvous resolve_rendezvous(const DistOptions& o);

/// `--nprocs K`: runs `args` (this command line without --nprocs) as K processes of this binary,
/// ranks 0..K-1 on 127.0.0.1 and a free port, and waits for them. Rank 0's stdout is this
/// process's; the others' goes to /dev/null; every rank's stderr is kept. When a rank fails the
/// others are given `timeout` + 10 s to stop on their own (they notice within the timeout), then
/// killed. Returns the exit code: 0 when every rank exits 0; else the first failing rank's code (a
/// rank killed by a signal counts 1), after a line naming it on stderr.
int launch_local(int nprocs, const std::vector<std::string>& args, double timeout);

/// The members [begin, end) of `rank` out of `members` split over `world` ranks in contiguous
/// blocks, the first members % world ranks one more.
std::pair<int64_t, int64_t> member_block(int64_t members, int world, int rank);

/// A process group: this process's membership of the swarm's ranks. Collectives block until
/// every rank takes part; each throws nyto::Error (exit 1) when a peer died or stops answering
/// for `timeout`, naming this rank, what it was doing and, where the store can tell, the ranks
/// that did not answer. After a failure the group is dead (c10d's rule).
class ProcessGroup {
 public:
  /// The rendezvous: rank 0 hosts the store at (host, port), every rank joins within `timeout`.
  /// Throws nyto::Error (exit 1) for a port in use, an unreachable master or a rank that never
  /// joins.
  explicit ProcessGroup(const Rendezvous& r);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::pair<int64_t, int64_t> block(int64_t members) const { return member_block(members, size_, rank_); }

  /// Refuses ranks started with different settings: `settings` is "name=value name=value ...";
  /// throws UsageError (exit 2) on every rank naming the first setting that differs from rank
  /// 0's and each rank that has it otherwise.
  void check_settings(const std::string& settings);

  /// Every member's values from their owners: `mine` holds `per_member` doubles for each member of
  /// this rank's block; returns members * per_member doubles in member order. `what` names the
  /// step for messages ("fitness of generation 3").
  std::vector<double> allgather_members(const std::vector<double>& mine, int64_t members, int per_member,
                                        const std::string& what);

  /// Every member's rows of `rows` ([members, ...], contiguous, CPU) from their owners: each rank's
  /// block is sent to every other; rows outside a rank's block are overwritten by their owner's.
  void allgather_rows(at::Tensor& rows, const std::string& what);

  /// `t` (contiguous, CPU) from rank `root` to every rank.
  void broadcast(at::Tensor& t, int root, const std::string& what);

  /// Bytes of data this rank has sent so far, by the algorithms' cost (ring allgather: (W-1) times
  /// its block; broadcast: the root W-1 times the tensor, the others nothing), TCP and Gloo's
  /// headers not included.
  uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  struct Impl;
  [[noreturn]] void fail(const std::string& what, const std::string& why);
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  uint64_t bytes_sent_ = 0;
  double timeout_ = 60;
};

}  // namespace nyto::cli
