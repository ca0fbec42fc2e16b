// Swarms: N particles of one species in one [N, P] storage per (dtype, device) group.
#pragma once

#include <nyto/particle.h>

#include <memory>
#include <string>
#include <vector>

namespace nyto {

/// How a swarm's members are initialized from the seed particle.
enum class SwarmInit {
  Copies,  ///< every member a copy of the seed
  Rand,    ///< operational parameters drawn from U[0, 1)
  Randn,   ///< operational parameters drawn from N(0, 1)
};

namespace detail {
struct SwarmState {
  std::shared_ptr<Species> species;
  std::vector<at::Tensor> storage;  ///< per group, [N, P_group], row-major: member i is row i
  std::vector<std::shared_ptr<ParticleState>> members;
  int64_t version = 0;  ///< the species version `storage` is laid out for
};
}  // namespace detail

/// N members of one species. Member i's module parameters are views into row i of the storage,
/// so a rule bound to the swarm runs as one kernel over all rows, and training a member through
/// its module changes its row.
class AnySwarm {
 public:
  AnySwarm() = default;
  /// Throws nyto::Error if n < 1.
  AnySwarm(const AnyParticle& seed, int64_t n, SwarmInit init = SwarmInit::Copies);
  /// A handle on existing swarm state (for nyto's own runtime code).
  explicit AnySwarm(std::shared_ptr<detail::SwarmState> state) : s_(std::move(state)) {}

  int64_t size() const;
  const std::shared_ptr<Species>& species() const;
  /// Storage per group, shape [size(), group numel] (after touch()).
  const std::vector<at::Tensor>& storage() const;
  /// Brings every member to the species' newest version and re-lays the [N, P] storage out.
  /// On failure nothing is changed.
  const AnySwarm& touch() const;
  /// The species version the storage is laid out for (without touching).
  int64_t version() const;
  /// Member i (a handle: the same particle on every call). Throws nyto::Error out of range.
  AnyParticle member(int64_t i) const;

  /// Writes every member's parameters and buffers (atomically: write, rename). Throws IOError.
  void save(const std::string& path) const;
  /// Reads a file written by save(). Throws IOError (missing, corrupt), ShapeError (another
  /// structure or member count); then nothing is changed.
  void load(const std::string& path);

  /// The shared state behind the handle (for nyto's own runtime code).
  const std::shared_ptr<detail::SwarmState>& detail_state() const { return s_; }

 protected:
  std::shared_ptr<detail::SwarmState> s_;
};

/// A swarm of Particle<T> members.
template <class T>
class Swarm : public AnySwarm {
 public:
  Swarm() = default;
  Swarm(const Particle<T>& seed, int64_t n, SwarmInit init = SwarmInit::Copies)
      : AnySwarm(seed, n, init) {}
  Particle<T> operator[](int64_t i) const { return Particle<T>(member(i)); }
};

}  // namespace nyto

#include <nyto/member_expr.h>
