// Swarms, and saving and loading particles and swarms with LibTorch serialization.
#include <ATen/ATen.h>
#include <nyto/checked_load.h>
#include <nyto/io.h>
#include <nyto/swarm.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <fstream>
#include <functional>
#ifdef __GLIBC__  // (set by the headers above)
#include <malloc.h>
#endif

#include "runtime/detail.h"

namespace nyto {

using detail::ParticleState;
using detail::SwarmState;

// ---------------------------------------------------------------- swarm

namespace detail {
namespace {
// Member i: new_like(like(i)) over row i of s's storage, linked back to the swarm.
void add_members(const std::shared_ptr<SwarmState>& s, int64_t n,
                 const std::function<const ParticleState&(int64_t)>& like) {
  for (int64_t i = 0; i < n; ++i) {
    std::vector<at::Tensor> rows;
    for (const auto& t : s->storage) rows.push_back(t[i]);
    s->members.push_back(new_like(like(i), std::move(rows)));
    s->members.back()->swarm = s;
  }
}
}  // namespace
}  // namespace detail

AnySwarm::AnySwarm(const AnyParticle& seed, int64_t n, SwarmInit init) {
  if (n < 1) throw Error("a swarm needs at least one member (asked for " + std::to_string(n) + ")");
  ParticleState& first = seed.state();
  detail::ensure_operational_in_storage(first);
  auto s = std::make_shared<SwarmState>();
  s->species = first.species;
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < first.storage.size(); ++g) {
    const at::Tensor& row = first.storage[g];
    at::Tensor t;
    switch (init) {
      // A copy always: contiguous() of an expanded [1, n] row is the row itself (a size-1 dim is
      // already contiguous), so a one-member swarm would share the seed's storage.
      case SwarmInit::Copies:
        t = row.unsqueeze(0).expand({n, row.numel()}).clone(at::MemoryFormat::Contiguous);
        break;
      case SwarmInit::Rand: t = at::rand({n, row.numel()}, row.options()); break;
      case SwarmInit::Randn: t = at::randn({n, row.numel()}, row.options()); break;
    }
    s->storage.push_back(t);
  }
  detail::add_members(s, n, [&](int64_t) -> const ParticleState& { return first; });
#ifdef __GLIBC__
  // Each member's module came from LibTorch's clone(), which makes and fills parameters (reset(),
  // then a copy of first's) that new_like drops for views into the storage: twice the swarm's
  // bytes, freed, but kept by glibc's heap once its mmap threshold has grown past a parameter.
  // Returned to the system here, a big swarm costs its storage (pso-big: 1.78 -> 1.03 of it,
  // bench/README.md), not that again in free heap. Only here, where a program makes its swarms:
  // a rule's fresh swarm outputs (new_swarm_like) reuse that heap run after run.
  int64_t bytes = 0;
  for (const auto& t : s->storage) bytes += int64_t(t.nbytes());
  if (bytes > (int64_t(64) << 20)) malloc_trim(0);
#endif
  s->version = first.version;
  s_ = std::move(s);
}

namespace detail {
std::shared_ptr<SwarmState> new_swarm_like(const SwarmState& ref) {
  auto s = std::make_shared<SwarmState>();
  s->species = ref.species;
  s->version = ref.version;
  at::NoGradGuard no_grad;
  for (const auto& t : ref.storage) s->storage.push_back(t.clone());
  add_members(s, int64_t(ref.members.size()),
              [&](int64_t i) -> const ParticleState& { return *ref.members[size_t(i)]; });
  return s;
}
}  // namespace detail

int64_t AnySwarm::size() const { return s_ ? int64_t(s_->members.size()) : 0; }

const std::shared_ptr<Species>& AnySwarm::species() const {
  if (!s_) throw Error("use of an empty swarm handle");
  return s_->species;
}

const std::vector<at::Tensor>& AnySwarm::storage() const {
  touch();
  return s_->storage;
}

const AnySwarm& AnySwarm::touch() const {
  if (!s_) throw Error("use of an empty swarm handle");
  detail::touch(*s_);
  return *this;
}

int64_t AnySwarm::version() const {
  if (!s_) throw Error("use of an empty swarm handle");
  return s_->version;
}

AnyParticle AnySwarm::member(int64_t i) const {
  if (i < 0 || i >= size())
    throw Error("swarm member " + std::to_string(i) + " out of range (the swarm has " +
                std::to_string(size()) + " members)");
  touch();
  return AnyParticle(s_->members[size_t(i)]);
}

// ---------------------------------------------------------------- serialization

namespace {

constexpr const char* kFormatKey = "nyto_format";

void save_archive(torch::serialize::OutputArchive& ar, const std::string& path) {
  io::write_file(path, [&](io::FileWriter& w) {
    try {
      ar.save_to(w.function());
    } catch (const c10::Error& e) {
      throw IOError("cannot write '" + io::shown_path(path) + "': " + e.what_without_backtrace());
    }
  });
}

torch::serialize::InputArchive open_archive(const std::string& path, const std::string& kind) {
  torch::serialize::InputArchive ar;
  load_archive_checked(ar, path, "not a readable nyto " + kind + " file");
  c10::IValue format;
  if (!ar.try_read(kFormatKey, format) || !format.isString())
    throw IOError("'" + path + "' is not a nyto " + kind + " file (no format tag)");
  if (format.toStringRef() != kind)
    throw IOError("'" + path + "' holds a nyto " + format.toStringRef() + ", not a " + kind);
  return ar;
}

c10::List<std::string> paths_of(const std::vector<ParamInfo>& params) {
  c10::List<std::string> out;
  for (const auto& p : params) out.push_back(p.path);
  return out;
}

std::vector<std::string> buffer_paths(const torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& b : m.named_buffers(true)) out.push_back(b.key());
  return out;
}

std::vector<std::string> read_strings(torch::serialize::InputArchive& ar, const std::string& key,
                                      const std::string& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isList())
    throw IOError("'" + path + "' is corrupt: missing '" + key + "'");
  std::vector<std::string> out;
  for (const auto& e : v.toListRef()) {
    if (!e.isString()) throw IOError("'" + path + "' is corrupt: bad '" + key + "'");
    out.push_back(e.toStringRef());
  }
  return out;
}

at::Tensor read_tensor(torch::serialize::InputArchive& ar, const std::string& key,
                       const std::string& path) {
  at::Tensor t;
  if (!ar.try_read(key, t)) throw IOError("'" + path + "' is corrupt: missing tensor '" + key + "'");
  return t;
}

// Checks that a file's parameter and buffer lists match the species / module.
void check_paths(const std::vector<std::string>& theirs, const std::vector<std::string>& mine,
                 const std::string& what, const std::string& path, const std::string& species) {
  for (size_t i = 0; i < std::max(theirs.size(), mine.size()); ++i) {
    if (i < theirs.size() && i < mine.size() && theirs[i] == mine[i]) continue;
    std::string a = i < mine.size() ? "'" + mine[i] + "'" : "nothing";
    std::string b = i < theirs.size() ? "'" + theirs[i] + "'" : "nothing";
    throw ShapeError("'" + path + "' has another structure than " + species + ": " + what + " " +
                     std::to_string(i) + " is " + b + " in the file but " + a + " in the model");
  }
}

void check_tensor(const at::Tensor& t, c10::IntArrayRef shape, c10::ScalarType dtype,
                  const std::string& name, const std::string& path) {
  if (t.sizes() != shape)
    throw ShapeError("'" + path + "': '" + name + "' has shape " + detail::shape_str(t.sizes().vec()) +
                     " in the file but " + detail::shape_str(shape.vec()) + " in the model");
  if (t.scalar_type() != dtype)
    throw ShapeError("'" + path + "': '" + name + "' is " + std::string(c10::toString(t.scalar_type())) +
                     " in the file but " + c10::toString(dtype) + " in the model");
}

}  // namespace

void AnyParticle::save(const std::string& path) const {
  ParticleState& s = touched();
  torch::serialize::OutputArchive ar;
  ar.write(kFormatKey, c10::IValue(std::string("particle")));
  ar.write("params", c10::IValue(paths_of(s.species->params())));
  for (size_t i = 0; i < s.params.size(); ++i)
    ar.write("param_" + std::to_string(i), s.params[i].detach());
  std::vector<at::Tensor> bufs = s.module->buffers(true);
  c10::List<std::string> bpaths;
  for (const auto& b : buffer_paths(*s.module)) bpaths.push_back(b);
  ar.write("buffers", c10::IValue(bpaths));
  for (size_t i = 0; i < bufs.size(); ++i) ar.write("buffer_" + std::to_string(i), bufs[i], true);
  save_archive(ar, path);
}

void AnyParticle::load(const std::string& path) {
  ParticleState& s = touched();
  auto ar = open_archive(path, "particle");
  std::vector<std::string> mine;
  for (const auto& p : s.species->params()) mine.push_back(p.path);
  check_paths(read_strings(ar, "params", path), mine, "parameter", path, s.species->name());
  check_paths(read_strings(ar, "buffers", path), buffer_paths(*s.module), "buffer", path,
              s.species->name());
  // Read and check everything before the first write, so a bad file changes nothing.
  std::vector<at::Tensor> values, bvalues;
  for (size_t i = 0; i < s.params.size(); ++i) {
    values.push_back(read_tensor(ar, "param_" + std::to_string(i), path));
    check_tensor(values.back(), s.params[i].sizes(), s.params[i].scalar_type(), mine[i], path);
  }
  std::vector<at::Tensor> bufs = s.module->buffers(true);
  for (size_t i = 0; i < bufs.size(); ++i) {
    at::Tensor t;
    if (!ar.try_read("buffer_" + std::to_string(i), t, true))
      throw IOError("'" + path + "' is corrupt: missing buffer " + std::to_string(i));
    check_tensor(t, bufs[i].sizes(), bufs[i].scalar_type(), "buffer " + std::to_string(i), path);
    bvalues.push_back(t);
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < values.size(); ++i) s.params[i].copy_(values[i]);
  for (size_t i = 0; i < bufs.size(); ++i) bufs[i].copy_(bvalues[i]);
}

void AnySwarm::save(const std::string& path) const {
  touch();
  const SwarmState& s = *s_;
  torch::serialize::OutputArchive ar;
  ar.write(kFormatKey, c10::IValue(std::string("swarm")));
  ar.write("members", c10::IValue(int64_t(s.members.size())));
  ar.write("params", c10::IValue(paths_of(s.species->params())));
  c10::List<std::string> bpaths;
  for (const auto& b : buffer_paths(*s.members[0]->module)) bpaths.push_back(b);
  ar.write("buffers", c10::IValue(bpaths));
  for (size_t i = 0; i < s.species->params().size(); ++i) {
    std::vector<at::Tensor> rows;
    for (const auto& m : s.members) rows.push_back(m->params[i].detach());
    ar.write("param_" + std::to_string(i), at::stack(rows));
  }
  for (size_t j = 0; j < bpaths.size(); ++j) {
    std::vector<at::Tensor> rows;
    for (const auto& m : s.members) rows.push_back(m->module->buffers(true)[j]);
    ar.write("buffer_" + std::to_string(j), at::stack(rows), true);
  }
  save_archive(ar, path);
}

void AnySwarm::load(const std::string& path) {
  touch();
  SwarmState& s = *s_;
  auto ar = open_archive(path, "swarm");
  c10::IValue n;
  if (!ar.try_read("members", n) || !n.isInt()) throw IOError("'" + path + "' is corrupt: no member count");
  if (n.toInt() != int64_t(s.members.size()))
    throw ShapeError("'" + path + "' holds " + std::to_string(n.toInt()) +
                     " members but the swarm has " + std::to_string(s.members.size()));
  std::vector<std::string> mine;
  for (const auto& p : s.species->params()) mine.push_back(p.path);
  check_paths(read_strings(ar, "params", path), mine, "parameter", path, s.species->name());
  auto bnames = buffer_paths(*s.members[0]->module);
  check_paths(read_strings(ar, "buffers", path), bnames, "buffer", path, s.species->name());
  int64_t N = n.toInt();
  std::vector<at::Tensor> values, bvalues;
  for (size_t i = 0; i < mine.size(); ++i) {
    values.push_back(read_tensor(ar, "param_" + std::to_string(i), path));
    auto shape = s.members[0]->params[i].sizes().vec();
    shape.insert(shape.begin(), N);
    check_tensor(values.back(), shape, s.members[0]->params[i].scalar_type(), mine[i], path);
  }
  auto bufs0 = s.members[0]->module->buffers(true);
  for (size_t j = 0; j < bnames.size(); ++j) {
    at::Tensor t;
    if (!ar.try_read("buffer_" + std::to_string(j), t, true))
      throw IOError("'" + path + "' is corrupt: missing buffer '" + bnames[j] + "'");
    auto shape = bufs0[j].sizes().vec();
    shape.insert(shape.begin(), N);
    check_tensor(t, shape, bufs0[j].scalar_type(), bnames[j], path);
    bvalues.push_back(t);
  }
  at::NoGradGuard no_grad;
  for (int64_t m = 0; m < N; ++m) {
    auto& ms = *s.members[size_t(m)];
    for (size_t i = 0; i < values.size(); ++i) ms.params[i].copy_(values[i][m]);
    auto bufs = ms.module->buffers(true);
    for (size_t j = 0; j < bvalues.size(); ++j) bufs[j].copy_(bvalues[j][m]);
  }
}

}  // namespace nyto
