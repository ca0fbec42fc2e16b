// Helpers shared by the runtime's translation units (not installed).
#pragma once

#include <nyto/particle.h>

#include <memory>
#include <string>
#include <vector>

namespace nyto::detail {

std::string shape_str(const std::vector<int64_t>& shape);
/// Parameter i's place in s's flat storage, shaped like the parameter.
at::Tensor slot(const ParticleState& s, size_t i);
/// Whether parameter i's data is its slot in s's storage (not a shared outside tensor).
bool in_storage(const ParticleState& s, size_t i);
/// Re-points operational parameters that are not in storage (see particle.cpp).
void ensure_operational_in_storage(ParticleState& s);
/// m's parameter tensors in species order; checks the count.
std::vector<at::Tensor> collect_params(const torch::nn::Module& m, const Species& species);
/// A new particle of first's species over `storage` (one tensor per group): the module is a
/// clone of first's, operational parameters view the storage, non-operational ones follow
/// their ParamConfig (a copy of first's value, or first's very tensor).
std::shared_ptr<ParticleState> new_like(const ParticleState& first, std::vector<at::Tensor> storage);
std::vector<at::Tensor> empty_storage(const Species& species);

}  // namespace nyto::detail
