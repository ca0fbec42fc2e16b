// Compiling rules and binding them to particles, swarms and scalars.
#include <ATen/ATen.h>
#include <nyto/rule.h>
#include <nyto/distributed.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "backend/KernelCache.h"
#include "backend/Prelude.h"
#include "backend/ParamAxis.h"
#include "backend/Staged.h"
#include "backend/aten/AtenBackend.h"
#include "backend/llvm/LlvmBackend.h"
#include "frontend/Frontend.h"
#include "ir/Passes.h"
#include "runtime/detail.h"
#include "runtime/run_graph.h"

namespace nyto {

// ---------------------------------------------------------------- Value

namespace {
[[noreturn]] void wrong_kind(const char* wanted) {
  throw BindError(std::string("value is not a ") + wanted);
}
}  // namespace

double Value::scalar() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  wrong_kind("scalar");
}
const std::vector<double>& Value::member_scalars() const {
  if (auto* d = std::get_if<std::vector<double>>(&v_)) return *d;
  wrong_kind("per-member scalar vector");
}
const AnyParticle& Value::particle() const {
  if (auto* d = std::get_if<AnyParticle>(&v_)) return *d;
  wrong_kind("particle");
}
const AnySwarm& Value::swarm() const {
  if (auto* d = std::get_if<AnySwarm>(&v_)) return *d;
  wrong_kind("swarm");
}

// ---------------------------------------------------------------- compile

struct Rule::Impl {
  std::string name;
  frontend::FrontendResult fe;
  std::shared_ptr<const Impl> init;  // a generation rule's init part
  ir::FusedKernel fused;
  RuleSignature sig;
  mutable detail::BindPlanCache plans;  // of fused.graph
  mutable std::mutex blocks_mu;
  mutable std::map<std::string, bool> blocks;  // runs_on_blocks() per binding kinds ('0' + BindKind)
};

namespace {

BindKind bind_kind(Value::Kind k) {
  switch (k) {
    case Value::Kind::Scalar: return BindKind::Scalar;
    case Value::Kind::MemberScalars: return BindKind::MemberScalar;
    case Value::Kind::Particle: return BindKind::Particle;
    case Value::Kind::Swarm: break;
  }
  return BindKind::Swarm;
}

KernelCache& kernel_cache() {
  KernelCache& cache = default_cache();
  static std::once_flag once;
  std::call_once(once, [&] {
    cache.set_factory(Backend::Aten, [](const ir::Graph& g, const KernelSpec& s) {
      return aten_backend::compile(g, s);
    });
  });
  return cache;
}

std::string located(const Rule::Impl& r, const char* code, const frontend::Span& span,
                    const std::string& message) {
  return frontend::render(*r.fe.source, frontend::Diagnostic{code, span, message});
}

std::string suggestion(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best = frontend::closest_match(name, candidates);
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

}  // namespace

Rule compile(std::string_view source, const std::string& name,
             const std::optional<std::vector<std::string>>& known_names) {
  CompileOptions options;
  options.known_names = known_names;
  return compile(source, name, options);
}

namespace {

// Parses, checks, lowers and optimizes one part of a script. Throws CompileError.
std::shared_ptr<Rule::Impl> compile_part(std::string_view source, const std::string& name,
                                         const frontend::FrontendOptions& opts) {
  auto impl = std::make_shared<Rule::Impl>();
  impl->name = name;
  impl->fe = frontend::compile_source(source, name, opts);
  if (!impl->fe.ok) throw CompileError(frontend::render_all(impl->fe));
  impl->fused = ir::optimize(impl->fe.graph);
  const ir::Graph& g = impl->fe.graph;
  for (const auto& in : g.inputs) impl->sig.inputs.push_back(in.name);
  for (const auto& out : g.outputs) impl->sig.outputs.push_back(out.name);
  for (const auto& p : g.params) impl->sig.params.emplace_back(p.name, p.default_value);
  for (const auto& st : impl->fe.states) impl->sig.states.push_back({st.name, st.kind});
  return impl;
}

}  // namespace

Rule compile(std::string_view source, const std::string& name, const CompileOptions& options) {
  frontend::FrontendOptions opts;
  opts.repl = options.repl;
  opts.known_names = options.known_names;
  opts.read_only = options.read_only;
  auto impl = compile_part(source, name, opts);
  if (!impl->fe.states.empty()) {
    // A generation rule: its init part too (docs/language.md, "Generation rules").
    opts.state_init = true;
    opts.repl = false;
    opts.known_names = options.init_known_names;
    if (options.init_known_names) {
      std::string names;
      for (const auto& n : *options.init_known_names) names += (names.empty() ? "" : ", ") + n;
      opts.unknown_name_hint = " (a state's initial value is computed before the first run, when the "
                               "host binds " + (names.empty() ? std::string("nothing") : "only " + names) +
                               ", the params and the states declared before it)";
    }
    impl->init = compile_part(source, name, opts);
  }
  return Rule(std::move(impl));
}

std::string read_rule_file(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string what = "cannot read rule '" + path + "': ";
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (fs::is_directory(st))  // an ifstream would read it as an empty script
    throw IOError(what + "it is a directory");
  // /dev/zero or /dev/urandom would be read forever: only files and pipes hold scripts.
  if (fs::is_character_file(st) || fs::is_block_file(st) || fs::is_socket(st))
    throw IOError(what + "it is a device or socket, not a file");
  auto too_large = [&] {
    return IOError(what + "it is larger than " + std::to_string(kMaxScriptBytes >> 20) +
                   " MiB, the most a rule script may hold");
  };
  if (fs::is_regular_file(st) && fs::file_size(path, ec) > kMaxScriptBytes && !ec) throw too_large();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(what + "no such file or not readable");
  // Read in chunks and stop once past the limit: a pipe or a growing file cannot make us read
  // forever.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, size_t(in.gcount()));
    if (text.size() > kMaxScriptBytes) throw too_large();
  }
  if (in.bad()) throw IOError(what + "read error");
  return text;
}

Rule compile_file(const std::string& path, const std::optional<std::vector<std::string>>& known_names) {
  return compile(read_rule_file(path), path, known_names);
}

const std::string& Rule::name() const { return impl_->name; }
std::optional<Rule> Rule::init() const {
  if (!impl_->init) return std::nullopt;
  return Rule(impl_->init);
}
std::vector<std::string> Rule::summands(const std::string& name) const {
  const ir::Graph& g = impl_->fe.graph;
  std::vector<std::string> out;
  for (const auto& o : g.outputs) {
    if (o.name != name) continue;
    const ir::Node& n = g.nodes[size_t(o.node)];
    if (n.op != ir::Op::Add) return out;
    for (int a = 0; a < 2; ++a) {
      const ir::NodeId id = n.args[a];
      const ir::Node& arg = g.nodes[size_t(id)];
      if (arg.op == ir::Op::Input) out.push_back(g.inputs[size_t(arg.index)].name);
      for (const auto& other : g.outputs)
        if (other.node == id && other.name != name) out.push_back(other.name);
    }
  }
  return out;
}
std::vector<std::string> Rule::cross_member_inputs() const {
  const ir::Graph& g = impl_->fe.graph;
  std::vector<char> seen(g.nodes.size(), 0);
  std::vector<ir::NodeId> todo;
  for (const ir::Node& n : g.nodes)
    if (ir::crosses_members(n.op))
      for (ir::NodeId a : n.args)
        if (a >= 0) todo.push_back(a);
  std::vector<std::string> out;
  while (!todo.empty()) {
    const ir::NodeId id = todo.back();
    todo.pop_back();
    if (id < 0 || seen[size_t(id)]) continue;
    seen[size_t(id)] = 1;
    const ir::Node& n = g.nodes[size_t(id)];
    if (n.op == ir::Op::Input) {
      const std::string& name = g.inputs[size_t(n.index)].name;
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
      continue;
    }
    for (ir::NodeId a : n.args)
      if (a >= 0) todo.push_back(a);
  }
  return out;
}
bool Rule::members_independent() const {
  const ir::Graph& g = impl_->fe.graph;
  return std::none_of(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return ir::crosses_members(n.op); });
}
bool Rule::runs_on_blocks(const Bindings& bindings) const {
  const ir::Graph& g = impl_->fused.graph;
  KernelSpec spec;
  std::string key;
  for (const ir::InputDecl& in : g.inputs) {
    auto it = bindings.find(in.name);
    spec.kinds.push_back(bind_kind(it == bindings.end() ? Value::Kind::Swarm : it->second.kind()));
    key += char('0' + int(spec.kinds.back()));
  }
  std::lock_guard<std::mutex> lock(impl_->blocks_mu);
  auto [memo, fresh] = impl_->blocks.try_emplace(key, false);
  if (!fresh) return memo->second;
  // A member read at an index that varies per member (DE's p[pick(0)], GA's x[p1]) would bring
  // most rows of the population to every rank on every run: holding the population is cheaper.
  const ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  const bool windows = param_axis::needed(g) ? param_axis::windowable(g, spec) : staged::windowable(g, spec);
  memo->second = windows && std::none_of(typed.nodes.begin(), typed.nodes.end(), [&](const ir::Node& n) {
    return n.op == ir::Op::MRead && typed.nodes[size_t(n.args[0])].type.member &&
           typed.nodes[size_t(n.args[1])].type.member;
  });
  return memo->second;
}
std::string Rule::state_diagnostic(const std::string& name, const std::string& code,
                                   const std::string& message) const {
  for (const auto& st : impl_->fe.states)
    if (st.name == name)
      return frontend::render(*impl_->fe.source, frontend::Diagnostic{code, st.kind_span, message});
  throw std::invalid_argument("Rule::state_diagnostic: the rule declares no state '" + name + "'");
}
const RuleSignature& Rule::signature() const { return impl_->sig; }
std::string Rule::pass_trace() const {
  // Printed on demand by running the pipeline again (it is deterministic): printing the whole IR
  // after every pass on every compile made compile time grow with the trace, not the rule.
  std::ostringstream trace;
  ir::PassOptions po;
  po.print_after = &trace;
  po.timings = &trace;
  ir::optimize(impl_->fe.graph, po);
  return trace.str();
}

std::string Rule::emit(const std::string& stage, const Bindings& bindings, Backend backend) const {
  if (stage == "ast") return impl_->fe.ast_dump();
  if (stage == "ir") return ir::print(impl_->fe.graph);
  // As run() would: each input's kind, and the groups of the first particle or swarm bound. An
  // unbound input is taken as the rule suggests: a scalar where it is read as one, a swarm where
  // a member construct (msum, x[i], ...) reads it, else a particle.
  const ir::Graph& fg = impl_->fused.graph;
  std::vector<char> per_member(fg.nodes.size(), 0);
  for (size_t i = fg.nodes.size(); i-- > 0;) {
    const ir::Node& n = fg.nodes[i];
    if (ir::crosses_members(n.op)) per_member[size_t(n.args[0])] = 1;
    if (per_member[i])
      for (int a = 0; a < ir::op_arity(n.op); ++a) per_member[size_t(n.args[a])] = 1;
  }
  const bool v1 = std::any_of(fg.nodes.begin(), fg.nodes.end(), [](const ir::Node& n) { return ir::crosses_members(n.op); });
  KernelSpec spec;
  std::shared_ptr<Species> sp;
  std::string assumed;
  for (const auto& in : fg.inputs) {
    auto it = bindings.find(in.name);
    size_t index = size_t(&in - fg.inputs.data());
    BindKind kind = v1 ? BindKind::Particle : BindKind::Swarm;
    for (size_t i = 0; i < fg.nodes.size(); ++i) {
      const ir::Node& n = fg.nodes[i];
      if (n.op != ir::Op::Input || size_t(n.index) != index) continue;
      if (!n.type.element) kind = BindKind::Scalar;
      else if (per_member[i]) kind = BindKind::Swarm;
    }
    if (it != bindings.end()) {
      const Value& v = it->second;
      switch (v.kind()) {
        case Value::Kind::Scalar: kind = BindKind::Scalar; break;
        case Value::Kind::MemberScalars: kind = BindKind::MemberScalar; break;
        case Value::Kind::Particle: kind = BindKind::Particle; break;
        case Value::Kind::Swarm: kind = BindKind::Swarm; break;
      }
      if (!sp && v.kind() == Value::Kind::Particle) sp = v.particle().species();
      if (!sp && v.kind() == Value::Kind::Swarm) sp = v.swarm().species();
    } else {
      static const char* names[] = {"a scalar", "a per-member vector", "a particle", "a swarm"};
      assumed += std::string(assumed.empty() ? "" : ", ") + in.name + " as " + names[int(kind)];
    }
    spec.kinds.push_back(kind);
  }
  const bool params = param_axis::needed(impl_->fused.graph);
  if (params) {
    // As run() would: an output without the element and tensor axes is a value output unless a
    // particle or swarm is bound to its name.
    const ir::Graph typed = ir::specialize_inputs(fg, bind_types(spec.kinds));
    for (const ir::Output& o : fg.outputs) {
      auto it = bindings.find(o.name);
      const bool array = it != bindings.end() && (it->second.kind() == Value::Kind::Particle ||
                                                  it->second.kind() == Value::Kind::Swarm);
      spec.values.push_back(detail::is_value_output(typed.nodes[size_t(o.node)].type, array));
    }
  }
  const bool staged = !params && staged::needed(impl_->fused.graph, spec);
  if (stage == "ir-opt") {
    std::string text = ir::print(impl_->fused);
    if (params)
      text += "\n; the passes over the parameter axis (docs/language.md, \"Parameter axis\")" +
              (assumed.empty() ? std::string() : ", with unbound inputs taken as bound: " + assumed) +
              "\n" + param_axis::describe(impl_->fused.graph, spec);
    if (staged)
      text += "\n; the member loop (docs/language.md, \"Cost\")" +
              (assumed.empty() ? std::string() : ", with unbound inputs taken as bound: " + assumed) +
              "\n" + staged::describe(impl_->fused.graph, spec);
    return text;
  }
  if (stage == "llvm") {
    auto kernel_ir = [&](DType dtype) {
      spec.dtype = dtype;
      try {
        if (params) {
          std::string text;
          int p = 0;
          for (const auto& [pg, ps] : param_axis::pass_kernels(impl_->fused.graph, spec)) {
            text += "; pass " + std::to_string(p++) + " (see --emit ir-opt)\n";
            if (!staged::needed(pg, ps)) {
              text += llvm_backend::emit_llvm_ir(pg, ps, /*optimized=*/true);
              continue;
            }
            int k = 0;
            for (const auto& [kg, ks] : staged::stage_kernels(pg, ps))
              text += "; stage kernel " + std::to_string(k++) + "\n" + llvm_backend::emit_llvm_ir(kg, ks, /*optimized=*/true);
          }
          return text;
        }
        if (staged) {
          std::string text;
          int k = 0;
          for (const auto& [kg, ks] : staged::stage_kernels(impl_->fused.graph, spec))
            text += "; stage kernel " + std::to_string(k++) + " (see --emit ir-opt)\n" +
                    llvm_backend::emit_llvm_ir(kg, ks, /*optimized=*/true);
          return text;
        }
        return llvm_backend::emit_llvm_ir(impl_->fused.graph, spec, /*optimized=*/true);
      } catch (const llvm_backend::JitError& e) {
        throw Error(std::string("LLVM failed: ") + e.what());
      }
    };
    std::string note;
    if (backend == Backend::Interp)
      note = "; the interp backend runs this rule (it interprets the IR); this is the kernel the "
             "llvm backend would compile\n";
    if (!sp) return note + kernel_ir(DType::F32);
    // One text per storage group that the rule computes: the kernel of its dtype, or what runs
    // it instead (the aten backend takes every dtype but float32/float64 and other devices).
    std::vector<std::pair<size_t, const StorageGroup*>> computed;
    for (size_t g = 0; g < sp->groups().size(); ++g)
      if (!sp->operational_ranges(int(g)).empty()) computed.emplace_back(g, &sp->groups()[g]);
    if (computed.empty()) return "; no operational parameter: the rule computes nothing\n";
    std::string out;
    std::set<DType> shown;
    for (auto [g, sg] : computed) {
      bool llvm = backend != Backend::Aten && sg->device.is_cpu() &&
                  (sg->dtype == at::kFloat || sg->dtype == at::kDouble);
      std::string group = "; storage group " + std::to_string(g) + " (" +
                          c10::toString(sg->dtype) + " on " + sg->device.str() + ")";
      if (!llvm) {
        out += group + ": run by the aten backend (one LibTorch op per IR node), no LLVM kernel\n";
        continue;
      }
      DType d = sg->dtype == at::kDouble ? DType::F64 : DType::F32;
      if (computed.size() == 1) return note + kernel_ir(d);
      if (!shown.insert(d).second) {
        out += group + ": the " + std::string(d == DType::F64 ? "float64" : "float32") +
               " kernel above\n";
        continue;
      }
      out += group + ":\n" + kernel_ir(d);
      if (!out.empty() && out.back() != '\n') out += '\n';
    }
    return note + out;
  }
  throw Error("unknown stage '" + stage + "'; expected ast, ir, ir-opt or llvm");
}

// ---------------------------------------------------------------- run

namespace {

std::atomic<uint64_t> next_invocation{0};

// One bound operand, resolved.
struct Operand {
  BindKind kind = BindKind::Scalar;
  double scalar = 0;
  const std::vector<double>* member_scalars = nullptr;
  std::shared_ptr<detail::ParticleState> particle;
  std::shared_ptr<detail::SwarmState> swarm;
  std::string name;

  const std::shared_ptr<Species>& species() const {
    return particle ? particle->species : swarm->species;
  }
  const at::Tensor& storage(int g) const { return particle ? particle->storage[g] : swarm->storage[g]; }
  bool is_array() const { return particle || swarm; }
};

Operand resolve(const std::string& name, const Value& v) {
  Operand op;
  op.name = name;
  op.kind = bind_kind(v.kind());
  switch (v.kind()) {
    case Value::Kind::Scalar: op.scalar = v.scalar(); break;
    case Value::Kind::MemberScalars: op.member_scalars = &v.member_scalars(); break;
    case Value::Kind::Particle:
      op.particle = v.particle().detail_state();
      if (!op.particle) throw BindError("'" + name + "' is bound to an empty particle handle");
      break;
    case Value::Kind::Swarm:
      op.swarm = v.swarm().detail_state();
      if (!op.swarm) throw BindError("'" + name + "' is bound to an empty swarm handle");
      break;
  }
  // Rules run on the species' newest version: replay pending structure events before any check
  // reads the layout (a touch changes no value; a failed one changes nothing and names the path).
  if (op.particle) detail::touch(*op.particle);
  if (op.swarm) detail::touch(*op.swarm);
  return op;
}

bool overlaps(const at::Tensor& a, const at::Tensor& b) {
  auto* a0 = static_cast<const char*>(a.data_ptr());
  auto* b0 = static_cast<const char*>(b.data_ptr());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

void bring_up_to_date(const Operand& op) {
  // The newest version (detail::touch, also done in resolve()); then operational parameters
  // that were shared and became operational move back into storage.
  if (op.particle) detail::ensure_operational_in_storage(*op.particle);
  if (op.swarm) {
    detail::touch(*op.swarm);
    for (auto& m : op.swarm->members) detail::ensure_operational_in_storage_touched(*m);
  }
}

}  // namespace

// A bound particle, swarm, scalar or per-member vector as the checked path saw it. In detail, not
// in the anonymous namespace, because detail::FastRun (declared in a header) holds them.
namespace detail {
struct ReplayBound;
}
struct detail::ReplayBound {
  BindKind kind = BindKind::Scalar;
  std::weak_ptr<void> state;  // the ParticleState or SwarmState (its control block: no ABA)
  const Species* species = nullptr;
  int64_t version = 0;
  int64_t configs_set = 0;  // Species::configs_set(): ParamConfig changes keep the version
  int64_t members = 0;      // swarm size, per-member vector length
  std::vector<std::pair<const void*, int64_t>> storage;  // per group: data and numel
  // Per operational parameter of each particle (each member of a swarm): where its data was, in
  // storage. A parameter pointed elsewhere since (set_data by hand) is moved back by the run.
  struct Slot {
    const at::Tensor* param;
    const char* data;
    detail::ParticleState* owner;
  };
  std::vector<Slot> slots;

  static ReplayBound of(const Operand& op) {
    ReplayBound b;
    b.kind = op.kind;
    if (op.member_scalars) b.members = int64_t(op.member_scalars->size());
    if (!op.is_array()) return b;
    if (op.particle) b.state = op.particle, b.version = op.particle->version;
    if (op.swarm) b.state = op.swarm, b.version = op.swarm->version, b.members = int64_t(op.swarm->members.size());
    b.species = op.species().get();
    b.configs_set = b.species->configs_set();
    for (const at::Tensor& t : op.particle ? op.particle->storage : op.swarm->storage)
      b.storage.emplace_back(t.data_ptr(), t.numel());
    auto add = [&b](detail::ParticleState& p) {
      const auto& infos = p.species->params();
      for (size_t i = 0; i < infos.size(); ++i)
        if (infos[i].config.operational && infos[i].numel > 0)
          b.slots.push_back({&p.params[i], detail::first_byte(p.params[i]), &p});
    };
    if (op.particle) add(*op.particle);
    if (op.swarm)
      for (auto& m : op.swarm->members) add(*m);
    return b;
  }
  // The run's bring_up_to_date: parameters still where they were cost a comparison each.
  void bring_into_storage() const {
    for (const Slot& s : slots)
      if (detail::first_byte(*s.param) != s.data) detail::ensure_operational_in_storage_touched(*s.owner);
  }
  template <class State>
  bool same(const std::shared_ptr<State>& s) const {
    if (!s || state.owner_before(s) || s.owner_before(state)) return false;
    detail::touch(*s);  // the newest version, as resolve() does; a change shows in the version
    if (s->version != version || s->species.get() != species || species->configs_set() != configs_set ||
        s->storage.size() != storage.size())
      return false;
    for (size_t g = 0; g < storage.size(); ++g)
      if (s->storage[g].data_ptr() != storage[g].first || s->storage[g].numel() != storage[g].second) return false;
    return true;
  }
  // Whether `v` is bound as checked (and brought to its newest version).
  bool matches(const Value& v) const {
    if (bind_kind(v.kind()) != kind) return false;
    switch (v.kind()) {
      case Value::Kind::Scalar: return true;
      case Value::Kind::MemberScalars: return int64_t(v.member_scalars().size()) == members;
      case Value::Kind::Particle: return same(v.particle().detail_state());
      case Value::Kind::Swarm:
        return same(v.swarm().detail_state()) && int64_t(v.swarm().detail_state()->members.size()) == members;
    }
    return false;
  }
  // Whether `o` binds the same particle or swarm (then one of the two checks its slots).
  bool same_state(const ReplayBound& o) const {
    return !state.expired() && !state.owner_before(o.state) && !o.state.owner_before(state);
  }
};

struct detail::FastRun {
  std::vector<ReplayBound> in, out;  // per graph input, per graph output (all updated in place)
  Backend backend = Backend::Llvm;
  std::vector<std::shared_ptr<const Kernel>> kernels;  // per storage group (null: nothing to compute)
  std::vector<KernelArgs> args;                        // per group, as the checked path built them
  std::vector<const Value*> in_values, out_values;     // a run's bindings (the run holds this FastRun)
};

namespace {
using Bound = detail::ReplayBound;

// No member window, block, row or fold callback: the runs fast_run replays.
bool plain(const RunOptions& options) {
  return !options.member_range && !options.block_rows && !options.row && !options.fold;
}

// Whether a run like this one may be replayed by fast_run: plain options, and no node whose
// values are checked per run (member indices x[i], draw keys rand(k, j)).
bool replayable(const ir::Graph& typed, const RunOptions& options) {
  return plain(options) && std::none_of(typed.nodes.begin(), typed.nodes.end(),
                      [](const ir::Node& n) { return n.op == ir::Op::MRead || ir::is_keyed(n.op); });
}

// The run of detail::run_graph when `bindings` are those of the last plain run, unchanged (the
// same particles and swarms, species versions and storage, kinds and sizes): the checks of that
// run still hold, so only what a run may change between calls is refreshed (scalars, per-member
// vectors' data, params, seed, invocation, operational parameters moved out of storage). Else
// nullopt: the checked path runs (and records its bindings for the next call).
std::optional<std::map<std::string, Value>> fast_run(detail::BindPlanCache& plans, const ir::Graph& g,
                                                     const Bindings& bindings, const RunOptions& options,
                                                     const std::vector<double>& params) {
  if (!plain(options)) return std::nullopt;
  std::shared_ptr<detail::FastRun> f;
  {
    std::lock_guard<std::mutex> lock(plans.mu);
    f = std::move(plans.fast);
  }
  if (!f) return std::nullopt;
  struct GiveBack {
    detail::BindPlanCache& plans;
    std::shared_ptr<detail::FastRun>& f;
    ~GiveBack() {
      std::lock_guard<std::mutex> lock(plans.mu);
      if (!plans.fast) plans.fast = std::move(f);
    }
  } give_back{plans, f};
  if (f->backend != options.backend || f->in.size() != g.inputs.size() || f->out.size() != g.outputs.size())
    return std::nullopt;
  std::vector<const Value*>& in = f->in_values;
  std::vector<const Value*>& out = f->out_values;
  in.resize(g.inputs.size()), out.resize(g.outputs.size());
  for (size_t i = 0; i < in.size(); ++i) {
    auto it = bindings.find(g.inputs[i].name);
    if (it == bindings.end() || !f->in[i].matches(it->second)) return std::nullopt;
    in[i] = &it->second;
  }
  for (size_t o = 0; o < out.size(); ++o) {
    auto it = bindings.find(g.outputs[o].name);
    if (it == bindings.end() || !f->out[o].matches(it->second)) return std::nullopt;
    out[o] = &it->second;
  }
  // Checks are done: from here on the run changes data (bring_up_to_date).
  for (const Bound& b : f->in) b.bring_into_storage();
  for (const Bound& b : f->out) b.bring_into_storage();
  const uint64_t invocation = options.invocation ? *options.invocation : next_invocation++;
  for (size_t grp = 0; grp < f->kernels.size(); ++grp) {
    if (!f->kernels[grp]) continue;
    KernelArgs& a = f->args[grp];
    a.params = params;
    a.seed = options.seed, a.invocation = invocation;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i]->kind() == Value::Kind::Scalar) a.scalar[i] = in[i]->scalar();
      if (in[i]->kind() == Value::Kind::MemberScalars) a.in[i] = in[i]->member_scalars().data();
    }
    f->kernels[grp]->run(a);
  }
  return std::map<std::string, Value>{};
}

}  // namespace

std::map<std::string, Value> Rule::run(const Bindings& bindings, const RunOptions& options) const {
  if (options.group) {
    RunOptions own = options;
    own.group = nullptr;
    int64_t members = -1;
    for (const auto& [name, v] : bindings)
      if (v.kind() == Value::Kind::Swarm) {
        members = v.swarm().size();
        break;
      }
    if (members >= 0) {
      // A rank without members would still owe its particle outputs and its part of every
      // exchange; fewer members than ranks is refused instead.
      if (members < options.group->size())
        throw BindError("rule " + impl_->name + " runs over " + std::to_string(options.group->size()) +
                        " processes but the swarm has " + std::to_string(members) +
                        " members: every rank needs a member (start at most " + std::to_string(members) +
                        " processes)");
      if (members_independent() || runs_on_blocks(bindings)) {
        if (!own.member_range) own.member_range = options.group->block(members);
        // Rows the rule reads at one index for every member (x[0]) come from their owners,
        // broadcast into this rank's copy of the swarm (asked alike on every rank).
        if (!members_independent() && !own.row) {
          ProcessGroup* group = options.group;
          own.row = [&bindings, group, members](const std::string& input, int64_t m) {
            AnyParticle p = bindings.at(input).swarm().member(m);
            group->broadcast(p, group->owner(m, members),
                             "the broadcast of member " + std::to_string(m) + "'s row of '" + input + "'");
            return p;
          };
        }
        // A member reduction of a swarm's rows (CEM's msum(where(rank(f) < n, x, 0))) is folded
        // over the ranks' blocks in member order.
        if (!members_independent() && !own.fold) {
          ProcessGroup* group = options.group;
          own.fold = [group, members, what = "the member fold of rule '" + impl_->name + "'"](
                         FoldStep step, const at::Tensor& acc) { return group->fold(step, acc, members, what); };
        }
      } else {
        for (const std::string& name : cross_member_inputs()) {
          auto it = bindings.find(name);
          if (it != bindings.end() && it->second.kind() == Value::Kind::Swarm)
            options.group->gather_rows(it->second.swarm(), "the gather of '" + name + "', which rule '" + impl_->name +
                                                               "' reads across members");
        }
      }
    }
    return run(bindings, own);
  }
  const Impl& r = *impl_;
  auto locate = [&r](const char* code, detail::Site site, const std::string& message) {
    const auto& spans = site.pick ? r.fe.pick_spans : site.read ? r.fe.read_spans
                        : site.output ? r.fe.output_spans : r.fe.input_first_use;
    return located(r, code, spans.at(site.index), message);
  };
  return detail::run_graph(r.fused.graph, r.name, locate, bindings, options, &r.plans);
}

std::map<std::string, Value> detail::run_graph(const ir::Graph& g, const std::string& rule_name,
                                               const Locator& locate, const Bindings& bindings,
                                               const RunOptions& options, BindPlanCache* plans) {

  // Params: defaults, then overrides by name.
  std::vector<double> params;
  std::vector<std::string> param_names;
  for (const auto& p : g.params) params.push_back(p.default_value), param_names.push_back(p.name);
  for (const auto& [name, value] : options.params) {
    auto it = std::find(param_names.begin(), param_names.end(), name);
    if (it == param_names.end())
      throw BindError("error[E0504]: the rule " + rule_name + " has no param '" + name + "'" +
                      suggestion(name, param_names));
    params[size_t(it - param_names.begin())] = value;
  }
  if (plans)
    if (auto done = fast_run(*plans, g, bindings, options, params)) return std::move(*done);

  // Inputs.
  std::vector<Operand> in;
  auto bound_names = [&bindings] {
    std::vector<std::string> names;
    for (const auto& [name, v] : bindings) names.push_back(name);
    return names;
  };
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const std::string& name = g.inputs[i].name;
    auto it = bindings.find(name);
    if (it == bindings.end())
      throw BindError(locate("E0503", {false, i},
                              "input '" + name + "' is not bound; bind it to a particle, a swarm "
                              "or a scalar" + suggestion(name, bound_names())));
    in.push_back(resolve(name, it->second));
  }

  // Species and swarm size.
  const Operand* ref = nullptr;
  detail::Site ref_site{false, 0};
  int64_t members = 1;
  const Operand* sized = nullptr;
  auto check_operand = [&](const Operand& op, detail::Site span) {
    if (!op.is_array()) return;
    if (!ref) {
      ref = &op, ref_site = span;
    } else if (op.species() != ref->species()) {
      throw SpeciesError(locate("E0502", span,
                                 "'" + ref->name + "' and '" + op.name + "' are of different "
                                 "species (" + ref->species()->name() + " and " +
                                 op.species()->name() + "); bind particles built from one another"));
    }
    if (op.swarm) {
      int64_t n = int64_t(op.swarm->members.size());
      if (sized && n != members)
        throw BindError(locate("E0501", span,
                                "'" + op.name + "' is a swarm of " + std::to_string(n) +
                                    " members but '" + sized->name + "' has " +
                                    std::to_string(members)));
      sized = &op, members = n;
    }
  };
  for (size_t i = 0; i < in.size(); ++i) check_operand(in[i], {false, i});

  // The graph typed for this binding: which values vary per member (docs/language.md, "Shapes").
  // An output without the element axis is a value (a scalar, or a per-member vector when it
  // varies per member), returned by run() unless its name is bound to a particle or swarm, which
  // then gets it in every element (as in version 0).
  std::string plan_key;
  for (const Operand& op : in) plan_key += char('0' + int(op.kind));
  plan_key += '/';
  for (const auto& o : g.outputs) {
    auto it = bindings.find(o.name);
    plan_key += it == bindings.end() ? 'n'
                : it->second.kind() == Value::Kind::Particle || it->second.kind() == Value::Kind::Swarm ? 'a'
                                                                                                          : 'v';
  }
  std::shared_ptr<const BindPlan> plan;
  if (plans) {
    std::lock_guard<std::mutex> lock(plans->mu);
    auto it = plans->plans.find(plan_key);
    if (it != plans->plans.end()) plan = it->second;
  }
  if (!plan) {
    auto p = std::make_shared<BindPlan>();
    std::vector<ir::Type> bound_types;
    for (const Operand& op : in) bound_types.push_back(bind_type(op.kind));
    p->typed = ir::specialize_inputs(g, bound_types);
    p->value_out.assign(g.outputs.size(), false);
    bool any = false;
    for (size_t o = 0; o < g.outputs.size(); ++o) {
      p->value_out[o] = is_value_output(p->typed.nodes[size_t(g.outputs[o].node)].type,
                                        plan_key[in.size() + 1 + o] == 'a');
      any = any || p->value_out[o];
    }
    p->param_rule = param_axis::needed(g);
    // A parameter-axis rule's value outputs are computed by its pass driver (they may need
    // reductions over the particle), so its kernel keeps them.
    if (any && !p->param_rule) {
      p->kernel_graph = g;
      p->kernel_graph.outputs.clear();
      for (size_t o = 0; o < g.outputs.size(); ++o)
        if (!p->value_out[o]) p->kernel_graph.outputs.push_back(g.outputs[o]);
      p->kernel_graph = ir::dce(p->kernel_graph);
      p->kernel_typed = ir::specialize_inputs(p->kernel_graph, bound_types);
    }
    plan = p;
    if (plans) {
      std::lock_guard<std::mutex> lock(plans->mu);
      if (plans->plans.size() < 64) plans->plans.emplace(plan_key, plan);
    }
  }
  const ir::Graph& typed = plan->typed;
  const std::vector<bool>& value_out = plan->value_out;
  // Outputs: in place when bound, else new.
  std::vector<Operand> targets(g.outputs.size());
  std::vector<bool> in_place(g.outputs.size(), false);
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const std::string& name = g.outputs[o].name;
    detail::Site span{true, o};
    auto it = bindings.find(name);
    if (it == bindings.end() || value_out[o]) continue;
    // Checked where it stays: check_operand keeps pointers to the operands it has seen (ref,
    // sized), which must outlive this loop (a local here was read after its scope; ASan).
    targets[o] = resolve(name, it->second);
    const Operand& t = targets[o];
    if (!t.is_array())
      throw BindError(locate("E0501", span,
                              "'" + name + "' is updated in place, so it must be bound to a "
                              "particle or a swarm, not a scalar"));
    check_operand(t, span);
    in_place[o] = true;
  }
  // Block rows: the swarms hold members [b, e) of the population; the rule runs for the population.
  int64_t row0 = 0;
  if (options.block_rows) {
    if (!options.member_range || options.member_range->first < 0 ||
        options.member_range->first > options.member_range->second || options.population < options.member_range->second)
      throw BindError("RunOptions::block_rows needs a member_range within RunOptions::population");
    const auto [b, e] = *options.member_range;
    if (sized && members != e - b)
      throw BindError("'" + sized->name + "' holds " + std::to_string(members) + " rows but the member range [" +
                      std::to_string(b) + ", " + std::to_string(e) + ") has " + std::to_string(e - b) + " members");
    row0 = b;
    members = options.population;
  }
  // Without a swarm, the first per-member vector says how many members the rule runs for.
  if (!sized && !options.block_rows)
    for (const Operand& op : in)
      if (op.member_scalars) {
        members = int64_t(op.member_scalars->size());
        break;
      }
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].member_scalars && int64_t(in[i].member_scalars->size()) != members &&
        (sized || options.block_rows ||
         &in[i] != &*std::find_if(in.begin(), in.end(), [](const Operand& op) { return op.member_scalars; })))
      throw BindError(locate("E0501", {false, i},
                             "'" + in[i].name + "' has " +
                                 std::to_string(in[i].member_scalars->size()) +
                                 " per-member values but the " +
                                 (options.block_rows ? std::string("population has ")
                                  : sized            ? "swarm '" + sized->name + "' has "
                                                     : std::string("rule runs ")) +
                                 std::to_string(members) + " member" + (members == 1 ? "" : "s")));
  // Values that must be the same for every element of a member (a member index, a draw key, what
  // rank() and argmin() compare) but read an input bound to a particle or swarm.
  auto element_input = [&](ir::NodeId root) -> int32_t {
    if (!typed.nodes[size_t(root)].type.element) return -1;  // the usual case: nothing to find
    std::vector<ir::NodeId> todo{root};
    std::vector<char> seen(typed.nodes.size(), 0);
    while (!todo.empty()) {
      ir::NodeId id = todo.back();
      todo.pop_back();
      if (seen[size_t(id)] || !typed.nodes[size_t(id)].type.element) continue;
      seen[size_t(id)] = 1;
      const ir::Node& x = typed.nodes[size_t(id)];
      if (x.op == ir::Op::Input) return x.index;
      for (int a = 0; a < ir::op_arity(x.op); ++a) todo.push_back(x.args[a]);
    }
    return -1;
  };
  if (options.member_range) {
    const auto [b, e] = *options.member_range;
    if (b < 0 || e < b || e > members)
      throw BindError("member range [" + std::to_string(b) + ", " + std::to_string(e) + ") is outside the " +
                      std::to_string(members) + " members the rule runs on");
  }
  for (const ir::Node& n : typed.nodes) {
    std::vector<std::pair<ir::NodeId, const char*>> uniform_args;
    if (n.op == ir::Op::MRead) uniform_args.push_back({n.args[1], "a member index x[i]"});
    if (ir::is_keyed(n.op)) uniform_args = {{n.args[0], "a key of rand(k, j)"}, {n.args[1], "a key of rand(k, j)"}};
    if (ir::is_member_scalar_op(n.op)) uniform_args.push_back({n.args[0], "what rank(), centered_rank(), argmin() and argmax() compare"});
    if (n.op == ir::Op::TKth || n.op == ir::Op::PKth) uniform_args.push_back({n.args[1], "the k of tkth(x, k) and pkth(x, k)"});
    for (auto [arg, what] : uniform_args) {
      int32_t i = element_input(arg);
      if (i >= 0)
        throw BindError(locate("E0507", {false, size_t(i)},
                               "'" + in[size_t(i)].name + "' is bound to a " +
                                   (in[size_t(i)].kind == BindKind::Swarm ? "swarm" : "particle") + ", but it is read by " +
                                   what + ", which must be one value per member; bind a scalar or a per-member vector"));
    }
    if (n.op == ir::Op::Pick && n.index >= members - 1)
      throw BindError(locate("E0508", {false, size_t(n.index), false, true},
                             "pick(" + std::to_string(n.index) + ") chooses among the other members, so it needs at "
                             "least " + std::to_string(n.index + 2) + " members, but the rule runs on " +
                             std::to_string(members)));
    if (n.op != ir::Op::MRead) continue;
    const ir::Node& src = typed.nodes[n.args[0]];
    if (src.op == ir::Op::Input && !src.type.member)
      throw BindError(locate("E0506", {false, size_t(n.index), true},
                             "'" + in[size_t(src.index)].name + "' is bound to " +
                                 (in[size_t(src.index)].kind == BindKind::Scalar ? "a scalar" : "a particle") +
                                 ", which has no members; x[i] reads member i of a swarm or entry i "
                                 "of a per-member vector"));
  }
  auto varies_per_member = [&](size_t o) { return typed.nodes[g.outputs[o].node].type.member; };
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    if (in_place[o] && targets[o].particle && members > 1 && varies_per_member(o))
      throw BindError(locate("E0501", {true, o},
                              "'" + g.outputs[o].name + "' is a single particle but the rule "
                              "computes one value per member of " +
                              (sized ? "swarm '" + sized->name + "'"
                                     : std::to_string(members) + " members (per-member vectors)") +
                              "; bind a swarm to it"));
    if (!in_place[o] && !ref && !value_out[o])
      throw BindError(locate("E0501", {true, o},
                              "'" + g.outputs[o].name + "' is a new particle but no input is a "
                              "particle or swarm to take its structure from"));
  }
  uint64_t invocation = options.invocation ? *options.invocation : next_invocation++;
  // A member index or draw key out of range is found by the prelude, before any write.
  auto index_error = [&](const MemberIndexError& e) {
    std::ostringstream idx;
    idx << e.index;
    if (e.key >= 0)
      return RunError(locate("E0601", {false, size_t(e.site), true},
                             std::string("key ") + (e.key == 0 ? "k" : "j") + " = " + idx.str() +
                                 " (at member " + std::to_string(e.member) +
                                 ") is not an integer in [0, 4294967295]; nothing was written"));
    return RunError(locate("E0601", {false, size_t(e.site), true},
                           "member index " + idx.str() + " (at member " + std::to_string(e.member) +
                               ") is not an integer in [0, " + std::to_string(e.members) +
                               "): the swarm has " + std::to_string(e.members) + " member" +
                               (e.members == 1 ? "" : "s") + "; nothing was written"));
  };

  // Value outputs: computed by the prelude (backend/Prelude.h) now, which also checks every member
  // index and key before anything is written; the kernels compute the other outputs only.
  std::map<std::string, Value> results;
  const bool any_value = std::find(value_out.begin(), value_out.end(), true) != value_out.end();
  const bool param_rule = plan->param_rule;
  const bool split = any_value && !param_rule;  // value outputs by the prelude, the rest by kernels
  if (param_rule && !ref)
    throw BindError(locate("E0509", {true, 0}, "the rule reduces along the parameter axis (tsum, psum, numel(), ...), "
                                        "so it needs a particle or swarm bound to take the parameter tensors from"));
  if (split) {
    KernelArgs pa;
    pa.members = members;
    pa.params = params;
    pa.seed = options.seed, pa.invocation = invocation;
    std::vector<BindKind> kinds;
    for (const Operand& op : in) {
      kinds.push_back(op.kind);
      pa.scalar.push_back(op.scalar);
      pa.in.push_back(op.member_scalars ? op.member_scalars->data() : nullptr);
    }
    PreludeValues pre;
    try {
      pre = evaluate_prelude(typed, kinds, pa);
    } catch (const MemberIndexError& e) {
      throw index_error(e);
    }
    for (size_t o = 0; o < g.outputs.size(); ++o) {
      if (!value_out[o]) continue;
      const ir::NodeId id = g.outputs[o].node;
      if (typed.nodes[size_t(id)].type.member) {
        std::vector<double> v(static_cast<size_t>(members));
        for (int64_t m = 0; m < members; ++m) v[size_t(m)] = pre.at(id, m);
        results.insert_or_assign(g.outputs[o].name, Value(std::move(v)));
      } else {
        results.insert_or_assign(g.outputs[o].name, Value(members > 0 ? pre.at(id, 0) : 0.0));
      }
    }
  }
  if (!ref) return results;  // only value outputs, nothing bound to compute on
  // The graph the kernels run: without the value outputs.
  // ref and sized may point into `targets`: its buffer stays alive (and unmoved) here.
  std::vector<Operand> rule_targets;
  if (split) {
    std::vector<Operand> kt;
    std::vector<bool> kp;
    for (size_t o = 0; o < g.outputs.size(); ++o)
      if (!value_out[o]) {
        kt.push_back(targets[o]);
        kp.push_back(in_place[o]);
      }
    rule_targets = std::move(targets);
    targets = std::move(kt);
    in_place = std::move(kp);
    if (targets.empty()) return results;
  }
  const ir::Graph& kg = split ? plan->kernel_graph : g;
  const ir::Graph& kt = split ? plan->kernel_typed : typed;
  std::vector<size_t> site_of_output;  // kernel graph output -> rule output (for locate)
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (!split || !value_out[o]) site_of_output.push_back(o);
  // A parameter-axis rule's value outputs, one double per member, filled by its kernel.
  std::vector<std::vector<double>> value_buf(param_rule ? kg.outputs.size() : 0);
  for (size_t o = 0; o < value_buf.size(); ++o)
    if (value_out[o]) value_buf[o].assign(size_t(std::max<int64_t>(members, 1)), std::nan(""));
  auto kernel_varies_per_member = [&](size_t o) { return kt.nodes[size_t(kg.outputs[o].node)].type.member; };

  const Species& species = *ref->species();
  // A rule computes in floating point and writes into storage of the parameter's own dtype, so
  // an integer (or bool, complex) operational parameter would silently truncate `x*0.5 + 1` (and
  // LibTorch refuses such an in-place op: "result type Float can't be cast to ... Long").
  // Such parameters stay out of rules: refused before any write (docs/language.md, Types).
  for (const ParamInfo& p : species.params())
    if (p.config.operational && !at::isFloatingType(p.dtype))
      throw BindError(locate("E0505", ref_site,
                             "'" + ref->name + "' has the " + c10::toString(p.dtype) +
                                 " parameter '" + p.path + "'; rules compute floating-point "
                                 "values only, which an integer parameter would truncate: make "
                                 "it non-operational (ParamConfig operational=false) or convert "
                                 "it to a floating dtype"));
  for (size_t a = 0; a < targets.size(); ++a)
    for (size_t b = a + 1; b < targets.size(); ++b)
      if (in_place[a] && in_place[b])
        for (size_t grp = 0; grp < species.groups().size(); ++grp)
          if (overlaps(targets[a].storage(int(grp)), targets[b].storage(int(grp))))
            throw BindError(locate("E0501", {true, site_of_output[b]},
                                   "'" + kg.outputs[a].name + "' and '" + kg.outputs[b].name +
                                       "' are bound to the same storage; outputs updated in "
                                       "place must be distinct particles or swarms"));

  // Particle-wide constructs (psum, pkth, elem(), elems()) see one storage group at a time: a
  // particle whose operational parameters span several (dtypes or devices) is refused.
  int computed = 0;  // storage groups with operational parameters
  for (size_t grp = 0; grp < species.groups().size(); ++grp) computed += !species.operational_ranges(int(grp)).empty();
  if (param_rule) {
    const auto particle_wide = [](const ir::Node& n) {
      return ir::is_particle_reduce(n.op) || n.op == ir::Op::Elem || n.op == ir::Op::Elems;
    };
    if (computed > 1 && std::any_of(g.nodes.begin(), g.nodes.end(), particle_wide))
      throw BindError(locate("E0509", {true, 0}, "'" + ref->name + "' keeps its operational parameters in " +
                                              std::to_string(computed) + " storage groups (dtypes or devices), but "
                                              "psum, pmean, pmin, pmax, pkth, elem() and elems() reduce over one; "
                                              "convert the model to one dtype and device, or make the other "
                                              "parameters non-operational"));
  }
  // A parameter-axis rule's value outputs are computed by a kernel even when no parameter is
  // operational (psum over nothing is 0): then group 0's kernel runs on no elements.
  const bool values_anyway = param_rule && any_value && computed == 0 && !species.groups().empty();
  // Every group's kernel is compiled before the first group is written, so a kernel that fails
  // to compile changes nothing. A group runs on the fused kernel when it is on the CPU in
  // float32/float64 and the aten backend is not asked for; else on ATen ops (no compile step).
  KernelCache& cache = kernel_cache();
  auto is_fast = [&](const StorageGroup& sg) {
    return options.backend != Backend::Aten && sg.device.is_cpu() &&
           (sg.dtype == at::kFloat || sg.dtype == at::kDouble);
  };
  std::vector<std::shared_ptr<const Kernel>> kernels(species.groups().size());
  for (size_t grp = 0; grp < species.groups().size(); ++grp) {
    const StorageGroup& sg = species.groups()[grp];
    if ((species.operational_ranges(int(grp)).empty() && !(grp == 0 && values_anyway)) || !is_fast(sg)) continue;
    KernelSpec spec;
    spec.dtype = sg.dtype == at::kDouble ? DType::F64 : DType::F32;
    for (const auto& op : in) spec.kinds.push_back(op.kind);
    if (param_rule) spec.values = value_out;
    try {
      if (detail::fault_hook) detail::fault_hook("compile kernel");
      const std::string key{char('0' + int(spec.dtype)), char('0' + int(options.backend))};
      if (plans) {
        std::lock_guard<std::mutex> lock(plan->kernel_mu);
        auto it = plan->kernels.find(key);
        if (it != plan->kernels.end()) kernels[grp] = it->second;
      }
      if (!kernels[grp]) {
        kernels[grp] = cache.get(kg, spec, options.backend);
        if (plans) {
          std::lock_guard<std::mutex> lock(plan->kernel_mu);
          plan->kernels.emplace(key, kernels[grp]);
        }
      }
    } catch (const llvm_backend::JitError& e) {
      throw Error(std::string("LLVM could not compile rule ") + rule_name + ": " + e.what());
    }
  }

  // Whether group grp's kernel computes only the member range: it honours a window, and a member
  // fold of a swarm's rows (msum(x)) has the other members' part from RunOptions::fold.
  auto windowed = [&](size_t grp) {
    return kernels[grp] && kernels[grp]->member_window() && (!kernels[grp]->member_folds() || options.fold);
  };
  if (options.block_rows)
    for (size_t grp = 0; grp < kernels.size(); ++grp) {
      if (kernels[grp] && kernels[grp]->member_window() && kernels[grp]->member_folds() && !options.fold)
        throw BindError("rule " + rule_name + " reduces a swarm's rows over the members, which the block [" +
                        std::to_string(options.member_range->first) + ", " +
                        std::to_string(options.member_range->second) + ") does not hold (RunOptions::block_rows); "
                        "give RunOptions::fold, or bind the whole swarm");
      if ((kernels[grp] && !windowed(grp)) || (!kernels[grp] && !species.operational_ranges(int(grp)).empty()))
        throw BindError("rule " + rule_name + " cannot run on the rows of one block (RunOptions::block_rows): that "
                        "takes the llvm backend (or interp, for a rule whose members are independent), float32 "
                        "or float64 storage on the CPU, and no reduction along the parameter axis of a value "
                        "that varies per member; bind the whole swarm");
    }
  // A block's rows are addressed by member number: row r of a swarm is member row0 + r.
  auto rows_base = [&](const at::Tensor& s) {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(s.data_ptr()) -
                                   uintptr_t(row0) * uintptr_t(s.size(1)) * uintptr_t(s.element_size()));
  };

  // A member window whose members read rows outside it (`state mu = x[0]` on another rank's
  // block): the rows come from the caller (RunOptions::row), asked on every rank alike for every
  // row read at any member; without it, from the swarm itself when it is bound whole.
  std::map<int64_t, std::vector<AnyParticle>> outside;  // member -> its row per input (swarms only)
  if (options.member_range) {
    std::set<int64_t> read;
    for (size_t grp = 0; grp < kernels.size(); ++grp) {
      if (!windowed(grp)) continue;
      KernelArgs pa;
      pa.members = members;
      pa.params = params;
      pa.seed = options.seed, pa.invocation = invocation, pa.group = uint32_t(grp);
      for (const Operand& op : in) {
        pa.scalar.push_back(op.scalar);
        pa.in.push_back(op.member_scalars ? op.member_scalars->data() : nullptr);
        pa.in_stride.push_back(0);
      }
      std::vector<int64_t> rows;
      try {
        rows = kernels[grp]->rows_read(pa);
      } catch (const MemberIndexError& e) {
        throw index_error(e);
      }
      read.insert(rows.begin(), rows.end());
    }
    const auto [b, e] = *options.member_range;
    for (int64_t m : read) {
      const bool held = m >= b && m < e;
      if (!options.block_rows && held && !options.row) continue;
      std::vector<AnyParticle> rows(in.size());
      for (size_t i = 0; i < in.size(); ++i) {
        if (!in[i].swarm) continue;
        if (!options.block_rows && !options.row) {
          rows[i] = AnyParticle(in[i].swarm->members.at(size_t(m)));
          continue;
        }
        if (!options.row)
          throw BindError("rule " + rule_name + " reads member " + std::to_string(m) + "'s row of '" + in[i].name +
                          "', which the block [" + std::to_string(b) + ", " + std::to_string(e) +
                          ") does not hold (RunOptions::block_rows); give RunOptions::row, or bind the whole swarm");
        AnyParticle p = options.row(in[i].name, m);
        if (!p.defined() || p.species() != in[i].species())
          throw SpeciesError("RunOptions::row gave member " + std::to_string(m) + "'s row of '" + in[i].name +
                             "' of another species than the swarm's (" + in[i].species()->name() + ")");
        rows[i] = std::move(p);
      }
      if (!held) outside.emplace(m, std::move(rows));
    }
  }

  // Checks are done and every kernel is ready: from here on the run changes data.
  for (const auto& op : in) bring_up_to_date(op);
  for (size_t o = 0; o < targets.size(); ++o)
    if (in_place[o]) bring_up_to_date(targets[o]);

  // Fresh outputs.
  for (size_t o = 0; o < kg.outputs.size(); ++o) {
    if (in_place[o] || (param_rule && value_out[o])) continue;
    Operand t;
    t.name = kg.outputs[o].name;
    if ((sized || members > 1) && kernel_varies_per_member(o)) {
      // Member i takes its non-operational values and buffers from the operand's member i.
      AnySwarm s = ref->swarm ? AnySwarm(detail::new_swarm_like(*ref->swarm))
                              : AnySwarm(AnyParticle(ref->particle),
                                         options.block_rows ? options.member_range->second - options.member_range->first
                                                            : members);
      t.kind = BindKind::Swarm, t.swarm = s.detail_state();
      results.emplace(t.name, Value(s));
    } else {
      // One value per element (the rule reduced over the members, or nothing in it varies per
      // member): a particle, its structure taken from the first particle or member bound.
      t.kind = BindKind::Particle;
      if (!ref->particle && ref->swarm->members.empty())
        throw BindError(locate("E0501", {true, site_of_output[o]}, "'" + t.name + "' would take its structure from "
                                                   "swarm '" + ref->name + "', which has no members"));
      const detail::ParticleState& like = ref->particle ? *ref->particle : *ref->swarm->members[0];
      t.particle = detail::new_like(like, detail::empty_storage(species));
      results.emplace(t.name, Value(AnyParticle(t.particle)));
    }
    targets[o] = std::move(t);
  }

  // An input whose memory overlaps an in-place output other than element for element (gbest
  // bound to a member of the swarm x) is read from a snapshot, so no element sees a later write.
  std::vector<std::vector<at::Tensor>> snapshots(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].is_array()) continue;
    for (size_t grp = 0; grp < species.groups().size(); ++grp) {
      const at::Tensor& s = in[i].storage(int(grp));
      bool clash = false;
      for (size_t o = 0; o < targets.size(); ++o) {
        if (!in_place[o]) continue;
        const at::Tensor& t = targets[o].storage(int(grp));
        bool same = s.data_ptr() == t.data_ptr() && s.sizes() == t.sizes();
        clash = clash || (!same && overlaps(s, t));
      }
      if (clash) {
        snapshots[i].resize(species.groups().size());
        snapshots[i][grp] = s.clone();
      }
    }
  }

  // This run replayed by fast_run while its bindings stay as they are: everything in place, one
  // fused kernel per computed group, no snapshot and no row from elsewhere.
  std::shared_ptr<FastRun> replay;
  if (plans && replayable(typed, options) && !split && !param_rule && outside.empty() &&
      std::all_of(in_place.begin(), in_place.end(), [](bool b) { return b; }) &&
      std::all_of(snapshots.begin(), snapshots.end(), [](const auto& s) { return s.empty(); })) {
    replay = std::make_shared<FastRun>();
    replay->backend = options.backend;
    for (const Operand& op : in) replay->in.push_back(Bound::of(op));
    for (const Operand& op : targets) replay->out.push_back(Bound::of(op));
    // A particle or swarm bound twice (an input that is also an output, as x and v in PSO) has
    // its parameters' places checked once per run.
    std::vector<Bound*> all;
    for (Bound& b : replay->in) all.push_back(&b);
    for (Bound& b : replay->out) all.push_back(&b);
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = 0; j < i && !all[i]->slots.empty(); ++j)
        if (all[i]->same_state(*all[j])) all[i]->slots.clear();
    replay->kernels.resize(species.groups().size());
    replay->args.resize(species.groups().size());
  }
  for (int grp = 0; grp < int(species.groups().size()); ++grp) {
    auto ranges = species.operational_ranges(grp);
    if (ranges.empty() && !(grp == 0 && values_anyway)) continue;
    auto input_storage = [&](size_t i) -> const at::Tensor& {
      if (!snapshots[i].empty() && snapshots[i][grp].defined()) return snapshots[i][grp];
      return in[i].storage(grp);
    };
    bool fast = kernels[size_t(grp)] != nullptr;
    if (!fast) replay = nullptr;
    // The fields the aten Call (tensors) and the kernel ABI's KernelArgs (pointers) share.
    auto set_common = [&](auto& c) {
      c.members = members;
      c.ranges = ranges;
      if (param_rule) c.tensors = species.tensor_ranges(grp);
      c.params = params;
      c.seed = options.seed, c.invocation = invocation, c.group = uint32_t(grp);
    };
    if (!fast) {
      aten_backend::Call c;
      set_common(c);
      if (param_rule) c.values = value_out;
      for (size_t i = 0; i < in.size(); ++i) {
        c.kinds.push_back(in[i].kind);
        c.scalar.push_back(in[i].scalar);
        if (in[i].member_scalars)
          c.in.push_back(at::tensor(*in[i].member_scalars, at::kDouble));
        else if (in[i].is_array())
          c.in.push_back(input_storage(i));
        else
          c.in.emplace_back();
      }
      for (size_t o = 0; o < targets.size(); ++o) {
        if (param_rule && value_out[o]) {
          c.out.push_back(at::from_blob(value_buf[o].data(), {int64_t(value_buf[o].size())}, at::kDouble));
          continue;
        }
        const at::Tensor& s = targets[o].storage(grp);
        c.out.push_back(targets[o].swarm ? s : s.unsqueeze(0));
      }
      try {
        aten_backend::run(kg, c);
      } catch (const MemberIndexError& e) {
        throw index_error(e);
      }
      continue;
    }
    KernelArgs a;
    set_common(a);
    if (options.member_range && windowed(size_t(grp))) {
      std::tie(a.member_begin, a.member_end) = *options.member_range;
      if (kernels[size_t(grp)]->member_folds()) {
        const at::ScalarType dtype = species.groups()[size_t(grp)].dtype;
        a.fold = [&options, dtype](KernelArgs::FoldStep step, void* acc, int64_t n) {
          static_assert(int(KernelArgs::FoldStep::Share) == int(FoldStep::Share));
          return options.fold(FoldStep(int(step)), at::from_blob(acc, {n}, at::TensorOptions().dtype(dtype)));
        };
      }
    }
    for (size_t i = 0; i < in.size(); ++i) {
      a.scalar.push_back(in[i].scalar);
      if (in[i].member_scalars) {
        a.in.push_back(in[i].member_scalars->data());
        a.in_stride.push_back(0);
      } else if (in[i].is_array()) {
        const at::Tensor& s = input_storage(i);
        a.in.push_back(in[i].swarm ? rows_base(s) : s.data_ptr());
        a.in_stride.push_back(in[i].swarm ? s.size(1) : 0);
      } else {
        a.in.push_back(nullptr);
        a.in_stride.push_back(0);
      }
    }
    for (const auto& [m, rows] : outside) {
      std::vector<const void*> ptrs(in.size(), nullptr);
      for (size_t i = 0; i < in.size(); ++i)
        if (rows[i].defined()) ptrs[i] = rows[i].storage().at(size_t(grp)).data_ptr();
      a.outside_rows.emplace_back(m, std::move(ptrs));
    }
    for (size_t o = 0; o < targets.size(); ++o) {
      if (param_rule && value_out[o]) {
        a.out.push_back(value_buf[o].data());
        a.out_stride.push_back(0);
        continue;
      }
      const at::Tensor& s = targets[o].storage(grp);
      a.out.push_back(targets[o].swarm ? rows_base(s) : s.data_ptr());
      a.out_stride.push_back(targets[o].swarm ? s.size(1) : 0);
    }
    if (replay) replay->kernels[size_t(grp)] = kernels[size_t(grp)], replay->args[size_t(grp)] = a;
    try {
      kernels[size_t(grp)]->run(a);
    } catch (const MemberIndexError& e) {
      throw index_error(e);
    } catch (const RowsNeededError&) {  // rows_read() gave them all: a kernel that disagrees with itself
      throw std::logic_error("nyto internal error (this is a bug in nyto): rule " + rule_name +
                             " needs rows outside the member window that Kernel::rows_read did not name");
    }
  }
  for (size_t o = 0; o < value_buf.size(); ++o) {
    if (!value_out[o]) continue;
    if (typed.nodes[size_t(g.outputs[o].node)].type.member)
      results.insert_or_assign(g.outputs[o].name, Value(std::vector<double>(value_buf[o].begin(), value_buf[o].begin() + members)));
    else
      results.insert_or_assign(g.outputs[o].name, Value(value_buf[o][0]));
  }
  if (replay) {
    std::lock_guard<std::mutex> lock(plans->mu);
    plans->fast = std::move(replay);
  }
  return results;
}

}  // namespace nyto
