// Helpers shared by the runtime's translation units (not installed).
#pragma once

#include <nyto/particle.h>
#include <nyto/swarm.h>

#include <functional>
#include <map>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nyto::detail {

std::string shape_str(const std::vector<int64_t>& shape);
/// Parameter i's place in s's flat storage, shaped like the parameter.
at::Tensor slot(const ParticleState& s, size_t i);
/// Whether parameter i's data is its slot in s's storage (not a shared outside tensor).
bool in_storage(const ParticleState& s, size_t i);
/// Tensor::data_ptr() without its checks (a call into c10 and three tests), as bytes; null for a
/// tensor without storage. Rule runs ask it of every parameter of every bound member.
inline const char* first_byte(const at::Tensor& t) {
  const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
  const c10::Storage& st = impl->unsafe_storage();
  if (!st) return nullptr;
  return static_cast<const char*>(st.data()) + impl->storage_offset() * int64_t(impl->dtype().itemsize());
}
/// Re-points operational parameters that are not in storage (see particle.cpp).
void ensure_operational_in_storage(ParticleState& s);
/// The same for a particle already brought to its newest version (a member of a swarm just
/// touched): no second touch, which would lock the member's weak pointer to its swarm.
void ensure_operational_in_storage_touched(ParticleState& s);
/// m's parameter tensors in species order; checks the count.
std::vector<at::Tensor> collect_params(const torch::nn::Module& m, const Species& species);
/// A new particle of first's species over `storage` (one tensor per group): the module is a
/// clone of first's, operational parameters view the storage, non-operational ones follow
/// their ParamConfig (a copy of first's value, or first's very tensor).
std::shared_ptr<ParticleState> new_like(const ParticleState& first, std::vector<at::Tensor> storage);
std::vector<at::Tensor> empty_storage(const Species& species);
/// A new swarm of ref's species and size: storage a copy of ref's, member i made by
/// new_like(ref member i), so every member keeps its own buffers and non-operational parameters
/// (shared when ParamConfig::clone is false) from its counterpart in ref.
std::shared_ptr<SwarmState> new_swarm_like(const SwarmState& ref);

}  // namespace nyto::detail

namespace nyto::detail {

// ---------------------------------------------------------------- version manager (version.cpp)

/// Brings s to its species' newest version (a swarm member brings its whole swarm). Throws a
/// nyto::Error naming the path when the events cannot be replayed; then nothing is changed.
void touch(ParticleState& s);
void touch(SwarmState& w);
/// A new module with first's structure (its species' newest version) and buffers; parameters
/// hold copies of first's values, or nothing for a HollowCloneable module: callers point every
/// parameter at its storage or value. Replaces module->clone(), which refuses changed structures.
std::shared_ptr<torch::nn::Module> clone_module(const ParticleState& first);
/// Emptied modules of dead particles of one species (ParticleState::recycle_counts), with the
/// species version they have the structure of; at most kMax kept.
struct ModulePool {
  static constexpr size_t kMax = 2;
  std::mutex mu;
  std::vector<std::pair<int64_t, std::shared_ptr<torch::nn::Module>>> free;
};
/// What recycle_counts records: the use count of every module of s's tree (modules() order, each
/// counted with that vector's reference) and of every parameter tensor.
std::vector<long> use_counts(const ParticleState& s);
/// Records s's use counts: s's module may serve a later particle when s dies.
void mark_recyclable(ParticleState& s);
/// A module class of nyto's own (runtime/any_module.cpp's ParamTree, the module of a loaded
/// file) copies itself for clone_module without LibTorch's clone(), whose reset() and copies fill
/// every parameter only for the new particle to point it at its storage: the copy's parameters
/// are empty (0 elements; dtype and requires_grad kept) until then, its buffers are copies.
struct HollowCloneable {
  virtual ~HollowCloneable() = default;
  virtual std::shared_ptr<torch::nn::Module> hollow_clone() const = 0;
};
/// Records that s owns every module of its tree (is_root, moved-module warnings). Modules that
/// belonged to another live particle move with a warning naming both.
void register_modules(const std::shared_ptr<ParticleState>& s);
/// Access to a Species' private version state (events, prototype) for the runtime.
struct SpeciesEditor {
  struct Saved {
    std::vector<ParamInfo> params;
    std::vector<StorageGroup> groups;
    size_t events = 0;
    std::map<std::string, std::shared_ptr<Species>> subs;
    std::shared_ptr<torch::nn::Module> prototype;
  };
  /// The recipe of a submodule species (see Species::root_prototype_).
  static const std::shared_ptr<torch::nn::Module>& root_prototype(const Species& s) {
    return s.root_prototype_;
  }
  static const std::vector<VersionEvent>& root_events(const Species& s) { return s.root_events_; }
  static const std::string& root_path(const Species& s) { return s.root_path_; }
  static ModulePool* pool(const Species& s) { return s.pool_.get(); }
  static void make_pool(Species& s) { s.pool_ = std::make_shared<ModulePool>(); }
  static Saved save(const Species& s) {
    return {s.params_, s.groups_, s.events_.size(), s.subs_, s.prototype_};
  }
  static void restore(Species& s, Saved v) {
    s.params_ = std::move(v.params);
    s.groups_ = std::move(v.groups);
    s.events_.erase(s.events_.begin() + int64_t(v.events), s.events_.end());
    s.subs_ = std::move(v.subs);
    s.prototype_ = std::move(v.prototype);
  }
  /// Appends an event; the layout follows `module` (the initiator's, already changed).
  static void append(Species& s, VersionEvent e, const torch::nn::Module& module) {
    s.events_.push_back(std::move(e));
    s.relayout(module);
    s.subs_.clear();  // submodule species are rebuilt from the new structure on the next sub()
  }
  static std::shared_ptr<torch::nn::Module>& prototype(Species& s) { return s.prototype_; }
  static const std::shared_ptr<torch::nn::Module>& prototype(const Species& s) {
    return s.prototype_;
  }
  /// A species made from a particle of `from` (detach()) starts at its version and history.
  static void inherit(Species& to, const Species& from) {
    to.events_ = from.events_;
    to.prototype_ = from.prototype_;
  }
};

/// Makes `view` the particle of submodule `path` of `root` (AnyParticle::sub()): its species,
/// module, parameters and storage (views into the root's). NameError for an unknown path; then
/// `view` is unchanged.
void derive_view(ParticleState& view, const std::shared_ptr<ParticleState>& root,
                 const std::string& path);

/// Throws nyto::Error when a module of `root`'s tree registers one of its ancestors (LibTorch's
/// traversals, clone() and named_parameters(), would never end); a submodule that references the
/// root itself also gets the seeds' warning.
void check_acyclic(const torch::nn::Module& root);

/// Sends a warning to the handler (version.h).
void warn(const std::string& message);
/// Test hook: called at named points of a structure update ("replay", "relayout", "repoint");
/// a throwing hook simulates a failure part-way. Empty by default.
extern std::function<void(const std::string&)> fault_hook;

/// Throws SpeciesError naming both species when a and b (either may be null: a number) differ.
/// The one message of every particle operation (expressions, custom operators).
void check_species(const std::shared_ptr<Species>& a, const std::shared_ptr<Species>& b);

}  // namespace nyto::detail
