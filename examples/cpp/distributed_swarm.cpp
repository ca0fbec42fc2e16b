// A user's own trainer over several processes with nyto's C++ API (include/nyto/distributed.h,
// docs/distributed.md): a swarm of linear regressors (torch::nn::Linear, 16 -> 1) fitted to fixed
// noisy data by a gradient-free rule, one block of members per process.
//
//   distributed_swarm RULE OUT [GENERATIONS] [MEMBERS] [TIMEOUT_S]
//
// RULE is a rule file reading x (the swarm), f (each member's fitness, a per-member vector) and
// best (the best member of this generation). Launch one process per rank with RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT set, as torchrun does; without WORLD_SIZE it runs alone. Rank 0
// writes the final swarm to OUT (nyto's swarm format) and prints the bytes it sent. The same seed
// gives the same file whatever the number of processes.
#include <nyto/distributed.h>
#include <nyto/rule.h>
#include <nyto/swarm.h>
#include <torch/nn/modules/linear.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s RULE OUT [GENERATIONS] [MEMBERS] [TIMEOUT_S]\n", argv[0]);
    return 2;
  }
  const int generations = argc > 3 ? std::atoi(argv[3]) : 20;
  const int64_t members = argc > 4 ? std::atoll(argv[4]) : 7;
  const double timeout = argc > 5 ? std::atof(argv[5]) : 60;
  try {
    at::set_num_threads(1);
    std::optional<nyto::ProcessGroup> group;
    if (std::getenv("WORLD_SIZE")) group.emplace(nyto::ProcessGroup::from_environment(timeout));
    const int rank = group ? group->rank() : 0;
    const auto [begin, end] = group ? group->block(members) : std::make_pair(int64_t(0), members);

    // The same data and initial swarm on every rank (the seed fixes them).
    at::manual_seed(1);
    const at::Tensor xs = at::randn({256, 16});
    const at::Tensor ys = at::matmul(xs, at::linspace(-1, 1, 16).unsqueeze(1)) + 0.1 * at::randn({256, 1});
    auto seed = nyto::make_particle<torch::nn::Linear>(16, 1);
    nyto::Swarm<torch::nn::Linear> x(seed, members, nyto::SwarmInit::Randn);
    nyto::AnyParticle best = x.member(0).clone();
    const nyto::Rule rule = nyto::compile_file(argv[1]);

    for (int g = 0; g < generations; ++g) {
      // Fitness of this rank's members, then every member's.
      std::vector<double> mine;
      {
        at::NoGradGuard ng;
        for (int64_t m = begin; m < end; ++m) mine.push_back(at::mse_loss(x[m]->forward(xs), ys).item<double>());
      }
      const std::vector<double> f = group ? group->allgather_members(mine, members) : mine;
      int64_t b = 0;
      for (int64_t m = 1; m < members; ++m)
        if (f[size_t(m)] < f[size_t(b)]) b = m;
      // The best member from its owner.
      {
        at::NoGradGuard ng;
        if (b >= begin && b < end)
          for (size_t k = 0; k < best.storage().size(); ++k) best.storage()[k].copy_(x.storage()[k][b]);
      }
      if (group) group->broadcast(best, group->owner(b, members));
      nyto::RunOptions opt;
      opt.seed = 3;
      opt.invocation = uint64_t(g);
      opt.group = group ? &*group : nullptr;
      rule.run({{"x", x}, {"f", f}, {"best", best}}, opt);
    }
    if (group) group->gather_rows(x);
    if (rank == 0) {
      x.save(argv[2]);
      std::printf("rank 0 sent %llu bytes\n", group ? (unsigned long long)group->bytes_sent() : 0ULL);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_swarm: %s\n", e.what());
    return 1;
  }
  return 0;
}
