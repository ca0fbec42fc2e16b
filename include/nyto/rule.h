// Compiled update rules: nyto scripts (docs/language.md) bound to particles, swarms and scalars.
//
//   auto pso = nyto::compile_file("examples/rules/pso.nyto");
//   pso.run({{"x", swarm}, {"v", velocity}, {"pbest", pbest}, {"gbest", best}});
#pragma once

#include <nyto/backend.h>
#include <nyto/errors.h>
#include <nyto/swarm.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace nyto {

class ProcessGroup;  // nyto/distributed.h

/// A script that does not compile. rendered() (and what()) holds every diagnostic, rendered as
/// `file:line:col: error[CODE]: message`, the source line and a caret line.
struct CompileError : Error {
  explicit CompileError(const std::string& rendered) : Error(rendered), rendered_(rendered) {}
  /// The whole text, whatever bytes it holds (what(), a C string, would stop at a NUL).
  const std::string& rendered() const { return rendered_; }

 private:
  std::string rendered_;
};

/// A value bound to a rule input or returned as a rule output.
class Value {
 public:
  enum class Kind { Scalar, MemberScalars, Particle, Swarm };
  Value(double scalar) : v_(scalar) {}
  Value(int scalar) : v_(double(scalar)) {}
  /// One scalar per swarm member (length = swarm size).
  Value(std::vector<double> per_member) : v_(std::move(per_member)) {}
  Value(AnyParticle particle) : v_(std::move(particle)) {}
  Value(AnySwarm swarm) : v_(std::move(swarm)) {}
  /// A particle expression, evaluated now.
  Value(const AnyExpr& e) : v_(e.eval()) {}

  Kind kind() const { return Kind(v_.index()); }
  /// Accessors throw BindError when the value is of another kind.
  double scalar() const;
  const std::vector<double>& member_scalars() const;
  const AnyParticle& particle() const;
  const AnySwarm& swarm() const;

 private:
  std::variant<double, std::vector<double>, AnyParticle, AnySwarm> v_;
};

using Bindings = std::map<std::string, Value>;

/// A step of a member fold over the blocks of a distributed run (RunOptions::fold).
enum class FoldStep { Receive, Send, Share };

/// How one run goes.
struct RunOptions {
  /// Overrides of the rule's `param` defaults by name. An unknown name is a BindError (E0504).
  std::map<std::string, double> params;
  /// Key of the random draws (backend/Random.h): the same (seed, invocation) gives the same draws
  /// on every backend and thread count.
  uint64_t seed = 0;
  /// Defaults to a process-wide counter incremented by every run, so successive runs draw anew.
  std::optional<uint64_t> invocation;
  Backend backend = Backend::Llvm;
  /// Only members [first, second) of the bound swarms need their outputs: one rank's block in a
  /// distributed run (docs/distributed.md). Where the kernel is llvm's (or interp's, for a rule
  /// whose members are independent) and no reduction along the parameter axis varies per member
  /// (Rule::runs_on_blocks), only those rows are read and written, and the other rows of
  /// in-place outputs keep their values: a member read x[i] reads the rows it needs (`row`), a
  /// member reduction of a swarm's rows is folded onto the other members' part (`fold`; without
  /// it every member is computed), and a member reduction of values every member can compute
  /// alone (keyed noise `randn(g, j)`, per-member vectors: OpenAI-ES's tell step) is computed
  /// for every member, not stored; otherwise every member is computed. Members keep their
  /// numbers in the whole swarm (member(), the random draws), so the rows computed are
  /// bit-identical to a run without the range. Per-member vectors are still bound for every
  /// member. A range outside [0, members] is a BindError.
  std::optional<std::pair<int64_t, int64_t>> member_range;
  /// With member_range [b, e): the bound swarms hold only those members, row r being member b + r
  /// (e - b rows), of a population of `population` members: one rank's own block when it holds
  /// no other (nyto train's pso and ES ranks). Per-member vectors still hold `population`
  /// values, and member(), members() and the random draws see the population, so the rows are
  /// bit-identical to those of a run on the whole swarm. For a rule that runs_on_blocks() run by
  /// llvm (or interp, when its members are independent); otherwise, or without member_range, a
  /// swarm, or population >= e, a BindError.
  bool block_rows = false;
  int64_t population = 0;
  /// With member_range, for a rule whose members read rows of a swarm (`state mu = x[0]`):
  /// member `member`'s row of swarm input `input`, a particle of the swarm's species. Called
  /// before anything is written, for every row the rule reads at any member of the population
  /// (not only the range's), swarm inputs in input order, members ascending, so every rank of a
  /// distributed run calls it alike and may answer with a collective (a broadcast from the
  /// row's owner); rows inside the range are then taken from the bound swarm. Unset: rows outside
  /// the range come from the bound swarm when it is whole, and with block_rows such a row is a
  /// BindError naming it. A particle of another species: SpeciesError.
  std::function<AnyParticle(const std::string& input, int64_t member)> row;
  /// With member_range, for a rule that reduces a swarm's rows over the members (CEM's
  /// msum(where(rank(f) < n, x, 0)), sep-CMA-ES's msum(w * y)): the fold of the members outside
  /// the range, so that only the range's rows are computed and the result is the same bits as a
  /// run on the whole swarm (the members are folded in order: members before the range, then the
  /// range's, then the rest). Per storage group and per stage of such reductions, per chunk of
  /// the elements (262,144 elements, ascending, the same chunks on every rank), the run calls
  /// fold(Receive, acc) for each reduction: fill `acc` (the chunk) with the fold of the members
  /// before the range and return true, or return false when there are none; then, with the
  /// range's members folded on, fold(Send, acc) (the fold up to the range's end; nothing when
  /// the range is empty and Receive returned false). After the last chunk, fold(Share, acc) for
  /// each chunk, which must leave the fold of every member in `acc`. The return value of Send
  /// and Share is ignored. `acc`: a 1-D tensor of the group's dtype. Called alike on every rank
  /// (ProcessGroup::fold answers it), after the checks, before anything is written. Unset:
  /// such a rule computes every member (a BindError with block_rows).
  std::function<bool(FoldStep step, const at::Tensor& acc)> fold;
  /// The swarms are split over the processes of `group` (nyto/distributed.h): each rank is
  /// authoritative for its block's rows. Every rank runs the rule; what it exchanges first is
  /// read from the rule's IR: a rule whose members are independent (members_independent()), or
  /// that runs_on_blocks() as bound, runs on the rank's own block only (as
  /// member_range), and exchanges only the rows it reads at one index for every member (x[0],
  /// broadcast by their owners into every rank's copy) and its member folds of rows
  /// (ProcessGroup::fold; OpenAI-ES's tell step exchanges nothing);
  /// the other rows of its swarm outputs are then left to their owners. Otherwise each bound swarm
  /// the rule reads across members (msum(x), x[i], ...) is gathered first (every member's rows from
  /// its owner, ProcessGroup::gather_rows), and the rule runs on every member, the same bits on
  /// every rank. Per-member vectors must be bound whole (ProcessGroup::allgather_members). A swarm
  /// of fewer members than the group has ranks is a BindError. Throws what the exchanges throw
  /// (nyto::Error naming the ranks that stopped).
  ProcessGroup* group = nullptr;
};

/// A `state NAME[: KIND] = value` declaration of a generation rule (docs/language.md, "Generation
/// rules"): a value the host keeps from one run to the next, started by `value`.
struct StateDecl {
  std::string name;
  /// "scalar", "vector" (one number per member), "particle", "swarm", or "" (the kind of the
  /// initial value).
  std::string kind;
};

/// What a compiled rule reads and writes.
struct RuleSignature {
  std::vector<std::string> inputs;  ///< names the host binds, in first-use order
  std::vector<std::string> outputs;  ///< names the rule assigns
  std::vector<std::pair<std::string, double>> params;  ///< `param` names and defaults
  std::vector<StateDecl> states;  ///< `state` declarations, in source order
};

/// A compiled rule: checked, lowered to IR and optimized once; kernels are compiled per kind of
/// binding (dtype, which inputs are swarms, particles or scalars) on first use and cached for the
/// process. Copies share the compiled state. Thread-safe to run.
class Rule {
 public:
  const std::string& name() const;
  const RuleSignature& signature() const;
  std::vector<std::string> inputs() const { return signature().inputs; }
  std::vector<std::string> outputs() const { return signature().outputs; }
  std::vector<std::pair<std::string, double>> params() const { return signature().params; }
  std::vector<StateDecl> states() const { return signature().states; }

  /// A generation rule's init part: the rule whose outputs are the states' initial values (each
  /// `state NAME = value` as `NAME = value`, with the params and the lets they read), run once
  /// before the first generation; nullopt when the script declares no state. run() itself is the
  /// step: it leaves the `state` statements out and reads each state as an input.
  std::optional<Rule> init() const;
  /// The names whose values are the operands of the `+` at the top of output `name`'s final
  /// value (an input as read, or another output's final value); empty when that value is not a
  /// sum or `name` is no output. A trainer reads `x = mu + sigma * randn()` as sampling around
  /// the search mean mu.
  std::vector<std::string> summands(const std::string& name) const;
  /// Whether no member's values read another member's: no member reduction (msum, mmin, mmax),
  /// member read (x[i], pick) or ranking (rank, argmin...) in the rule. Such a rule can run on one
  /// block of members alone (RunOptions::member_range), which a distributed trainer uses.
  bool members_independent() const;
  /// Whether RunOptions::block_rows can run this rule (the step; ask init() for the init part)
  /// with its inputs bound as in `bindings` (only their kinds matter; an input not bound counts
  /// as a swarm; the answer is kept per kinds): no reduction along the parameter axis (tsum,
  /// psum, ...) of a value that varies per member (PGPE's and sep-CMA-ES's psum of a particle
  /// are fine) or in a pass that reads rows at another member, and no member read of a swarm
  /// at an index that varies per member (DE's p[pick(0)]: most rows would travel to every rank
  /// on every run). Member reads at an index the same for every member (`x[0]`) take
  /// RunOptions::row; member reductions of a swarm's rows (CEM's msum(where(rank(f) < n, x, 0)))
  /// take RunOptions::fold; reductions of what every member computes alone (keyed noise
  /// randn(g, j), per-member vectors, particles: OpenAI-ES's tell step) are computed whole by
  /// every rank.
  bool runs_on_blocks(const Bindings& bindings = {}) const;
  /// The inputs the rule reads across members: those an msum/mmin/mmax, x[i], pick or ranking
  /// reads, directly or through other values. A distributed run gathers these swarms first.
  std::vector<std::string> cross_member_inputs() const;
  /// A diagnostic located at state `name`'s declaration (at its kind, when written), rendered as
  /// compile errors are: for a host's checks of the states (kind of the initial value...).
  std::string state_diagnostic(const std::string& name, const std::string& code,
                               const std::string& message) const;

  /// Runs the rule once. Inputs bind to particles, swarms, scalars or per-member scalar vectors;
  /// an assigned name that is bound (an input such as x in `x = x + v`, or any bound output name)
  /// is updated in place, every other assigned name is returned as a new particle (or a new swarm
  /// when a swarm is bound). Operands must be of one species (SpeciesError), swarms of one size,
  /// and everything is checked before the first write (BindError with a located diagnostic);
  /// a failed run changes nothing. Only operational parameters are computed; new outputs get the
  /// non-operational ones per ParamConfig from the first particle operand.
  std::map<std::string, Value> run(const Bindings& bindings, const RunOptions& options = {}) const;

  /// Text of a compiler stage: "ast", "ir" (as lowered), "ir-opt" (the fused kernel after the
  /// passes) or "llvm": what run() on `backend` would run for `bindings`: each input's kind, and
  /// per storage group of the first particle or swarm bound, the LLVM kernel of its dtype
  /// (float32, float64) or a comment line saying the aten backend runs it (other dtypes such as
  /// float16, other devices, or backend Aten); one group gives the bare kernel. Without a
  /// particle or swarm bound, the float32 kernel; an input missing from `bindings` counts as a
  /// swarm. Throws Error for another stage name.
  std::string emit(const std::string& stage, const Bindings& bindings = {},
                   Backend backend = Backend::Llvm) const;
  /// The IR after every pass of the pipeline, with per-pass times (the pipeline is run again to
  /// print it; compiling a rule prints nothing).
  std::string pass_trace() const;

  struct Impl;
  explicit Rule(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

/// Compiles `source`; `name` is the file name shown in diagnostics. With `known_names`, an input
/// not among them is an error with a suggestion. Throws CompileError with every diagnostic.
Rule compile(std::string_view source, const std::string& name = "<rule>",
             const std::optional<std::vector<std::string>>& known_names = std::nullopt);
/// How compile() treats a script (an overload keeps the older signature working).
struct CompileOptions {
  /// REPL mode: a bare expression is allowed and becomes the output named "_"; a script that
  /// assigns nothing (only params or lets) is not an error.
  bool repl = false;
  /// As `known_names` of the other overload.
  std::optional<std::vector<std::string>> known_names;
  /// Names the host will bind as inputs only (values it owns, such as a trainer's gbest): a
  /// script that assigns one fails to compile (CompileError, E0205 at the assignment), since
  /// run() would update that binding in place.
  std::vector<std::string> read_only;
  /// Generation rules: the names the host binds when it computes the states' initial values,
  /// before the first generation (nyto train: x and g); as known_names, for the init part.
  std::optional<std::vector<std::string>> init_known_names;
};
Rule compile(std::string_view source, const std::string& name, const CompileOptions& options);
/// The largest rule script read_rule_file() reads: 16 MiB.
constexpr size_t kMaxScriptBytes = size_t(16) << 20;
/// The text of a rule script: a regular file or a pipe of at most kMaxScriptBytes. Throws IOError
/// if it cannot be read, is a directory or a device (/dev/zero), or is larger.
std::string read_rule_file(const std::string& path);
/// read_rule_file() and compile(). Throws IOError, CompileError.
Rule compile_file(const std::string& path,
                  const std::optional<std::vector<std::string>>& known_names = std::nullopt);

}  // namespace nyto
