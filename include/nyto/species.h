// A species: the structure shared by particles built from one another.
#pragma once

#include <nyto/param_config.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace nyto {

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
  /// Indices of the parameters a ParamConfig name selects: "" all, a parameter path, or a
  /// submodule path (every parameter under it). Throws NameError if nothing matches.
  std::vector<int64_t> select(const std::string& name) const;
  void set_config(int64_t index, ParamConfig config) { params_.at(index).config = config; }

  /// The species of submodule `path` (one per path, so repeated `sub()` calls combine).
  std::shared_ptr<Species> sub_species(const std::string& path, const torch::nn::Module& sub);

 private:
  Species() = default;
  int64_t id_ = 0;
  std::string module_name_;
  std::vector<ParamInfo> params_;
  std::vector<StorageGroup> groups_;
  std::map<std::string, std::shared_ptr<Species>> subs_;
};

}  // namespace nyto
