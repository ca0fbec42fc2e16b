// `nyto train`'s checkpoint, DIR/checkpoint.pt: reading one strictly, without running training
// (the trainer applies it to its swarm; a fuzz target can call read_train_checkpoint alone).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli/Hash.h"

namespace torch::serialize {
class InputArchive;
}

namespace nyto::cli {

/// The format tag of the checkpoints this nyto writes and reads ("-1" lacked the data set's
/// identity and the digest, and is refused).
inline constexpr const char* kCheckpointFormat = "nyto-train-checkpoint-2";

/// One evaluation of one member (a row of --metrics).
struct MetricRow {
  int64_t step, member;
  double train_loss, test_loss, test_acc;
};

/// What a checkpoint holds. N = members, n_g = the size of storage group g.
struct TrainCheckpoint {
  std::string config;  ///< the settings a resumed run must share, the data set's identity included
  int64_t step = 0;    ///< >= 0
  double elapsed = 0;  ///< seconds, finite, >= 0
  std::vector<at::Tensor> x;  ///< per group: [N, n_g], floating point, N >= 1
  bool pso = false;
  std::vector<at::Tensor> v, pbest;  ///< pso: shaped as x
  std::vector<at::Tensor> gbest;     ///< pso: per group [n_g]
  std::vector<double> pbest_f;       ///< pso: [N]
  double gbest_f = 0;                ///< pso
  std::vector<double> last_loss;     ///< hybrid: [N]
  /// hybrid: N states of torch::optim::SGD, in LibTorch's current format (not yet applied)
  std::vector<std::shared_ptr<torch::serialize::InputArchive>> optimizers;
  std::vector<double> loss_sum;      ///< [N]
  std::vector<int64_t> loss_count;   ///< [N], >= 0
  at::Tensor perm;  ///< the epoch's image order, a permutation (int64 [train size]); undefined before the first batch
  std::mt19937_64 shuffle_rng, subset_rng;
  at::Tensor torch_rng;  ///< LibTorch's CPU generator state (checked by a scratch generator)
  std::vector<MetricRow> rows;  ///< member in [0, N), step >= 0
};

/// Reads the checkpoint at `path`, every tensor checked against the file's data
/// (load_archive_checked) and every field parsed strictly: of the right type and shape, in range,
/// a text field (the random number generators' states) consumed whole, and the digest of all
/// fields but the optimizer states equal to the one written. Throws IOError naming the file and
/// the field. Nothing is applied to a trainer; LibTorch's random state is not touched.
TrainCheckpoint read_train_checkpoint(const std::string& path);

/// FNV-1a over a checkpoint's fields in the order written: each key, then its value (strings,
/// integers, doubles' bits, booleans; tensors' dtype, shape and bytes). Nested archives (the
/// optimizer states) are not included.
class CheckpointDigest {
 public:
  void add(const std::string& key, const c10::IValue& value);
  uint64_t value() const { return h_; }

 private:
  void bytes(const void* p, size_t n);
  uint64_t h_ = kFnvOffset;
};

}  // namespace nyto::cli
