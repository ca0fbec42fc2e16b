// Per-parameter configuration, as in nytorch's ParamConfig.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nyto {

/// How particle operations treat one parameter. Held by the species, so shared by all its
/// particles.
struct ParamConfig {
  /// Computed by particle operations and rules. A non-operational parameter is left unchanged by
  /// in-place operations.
  bool operational = true;
  /// For a non-operational parameter of a new particle: true gives it a copy of the first
  /// particle operand's tensor, false the very same tensor (shared storage).
  bool clone = true;
  bool operator==(const ParamConfig& o) const {
    return operational == o.operational && clone == o.clone;
  }
};

/// One parameter of a species, in the module's `named_parameters()` order.
struct ParamInfo {
  std::string path;            ///< e.g. "layer1.weight"
  std::vector<int64_t> shape;  ///< sizes of the parameter tensor
  c10::ScalarType dtype;
  c10::Device device = c10::kCPU;
  ParamConfig config;
  int group = 0;       ///< index of its (dtype, device) storage group
  int64_t offset = 0;  ///< first element in the group's flat storage
  int64_t numel = 0;
};

/// One flat storage group: every parameter of one (dtype, device), back to back.
struct StorageGroup {
  c10::ScalarType dtype;
  c10::Device device = c10::kCPU;
  int64_t numel = 0;
};

}  // namespace nyto
