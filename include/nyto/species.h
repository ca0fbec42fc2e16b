// A species: the structure shared by particles built from one another.
#pragma once

#include <ATen/core/Tensor.h>
#include <nyto/param_config.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace nyto {

/// The six structure changes a particle can make (nytorch's version manager). Each appends a
/// version to the species.
enum class StructureEvent {
  AddParameter,
  RemoveParameter,
  AddBuffer,
  RemoveBuffer,
  AddModule,
  RemoveModule
};

/// One recorded structure change: what changed, where, and (weakly) the initiator's object.
struct VersionEvent {
  StructureEvent kind = StructureEvent::AddParameter;
  std::string path;  ///< full path from the root module, e.g. "l1.extra"
  /// AddBuffer: the buffer every particle shares. AddParameter: a copy of the value when it was
  /// added (recipients copy the initiator's parameter while it lives, this copy after).
  at::Tensor tensor;
  /// AddParameter: the initiator's tensor, held weakly: its data is a view of the initiator's
  /// flat storage, which the species must not keep alive once the initiator is gone.
  std::optional<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> parameter;
  bool requires_grad = true;  ///< AddParameter
  /// AddModule: the initiator's module (weakly, as above), and a clone taken when it was added:
  /// the structure recipients start from, with the module's values while it lives.
  std::weak_ptr<torch::nn::Module> module;
  std::shared_ptr<torch::nn::Module> snapshot;
  const void* initiator = nullptr;  ///< identity of the initiating particle (informational)
};

namespace detail {
struct SpeciesEditor;
struct ModulePool;
}

/// The layout shared by all particles of one species: for every parameter its path, shape, dtype,
/// device, ParamConfig and place in the flat storage of its (dtype, device) group.
class Species {
 public:
  /// Builds the layout of `module`'s parameters (recursively, in `named_parameters()` order).
  static std::shared_ptr<Species> from_module(const torch::nn::Module& module);

  int64_t id() const { return id_; }
  /// e.g. "Net#3": the root module's name and a process-wide number; used in error messages.
  std::string name() const;
  const std::vector<ParamInfo>& params() const { return params_; }
  const std::vector<StorageGroup>& groups() const { return groups_; }
  /// Index of a parameter path, or -1.
  int64_t find(const std::string& path) const;
  /// Operational parameters of one group as sorted, disjoint [begin, end) element ranges, adjacent
  /// parameters merged: what a particle operation walks.
  std::vector<std::pair<int64_t, int64_t>> operational_ranges(int group) const;
  /// Operational, non-empty parameters of one group as [begin, end) element ranges, one per
  /// parameter tensor, in storage order: the tensors of the rule language's parameter axis.
  std::vector<std::pair<int64_t, int64_t>> tensor_ranges(int group) const;
  /// Indices of the parameters a ParamConfig name selects: "" all, a parameter path, or a
  /// submodule path (every parameter under it). Throws NameError if nothing matches.
  std::vector<int64_t> select(const std::string& name) const;
  void set_config(int64_t index, ParamConfig config) {
    params_.at(index).config = config;
    ++configs_set_;
  }
  /// How many set_config() calls the species has seen: a change of operational parameters,
  /// which (unlike a structure event) keeps version(), shows here.
  int64_t configs_set() const { return configs_set_; }

  /// The species of submodule `path` (one per path, so repeated `sub()` calls combine).
  std::shared_ptr<Species> sub_species(const std::string& path, const torch::nn::Module& sub);

  /// Version number: the count of structure events since the species began (0 for a new one).
  int64_t version() const { return int64_t(events_.size()); }
  /// The structure events, oldest first: events()[v] takes a particle from version v to v + 1.
  const std::vector<VersionEvent>& events() const { return events_; }

 private:
  friend struct detail::SpeciesEditor;
  Species() = default;
  /// Recomputes params_ and groups_ from `module`, keeping the config of every path that stays.
  void relayout(const torch::nn::Module& module);
  int64_t id_ = 0;
  std::string module_name_;
  std::vector<ParamInfo> params_;
  std::vector<StorageGroup> groups_;
  std::map<std::string, std::shared_ptr<Species>> subs_;
  std::vector<VersionEvent> events_;
  int64_t configs_set_ = 0;
  /// A clone of the version-0 structure, taken at the first event: new particles of a later
  /// version are this clone with the events replayed (LibTorch's Cloneable::clone() calls reset()
  /// and refuses a module whose structure has changed since).
  std::shared_ptr<torch::nn::Module> prototype_;
  /// For a submodule's species made after its root's structure changed: the root's prototype and
  /// events, and the submodule's path in the root (clone_module() builds the root, takes the part).
  std::shared_ptr<torch::nn::Module> root_prototype_;
  std::vector<VersionEvent> root_events_;
  std::string root_path_;
  /// Modules of dead particles of this species, emptied, for new ones (detail::clone_module).
  std::shared_ptr<detail::ModulePool> pool_;
};

}  // namespace nyto
