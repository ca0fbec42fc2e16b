// A generation rule's states (docs/language.md, "Generation rules"): what `nyto train --mode
// evolve` keeps from one generation to the next. Started by the rule's init part, bound on every
// generation, taken back from the rule's outputs, checked by a dry run, written to and restored
// from checkpoints. Nothing here knows an algorithm: the rule's declarations say it all.
#pragma once

#include <ATen/core/ivalue.h>
#include <nyto/rule.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nyto::cli {

class GenerationState {
 public:
  /// The states `rule` declares (Rule::states()), in declaration order, not yet started. `rule` is
  /// the step; it must outlive this object.
  explicit GenerationState(const Rule& rule);

  /// Runs the init part (Rule::init()) on the initial population `x` with g = 0, `params` and
  /// draws of (seed, invocation 0), and brings each value to its declared kind: a number fills a
  /// vector (of x.size() entries), a particle or a swarm shaped as x's members; a per-member vector
  /// fills a swarm member by member; a particle every member of a swarm. The fill is a rule, so
  /// ParamConfig decides non-operational parameters as in any run. `state x = ...` updates x in
  /// place. Throws BindError (E0510, located at the declaration) for a value that cannot be brought
  /// to its kind, and whatever the init's run throws.
  /// `block`: RunOptions::block_rows, member_range and population when x holds one block of the
  /// population (then a vector fills population entries, and the init runs on the block's rows).
  void start(const AnySwarm& x, const std::map<std::string, double>& params, uint64_t seed,
             const RunOptions& block = {});
  /// What start() binds the init part to: the population x and g = 0.
  static Bindings init_bindings(const AnySwarm& x) { return {{"x", x}, {"g", 0.0}}; }
  /// State `name`'s swarm, or nullptr when it is no swarm state.
  const AnySwarm* swarm(const std::string& name) const;

  /// Binds every state but x (the trainer's own binding). `copies`: clones of the particles and
  /// swarms, for a dry run that must change nothing.
  void bind(Bindings& b, bool copies = false) const;
  /// The names bind() adds.
  std::vector<std::string> names() const;

  /// Takes back what Rule::run() returned for scalar and vector states (particles and swarms are
  /// updated in place). `check` (after the dry run): keeps nothing, and throws BindError (E0510)
  /// when a state gets a value of another kind, UsageError when an output is neither x nor a state
  /// (the trainer would drop it after every generation).
  void take(const std::map<std::string, Value>& outputs, bool check);

  /// The search mean: the particle state that x is sampled around (`x = mu + ...`, read from the
  /// rule's IR by Rule::summands), or nullptr. `name` gets its name.
  const AnyParticle* mean(std::string* name = nullptr) const;

  /// Names and kinds of the states but x, "mu:particle pf:vector": what a checkpoint must match.
  std::string signature() const;
  /// Checkpoint fields: "state_NAME" (a scalar, or a double tensor [M] for a vector) and
  /// "state_NAME_G" (storage group G of a particle [n_g] or a swarm [M, n_g]). `rows` is true for
  /// a field with a row per member (a vector's, a swarm's), which each rank writes for its own
  /// members (a checkpoint's parts).
  void save(const std::function<void(const std::string&, const c10::IValue&, bool rows)>& put) const;
  /// Sets the states from fields as save() writes them, after checking all of them against this
  /// run's states (signature, kind, shape, dtype, no field left over): for the first that does
  /// not fit, `unfit(what)` is called, which must throw; then nothing has changed.
  void restore(const std::string& signature, const std::map<std::string, c10::IValue>& fields,
               const std::function<void(const std::string&)>& unfit);

 private:
  struct State {
    std::string name;
    std::string kind;  // scalar, vector, particle, swarm ("" until started, when undeclared)
    Value value{0.0};
  };
  State* find(const std::string& name);

  const Rule& rule_;
  std::vector<State> states_;
  std::string mean_;
};

}  // namespace nyto::cli
