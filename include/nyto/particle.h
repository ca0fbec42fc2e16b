// Particles: model instances whose parameters live in flat storage and support arithmetic.
//
// A particle is a module plus one contiguous 1-D tensor per (dtype, device) group of its
// parameters; the module's parameters are views into that storage, so forward, backward and
// torch::optim steps work unchanged while particle operations walk one buffer. Particles built
// from one another (operations, clone(), rand(), randn()) share a Species. This is nytorch's
// "particle operation" model (NytoModule) in C++.
#pragma once

#include <ATen/core/Tensor.h>
#include <nyto/errors.h>
#include <nyto/param_config.h>
#include <nyto/species.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace nyto {

class AnyExpr;

namespace detail {
struct SwarmState;
/// State behind a particle handle. Copies of a handle share it (like Python references).
struct ParticleState {
  std::shared_ptr<Species> species;
  std::shared_ptr<torch::nn::Module> module;
  std::vector<at::Tensor> storage;  ///< one 1-D contiguous tensor per species group
  std::vector<at::Tensor> params;   ///< the module's parameter tensors, in species order
  int64_t version = 0;              ///< the species version its module and storage follow
  std::weak_ptr<SwarmState> swarm;  ///< set for a swarm member: the swarm re-lays out as a unit
  /// For a submodule view (AnyParticle::sub()): the root particle, the submodule's path in it and
  /// the root version the view was derived at (touch() derives it again when the root moved on).
  std::weak_ptr<ParticleState> root;
  std::string root_path;
  int64_t root_version = 0;
  /// For a particle nyto made (clone(), rand(), randn(), a rule's or expression's result): the use
  /// counts of its modules and parameter tensors when it was made. When they are the same at its
  /// death (nothing outside holds any of them) and no parameter has a gradient or a hook, its
  /// module, emptied, serves the species' next new particle, which so skips LibTorch's clone()
  /// and the reset() (random initialization) in it. Empty: never recycled.
  std::vector<long> recycle_counts;
  ParticleState() = default;
  ParticleState(const ParticleState&) = delete;
  ParticleState& operator=(const ParticleState&) = delete;
  ~ParticleState();  ///< forgets the modules it owned (see version.h, is_root)
};

/// The module type behind T: T itself, or T::ContainedType for a ModuleHolder (torch::nn::Linear).
template <class T, class = void>
struct ModuleImpl {
  using type = T;
};
template <class T>
struct ModuleImpl<T, std::void_t<typename T::ContainedType>> {
  using type = typename T::ContainedType;
};
}  // namespace detail

/// A particle of any module type: the type-erased handle every operation is built on.
/// Copying the handle shares the particle; use clone() for a new particle.
class AnyParticle {
 public:
  AnyParticle() = default;
  explicit AnyParticle(std::shared_ptr<detail::ParticleState> state) : s_(std::move(state)) {}

  /// Makes `module` the first particle of a new species. Its parameters are moved into flat
  /// storage (the module keeps its parameter objects; their data become views).
  static AnyParticle adopt(std::shared_ptr<torch::nn::Module> module);

  bool defined() const { return s_ != nullptr; }
  const std::shared_ptr<Species>& species() const { return state().species; }
  const std::shared_ptr<torch::nn::Module>& module_ptr() const { return state().module; }
  /// Flat storage, one 1-D tensor per species group (see Species::groups()).
  /// (These views of the layout touch() first: they follow the newest version.)
  const std::vector<at::Tensor>& storage() const { return touched().storage; }
  bool same_species(const AnyParticle& other) const { return species() == other.species(); }

  /// A new particle of this species with a copy of every parameter (non-operational parameters
  /// with clone = false are shared, as for every new particle). Making a particle draws nothing
  /// from LibTorch's default generator, and its module is a LibTorch clone() of this one (buffers
  /// copied, training modes and requires_grad kept) or, faster, the emptied module of a dead
  /// particle of the species that nothing outside held (ParticleState::recycle_counts), given the
  /// same buffers, modes and requires_grad: either way no reset() reinitializes it for nothing.
  AnyParticle clone() const;
  /// A new particle of this species with operational parameters drawn from U[0, 1) / N(0, 1)
  /// (LibTorch's default generator: torch::manual_seed makes it repeatable).
  AnyParticle rand() const;
  AnyParticle randn() const;
  /// A new particle of a new species that shares this particle's parameter tensors.
  AnyParticle detach() const;
  /// A new particle of this species holding `other`'s parameter values. `other` may be of any
  /// species with the same parameter paths and shapes; otherwise ShapeError names the first
  /// differing path. Values are converted to this species' dtypes.
  AnyParticle clone_from(const AnyParticle& other) const;

  /// fn(parameter, its config) -> new value, for each operational parameter.
  using UnaryOperator = std::function<at::Tensor(const at::Tensor&, const ParamConfig&)>;
  /// fn(this particle's parameter, other's parameter, config) -> new value.
  using BinaryOperator =
      std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const ParamConfig&)>;
  /// nytorch's custom operations: a new particle of this species whose operational parameters
  /// are fn's results (computed under no-grad; non-operational ones follow their ParamConfig).
  /// fn must return a tensor of the parameter's shape (any dtype converts), else ShapeError
  /// naming the path; a throwing fn changes nothing.
  AnyParticle unary_operator(const UnaryOperator& fn) const;
  /// The same over two particles of one species (SpeciesError otherwise).
  AnyParticle binary_operator(const AnyParticle& other, const BinaryOperator& fn) const;
  /// The particle of submodule `path` ("layer1", "encoder.0"), of its own species; it shares
  /// this particle's tensors (in-place operations show through), and operations on it give new
  /// particles independent of the root. Throws NameError for an unknown path.
  AnyParticle sub(const std::string& path) const;

  /// Sets the ParamConfig of the parameters `name` selects ("" all, a parameter path or a
  /// submodule path) for the whole species. Throws NameError when nothing matches.
  void set_param_config(bool operational, bool clone, const std::string& name = "");
  /// Replaces each selected config c by fn(c).
  void apply_param_config(const std::function<ParamConfig(const ParamConfig&)>& fn,
                          const std::string& name = "");
  /// Index of a parameter (by path, or by one of this particle's parameter tensors) in params().
  /// Throws NameError when there is none.
  int64_t get_param_id(const std::string& path) const;
  int64_t get_param_id(const at::Tensor& parameter) const;
  /// Every parameter with path, shape, dtype, config and storage offset.
  const std::vector<ParamInfo>& params() const { return touched().species->params(); }
  /// The module's parameter tensors, in params() order.
  const std::vector<at::Tensor>& param_tensors() const { return touched().params; }

  /// Writes parameters and buffers with LibTorch serialization, atomically (write, rename).
  /// Throws IOError if the file cannot be written.
  void save(const std::string& path) const;
  /// Reads a file written by save() into this particle, bit for bit. Throws IOError for a
  /// missing or corrupt file, ShapeError for another structure; then nothing is changed.
  void load(const std::string& path);


  // ------------------------------------------------------------ version manager
  // Structure changes (nytorch's version manager). Each appends a version to the species; other
  // particles of the species follow on touch(), which every particle operation, swarm access,
  // save/load and rule run does first. This particle (the initiator) keeps the very object it
  // adds; the others (recipients) get a copy of an added parameter (its value when they touch)
  // or module, and the same tensor for an added buffer; removals are the same for all.
  // A path names the new entry from the root module ("l1.extra"); its parent must exist.
  // On bad input (NameError: unknown parent, path taken, path absent; ShapeError: a shape that
  // conflicts) or a failure part-way, nothing is changed. A sub() view cannot change structure
  // (nyto::Error naming the path to use on its root). Members a module class declares (LinearImpl's
  // `weight`) are not registry entries: after a removal they still hold the tensor, and an added
  // module is reached with submodule()/parameter(), not through a typed member.

  /// Registers `value` as a parameter at `path` and returns it (the same tensor). The new
  /// parameter is operational, clone = true, and joins the flat storage (its data becomes a
  /// view; the tensor object stays the one given). nyto::Error if `value` is undefined, already
  /// a parameter of this particle, or not a leaf of the autograd graph.
  at::Tensor add_parameter(const std::string& path, at::Tensor value, bool requires_grad = true);
  /// Registers `value` as a buffer at `path`, shared by every particle of the species. An existing
  /// buffer at `path` is replaced (ShapeError when the shape or dtype differs). For a value that
  /// must stay local to this particle use set_local_buffer().
  at::Tensor register_buffer(const std::string& path, at::Tensor value);
  /// Registers `module` (a torch::nn::Cloneable) as a submodule at `path`. A module that belongs
  /// to another particle moves to this one with a warning naming both (see set_warning_handler(),
  /// suspicious_submodules()). nyto::Error if LibTorch cannot clone it, if it is already in this
  /// particle, or if it would close a cycle; adding the root module under itself also warns.
  void add_module(const std::string& path, std::shared_ptr<torch::nn::Module> module);
  template <class M>
  void add_module(const std::string& path, const torch::nn::ModuleHolder<M>& module) {
    add_module(path, std::static_pointer_cast<torch::nn::Module>(module.ptr()));
  }
  /// Removes the parameter, buffer or submodule at `path`. NameError if there is none.
  void remove(const std::string& path);
  /// Replaces this particle's buffer at `path` by `value`, for this particle only: no version
  /// event, other particles keep theirs (the seeds' running mean). NameError if `path` is not a
  /// buffer.
  void set_local_buffer(const std::string& path, at::Tensor value);

  /// Brings this particle to its species' newest version (replays the pending events; a swarm
  /// member brings its whole swarm). On failure nothing is changed and the error names the path.
  const AnyParticle& touch() const;
  /// The species version this particle is at (without touching).
  int64_t version() const { return state().version; }
  /// The parameter, buffer or submodule at `path` (after touch()). NameError if there is none.
  at::Tensor parameter(const std::string& path) const;
  at::Tensor buffer(const std::string& path) const;
  std::shared_ptr<torch::nn::Module> submodule(const std::string& path) const;
  /// The paths of submodules that belong to another particle (the seeds'
  /// get_suspicious_submodule), sorted.
  std::vector<std::string> suspicious_submodules() const;

  /// The shared state behind the handle (for nyto's own runtime code).
  const std::shared_ptr<detail::ParticleState>& detail_state() const { return s_; }

 protected:
  friend class AnySwarm;
  detail::ParticleState& state() const;
  detail::ParticleState& touched() const;  ///< state() after touch()
  std::shared_ptr<detail::ParticleState> s_;
};

/// A particle whose module is a T (a torch::nn::Cloneable module, or its ModuleHolder).
template <class T>
class Particle : public AnyParticle {
 public:
  using Module = typename detail::ModuleImpl<T>::type;
  static_assert(std::is_base_of_v<torch::nn::Cloneable<Module>, Module>,
                "nyto::Particle<T> needs a torch::nn::Cloneable<T> module");

  Particle() = default;
  /// Wraps a type-erased particle; throws nyto::Error if its module is not a T.
  explicit Particle(AnyParticle p) : AnyParticle(std::move(p)) {
    if (s_ && !std::dynamic_pointer_cast<Module>(s_->module))
      throw Error("particle's module is a " + s_->module->name() + ", not the requested type");
  }

  // Module is a virtual base of every LibTorch module, hence dynamic_cast.
  Module* operator->() const { return dynamic_cast<Module*>(state().module.get()); }
  Module& operator*() const { return *operator->(); }
  std::shared_ptr<Module> module() const { return std::dynamic_pointer_cast<Module>(state().module); }

  const Particle& touch() const { return AnyParticle::touch(), *this; }
  Particle clone() const { return Particle(AnyParticle::clone()); }
  Particle rand() const { return Particle(AnyParticle::rand()); }
  Particle randn() const { return Particle(AnyParticle::randn()); }
  Particle detach() const { return Particle(AnyParticle::detach()); }
  Particle clone_from(const AnyParticle& other) const {
    return Particle(AnyParticle::clone_from(other));
  }
  Particle unary_operator(const UnaryOperator& fn) const {
    return Particle(AnyParticle::unary_operator(fn));
  }
  Particle binary_operator(const AnyParticle& other, const BinaryOperator& fn) const {
    return Particle(AnyParticle::binary_operator(other, fn));
  }
  /// sub() typed: the submodule must be a U.
  template <class U>
  Particle<U> sub(const std::string& path) const {
    return Particle<U>(AnyParticle::sub(path));
  }
  using AnyParticle::sub;

  /// In-place arithmetic, one fused kernel: `p += 0.5 * q` reads p and q, writes p.
  /// Non-operational parameters are left unchanged. Throws SpeciesError.
  Particle& operator+=(const AnyExpr& e);
  Particle& operator-=(const AnyExpr& e);
  Particle& operator*=(const AnyExpr& e);
  Particle& operator/=(const AnyExpr& e);
};

/// Builds a T from `args` and makes it the first particle of a new species.
template <class T, class... Args>
Particle<T> make_particle(Args&&... args) {
  using M = typename Particle<T>::Module;
  return Particle<T>(AnyParticle::adopt(std::make_shared<M>(std::forward<Args>(args)...)));
}

/// Makes an existing module (already built, perhaps trained) the first particle of a new species.
template <class M>
Particle<M> make_particle_from(std::shared_ptr<M> module) {
  return Particle<M>(AnyParticle::adopt(std::move(module)));
}

}  // namespace nyto

// Particle arithmetic builds lazy expressions, evaluated as one fused kernel.
#include <nyto/expr.h>
