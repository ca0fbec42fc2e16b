// Particles of models known only from a file: a generic Cloneable module built from the file's
// parameter paths (ParamTree), nyto checkpoints and TorchScript archives in and out.
#include <ATen/ATen.h>
#include <nyto/any_module.h>
#include <nyto/checked_load.h>
#include <nyto/io.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/nn/cloneable.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/detail.h"

namespace fs = std::filesystem;

namespace nyto {

namespace {

/// One parameter or buffer of a ParamTree, by its dotted path from the tree's root.
struct Entry {
  std::string path;
  std::vector<int64_t> shape;
  c10::ScalarType dtype;
  bool buffer = false;
  bool requires_grad = true;
};

/// A module with no behaviour of its own: the parameters and buffers of `entries`, a parameter
/// "a.b.w" registered as "w" of a child "b" of a child "a" (children in first-appearance order,
/// a node's own tensors before its children's, which is LibTorch's and TorchScript's order, so
/// named_parameters() gives the paths in the file's order). reset() rebuilds the tree from the
/// entries with zero tensors, which is what Cloneable::clone() needs; the constructor registers
/// the given tensor objects instead, so a TorchScript module and the tree share them.
class ParamTree : public torch::nn::Cloneable<ParamTree>, public detail::HollowCloneable {
 public:
  ParamTree(std::string name, std::vector<Entry> entries,
            std::map<std::string, at::Tensor> initial = {})
      : torch::nn::Module(std::move(name)), entries_(std::move(entries)), initial_(std::move(initial)) {
    reset();
    initial_.clear();  // clones must not reuse the loaded tensor objects
  }

  void reset() override {
    std::vector<std::string> order;
    std::map<std::string, std::vector<Entry>> sub;
    std::map<std::string, std::map<std::string, at::Tensor>> sub_initial;
    for (const auto& e : entries_) {
      auto dot = e.path.find('.');
      if (dot == std::string::npos) {
        auto it = initial_.find(e.path);
        at::Tensor t = it != initial_.end() ? it->second
                                            : at::zeros(e.shape, at::TensorOptions().dtype(e.dtype));
        if (e.buffer)
          register_buffer(e.path, t);
        else
          register_parameter(e.path, t, e.requires_grad);
        continue;
      }
      std::string head = e.path.substr(0, dot);
      if (!sub.count(head)) order.push_back(head);
      Entry c = e;
      c.path = e.path.substr(dot + 1);
      auto it = initial_.find(e.path);
      if (it != initial_.end()) sub_initial[head][c.path] = it->second;
      sub[head].push_back(std::move(c));
    }
    for (const auto& h : order)
      register_module(h, std::make_shared<ParamTree>("ParamTree", sub[h], sub_initial[h]));
  }

  /// The tree with empty parameters and copies of the buffers (detail::HollowCloneable): a new
  /// particle of a loaded file's species costs its storage, not a zero fill and a copy first.
  std::shared_ptr<torch::nn::Module> hollow_clone() const override {
    std::map<std::string, at::Tensor> initial;
    for (const auto& e : entries_)
      if (!e.buffer) initial[e.path] = at::empty({0}, at::TensorOptions().dtype(e.dtype));
    for (const auto& item : named_buffers(true)) initial[item.key()] = item.value().detach().clone();
    auto copy = std::make_shared<ParamTree>(name(), entries_, std::move(initial));
    copy->script = script;
    copy->aliases = aliases;
    return copy;
  }

  /// The TorchScript module this particle was loaded from (or built from), for saving; null for
  /// a nyto checkpoint. Shared by clones: it is only read (saving clones it).
  std::shared_ptr<const torch::jit::Module> script;
  /// Paths of `script` that name the same tensor as an earlier path (tied weights): alias ->
  /// the path under which the tree holds it.
  std::map<std::string, std::string> aliases;

 private:
  std::vector<Entry> entries_;
  std::map<std::string, at::Tensor> initial_;
};

ParamTree* tree_of(const AnyParticle& p) { return dynamic_cast<ParamTree*>(p.module_ptr().get()); }

std::string what_of(const c10::Error& e) { return e.what_without_backtrace(); }

/// The module of a nyto checkpoint or TorchScript archive, every tensor checked
/// (load_module_checked); IOError for a directory, a missing, unreadable or corrupt file.
torch::jit::Module load_jit(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw IOError("'" + path + "' is a directory, not a particle file");
  return load_module_checked(path, "neither a nyto checkpoint nor a TorchScript archive");
}

/// The "nyto_format" tag of a checkpoint, or "" for a TorchScript model.
std::string nyto_tag(const torch::jit::Module& m) {
  if (!m.hasattr("nyto_format")) return "";
  c10::IValue v = m.attr("nyto_format");
  return v.isString() ? v.toStringRef() : "?";
}

std::vector<std::string> string_list(const torch::jit::Module& m, const std::string& key,
                                     const std::string& path) {
  if (!m.hasattr(key)) throw IOError("'" + path + "' is corrupt: missing '" + key + "'");
  c10::IValue v = m.attr(key);
  if (!v.isList()) throw IOError("'" + path + "' is corrupt: bad '" + key + "'");
  std::vector<std::string> out;
  for (const auto& e : v.toListRef()) {
    if (!e.isString()) throw IOError("'" + path + "' is corrupt: bad '" + key + "'");
    out.push_back(e.toStringRef());
  }
  return out;
}

at::Tensor tensor_attr(const torch::jit::Module& m, const std::string& key, const std::string& path) {
  if (!m.hasattr(key) || !m.attr(key).isTensor())
    throw IOError("'" + path + "' is corrupt: missing tensor '" + key + "'");
  return m.attr(key).toTensor();
}

/// Entries and tensors of a nyto checkpoint; `rows` drops the leading member dimension of a
/// swarm checkpoint's [N, ...] tensors (taking row 0).
void checkpoint_entries(const torch::jit::Module& m, const std::string& path, bool rows,
                        std::vector<Entry>& entries, std::map<std::string, at::Tensor>& tensors) {
  auto take = [&](const std::vector<std::string>& paths, const std::string& prefix, bool buffer) {
    for (size_t i = 0; i < paths.size(); ++i) {
      at::Tensor t = tensor_attr(m, prefix + std::to_string(i), path).detach();
      if (rows) {
        if (t.dim() < 1 || t.size(0) < 1) throw IOError("'" + path + "' is corrupt: bad '" + paths[i] + "'");
        t = t[0];
      }
      if (tensors.count(paths[i])) throw IOError("'" + path + "' is corrupt: '" + paths[i] + "' twice");
      entries.push_back({paths[i], t.sizes().vec(), t.scalar_type(), buffer,
                         !buffer && at::isFloatingType(t.scalar_type())});
      tensors[paths[i]] = t.clone();
    }
  };
  take(string_list(m, "params", path), "param_", false);
  take(string_list(m, "buffers", path), "buffer_", true);
}

/// A new particle over a ParamTree of `entries` with `tensors` (used as the parameter objects).
AnyParticle adopt_tree(const std::string& name, std::vector<Entry> entries,
                       std::map<std::string, at::Tensor> tensors,
                       std::shared_ptr<const torch::jit::Module> script) {
  auto tree = std::make_shared<ParamTree>(name, std::move(entries), std::move(tensors));
  tree->script = std::move(script);
  return AnyParticle::adopt(tree);
}

std::string structure_difference(const AnyParticle& a, const AnyParticle& b) {
  const auto& p = a.params();
  const auto& q = b.params();
  for (size_t i = 0; i < std::max(p.size(), q.size()); ++i) {
    if (i >= p.size()) return "parameter '" + q[i].path + "' exists in only one";
    if (i >= q.size()) return "parameter '" + p[i].path + "' exists in only one";
    if (p[i].path != q[i].path)
      return "parameter " + std::to_string(i) + " is '" + p[i].path + "' in one and '" + q[i].path +
             "' in the other";
    if (p[i].shape != q[i].shape)
      return "parameter '" + p[i].path + "' is " + detail::shape_str(p[i].shape) + " in one and " +
             detail::shape_str(q[i].shape) + " in the other";
    if (p[i].dtype != q[i].dtype)
      return "parameter '" + p[i].path + "' is " + c10::toString(p[i].dtype) + " in one and " +
             c10::toString(q[i].dtype) + " in the other";
  }
  return "";
}

/// Copies src's parameter values, buffer values and TorchScript template into dst (same
/// structure, checked by the caller). Buffers must match too: ShapeError otherwise.
void copy_values(const AnyParticle& dst, const AnyParticle& src) {
  auto dbuf = dst.module_ptr()->named_buffers(true);
  auto sbuf = src.module_ptr()->named_buffers(true);
  bool same = dbuf.size() == sbuf.size();
  for (size_t j = 0; same && j < dbuf.size(); ++j)
    same = dbuf[j].key() == sbuf[j].key() && dbuf[j].value().sizes() == sbuf[j].value().sizes() &&
           dbuf[j].value().scalar_type() == sbuf[j].value().scalar_type();
  if (!same) throw ShapeError("the models have the same parameters but different buffers");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < dst.param_tensors().size(); ++i)
    dst.param_tensors()[i].copy_(src.param_tensors()[i]);
  for (size_t j = 0; j < dbuf.size(); ++j) dbuf[j].value().copy_(sbuf[j].value());
  ParamTree* d = tree_of(dst);
  ParamTree* s = tree_of(src);
  if (d && s) {
    d->script = s->script;
    d->aliases = s->aliases;
    // The TorchScript module moves to dst: its tensors view dst's from now on, so src's storage
    // (a loaded file's, or a swarm converted to another species) is not kept alive by it.
    if (s->script) {
      std::map<std::string, at::Tensor> values;
      for (const auto& item : dst.module_ptr()->named_parameters(true)) values[item.key()] = item.value();
      for (const auto& item : dst.module_ptr()->named_buffers(true)) values[item.key()] = item.value();
      auto repoint = [&](const std::string& name, const at::Tensor& t) {
        auto alias = d->aliases.find(name);
        auto it = values.find(alias != d->aliases.end() ? alias->second : name);
        if (it != values.end()) t.set_data(it->second);
      };
      for (const auto& item : s->script->named_parameters(true)) repoint(item.name, item.value);
      for (const auto& item : s->script->named_buffers(true)) repoint(item.name, item.value);
    }
  }
}

}  // namespace

FileKind inspect_file(const std::string& path) {
  torch::jit::Module m = load_jit(path);
  std::string tag = nyto_tag(m);
  if (tag.empty()) return {Format::TorchScript, false};
  if (tag == "particle") return {Format::Nyto, false};
  if (tag == "swarm") return {Format::Nyto, true};
  throw IOError("'" + path + "' is a nyto file of unknown kind '" + tag + "'");
}

namespace {

/// The particle of a loaded file (a nyto particle checkpoint or a TorchScript model).
AnyParticle particle_from(const torch::jit::Module& m, const std::string& path) {
  std::string tag = nyto_tag(m);
  std::vector<Entry> entries;
  std::map<std::string, at::Tensor> tensors;
  if (tag == "swarm")
    throw IOError("'" + path + "' holds a nyto swarm, not a particle; load it as a swarm");
  if (!tag.empty()) {
    if (tag != "particle") throw IOError("'" + path + "' is a nyto file of unknown kind '" + tag + "'");
    checkpoint_entries(m, path, false, entries, tensors);
    // Named after the file, which is all a user knows of it (species names show in errors).
    AnyParticle p = adopt_tree(fs::path(path).filename().string(), std::move(entries),
                               std::move(tensors), nullptr);
    p.load(path);  // the runtime's own checks of the file
    return p;
  }
  // TorchScript: the tree registers the module's very parameter and buffer tensors, so once
  // adopt() re-points their data into flat storage, the jit::Module computes with the particle.
  // A tensor reachable under several paths (tied weights, b.weight = a.weight) is one parameter
  // of the particle, under its first path; the others are aliases, tied again when saving.
  std::map<const c10::TensorImpl*, std::string> seen;
  std::map<std::string, std::string> aliases;
  auto take = [&](const std::string& p, const at::Tensor& t, bool buffer) {
    auto [it, fresh] = seen.emplace(t.unsafeGetTensorImpl(), p);
    if (!fresh) {
      aliases[p] = it->second;
      return;
    }
    entries.push_back({p, t.sizes().vec(), t.scalar_type(), buffer, !buffer && t.requires_grad()});
    tensors[p] = t;
  };
  for (const auto& item : m.named_parameters(/*recurse=*/true)) take(item.name, item.value, false);
  if (entries.empty())
    throw IOError("'" + path + "' is a TorchScript module without parameters: nothing to operate on");
  for (const auto& item : m.named_buffers(/*recurse=*/true)) take(item.name, item.value, true);
  std::string name = m.type()->name() ? m.type()->name()->name() : "TorchScript";
  auto script = std::make_shared<const torch::jit::Module>(m);
  AnyParticle p = adopt_tree(name, std::move(entries), std::move(tensors), std::move(script));
  tree_of(p)->aliases = std::move(aliases);
  return p;
}

/// The swarm of a loaded nyto swarm checkpoint.
AnySwarm swarm_from(const torch::jit::Module& m, const std::string& path) {
  std::string tag = nyto_tag(m);
  if (tag != "swarm")
    throw IOError("'" + path + "' holds a single model, not a swarm; give a directory of model "
                  "files or a nyto swarm checkpoint");
  std::vector<Entry> entries;
  std::map<std::string, at::Tensor> tensors;
  checkpoint_entries(m, path, true, entries, tensors);
  if (!m.hasattr("members") || !m.attr("members").isInt() || m.attr("members").toInt() < 1)
    throw IOError("'" + path + "' is corrupt: no member count");
  AnyParticle seed = adopt_tree(fs::path(path).filename().string(), std::move(entries),
                                std::move(tensors), nullptr);
  AnySwarm s(seed, m.attr("members").toInt());
  s.load(path);  // the runtime's own checks of the file
  return s;
}

}  // namespace

AnyParticle load_particle(const std::string& path) { return particle_from(load_jit(path), path); }

LoadedModels load_models(const std::string& path, const std::vector<AnyParticle>& like) {
  LoadedModels out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    out.swarm = load_swarm(path, &out.members, like);
    return out;
  }
  torch::jit::Module m = load_jit(path);
  if (nyto_tag(m) == "swarm") {
    out.swarm = swarm_from(m, path);
    out.swarm_file = true;
  } else {
    out.particle = particle_from(m, path);
  }
  return out;
}

std::vector<std::string> swarm_member_files(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (!n.empty() && n[0] != '.' && e.is_regular_file()) files.push_back(n);
  }
  if (ec) throw IOError("cannot read directory '" + dir + "': " + ec.message());
  if (files.empty()) throw IOError("directory '" + dir + "' holds no model files: an empty swarm");
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

// Files [begin, end) of `files` (the member files of directory `path`) as a swarm; every file of
// the structure of `member0` (file 0), or of the range's first file.
AnySwarm load_members(const std::string& path, const std::vector<std::string>& files, size_t begin, size_t end,
                      const std::vector<AnyParticle>& like, const AnyParticle* member0) {
  // One file at a time into the swarm's storage: file i is loaded, checked against the first,
  // copied into member i and dropped, so the files' data is held once (the swarm) plus one file.
  auto load_one = [&](const std::string& f) {
    std::string fp = (fs::path(path) / f).string();
    // A swarm checkpoint of one member (what `nyto train --particles 1 --save` writes) is that
    // member: a directory of them is the swarm of the models each holds.
    torch::jit::Module m = load_jit(fp);
    if (nyto_tag(m) == "swarm") {
      AnySwarm one = swarm_from(m, fp);
      if (one.size() != 1)
        throw IOError("'" + fp + "' holds a swarm of " + std::to_string(one.size()) + " members; a " +
                      "directory of models takes one model per file (a particle, or a swarm of one)");
      return one.member(0);
    }
    return particle_from(m, fp);
  };
  AnyParticle first = load_one(files[begin]);
  const AnyParticle& reference = member0 ? *member0 : first;
  const std::string& reference_name = member0 ? files.front() : files[begin];
  // Of a species already loaded when the structures agree: no conversion (a second swarm) later.
  AnyParticle seed = first;
  for (const AnyParticle& r : like)
    if (same_structure(r, first)) {
      seed = r;
      break;
    }
  AnySwarm s(seed, int64_t(end - begin));
  for (size_t i = begin; i < end; ++i) {
    AnyParticle p = i == begin ? first : load_one(files[i]);
    std::string diff = structure_difference(reference, p);
    if (!diff.empty())
      throw ShapeError("the members of swarm '" + path + "' must have one structure, but '" +
                       reference_name + "' and '" + files[i] + "' differ: " + diff);
    AnyParticle member = s.member(int64_t(i - begin));
    try {
      copy_values(member, p);
    } catch (const ShapeError& e) {
      throw ShapeError("swarm '" + path + "': '" + files[i] + "' and '" + reference_name + "': " + e.what());
    }
  }
  return s;
}

}  // namespace

AnySwarm load_swarm(const std::string& path, std::vector<std::string>* names, const std::vector<AnyParticle>& like) {
  if (names) names->clear();
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return swarm_from(load_jit(path), path);
  std::vector<std::string> files = swarm_member_files(path);
  AnySwarm s = load_members(path, files, 0, files.size(), like, nullptr);
  if (names) *names = std::move(files);
  return s;
}

AnySwarm load_swarm_members(const std::string& dir, const std::vector<std::string>& files, int64_t begin,
                            int64_t end, const std::vector<AnyParticle>& like, const AnyParticle* member0) {
  if (begin < 0 || end <= begin || end > int64_t(files.size()))
    throw IOError("members [" + std::to_string(begin) + ", " + std::to_string(end) + ") of swarm '" + dir +
                  "', which has " + std::to_string(files.size()) + " member files");
  return load_members(dir, files, size_t(begin), size_t(end), like, member0);
}

Format format_of(const AnyParticle& particle) {
  ParamTree* t = tree_of(particle);
  return t && t->script ? Format::TorchScript : Format::Nyto;
}

torch::jit::Module script_module(const AnyParticle& particle) {
  ParamTree* tree = tree_of(particle);
  if (!tree || !tree->script)
    throw Error("the particle was not loaded from a TorchScript model, so it has no TorchScript "
                "module (save it as a nyto checkpoint)");
  try {
    // A shallow clone (new module objects, the same attribute values) whose parameter and buffer
    // slots are then replaced: a deep clone would merge every parameter into one, since deepcopy
    // treats tensors of one storage (the particle's flat storage) as aliases.
    torch::jit::Module out = tree->script->clone(/*inplace=*/true);
    std::map<std::string, at::Tensor> values;
    for (const auto& item : particle.module_ptr()->named_parameters(true)) values[item.key()] = item.value();
    for (const auto& item : particle.module_ptr()->named_buffers(true)) values[item.key()] = item.value();
    std::vector<std::pair<std::string, bool>> slots;  // path, is parameter
    for (const auto& item : out.named_parameters(true)) slots.emplace_back(item.name, true);
    for (const auto& item : out.named_buffers(true)) slots.emplace_back(item.name, false);
    at::NoGradGuard no_grad;
    std::map<std::string, at::Tensor> fresh;  // one new tensor per particle tensor, so ties hold
    for (const auto& [name, is_param] : slots) {
      auto alias = tree->aliases.find(name);
      const std::string& key = alias != tree->aliases.end() ? alias->second : name;
      auto it = values.find(key);
      if (it == values.end())
        throw Error("the particle has no '" + name + "' of its TorchScript model");
      torch::jit::Module owner = out;
      std::string leaf = name;
      for (auto dot = leaf.find('.'); dot != std::string::npos; dot = leaf.find('.')) {
        owner = owner.attr(leaf.substr(0, dot)).toModule();
        leaf = leaf.substr(dot + 1);
      }
      // A fresh compact tensor: the particle's is a view into its whole flat storage.
      auto f = fresh.find(key);
      if (f == fresh.end()) {
        at::Tensor t = it->second.detach().clone(at::MemoryFormat::Contiguous);
        if (is_param) t.set_requires_grad(owner.attr(leaf).toTensor().requires_grad());
        f = fresh.emplace(key, t).first;
      }
      owner.setattr(leaf, f->second);
    }
    return out;
  } catch (const c10::Error& e) {
    throw Error("cannot build the TorchScript module of the particle: " + what_of(e));
  }
}

void save_particle(const AnyParticle& particle, const std::string& path, Format format) {
  if (format == Format::Nyto) {
    particle.save(path);
    return;
  }
  ParamTree* tree = tree_of(particle);
  if (!tree || !tree->script)
    throw IOError("cannot write '" + io::shown_path(path) + "' as TorchScript: the particle was "
                  "not loaded from a TorchScript model (save it as a nyto checkpoint)");
  torch::jit::Module out;
  try {
    out = script_module(particle);
  } catch (const Error& e) {
    throw IOError("cannot write '" + io::shown_path(path) + "': " + e.what());
  }
  io::write_file(path, [&](io::FileWriter& w) {
    try {
      torch::jit::ExportModule(out, w.function());
    } catch (const c10::Error& e) {
      throw IOError("cannot write '" + io::shown_path(path) + "': " + what_of(e));
    }
  });
}

void save_swarm_dir(const AnySwarm& swarm, const std::string& dir,
                    const std::vector<std::string>& names, Format format) {
  if (!names.empty() && int64_t(names.size()) != swarm.size())
    throw ShapeError("save_swarm_dir: " + std::to_string(names.size()) + " names for " +
                     std::to_string(swarm.size()) + " members");
  check_swarm_dir_target(dir);
  // The members go to a new directory beside `dir`, which then replaces it in one step: a
  // failure leaves `dir` as it was, and no stale member of an older swarm survives.
  io::Commit commit;
  std::string staged = commit.stage(dir, true);
  for (int64_t i = 0; i < swarm.size(); ++i) {
    std::string name;
    if (names.empty()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "member-%03lld.pt", static_cast<long long>(i));
      name = buf;
    } else {
      name = names[size_t(i)];
    }
    save_particle(swarm.member(i), (fs::path(staged) / name).string(), format);
  }
  commit.commit();
}

void check_swarm_dir_target(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  if (!fs::is_directory(dir, ec))
    throw IOError("cannot write swarm '" + dir + "': it exists and is not a directory");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    std::string why;
    if (name[0] == '.' && name.find(".nyto-tmp-") != std::string::npos) continue;  // a crash's leftover
    if (!e.is_regular_file(ec) || name[0] == '.') {
      why = "'" + name + "' is not a model file";
    } else {
      try {
        inspect_file(e.path().string());
      } catch (const Error&) {
        why = "'" + name + "' is not a model file";
      }
    }
    if (!why.empty())
      throw IOError("cannot write swarm '" + dir + "': the directory exists and is not a swarm (" +
                    why + "); remove it or choose another directory");
  }
  if (ec) throw IOError("cannot write swarm '" + dir + "': " + ec.message());
}

bool same_structure(const AnyParticle& a, const AnyParticle& b) {
  return structure_difference(a, b).empty();
}

AnyParticle to_species(const AnyParticle& rep, const AnyParticle& p) {
  std::string diff = structure_difference(rep, p);
  if (!diff.empty())
    throw ShapeError("structures differ between " + rep.species()->name() + " and " +
                     p.species()->name() + ": " + diff);
  AnyParticle r = rep.clone();
  copy_values(r, p);
  return r;
}

AnySwarm to_species(const AnyParticle& rep, const AnySwarm& s) {
  std::string diff = structure_difference(rep, s.member(0));
  if (!diff.empty())
    throw ShapeError("structures differ between " + rep.species()->name() + " and " +
                     s.species()->name() + ": " + diff);
  AnySwarm out(rep, s.size());
  for (int64_t i = 0; i < s.size(); ++i) copy_values(out.member(i), s.member(i));
  return out;
}

}  // namespace nyto
