// Fitness of a swarm of zoo classifiers (cli/Zoo.h): the mean NLL loss of every member on one
// batch of images, what gradient-free training (`nyto train --mode pso`, `--mode evolve`) computes
// for the whole swarm every generation, and so the cost that dominates it.
//
//   nyto::cli::FitnessEvaluator fitness(swarm, "mlp", /*threads=*/2);
//   std::vector<double> loss;
//   fitness.evaluate(images, labels, loss);  // loss[m]: member m's mean NLL on the batch
//
// The evaluator reads the members' parameters straight from the swarm's [M, P] storage at every
// evaluate(), so a rule that moved the members in place is seen without rebuilding anything.
// No LibTorch in this header (at::Tensor and nyto::AnySwarm are only declared).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}
namespace nyto {
class AnySwarm;
}

namespace nyto::cli {

/// How FitnessEvaluator computes the losses. Every strategy gives the module forward's losses
/// within float32 rounding; Auto takes the fastest measured on a 2-core Xeon (bench/README.md,
/// "Fitness evaluation").
enum class FitnessStrategy {
  Auto,           ///< mlp: Batched; cnn: MemberThreads
  Loop,           ///< the reference: member after member, its module's forward, then nll_loss
  MemberThreads,  ///< members split over the threads; each thread runs whole member forwards
                  ///< single-threaded (cnn: 50 images at a time, max-pool as two at::maximum)
  Batched,        ///< mlp only: the first layer of a group of members as one GEMM (their weights
                  ///< gathered into one matrix), the second as one bmm; groups split over threads
};

/// Evaluates the fitness of every member of a swarm of zoo classifiers: the mean NLL loss per
/// member, as `at::nll_loss(member.forward(images), labels)` computes it.
class FitnessEvaluator {
 public:
  /// `swarm`: members of zoo model `model` ("mlp" or "cnn", any hidden width, as make_model builds
  /// them), float32 on the CPU; the evaluator keeps a handle on it. `threads` (>= 1): the thread
  /// budget, as at::set_num_threads takes it. Throws nyto::Error for another model name, a swarm
  /// whose parameters are not that model's (paths, shapes, dtype, device), threads < 1, or Batched
  /// for a cnn.
  /// `begin`, `end`: only members [begin, end) are evaluated (end -1: to the last), what one rank
  /// of a distributed run owns (cli/Dist.h); MemberThreads and Loop give each member the same bits
  /// whatever the range, Batched groups the range's members.
  FitnessEvaluator(const AnySwarm& swarm, const std::string& model, int threads,
                   FitnessStrategy strategy = FitnessStrategy::Auto, int64_t begin = 0, int64_t end = -1);
  ~FitnessEvaluator();
  FitnessEvaluator(FitnessEvaluator&&) noexcept;
  FitnessEvaluator& operator=(FitnessEvaluator&&) noexcept;

  /// images [B, 1, 28, 28] (or [B, 784]) float32, labels [B] int64 in 0..9, on the CPU, B >= 1
  /// -> out resized to the swarm's size, out[m] = mean NLL of member m (double; the forward runs
  /// in float32); with a member range, out[m - begin] for the range's members. Reads the swarm's storage now (its latest values). Throws nyto::Error for other
  /// shapes, dtypes, devices or labels out of range (out is then unchanged); throws what LibTorch
  /// throws otherwise. The same inputs and thread budget give the same bits.
  ///
  /// Threads: makes at::get_num_threads() == threads (at::set_num_threads when it differs; the
  /// setting stays, as the trainer sets it once). OpenBLAS, which LibTorch calls for its matrix
  /// products on Debian, keeps its own thread pool that at::set_num_threads does not govern: while
  /// evaluate() runs it is set to 1 thread (and restored after), so the budget holds and no BLAS
  /// threads spin against LibTorch's OpenMP threads.
  void evaluate(const at::Tensor& images, const at::Tensor& labels, std::vector<double>& out);

  /// One line naming the strategy in use, e.g. "mlp: members batched, first layers of up to 16
  /// members in one GEMM, over 2 threads".
  std::string strategy() const;
  /// The strategy in use (Auto resolved).
  FitnessStrategy strategy_kind() const;
  /// The number of members (the swarm's size at construction).
  int64_t members() const;
  /// How many threads the last evaluate() ran its member ranges on (0 before the first): the
  /// budget when the swarm has at least that many members, unless LibTorch gave fewer.
  int threads_used() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nyto::cli
