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
/// State behind a particle handle. Copies of a handle share it (like Python references).
struct ParticleState {
  std::shared_ptr<Species> species;
  std::shared_ptr<torch::nn::Module> module;
  std::vector<at::Tensor> storage;  ///< one 1-D contiguous tensor per species group
  std::vector<at::Tensor> params;   ///< the module's parameter tensors, in species order
};

enum class BinOp { Add, Sub, Mul, Div, Pow };

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
  const std::vector<at::Tensor>& storage() const { return state().storage; }
  bool same_species(const AnyParticle& other) const { return species() == other.species(); }

  /// A new particle of this species with a copy of every parameter (non-operational parameters
  /// with clone = false are shared, as for every new particle).
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
  const std::vector<ParamInfo>& params() const { return species()->params(); }
  /// The module's parameter tensors, in params() order.
  const std::vector<at::Tensor>& param_tensors() const { return state().params; }

  /// Writes parameters and buffers with LibTorch serialization, atomically (write, rename).
  /// Throws IOError if the file cannot be written.
  void save(const std::string& path) const;
  /// Reads a file written by save() into this particle, bit for bit. Throws IOError for a
  /// missing or corrupt file, ShapeError for another structure; then nothing is changed.
  void load(const std::string& path);

  // Eager particle operations (a later version routes them through the rule compiler).
  AnyParticle binary(const AnyParticle& other, detail::BinOp op) const;
  AnyParticle binary(double scalar, detail::BinOp op, bool reflected = false) const;
  AnyParticle neg() const;
  void binary_(const AnyParticle& other, detail::BinOp op);
  void binary_(double scalar, detail::BinOp op);

  /// The shared state behind the handle (for nyto's own runtime code).
  const std::shared_ptr<detail::ParticleState>& detail_state() const { return s_; }

 protected:
  friend class AnySwarm;
  detail::ParticleState& state() const;
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

  Particle clone() const { return Particle(AnyParticle::clone()); }
  Particle rand() const { return Particle(AnyParticle::rand()); }
  Particle randn() const { return Particle(AnyParticle::randn()); }
  Particle detach() const { return Particle(AnyParticle::detach()); }
  Particle clone_from(const AnyParticle& other) const {
    return Particle(AnyParticle::clone_from(other));
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
