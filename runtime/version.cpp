// nytorch's version manager in C++ (the seeds' "Version Manager" chapter): the six structure
// events on a particle, touch() replaying them on the other particles of the species, and the
// warnings about risky structures (the seeds' "Particle" chapter).
//
// A structure change runs as a transaction: every step that changes a module registry, a
// particle's storage or the species first records how to undo itself, and any exception rolls the
// whole change back, so no particle is ever left between versions.
#include <ATen/ATen.h>
#include <nyto/version.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <iostream>
#include <mutex>
#include <set>
#include <unordered_map>

#include "runtime/detail.h"

namespace nyto {

// ---------------------------------------------------------------- warnings

namespace {
std::mutex warning_mutex;
WarningHandler& warning_handler() {
  static WarningHandler h = [](const std::string& m) {
    std::cerr << "nyto: warning: " << m << "\n";
  };
  return h;
}
}  // namespace

WarningHandler set_warning_handler(WarningHandler handler) {
  std::lock_guard<std::mutex> lock(warning_mutex);
  std::swap(warning_handler(), handler);
  return handler;
}

namespace detail {

void warn(const std::string& message) {
  WarningHandler h;
  {
    std::lock_guard<std::mutex> lock(warning_mutex);
    h = warning_handler();
  }
  if (h) h(message);
}

std::function<void(const std::string&)> fault_hook;

namespace {

using torch::nn::Module;
using TensorDict = torch::OrderedDict<std::string, at::Tensor>;
using ModuleDict = torch::OrderedDict<std::string, std::shared_ptr<Module>>;

void fault(const char* where) {
  if (fault_hook) fault_hook(where);
}

// LibTorch 1.13 registers parameters, buffers and submodules and unregisters submodules, but
// cannot unregister a parameter or a buffer, and cannot put an entry back at its place after a
// failed update. So the runtime reaches the three registries of a Module directly:
// - parameters_ is protected: a pointer to member formed through a derived class reaches it;
// - buffers_ and children_ are private: names in an explicit instantiation are not access-checked
//   ([temp.explicit]/12), which yields pointers to them (the well-known "member robber").
struct ParametersAccess : Module {
  static TensorDict Module::*ptr() { return &ParametersAccess::parameters_; }
};
template <class Tag, typename Tag::type M>
struct Rob {
  friend typename Tag::type get(Tag) { return M; }
};
struct BuffersTag {
  using type = TensorDict Module::*;
  friend type get(BuffersTag);
};
struct ChildrenTag {
  using type = ModuleDict Module::*;
  friend type get(ChildrenTag);
};
template struct Rob<BuffersTag, &Module::buffers_>;
template struct Rob<ChildrenTag, &Module::children_>;

TensorDict& params_of(Module& m) { return m.*ParametersAccess::ptr(); }
TensorDict& buffers_of(Module& m) { return m.*get(BuffersTag{}); }
ModuleDict& children_of(Module& m) { return m.*get(ChildrenTag{}); }

// Undo log of one structure update.
class Transaction {
 public:
  void on_rollback(std::function<void()> f) { undo_.push_back(std::move(f)); }
  /// Saves m's three registries (once) so rollback restores them, order included.
  void save(const std::shared_ptr<Module>& m) {
    if (!saved_.insert(m.get()).second) return;
    on_rollback([m, p = params_of(*m), b = buffers_of(*m), c = children_of(*m)]() mutable {
      params_of(*m) = std::move(p);
      buffers_of(*m) = std::move(b);
      children_of(*m) = std::move(c);
    });
  }
  /// Runs every undo step, newest first. A step that throws (a copy that cannot allocate,
  /// set_data refusing a tensor) does not stop the others, which restore their own parts; the
  /// first failure's message is returned ("" when all succeeded), for the caller to report.
  std::string rollback() noexcept {
    std::string failure;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
      try {
        fault("rollback");
        (*it)();
      } catch (const std::exception& e) {
        if (failure.empty()) failure = e.what();
      } catch (...) {
        if (failure.empty()) failure = "unknown exception";
      }
    }
    undo_.clear();
    return failure;
  }

 private:
  std::vector<std::function<void()>> undo_;
  std::set<const Module*> saved_;
};

// Runs `f` as a transaction: on any exception everything recorded is undone. LibTorch's own
// errors become nyto::Error.
template <class F>
void transact(const std::string& what, F&& f) {
  Transaction tx;
  // A failed undo cannot promise "nothing was changed": say so, with both causes.
  auto undo = [&](const std::string& cause) {
    std::string failure = tx.rollback();
    if (!failure.empty())
      throw Error(what + ": " + cause + "; undoing the update failed too (" + failure +
                  "), so the particle may be left part-way: rebuild it from a saved copy");
  };
  try {
    f(tx);
  } catch (const Error& e) {
    undo(e.what());
    throw;
  } catch (const c10::Error& e) {
    undo(e.what_without_backtrace());
    throw Error(what + ": " + e.what_without_backtrace() + " (nothing was changed)");
  } catch (const std::exception& e) {
    undo(e.what());
    throw;
  } catch (...) {
    undo("unknown exception");
    throw;
  }
}

std::pair<std::string, std::string> split(const std::string& path) {
  auto k = path.rfind('.');
  if (k == std::string::npos) return {"", path};
  return {path.substr(0, k), path.substr(k + 1)};
}

std::shared_ptr<Module> find_module(const std::shared_ptr<Module>& root, const std::string& path) {
  std::shared_ptr<Module> cur = root;
  size_t b = 0;
  while (!path.empty()) {
    size_t e = path.find('.', b);
    std::string seg = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    auto* next = children_of(*cur).find(seg);
    if (!next) return nullptr;
    cur = *next;
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return cur;
}

// Cloneable::clone() rebuilds parameters with reset(), which loses a requires_grad(false) set
// afterwards (a frozen, pretrained layer): copy the flags from the source, path by path.
void copy_requires_grad(const Module& from, Module& to) {
  auto src = from.named_parameters(true);
  for (auto& item : to.named_parameters(true)) {
    const at::Tensor* t = src.find(item.key());
    if (t && t->requires_grad() != item.value().requires_grad())
      item.value().set_requires_grad(t->requires_grad());
  }
}

// A recipient's copy of an added module: the structure as it was added, the values the
// initiator's module holds now (the seeds clone it when the recipient touches).
std::shared_ptr<Module> clone_added(const VersionEvent& e) {
  auto c = e.snapshot->clone();
  auto module = e.module.lock();
  copy_requires_grad(*e.snapshot, *c);
  if (!module) return c;  // the initiator's module is gone: its values when it was added
  at::NoGradGuard no_grad;
  auto live = module->named_parameters(true);
  for (auto& item : c->named_parameters(true)) {
    const at::Tensor* v = live.find(item.key());
    if (v && v->sizes() == item.value().sizes()) item.value().copy_(*v);
  }
  copy_requires_grad(*module, *c);
  auto live_b = module->named_buffers(true);
  for (auto& item : c->named_buffers(true)) {
    const at::Tensor* v = live_b.find(item.key());
    if (v && v->sizes() == item.value().sizes()) item.value().copy_(*v);
  }
  return c;
}

// The initiator's own objects for an event it makes (recipients pass none).
struct Own {
  at::Tensor tensor;
  std::shared_ptr<Module> module;
};

// A recipient's copy of an added parameter: the initiator's value now if it lives, else the value
// recorded when it was added.
at::Tensor added_parameter_value(const VersionEvent& e) {
  if (e.parameter) {
    at::Tensor live(e.parameter->lock());
    if (live.defined()) return live.detach().clone();
  }
  return e.tensor.detach().clone();
}

// Applies event `e` (which takes `sp` from version `v` to v + 1) to the module tree at `root`.
void apply_event(const std::shared_ptr<Module>& root, const VersionEvent& e, const Own* own,
                 Transaction* tx, const Species& sp, int64_t v) {
  auto [parent_path, leaf] = split(e.path);
  auto fail = [&](const std::string& why) {
    throw ShapeError("cannot bring a particle of " + sp.name() + " to version " +
                     std::to_string(v + 1) + ": '" + e.path + "' " + why +
                     " (was its module changed outside nyto?); nothing was changed");
  };
  auto parent = find_module(root, parent_path);
  if (!parent) fail("has no parent submodule '" + parent_path + "'");
  if (tx) tx->save(parent);
  TensorDict& P = params_of(*parent);
  TensorDict& B = buffers_of(*parent);
  ModuleDict& C = children_of(*parent);
  bool taken = P.contains(leaf) || B.contains(leaf) || C.contains(leaf);
  switch (e.kind) {
    case StructureEvent::AddParameter: {
      if (taken) fail("is already taken");
      at::Tensor t = own ? own->tensor : added_parameter_value(e);
      parent->register_parameter(leaf, t, e.requires_grad);
      break;
    }
    case StructureEvent::RemoveParameter:
      if (!P.contains(leaf)) fail("is not a parameter");
      P.erase(leaf);
      break;
    case StructureEvent::AddBuffer:
      if (P.contains(leaf) || C.contains(leaf)) fail("is already taken");
      if (B.contains(leaf))
        B[leaf] = e.tensor;
      else
        B.insert(leaf, e.tensor);
      break;
    case StructureEvent::RemoveBuffer:
      if (!B.contains(leaf)) fail("is not a buffer");
      B.erase(leaf);
      break;
    case StructureEvent::AddModule:
      if (taken) fail("is already taken");
      C.insert(leaf, own ? own->module : clone_added(e));
      break;
    case StructureEvent::RemoveModule:
      if (!C.contains(leaf)) fail("is not a submodule");
      C.erase(leaf);
      break;
  }
}

// Replays the events s has not seen on its module.
void replay(ParticleState& s, Transaction& tx) {
  const Species& sp = *s.species;
  for (int64_t v = s.version; v < sp.version(); ++v) {
    fault("replay");
    apply_event(s.module, sp.events()[size_t(v)], /*own=*/nullptr, &tx, sp, v);
  }
  tx.on_rollback([&s, old = s.version] { s.version = old; });
  s.version = sp.version();
}

// Gives `members` (one particle, or every member of `swarm`) new storage laid out for their
// species' newest layout, copies every parameter's value by path and re-points the parameters.
void relayout(const std::vector<ParticleState*>& members, SwarmState* swarm, Transaction& tx) {
  const Species& sp = *members[0]->species;
  const auto& layout = sp.params();
  std::vector<std::vector<at::Tensor>> params(members.size());
  for (size_t k = 0; k < members.size(); ++k) {
    size_t i = 0;
    for (const auto& item : members[k]->module->named_parameters(true)) {
      const at::Tensor& t = item.value();
      if (i >= layout.size() || item.key() != layout[i].path)
        throw ShapeError("cannot bring a particle of " + sp.name() + " to version " +
                         std::to_string(sp.version()) + ": its module has parameter '" +
                         item.key() + "' where the species has " +
                         (i < layout.size() ? "'" + layout[i].path + "'" : std::string("none")) +
                         "; nothing was changed");
      if (t.sizes() != c10::IntArrayRef(layout[i].shape) || t.scalar_type() != layout[i].dtype ||
          t.device() != layout[i].device)
        throw ShapeError("cannot bring a particle of " + sp.name() + " to version " +
                         std::to_string(sp.version()) + ": parameter '" + item.key() +
                         "' has shape " + shape_str(t.sizes().vec()) + " but the species " +
                         shape_str(layout[i].shape) + "; nothing was changed");
      params[k].push_back(t);
      ++i;
    }
    if (i < layout.size())
      throw ShapeError("cannot bring a particle of " + sp.name() + " to version " +
                       std::to_string(sp.version()) + ": its module has no parameter '" +
                       layout[i].path + "'; nothing was changed");
  }
  fault("relayout");
  const int64_t n = int64_t(members.size());
  std::vector<at::Tensor> flat;
  for (const auto& g : sp.groups()) {
    auto opts = at::TensorOptions().dtype(g.dtype).device(g.device);
    flat.push_back(swarm ? at::empty({n, g.numel}, opts) : at::empty({g.numel}, opts));
  }
  auto slot_of = [&](size_t k, size_t i) {
    const ParamInfo& p = layout[i];
    at::Tensor row = swarm ? flat[size_t(p.group)][int64_t(k)] : flat[size_t(p.group)];
    return row.narrow(0, p.offset, p.numel).view(p.shape);
  };
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < members.size(); ++k)
    for (size_t i = 0; i < layout.size(); ++i) slot_of(k, i).copy_(params[k][i]);

  // From here the particles change: every step records its undo first.
  if (swarm)
    tx.on_rollback([swarm, st = swarm->storage, v = swarm->version]() mutable {
      swarm->storage = std::move(st);
      swarm->version = v;
    });
  for (size_t k = 0; k < members.size(); ++k) {
    ParticleState* m = members[k];
    tx.on_rollback([m, st = m->storage, ps = m->params]() mutable {
      m->storage = std::move(st);
      m->params = std::move(ps);
    });
    for (auto& p : params[k])
      tx.on_rollback([p, old = p.data()]() mutable {
        at::NoGradGuard g;
        p.set_data(old);
      });
  }
  for (size_t k = 0; k < members.size(); ++k) {
    ParticleState* m = members[k];
    m->storage.clear();
    for (auto& t : flat) m->storage.push_back(swarm ? t[int64_t(k)] : t);
    m->params = params[k];
    for (size_t i = 0; i < layout.size(); ++i) {
      fault("repoint");
      const ParamConfig& c = layout[i].config;
      if (!c.operational && !c.clone) continue;  // one tensor shared by the species: keep it
      m->params[i].set_data(slot_of(k, i));
    }
  }
  if (swarm) {
    swarm->storage = flat;
    swarm->version = sp.version();
  }
}

void touch_swarm(SwarmState& w, Transaction& tx) {
  std::vector<ParticleState*> members;
  for (auto& m : w.members) {
    if (m->version != w.species->version()) replay(*m, tx);
    members.push_back(m.get());
  }
  relayout(members, &w, tx);
}

// ---------------------------------------------------------------- module ownership

// Which particle owns each module (the seeds' particle kernel of a module): a module belongs to
// one particle; adding it to another moves it there with a warning.
struct Registry {
  std::mutex mu;
  std::unordered_map<const Module*, std::weak_ptr<const ParticleState>> owner;
  size_t sweep_at = 1024;
};
Registry& registry() {
  static auto* r = new Registry;  // never destroyed: particles may outlive static destruction
  return *r;
}

bool tree_contains(const Module& root, const Module* m) {
  if (&root == m) return true;
  for (const auto& c : root.children())
    if (tree_contains(*c, m)) return true;
  return false;
}

// The live particle that owns m (its tree still holds m), or null. Call with the registry locked.
std::shared_ptr<const ParticleState> owner_locked(Registry& r, const Module* m) {
  auto it = r.owner.find(m);
  if (it == r.owner.end()) return nullptr;
  auto o = it->second.lock();
  if (!o || !o->module || !tree_contains(*o->module, m)) return nullptr;
  return o;
}

std::string where_in(const ParticleState& s, const Module* m) {
  if (s.module.get() == m) return "its root module";
  for (const auto& item : s.module->named_modules("", false))
    if (item.value().get() == m) return "'" + item.key() + "'";
  return "a submodule";
}

void unregister_tree(const ParticleState& s, const Module& root) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& m : root.modules(/*include_self=*/true)) {
    auto it = r.owner.find(m.get());
    if (it != r.owner.end() && it->second.lock().get() == &s) r.owner.erase(it);
  }
}

void register_tree(const std::shared_ptr<ParticleState>& s, const Module& root,
                   const std::string& at) {
  std::vector<std::string> warnings;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.owner.size() >= r.sweep_at) {  // forget modules whose particle is gone
      for (auto it = r.owner.begin(); it != r.owner.end();)
        it = it->second.expired() ? r.owner.erase(it) : std::next(it);
      r.sweep_at = std::max<size_t>(1024, 2 * r.owner.size());
    }
    std::vector<const Module*> warned;  // one warning per moved subtree
    for (const auto& m : root.modules(/*include_self=*/true)) {
      auto o = owner_locked(r, m.get());
      bool inside = std::any_of(warned.begin(), warned.end(),
                                [&](const Module* w) { return tree_contains(*w, m.get()); });
      if (o && o.get() != s.get() && !inside) {
        warned.push_back(m.get());
        warnings.push_back("module " + m->name() + " (" + where_in(*o, m.get()) +
                           " of a particle of " + o->species->name() +
                           ") is added to a particle of " + s->species->name() + " at " +
                           (at.empty() ? "its root" : "'" + at + "'") +
                           "; it now belongs to the new particle, and operations on the first "
                           "one no longer reach its parameters (see suspicious_submodules())");
      }
      r.owner[m.get()] = s;
    }
  }
  for (const auto& w : warnings) warn(w);
}

}  // namespace

namespace {
// Depth-first over the registered children, with the path from the root on a stack.
void find_cycle(const Module& root, const Module& m, const std::string& path,
                std::vector<const Module*>& on_path) {
  on_path.push_back(&m);
  for (const auto& item : m.named_children()) {
    std::string p = path.empty() ? item.key() : path + "." + item.key();
    const Module* c = item.value().get();
    if (c == &root) {
      warn("the root module " + root.name() + " is referenced from its own submodule at '" + p +
           "'; wrap the model in another module to make that one the root");
      throw Error("make_particle: submodule '" + p + "' is the root module " + root.name() +
                  " itself; LibTorch cannot traverse a cycle of modules");
    }
    if (std::find(on_path.begin(), on_path.end(), c) != on_path.end())
      throw Error("make_particle: submodule '" + p + "' (" + c->name() +
                  ") is one of its own ancestors; LibTorch cannot traverse a cycle of modules");
    find_cycle(root, *c, p, on_path);
  }
  on_path.pop_back();
}
}  // namespace

void check_acyclic(const Module& root) {
  std::vector<const Module*> on_path;
  find_cycle(root, root, "", on_path);
}

void register_modules(const std::shared_ptr<ParticleState>& s) { register_tree(s, *s->module, ""); }

// ---------------------------------------------------------------- touch

void touch(SwarmState& w) {
  if (w.version == w.species->version()) return;
  transact("cannot bring a swarm of " + w.species->name() + " to version " +
               std::to_string(w.species->version()),
           [&](Transaction& tx) { touch_swarm(w, tx); });
}

void touch(ParticleState& s) {
  if (auto w = s.swarm.lock()) return touch(*w);
  if (!s.root_path.empty()) {  // a submodule view follows its root
    auto r = s.root.lock();
    if (!r) return;  // the root is gone: the view keeps the structure it had
    touch(*r);
    if (s.root_version != r->version) derive_view(s, r, s.root_path);
    return;
  }
  if (s.version == s.species->version()) return;
  transact("cannot bring a particle of " + s.species->name() + " to version " +
               std::to_string(s.species->version()),
           [&](Transaction& tx) {
             replay(s, tx);
             relayout({&s}, nullptr, tx);
           });
}

namespace {
// LibTorch's clone() re-runs reset(), whose random initialization draws from the default
// generator only for nyto to overwrite every value: the draws are undone, so making a particle
// never shifts what a program draws next, whether a clone ran or a recycled module spared it.
std::shared_ptr<Module> clone_without_draws(const Module& m) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const at::Tensor before = gen.get_state();
  std::shared_ptr<Module> c = m.clone();
  gen.set_state(before);
  return c;
}
}  // namespace

std::vector<long> use_counts(const ParticleState& s) {
  std::vector<long> c;
  for (const auto& m : s.module->modules(/*include_self=*/true)) c.push_back(m.use_count());
  for (const auto& p : s.params) c.push_back(p.use_count());
  return c;
}

void mark_recyclable(ParticleState& s) {
  if (s.module && s.species && SpeciesEditor::pool(*s.species)) s.recycle_counts = use_counts(s);
}

namespace {
// s is dying: its module, emptied, joins its species' pool if nothing outside s holds any part of
// it (ParticleState::recycle_counts) and it carries no autograd state of its own use.
void recycle(ParticleState& s) {
  if (s.recycle_counts.empty() || !s.module || !s.species || s.version != s.species->version()) return;
  ModulePool* pool = SpeciesEditor::pool(*s.species);
  if (!pool || use_counts(s) != s.recycle_counts) return;
  for (const auto& p : s.params)
    if (p.grad().defined() || !torch::autograd::impl::hooks(p).empty()) return;
  std::lock_guard<std::mutex> lock(pool->mu);
  if (pool->free.size() >= ModulePool::kMax) return;
  at::NoGradGuard no_grad;
  for (auto& p : s.params) p.set_data(at::empty({0}, p.options()));  // s's storage is freed
  pool->free.emplace_back(s.version, s.module);
}

// A module from the pool for a new particle like `first`, with first's buffers (copies, except a
// buffer first shares with every particle), training modes and requires_grad; null if none.
std::shared_ptr<Module> take_recycled(const ParticleState& first) {
  ModulePool* pool = SpeciesEditor::pool(*first.species);
  if (!pool) return nullptr;
  std::shared_ptr<Module> m;
  {
    std::lock_guard<std::mutex> lock(pool->mu);
    auto& f = pool->free;
    for (size_t i = f.size(); i-- > 0;) {
      if (f[i].first != first.species->version()) {
        f.erase(f.begin() + i);  // an older structure: never wanted again
      } else if (!m) {
        m = std::move(f[i].second);
        f.erase(f.begin() + i);
      }
    }
  }
  if (!m) return nullptr;
  auto theirs = first.module->modules(/*include_self=*/true);
  auto mine = m->modules(/*include_self=*/true);
  if (theirs.size() != mine.size()) return nullptr;  // cannot happen at one version
  for (size_t i = 0; i < mine.size(); ++i) mine[i]->train(theirs[i]->is_training());  // parents first
  copy_requires_grad(*first.module, *m);
  auto first_buffers = first.module->named_buffers(true);
  at::NoGradGuard no_grad;
  for (auto& item : m->named_buffers(true)) {
    const at::Tensor* b = first_buffers.find(item.key());
    if (b && !b->is_same(item.value())) item.value().set_data(b->detach().clone());
  }
  return m;
}
}  // namespace

std::shared_ptr<Module> clone_module(const ParticleState& first) {
  const Species& sp = *first.species;
  if (auto m = take_recycled(first)) return m;
  // LibTorch's clone() rebuilds a module with reset() and refuses one whose structure changed
  // since; so clone the version-0 structure and replay the events as a recipient would.
  const auto* proto = &SpeciesEditor::prototype(sp);
  const auto* events = &sp.events();
  std::string part;
  if (!*proto && SpeciesEditor::root_prototype(sp)) {  // a submodule: build the root, take it
    proto = &SpeciesEditor::root_prototype(sp);
    events = &SpeciesEditor::root_events(sp);
    part = SpeciesEditor::root_path(sp);
  }
  if (!*proto) {
    if (const auto* hollow = dynamic_cast<const HollowCloneable*>(first.module.get())) {
      std::shared_ptr<Module> m = hollow->hollow_clone();
      copy_requires_grad(*first.module, *m);
      return m;
    }
    std::shared_ptr<Module> m;
    try {
      m = clone_without_draws(*first.module);
    } catch (const c10::Error& e) {
      throw Error("cannot make a new particle of " + sp.name() + ": LibTorch cannot clone its " +
                  "module " + first.module->name() + " (" + e.what_without_backtrace() +
                  "); a module whose structure was changed outside nyto's particle API (or "
                  "before make_particle_from) cannot be cloned: change it through the particle");
    }
    copy_requires_grad(*first.module, *m);
    return m;
  }
  auto m = clone_without_draws(**proto);
  for (size_t v = 0; v < events->size(); ++v)
    apply_event(m, (*events)[v], /*own=*/nullptr, nullptr, sp, int64_t(v));
  if (!part.empty()) {
    m = find_module(m, part);
    if (!m)
      throw std::logic_error("nyto internal error (this is a bug in nyto): no submodule '" + part +
                             "' in the rebuilt root of " + sp.name());
  }
  copy_requires_grad(*first.module, *m);
  // Buffers are first's (copies), except those added by an event: one tensor for all.
  std::set<const c10::TensorImpl*> shared;
  for (const auto& e : *events)
    if (e.kind == StructureEvent::AddBuffer) shared.insert(e.tensor.unsafeGetTensorImpl());
  auto mine = first.module->named_buffers(true);
  at::NoGradGuard no_grad;
  for (auto& item : m->named_buffers(true)) {
    if (shared.count(item.value().unsafeGetTensorImpl())) continue;
    const at::Tensor* b = mine.find(item.key());
    if (b) item.value().set_data(b->detach().clone());
  }
  return m;
}

}  // namespace detail

using detail::ParticleState;
using torch::nn::Module;

detail::ParticleState::~ParticleState() {
  if (!module) return;
  {
    auto& r = detail::registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& m : module->modules(/*include_self=*/true)) {
      auto it = r.owner.find(m.get());
      if (it != r.owner.end() && it->second.expired()) r.owner.erase(it);
    }
  }
  try {
    detail::recycle(*this);
  } catch (...) {  // recycling is an optimization: the module is simply freed
  }
}

bool is_root(const Module& module) {
  auto& r = detail::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto o = detail::owner_locked(r, &module);
  return o && o->module.get() == &module;
}

// ---------------------------------------------------------------- the particle API

namespace {

void check_path_syntax(const std::string& path, const char* what) {
  bool bad = path.empty() || path.front() == '.' || path.back() == '.' ||
             path.find("..") != std::string::npos;
  if (bad) throw NameError(std::string(what) + ": '" + path + "' is not a valid path");
}

// The parent submodule of `path`, or NameError naming the path.
std::shared_ptr<Module> parent_of(const ParticleState& s, const std::string& path,
                                  const char* what) {
  check_path_syntax(path, what);
  auto parent_path = detail::split(path).first;
  auto parent = detail::find_module(s.module, parent_path);
  if (!parent)
    throw NameError(std::string(what) + ": '" + path + "' needs a submodule '" + parent_path +
                    "', which " + s.species->name() + " has not");
  return parent;
}

enum class Kind { None, Parameter, Buffer, Module };
Kind kind_at(Module& parent, const std::string& leaf) {
  if (detail::params_of(parent).contains(leaf)) return Kind::Parameter;
  if (detail::buffers_of(parent).contains(leaf)) return Kind::Buffer;
  if (detail::children_of(parent).contains(leaf)) return Kind::Module;
  return Kind::None;
}
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Parameter:
      return "parameter";
    case Kind::Buffer:
      return "buffer";
    case Kind::Module:
      return "submodule";
    default:
      return "nothing";
  }
}

// Makes the structure change `e` on s (the initiator) and re-lays its storage out (its whole
// swarm's, for a member). One transaction: on failure module, storage and species are restored.
void change(ParticleState& s, VersionEvent e, const detail::Own& own = {}) {
  Species& sp = *s.species;
  if (!s.root_path.empty())
    throw Error("'" + e.path + "': this particle is the view of submodule '" + s.root_path +
                "' of another particle; change the structure through that root particle, at '" +
                s.root_path + "." + e.path + "' (nothing was changed)");
  detail::transact(
      "cannot change the structure of a particle of " + sp.name() + " at '" + e.path + "'",
      [&](detail::Transaction& tx) {
        tx.on_rollback([&sp, saved = detail::SpeciesEditor::save(sp)]() mutable {
          detail::SpeciesEditor::restore(sp, std::move(saved));
        });
        auto& proto = detail::SpeciesEditor::prototype(sp);
        if (!proto) proto = detail::clone_without_draws(*s.module);  // the version-0 structure, for clone_module()
        if (e.kind == StructureEvent::AddModule) {
          e.snapshot = own.module->clone();
          detail::copy_requires_grad(*own.module, *e.snapshot);
        }
        e.initiator = &s;
        detail::apply_event(s.module, e, &own, &tx, sp, sp.version());
        detail::SpeciesEditor::append(sp, e, *s.module);
        tx.on_rollback([&s, old = s.version] { s.version = old; });
        s.version = sp.version();
        if (auto w = s.swarm.lock())
          detail::touch_swarm(*w, tx);
        else
          detail::relayout({&s}, nullptr, tx);
      });
}
}  // namespace

at::Tensor AnyParticle::add_parameter(const std::string& path, at::Tensor value,
                                      bool requires_grad) {
  ParticleState& s = touched();
  auto parent = parent_of(s, path, "add_parameter");
  std::string leaf = detail::split(path).second;
  if (!value.defined()) throw Error("add_parameter: the tensor for '" + path + "' is undefined");
  for (const auto& p : s.params)
    if (p.unsafeGetTensorImpl() == value.unsafeGetTensorImpl())
      throw Error("add_parameter: the tensor for '" + path + "' is already parameter '" +
                  s.species->params()[size_t(&p - s.params.data())].path +
                  "' of this particle; LibTorch would list it twice (add a clone())");
  if (value.requires_grad() && !value.is_leaf())
    throw Error("add_parameter: the tensor for '" + path +
                "' is not a leaf of the autograd graph; "
                "pass value.detach()");
  Kind k = kind_at(*parent, leaf);
  if (k == Kind::Parameter) {
    const at::Tensor& old = detail::params_of(*parent)[leaf];
    if (old.sizes() != value.sizes())
      throw ShapeError("add_parameter: '" + path + "' is already a parameter of " +
                       s.species->name() + " with shape " + detail::shape_str(old.sizes().vec()) +
                       ", which conflicts with " + detail::shape_str(value.sizes().vec()));
  }
  if (k != Kind::None)
    throw NameError("add_parameter: '" + path + "' is already a " + kind_name(k) + " of " +
                    s.species->name() + "; remove() it first");
  VersionEvent e;
  e.kind = StructureEvent::AddParameter;
  e.path = path;
  e.tensor = value.detach().clone();
  e.parameter.emplace(value.getIntrusivePtr());
  e.requires_grad = requires_grad;
  change(s, std::move(e), {value, nullptr});
  return value;
}

at::Tensor AnyParticle::register_buffer(const std::string& path, at::Tensor value) {
  ParticleState& s = touched();
  auto parent = parent_of(s, path, "register_buffer");
  std::string leaf = detail::split(path).second;
  if (!value.defined()) throw Error("register_buffer: the tensor for '" + path + "' is undefined");
  Kind k = kind_at(*parent, leaf);
  if (k == Kind::Parameter || k == Kind::Module)
    throw NameError("register_buffer: '" + path + "' is already a " + kind_name(k) + " of " +
                    s.species->name() + "; remove() it first");
  if (k == Kind::Buffer) {
    const at::Tensor& old = detail::buffers_of(*parent)[leaf];
    if (old.sizes() != value.sizes() || old.scalar_type() != value.scalar_type())
      throw ShapeError("register_buffer: buffer '" + path + "' of " + s.species->name() + " is " +
                       detail::shape_str(old.sizes().vec()) + " " +
                       c10::toString(old.scalar_type()) + ", which conflicts with " +
                       detail::shape_str(value.sizes().vec()) + " " +
                       c10::toString(value.scalar_type()));
  }
  VersionEvent e;
  e.kind = StructureEvent::AddBuffer;
  e.path = path;
  e.tensor = value;
  change(s, std::move(e), {value, nullptr});
  return value;
}

void AnyParticle::add_module(const std::string& path, std::shared_ptr<Module> module) {
  ParticleState& s = touched();
  auto parent = parent_of(s, path, "add_module");
  std::string leaf = detail::split(path).second;
  if (!module) throw Error("add_module: the module for '" + path + "' is null");
  Kind k = kind_at(*parent, leaf);
  if (k != Kind::None)
    throw NameError("add_module: '" + path + "' is already a " + kind_name(k) + " of " +
                    s.species->name() + "; remove() it first");
  if (module == s.module) {
    detail::warn("the root module " + module->name() + " of a particle of " + s.species->name() +
                 " would be referenced from its own submodule at '" + path +
                 "'; wrap the model in another module to make that one the root");
    throw Error("add_module: '" + path + "' would make the root module of " + s.species->name() +
                " its own submodule; LibTorch cannot traverse a cycle of modules (nothing was "
                "changed)");
  }
  if (detail::tree_contains(*module, parent.get()))
    throw Error("add_module: '" + path + "' would make module " + module->name() +
                " a submodule of itself; LibTorch cannot traverse a cycle of modules");
  if (detail::tree_contains(*s.module, module.get()))
    throw Error("add_module: module " + module->name() + " is already in this particle at " +
                detail::where_in(s, module.get()) +
                "; LibTorch would list its parameters twice (add a clone())");
  VersionEvent e;
  e.kind = StructureEvent::AddModule;
  e.path = path;
  e.module = module;
  change(s, std::move(e), {at::Tensor(), module});
  detail::register_tree(s_, *module, path);
}

void AnyParticle::remove(const std::string& path) {
  ParticleState& s = touched();
  check_path_syntax(path, "remove");
  auto [parent_path, leaf] = detail::split(path);
  auto parent = detail::find_module(s.module, parent_path);
  Kind k = parent ? kind_at(*parent, leaf) : Kind::None;
  if (k == Kind::None)
    throw NameError("remove: no parameter, buffer or submodule '" + path + "' in " +
                    s.species->name());
  std::shared_ptr<Module> removed;
  if (k == Kind::Module) removed = detail::children_of(*parent)[leaf];
  StructureEvent kind = k == Kind::Parameter ? StructureEvent::RemoveParameter
                        : k == Kind::Buffer  ? StructureEvent::RemoveBuffer
                                             : StructureEvent::RemoveModule;
  VersionEvent e;
  e.kind = kind;
  e.path = path;
  change(s, std::move(e));
  if (removed) detail::unregister_tree(s, *removed);
}

void AnyParticle::set_local_buffer(const std::string& path, at::Tensor value) {
  ParticleState& s = touched();
  check_path_syntax(path, "set_local_buffer");
  auto [parent_path, leaf] = detail::split(path);
  auto parent = detail::find_module(s.module, parent_path);
  if (!parent || kind_at(*parent, leaf) != Kind::Buffer)
    throw NameError("set_local_buffer: '" + path + "' is not a buffer of " + s.species->name());
  at::Tensor& old = detail::buffers_of(*parent)[leaf];
  if (!value.defined() || old.sizes() != value.sizes() || old.scalar_type() != value.scalar_type())
    throw ShapeError("set_local_buffer: buffer '" + path + "' is " +
                     detail::shape_str(old.sizes().vec()) + " " + c10::toString(old.scalar_type()) +
                     "; the new value must be too");
  old = std::move(value);  // this module's registry only: no version event
}

const AnyParticle& AnyParticle::touch() const {
  detail::touch(state());
  return *this;
}

detail::ParticleState& AnyParticle::touched() const {
  detail::touch(state());
  return state();
}

at::Tensor AnyParticle::parameter(const std::string& path) const {
  ParticleState& s = touched();
  auto [pp, leaf] = detail::split(path);
  auto parent = detail::find_module(s.module, pp);
  const at::Tensor* t = parent ? detail::params_of(*parent).find(leaf) : nullptr;
  if (!t) throw NameError("no parameter '" + path + "' in " + s.species->name());
  return *t;
}

at::Tensor AnyParticle::buffer(const std::string& path) const {
  ParticleState& s = touched();
  auto [pp, leaf] = detail::split(path);
  auto parent = detail::find_module(s.module, pp);
  const at::Tensor* t = parent ? detail::buffers_of(*parent).find(leaf) : nullptr;
  if (!t) throw NameError("no buffer '" + path + "' in " + s.species->name());
  return *t;
}

std::shared_ptr<Module> AnyParticle::submodule(const std::string& path) const {
  ParticleState& s = touched();
  auto m = path.empty() ? nullptr : detail::find_module(s.module, path);
  if (!m) throw NameError("no submodule '" + path + "' in " + s.species->name());
  return m;
}

std::vector<std::string> AnyParticle::suspicious_submodules() const {
  ParticleState& s = state();
  std::vector<std::string> out;
  auto& r = detail::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& item : s.module->named_modules("", /*include_self=*/false)) {
    auto o = detail::owner_locked(r, item.value().get());
    if (o && o.get() != &s) out.push_back(item.key());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace nyto
