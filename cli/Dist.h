// The command line's side of one swarm over several processes: where the rendezvous is (flags
// or PyTorch's launch variables) and the local launcher of `--nprocs K`. The process group
// itself is nyto::ProcessGroup (include/nyto/distributed.h). docs/distributed.md is the user's
// side: launch conventions, what crosses the network, faults.
//
// Launch follows PyTorch's convention, so torchrun and SLURM scripts work unchanged: RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional) from the environment, or the flags
// --world-size/--rank/--master HOST:PORT, which win over the environment.
// No LibTorch in this header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

/// What `--nprocs K` asks for, before anything else runs: UsageError for --nprocs with
/// --world-size, --rank or --master, or for more processes than `most` (0: no limit, else the
/// members, `what` naming them); for K > 1, runs this command line without --nprocs as K
/// processes (launch_local) and exits with their code. Returns for K <= 1.
void launch_if_requested(const DistOptions& o, int64_t most = 0, const std::string& what = "");

/// `--nprocs K`: runs `args` (this command line without --nprocs) as K processes of this binary,
/// ranks 0..K-1 on 127.0.0.1 and a free port, and waits for them. Rank 0's stdout is this
/// process's; the others' goes to /dev/null; every rank's stderr is kept. When a rank fails the
/// others are given `timeout` + 10 s to stop on their own (they notice within the timeout), then
/// killed. Returns the exit code: 0 when every rank exits 0; else the first failing rank's code (a
/// rank killed by a signal counts 1), after a line naming it on stderr.
int launch_local(int nprocs, const std::vector<std::string>& args, double timeout);

}  // namespace nyto::cli
