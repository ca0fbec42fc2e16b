// `nyto train`'s checkpoint: reading one strictly, without running training (the trainer applies
// it to its swarm; a fuzz target can call read_train_checkpoint alone), and writing its files.
//
// A checkpoint is a manifest, DIR/checkpoint.pt, and parts, DIR/parts-ID/members-B-E.pt. Each
// rank writes the part of its own members [B, E): their rows of x, of the rule's swarm and vector
// states, and their SGD states. Rank 0 then writes the manifest: the settings, the step, the
// random states, the metrics, the rule's other states, and the parts with the digest of each
// file's bytes. Every file is written beside and renamed; the manifest's rename commits the
// checkpoint, after which parts directories it does not name are removed. So a kill at any moment
// leaves a whole checkpoint, and a checkpoint written by W processes resumes with any number.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cli/Hash.h"

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}

namespace nyto::cli {

/// The format tag of the checkpoints this nyto writes and reads ("-1" lacked the data set's
/// identity and the digest, and is refused).
/// "-2" held PSO's own fields (v, pbest, gbest) from before --mode pso was a rule; it is refused.
/// "-3" was one file written by rank 0, the whole population in it; it is refused too.
inline constexpr const char* kCheckpointFormat = "nyto-train-checkpoint-4";
/// The format tag of a part.
inline constexpr const char* kCheckpointPartFormat = "nyto-train-checkpoint-part-4";

/// The file name of the part of members [begin, end) in its parts directory: "members-B-E.pt".
std::string checkpoint_part_name(int64_t begin, int64_t end);

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
  int64_t members = 0;        ///< N >= 1
  int64_t first = 0;          ///< the member of row 0 of x, of the rule's row states and of optimizers[0]
  std::vector<at::Tensor> x;  ///< per group: [the members read, n_g], floating point
  bool evolve = false;               ///< a generation rule's run (else hybrid)
  std::vector<at::Tensor> best;      ///< evolve: the best member so far, per group [n_g]
  double best_f = 0;                 ///< evolve: its fitness (+inf before the first generation)
  int64_t best_step = -1;            ///< evolve: the generation it was found in (-1: none yet)
  std::string states;                ///< evolve: the rule's states, "name:kind name:kind ..."
  /// evolve: the fields "state_NAME" (a number, or a double tensor [N] for a vector) and
  /// "state_NAME_G" (a particle's group G [n_g], a swarm's [N, n_g]), unchecked against the rule
  std::map<std::string, c10::IValue> state_fields;
  std::vector<std::array<double, 4>> fitness_rows;  ///< evolve: generation, best, mean, worst
  /// evolve: the state fields read from the parts (a row per member, of the members read only)
  std::set<std::string> row_fields;
  std::vector<double> last_loss;     ///< hybrid: [N]
  /// hybrid: the states of torch::optim::SGD of the members read, in LibTorch's current format
  /// (not yet applied)
  std::vector<std::shared_ptr<torch::serialize::InputArchive>> optimizers;
  std::vector<double> loss_sum;      ///< [N]
  std::vector<int64_t> loss_count;   ///< [N], >= 0
  at::Tensor perm;  ///< the epoch's image order, a permutation (int64 [train size]); undefined before the first batch
  std::mt19937_64 shuffle_rng, subset_rng;
  at::Tensor torch_rng;  ///< LibTorch's CPU generator state (checked by a scratch generator)
  std::vector<MetricRow> rows;  ///< member in [0, N), step >= 0
  std::string parts_dir;        ///< the parts' directory, beside the manifest ("parts-ID")
  std::vector<std::pair<int64_t, int64_t>> parts;  ///< their member ranges, tiling [0, N) in order
};

/// Reads the checkpoint whose manifest is `path` and the parts it names, every tensor checked
/// against the file's data (load_archive_checked) and every field parsed strictly: of the right
/// type and shape, in range, a text field (the random number generators' states) consumed whole,
/// the manifest's digest of its fields equal to the one written, each part's bytes equal to the
/// digest the manifest holds for it (a part of another checkpoint is refused), the parts tiling
/// the members. The parts' rows are joined in member order. `rows`: only members [first, second)
/// are read (the parts that hold them; the rule's row states and SGD states of those members
/// only): what a rank that holds its own block needs; by default every member. Throws IOError
/// naming the file and the field (a range the checkpoint's members do not cover is corrupt
/// structure, reported as such); the manifest is read whole before any part. Nothing is applied
/// to a trainer; LibTorch's random state is not touched.
TrainCheckpoint read_train_checkpoint(const std::string& path,
                                      std::pair<int64_t, int64_t> rows = {0, INT64_MAX});

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

/// One checkpoint file being written: fields through put() (into the archive and its digest),
/// nested archives (SGD states, not in the digest) through nest().
class CheckpointWriter {
 public:
  CheckpointWriter();
  ~CheckpointWriter();
  void put(const std::string& key, const c10::IValue& value);
  void nest(const std::string& key, torch::serialize::OutputArchive& archive);
  /// Adds the field "digest" and writes the file beside `path` and renames it (nyto::io::write_file).
  /// Returns FNV-1a of the bytes written. Throws IOError naming `path`.
  uint64_t save(const std::string& path);

 private:
  std::unique_ptr<torch::serialize::OutputArchive> ar_;
  CheckpointDigest digest_;
};

}  // namespace nyto::cli
