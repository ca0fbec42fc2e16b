// Species layout, particle creation and the eager particle operations.
#include <ATen/ATen.h>
#include <nyto/particle.h>

#include <algorithm>
#include <atomic>

#include "runtime/detail.h"

namespace nyto {

// ---------------------------------------------------------------- Species

namespace {
std::atomic<int64_t> next_species_id{1};
}

namespace {
// The layout of module's parameters, in named_parameters() order.
void layout_of(const torch::nn::Module& module, std::vector<ParamInfo>& params,
               std::vector<StorageGroup>& groups) {
  params.clear();
  groups.clear();
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    const at::Tensor& t = item.value();
    ParamInfo info;
    info.path = item.key();
    info.shape = t.sizes().vec();
    info.dtype = t.scalar_type();
    info.device = t.device();
    info.numel = t.numel();
    auto g = std::find_if(groups.begin(), groups.end(), [&](const StorageGroup& sg) {
      return sg.dtype == info.dtype && sg.device == info.device;
    });
    if (g == groups.end()) {
      groups.push_back({info.dtype, info.device, 0});
      g = groups.end() - 1;
    }
    info.group = int(g - groups.begin());
    info.offset = g->numel;
    g->numel += info.numel;
    params.push_back(std::move(info));
  }
}
}  // namespace

std::shared_ptr<Species> Species::from_module(const torch::nn::Module& module) {
  std::shared_ptr<Species> s(new Species());
  s->id_ = next_species_id++;
  s->module_name_ = module.name();
  layout_of(module, s->params_, s->groups_);
  detail::SpeciesEditor::make_pool(*s);
  return s;
}

void Species::relayout(const torch::nn::Module& module) {
  std::vector<ParamInfo> params;
  std::vector<StorageGroup> groups;
  layout_of(module, params, groups);
  for (auto& p : params) {  // a path that stays keeps its config; a new one gets the default
    int64_t i = find(p.path);
    if (i >= 0) p.config = params_[size_t(i)].config;
  }
  params_ = std::move(params);
  groups_ = std::move(groups);
}

std::string Species::name() const { return module_name_ + "#" + std::to_string(id_); }

int64_t Species::find(const std::string& path) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].path == path) return int64_t(i);
  return -1;
}

std::vector<std::pair<int64_t, int64_t>> Species::operational_ranges(int group) const {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (const auto& p : params_) {
    if (p.group != group || !p.config.operational || p.numel == 0) continue;
    if (!runs.empty() && runs.back().second == p.offset)
      runs.back().second += p.numel;
    else
      runs.emplace_back(p.offset, p.offset + p.numel);
  }
  return runs;
}

std::vector<std::pair<int64_t, int64_t>> Species::tensor_ranges(int group) const {
  std::vector<std::pair<int64_t, int64_t>> r;
  for (const auto& p : params_)
    if (p.group == group && p.config.operational && p.numel > 0) r.emplace_back(p.offset, p.offset + p.numel);
  std::sort(r.begin(), r.end());
  return r;
}

std::vector<int64_t> Species::select(const std::string& name) const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& p = params_[i].path;
    if (name.empty() || p == name || (p.size() > name.size() && p.compare(0, name.size(), name) == 0 &&
                                      p[name.size()] == '.'))
      out.push_back(int64_t(i));
  }
  if (out.empty()) {
    std::string known;
    for (const auto& p : params_) known += (known.empty() ? "" : ", ") + p.path;
    throw NameError("no parameter or submodule '" + name + "' in species " + this->name() +
                    "; its parameters are: " + known);
  }
  return out;
}

std::shared_ptr<Species> Species::sub_species(const std::string& path,
                                              const torch::nn::Module& sub) {
  auto it = subs_.find(path);
  if (it != subs_.end()) return it->second;
  auto s = from_module(sub);
  // After a structure change LibTorch cannot clone the submodule alone: keep the root's recipe.
  if (prototype_ || root_prototype_) {
    s->root_prototype_ = prototype_ ? prototype_ : root_prototype_;
    s->root_events_ = prototype_ ? events_ : root_events_;
    s->root_path_ = prototype_ ? path : root_path_ + "." + path;
  }
  // The submodule's parameters start with the same configs as in the root.
  for (auto& p : s->params_) {
    int64_t i = find(path + "." + p.path);
    if (i >= 0) p.config = params_[i].config;
  }
  subs_[path] = s;
  return s;
}

// ---------------------------------------------------------------- particle state

namespace detail {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string r = "[";
  for (size_t k = 0; k < shape.size(); ++k) r += (k ? ", " : "") + std::to_string(shape[k]);
  return r + "]";
}

at::Tensor slot(const ParticleState& s, size_t i) {
  const ParamInfo& p = s.species->params()[i];
  return s.storage[p.group].narrow(0, p.offset, p.numel).view(p.shape);
}

bool in_storage(const ParticleState& s, size_t i) {
  const ParamInfo& p = s.species->params()[i];
  if (p.numel == 0) return true;
  const at::Tensor& st = s.storage[p.group];
  const char* base = first_byte(st);
  return base && first_byte(s.params[i]) == base + p.offset * int64_t(st.element_size());
}

void point_into_storage(ParticleState& s, size_t i) {
  at::NoGradGuard no_grad;
  s.params[i].set_data(slot(s, i));
}

void ensure_operational_in_storage(ParticleState& s) {
  touch(s);  // the newest version first (nytorch touches before every particle operation)
  ensure_operational_in_storage_touched(s);
}

void ensure_operational_in_storage_touched(ParticleState& s) {
  // A parameter that was shared (non-operational, clone = false) and has since been made
  // operational must be computed from this particle's own storage: copy it in and re-point.
  const auto& params = s.species->params();
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].config.operational || in_storage(s, i)) continue;
    at::NoGradGuard no_grad;
    at::Tensor dst = slot(s, i);
    dst.copy_(s.params[i]);
    s.params[i].set_data(dst);
  }
}

std::vector<at::Tensor> collect_params(const torch::nn::Module& m, const Species& species) {
  auto named = m.named_parameters(true);
  if (named.size() != species.params().size())
    throw std::logic_error("nyto internal error (this is a bug in nyto): module has " +
                           std::to_string(named.size()) + " parameters, species " +
                           std::to_string(species.params().size()));
  std::vector<at::Tensor> out;
  out.reserve(named.size());
  for (const auto& item : named) out.push_back(item.value());
  return out;
}

std::shared_ptr<ParticleState> new_like(const ParticleState& first,
                                        std::vector<at::Tensor> storage) {
  auto s = std::make_shared<ParticleState>();
  s->species = first.species;
  s->version = first.version;
  s->module = clone_module(first);
  s->params = collect_params(*s->module, *s->species);
  s->storage = std::move(storage);
  register_modules(s);
  const auto& params = s->species->params();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamConfig& c = params[i].config;
    if (!c.operational && !c.clone) {
      s->params[i].set_data(first.params[i]);  // the very same storage
      continue;
    }
    at::Tensor dst = slot(*s, i);
    if (!c.operational) dst.copy_(first.params[i]);
    s->params[i].set_data(dst);
  }
  mark_recyclable(*s);
  return s;
}

std::vector<at::Tensor> empty_storage(const Species& species) {
  std::vector<at::Tensor> out;
  for (const auto& g : species.groups())
    out.push_back(at::empty({g.numel}, at::TensorOptions().dtype(g.dtype).device(g.device)));
  return out;
}

}  // namespace detail

using detail::ParticleState;

ParticleState& AnyParticle::state() const {
  if (!s_) throw Error("use of an empty particle handle (default-constructed or moved from)");
  return *s_;
}

AnyParticle AnyParticle::adopt(std::shared_ptr<torch::nn::Module> module) {
  if (!module) throw Error("make_particle: null module");
  detail::check_acyclic(*module);  // before LibTorch's traversals, which would never end
  auto s = std::make_shared<ParticleState>();
  s->species = Species::from_module(*module);
  s->module = std::move(module);
  s->params = detail::collect_params(*s->module, *s->species);
  s->storage = detail::empty_storage(*s->species);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < s->params.size(); ++i) {
    at::Tensor dst = detail::slot(*s, i);
    dst.copy_(s->params[i]);
    s->params[i].set_data(dst);
  }
  detail::register_modules(s);
  return AnyParticle(std::move(s));
}

// ---------------------------------------------------------------- operations

namespace {

using Ranges = std::vector<std::pair<int64_t, int64_t>>;

// Builds a new particle of `first`'s species: for every operational run [b, e) of every group g,
// compute(g, b, e) gives the values. A group that is wholly operational takes the computed tensor
// as its storage without a copy.
AnyParticle produce(const ParticleState& first,
                    const std::function<at::Tensor(int, int64_t, int64_t)>& compute) {
  const Species& sp = *first.species;
  std::vector<at::Tensor> storage;
  at::NoGradGuard no_grad;
  for (int g = 0; g < int(sp.groups().size()); ++g) {
    const StorageGroup& grp = sp.groups()[g];
    Ranges runs = sp.operational_ranges(g);
    if (runs.size() == 1 && runs[0].first == 0 && runs[0].second == grp.numel) {
      at::Tensor t = compute(g, 0, grp.numel);
      storage.push_back(t.is_contiguous() && t.scalar_type() == grp.dtype
                            ? t
                            : t.to(grp.dtype).contiguous());
      continue;
    }
    at::Tensor t = at::empty({grp.numel}, at::TensorOptions().dtype(grp.dtype).device(grp.device));
    for (auto [b, e] : runs) t.narrow(0, b, e - b).copy_(compute(g, b, e));
    storage.push_back(t);
  }
  return AnyParticle(detail::new_like(first, std::move(storage)));
}

at::Tensor run_of(const ParticleState& s, int g, int64_t b, int64_t e) {
  return s.storage[g].narrow(0, b, e - b);
}

}  // namespace

AnyParticle AnyParticle::clone() const {
  ParticleState& a = state();
  detail::ensure_operational_in_storage(a);
  return produce(a, [&](int g, int64_t lo, int64_t hi) { return run_of(a, g, lo, hi).clone(); });
}

AnyParticle AnyParticle::rand() const {
  ParticleState& a = touched();
  return produce(a, [&](int g, int64_t lo, int64_t hi) {
    return at::rand({hi - lo}, a.storage[g].options());
  });
}

AnyParticle AnyParticle::randn() const {
  ParticleState& a = touched();
  return produce(a, [&](int g, int64_t lo, int64_t hi) {
    return at::randn({hi - lo}, a.storage[g].options());
  });
}

AnyParticle AnyParticle::detach() const {
  ParticleState& a = touched();
  auto s = std::make_shared<ParticleState>();
  s->species = Species::from_module(*a.module);
  // The new species starts at this one's version and history, so it can build new particles of
  // a changed structure (clone_module) and replay nothing twice.
  detail::SpeciesEditor::inherit(*s->species, *a.species);
  s->version = s->species->version();
  // The new species starts with this one's configs.
  for (size_t i = 0; i < a.params.size(); ++i)
    s->species->set_config(int64_t(i), a.species->params()[i].config);
  s->module = detail::clone_module(a);
  s->params = detail::collect_params(*s->module, *s->species);
  s->storage = a.storage;  // the same tensors
  detail::register_modules(s);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < s->params.size(); ++i) s->params[i].set_data(a.params[i]);
  return AnyParticle(std::move(s));
}

namespace {
void check_same_structure(const Species& mine, const Species& theirs) {
  const auto& p = mine.params();
  const auto& q = theirs.params();
  for (size_t i = 0; i < std::max(p.size(), q.size()); ++i) {
    if (i >= p.size())
      throw ShapeError("structures differ: parameter '" + q[i].path + "' of " + theirs.name() +
                       " has no counterpart in " + mine.name());
    if (i >= q.size())
      throw ShapeError("structures differ: parameter '" + p[i].path + "' of " + mine.name() +
                       " has no counterpart in " + theirs.name());
    if (p[i].path != q[i].path)
      throw ShapeError("structures differ at parameter '" + p[i].path + "' of " + mine.name() +
                       " ('" + q[i].path + "' in " + theirs.name() + ")");
    if (p[i].shape != q[i].shape)
      throw ShapeError("shapes differ at parameter '" + p[i].path + "': " +
                       detail::shape_str(p[i].shape) + " in " + mine.name() + " vs " +
                       detail::shape_str(q[i].shape) + " in " + theirs.name());
  }
}
}  // namespace

AnyParticle AnyParticle::clone_from(const AnyParticle& other) const {
  ParticleState& a = touched();
  ParticleState& b = other.touched();
  check_same_structure(*a.species, *b.species);
  auto result = clone();
  ParticleState& r = *result.s_;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < r.params.size(); ++i)
    if (r.species->params()[i].config.operational) r.params[i].copy_(b.params[i]);
  return result;
}

namespace {
// Runs a custom operator: fn gives the new value of each operational parameter (by index); all
// values are computed and checked before the new particle is made, so a throwing or wrong fn
// changes nothing.
AnyParticle custom_operator(const AnyParticle& first,
                            const std::function<at::Tensor(size_t, const ParamConfig&)>& fn) {
  const auto& ps = first.params();
  std::vector<at::Tensor> values(ps.size());
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < ps.size(); ++i) {
      if (!ps[i].config.operational) continue;
      values[i] = fn(i, ps[i].config);
      if (!values[i].defined() || values[i].sizes() != c10::IntArrayRef(ps[i].shape))
        throw ShapeError("custom operator returned " +
                         (values[i].defined() ? detail::shape_str(values[i].sizes().vec())
                                              : std::string("an undefined tensor")) +
                         " for parameter '" + ps[i].path + "' of shape " +
                         detail::shape_str(ps[i].shape));
    }
  }
  AnyParticle result = first.clone();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < ps.size(); ++i)
    if (values[i].defined()) result.param_tensors()[i].copy_(values[i]);
  return result;
}
}  // namespace

AnyParticle AnyParticle::unary_operator(const UnaryOperator& fn) const {
  const auto& mine = param_tensors();
  return custom_operator(*this, [&](size_t i, const ParamConfig& c) { return fn(mine[i].detach(), c); });
}

AnyParticle AnyParticle::binary_operator(const AnyParticle& other, const BinaryOperator& fn) const {
  const auto& mine = param_tensors();
  const auto& theirs = other.param_tensors();
  detail::check_species(species(), other.species());
  return custom_operator(*this, [&](size_t i, const ParamConfig& c) {
    return fn(mine[i].detach(), theirs[i].detach(), c);
  });
}

namespace detail {

void derive_view(ParticleState& view, const std::shared_ptr<ParticleState>& root_state,
                 const std::string& path) {
  ParticleState& a = *root_state;
  std::shared_ptr<torch::nn::Module> m;
  for (const auto& item : a.module->named_modules("", /*include_self=*/false))
    if (item.key() == path) m = item.value();
  if (!m) {
    std::string known;
    for (const auto& item : a.module->named_modules("", false))
      known += (known.empty() ? "" : ", ") + item.key();
    throw NameError("no submodule '" + path + "' in " + a.species->name() +
                    (known.empty() ? "; it has no submodules" : "; its submodules are: " + known));
  }
  auto species = a.species->sub_species(path, *m);
  auto params = collect_params(*m, *species);
  // Each group of the submodule is a contiguous run of the root's group (parameters are laid out
  // in named_parameters() order, which lists a submodule's parameters together).
  std::vector<at::Tensor> storage;
  for (const auto& grp : species->groups()) {
    int64_t begin = -1, root_group = -1;
    for (const auto& p : species->params()) {
      if (p.dtype != grp.dtype || p.device != grp.device) continue;
      const ParamInfo& rp = a.species->params()[a.species->find(path + "." + p.path)];
      if (begin < 0) begin = rp.offset, root_group = rp.group;
    }
    storage.push_back(a.storage[root_group].narrow(0, begin, grp.numel));
  }
  view.species = std::move(species);
  view.module = std::move(m);
  view.params = std::move(params);
  view.storage = std::move(storage);
  view.version = view.species->version();
  view.root = root_state;
  view.root_path = path;
  view.root_version = a.version;
}

}  // namespace detail

AnyParticle AnyParticle::sub(const std::string& path) const {
  ParticleState& a = touched();
  // A view of a view is a view of the root (so it follows the root's versions too).
  std::shared_ptr<ParticleState> root = s_;
  std::string full = path;
  if (auto r = a.root.lock()) root = r, full = a.root_path + "." + path;
  detail::ensure_operational_in_storage(*root);
  auto s = std::make_shared<ParticleState>();
  detail::derive_view(*s, root, full);
  return AnyParticle(std::move(s));
}

// ---------------------------------------------------------------- ParamConfig

void AnyParticle::set_param_config(bool operational, bool clone, const std::string& name) {
  apply_param_config([&](const ParamConfig&) { return ParamConfig{operational, clone}; }, name);
}

void AnyParticle::apply_param_config(const std::function<ParamConfig(const ParamConfig&)>& fn,
                                     const std::string& name) {
  Species& sp = *touched().species;
  auto selected = sp.select(name);
  // Compute every new config first so a throwing fn changes nothing.
  std::vector<ParamConfig> configs;
  for (int64_t i : selected) configs.push_back(fn(sp.params()[i].config));
  for (size_t k = 0; k < selected.size(); ++k) sp.set_config(selected[k], configs[k]);
}

int64_t AnyParticle::get_param_id(const std::string& path) const {
  touch();
  int64_t i = species()->find(path);
  if (i < 0) species()->select(path);  // throws NameError listing the parameters
  if (i < 0) throw NameError("'" + path + "' is a submodule, not a parameter");
  return i;
}

int64_t AnyParticle::get_param_id(const at::Tensor& parameter) const {
  const auto& ps = touched().params;
  for (size_t i = 0; i < ps.size(); ++i)
    if (ps[i].unsafeGetTensorImpl() == parameter.unsafeGetTensorImpl()) return int64_t(i);
  throw NameError("tensor is not a parameter of this particle (" + species()->name() + ")");
}

}  // namespace nyto
