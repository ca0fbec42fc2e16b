// nyto run FILE --load NAME=PATH ... --save NAME=PATH ... [--set NAME=VALUE] [--seed S]
//          [--backend llvm|interp|aten] [--threads N]
//          [--nprocs K | --world-size W --rank R --master HOST:PORT] [--timeout S]
//
// Applies a rule to particles and swarms loaded from files and writes the results. A PATH is a
// nyto checkpoint, a TorchScript archive (torch.jit.save), a nyto swarm checkpoint, a
// directory of model files (a swarm, one member per file, sorted by name), or a 1-D tensor saved
// by torch.save (a per-member vector, as --set NAME=V1,V2,...). Everything is checked,
// loaded and computed before the first write, and outputs are staged beside their targets and put
// in place together (an io::Commit): a failed run changes no file.
//
// Over several processes (docs/distributed.md) every rank loads the files and runs the rule with
// RunOptions::group: a rule whose members are independent runs on each rank's own block, and the
// outputs are gathered for rank 0, which alone writes and prints.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nyto/any_module.h>
#include <nyto/distributed.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <nyto/rule.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/Commands.h"
#include "cli/Dist.h"
#include "cli/Hash.h"
#include "cli/Vectors.h"
#include <nyto/checked_load.h>
#include "frontend/Source.h"

namespace fs = std::filesystem;

namespace nyto::cli {
namespace {

struct RunArgs {
  std::string file;
  std::vector<std::string> loads, saves, sets;
  uint64_t seed = 0;
  std::string backend = "llvm";
  int threads = 0;
  int64_t batch = -1;  // --batch: members held at a time; -1: by kBatchBytes; 0: all
  DistOptions dist;
};

// Members of a batched run held at a time without --batch: as many as hold this many bytes of
// swarm files (their parameters, as saved), at least one.
constexpr int64_t kBatchBytes = int64_t(64) << 20;

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

/// Splits "NAME=VALUE" of option `flag`; UsageError unless NAME is a name and VALUE is not empty.
std::pair<std::string, std::string> split_arg(const std::string& arg, const std::string& flag,
                                              const std::string& what) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
    throw UsageError(flag + " expects NAME=" + what + ", got '" + arg + "'");
  std::string name = arg.substr(0, eq);
  if (!is_identifier(name))
    throw UsageError(flag + " " + arg + ": '" + name + "' is not a valid name (letters, digits, '_')");
  return {name, arg.substr(eq + 1)};
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best = frontend::closest_match(name, candidates);
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

std::string join(const std::vector<std::string>& v) {
  std::string r;
  for (const auto& s : v) r += (r.empty() ? "'" : ", '") + s + "'";
  return r.empty() ? "none" : r;
}

/// A per-member vector given by --set NAME=V1,V2,... or --load NAME=FILE (a 1-D tensor), and how
/// its messages name where it came from ("--set f: ", "--load f: 'f.pt' holds ").
struct MemberVector {
  std::vector<double> values;
  std::string flag;
};

/// The per-member vector of `--load name=path`, a tensor saved by torch.save.
MemberVector load_member_vector(const std::string& name, const std::string& path) {
  try {
    return MemberVector{load_vector_file(path), "--load " + name + ": '" + path + "' holds "};
  } catch (const BindError& e) {  // a tensor of another shape or dtype, or no tensor
    throw BindError("--load " + name + ": " + e.what());
  }
}

/// UsageError unless vector `v` holds one value per member of swarm `swarm`.
void check_member_count(const MemberVector& v, const std::string& swarm, int64_t members) {
  if (int64_t(v.values.size()) == members) return;
  throw UsageError(v.flag + std::to_string(v.values.size()) + " value" + (v.values.size() == 1 ? "" : "s") +
                   " for a swarm of " + std::to_string(members) + " member" + (members == 1 ? "" : "s") + " ('" +
                   swarm + "')");
}

/// IOError unless result `name` can be written to `path`: a swarm directory (`dir`), else a file.
void check_save_target(const std::string& name, const std::string& path, bool dir) {
  std::error_code ec;
  if (!dir && fs::is_directory(path, ec))
    throw IOError("cannot write '" + name + "' to '" + path + "': it is a directory");
  if (dir) check_swarm_dir_target(path);
}

/// The particle of `species` with p's structure (p made of its species), or p, added to them.
AnyParticle join_species(std::vector<AnyParticle>& species, const AnyParticle& p) {
  auto same = std::find_if(species.begin(), species.end(), [&](const AnyParticle& r) { return same_structure(r, p); });
  if (same != species.end()) return same->species() == p.species() ? p : to_species(*same, p);
  species.push_back(p);
  return p;
}

/// A particle or swarm read from a --load PATH, and how to write it back.
struct Loaded : LoadedModels {
  std::string path;
  Loaded(LoadedModels m, std::string p) : LoadedModels(std::move(m)), path(std::move(p)) {}
  AnyParticle representative() const { return is_swarm() ? swarm.member(0) : particle; }
};

/// What run_command has read off the command line by the time it loads models.
struct RunInputs {
  const RunArgs& a;
  const Rule& rule;
  const std::map<std::string, std::string>& loads;
  const std::vector<std::string>& load_order;
  const std::map<std::string, std::string>& saves;
  const std::vector<std::string>& outputs;
  const Bindings& scalars;                         // --set of scalar inputs
  const std::map<std::string, MemberVector>& sets;  // --set NAME=V1,V2,...
  RunOptions options;
};

/// Runs the rule a batch of members at a time, when that writes the files one run on the whole
/// swarms would: one process, llvm or interp, members independent (no member reduction, member
/// read or ranking), every swarm loaded from a directory (all of one size), nothing the rule
/// does not read loaded, every output a swarm or a per-member vector (a particle or a number the
/// same for all members would be computed once per batch). Each batch's members are loaded, run
/// with RunOptions::block_rows (member(), members() and the random draws see the whole
/// population, so the rows are the same bits) and written to the staged outputs, then dropped:
/// the process holds one batch of the swarms, not all of them. Outputs are put in place together
/// after the last batch (io::Commit), so a failure in any batch changes no file. Returns false,
/// having written nothing, when the run is not of that kind (run_command then loads everything).
bool run_batched(RunInputs in) {
  const RunArgs& a = in.a;
  if (a.batch == 0 || in.options.backend == Backend::Aten || !in.rule.members_independent()) return false;
  const auto inputs = in.rule.inputs();
  auto reads = [&](const std::string& name) { return std::find(inputs.begin(), inputs.end(), name) != inputs.end(); };
  // Which loads are swarm directories (batched), particle files (loaded once) or vectors.
  std::vector<std::string> dirs, particles, vector_files;
  std::map<std::string, std::vector<std::string>> names;  // per directory: its member files
  int64_t n = -1, member_bytes = 0;
  for (const auto& name : in.load_order) {
    const std::string& path = in.loads.at(name);
    if (!reads(name)) return false;  // run_command warns, or refuses it
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<std::string> files = swarm_member_files(path);
      if (n >= 0 && int64_t(files.size()) != n) return false;  // run_command reports it
      n = int64_t(files.size());
      member_bytes += int64_t(fs::file_size(fs::path(path) / files[0], ec));
      names[name] = std::move(files);
      dirs.push_back(name);
    } else if (is_pickle_archive(path)) {
      vector_files.push_back(name);
    } else if (!inspect_file(path).swarm) {
      particles.push_back(name);
    } else {
      return false;  // a swarm checkpoint is one file: read whole
    }
  }
  if (dirs.empty() || n < 2) return false;
  const int64_t per = a.batch > 0 ? a.batch : std::max<int64_t>(1, kBatchBytes / std::max<int64_t>(1, member_bytes));
  if (per >= n) return false;  // one batch: the whole run

  // Per-member vectors: the whole population's values, checked as run_command checks them.
  std::map<std::string, MemberVector> vectors;
  for (const auto& [name, v] : in.sets) {
    if (!reads(name)) return false;  // run_command explains
    vectors.emplace(name, v);
  }
  for (const auto& name : vector_files) vectors.emplace(name, load_member_vector(name, in.loads.at(name)));
  for (const auto& [name, v] : vectors) check_member_count(v, dirs[0], n);

  // Particles, once; the batches' swarms take their species (files of one structure are one).
  std::vector<AnyParticle> species;
  std::map<std::string, AnyParticle> loaded;
  for (const auto& name : particles) loaded.emplace(name, join_species(species, load_particle(in.loads.at(name))));

  RunOptions& options = in.options;
  options.block_rows = true;
  options.population = n;
  io::Commit commit;
  struct Out {
    std::string name, staged;
    const std::vector<std::string>* files = nullptr;  // a swarm's member file names
    std::vector<double> values;                       // a per-member vector, filled batch by batch
    bool swarm = false;
  };
  std::vector<Out> outs;
  std::map<std::string, AnyParticle> first_members;  // per directory: its batch-0 member 0
  for (int64_t m0 = 0; m0 < n; m0 += per) {
    const int64_t m1 = std::min(n, m0 + per);
    Bindings bindings = in.scalars;
    for (const auto& [name, p] : loaded) bindings.emplace(name, Value(p));
    for (const auto& [name, v] : vectors) bindings.emplace(name, Value(v.values));
    for (const auto& name : dirs) {
      const std::string& path = in.loads.at(name);
      // Every file of the structure of file 0 (batch 0's first member), as load_swarm requires.
      auto member0 = first_members.find(name);
      AnySwarm sw = load_swarm_members(path, names.at(name), m0, m1, species,
                                       member0 != first_members.end() ? &member0->second : nullptr);
      if (m0 == 0) first_members.emplace(name, join_species(species, sw.member(0)));
      bindings.emplace(name, Value(sw));
    }
    options.member_range = std::make_pair(m0, m1);
    std::map<std::string, Value> results;
    try {
      results = in.rule.run(bindings, options);
    } catch (const Error&) {
      // Nothing is written yet: the whole run says it as it always does (and explains a species
      // mismatch), or runs what a batch cannot (a rule that cannot run on blocks as bound).
      if (m0 == 0) return false;
      throw;
    }
    auto value_of = [&](const std::string& name) -> const Value* {
      if (auto r = results.find(name); r != results.end()) return &r->second;
      auto b = bindings.find(name);
      return b != bindings.end() ? &b->second : nullptr;
    };
    if (m0 == 0) {
      // Only rows and per-member values can be written batch by batch.
      for (const auto& o : in.outputs) {
        const Value* v = value_of(o);
        if (!v || (v->kind() == Value::Kind::Swarm ? v->swarm().size() != m1 - m0
                                                    : v->kind() != Value::Kind::MemberScalars))
          return false;
      }
      for (const auto& o : in.outputs)
        if (!in.saves.count(o) && value_of(o)->kind() == Value::Kind::Swarm)
          std::cerr << "nyto: warning: the result '" << o << "' is not saved (add --save " << o << "=PATH)\n";
      for (const auto& o : in.outputs) {
        Out out{o, "", nullptr, {}, value_of(o)->kind() == Value::Kind::Swarm};
        if (out.swarm) {
          // Laid out as the directory it was loaded from, a new swarm as the first loaded.
          out.files = &names.at(std::find(dirs.begin(), dirs.end(), o) != dirs.end() ? o : dirs[0]);
        } else {
          out.values.assign(size_t(n), 0.0);
        }
        if (auto s = in.saves.find(o); s != in.saves.end()) check_save_target(o, s->second, out.swarm);
        outs.push_back(std::move(out));
      }
      for (auto& out : outs)
        if (auto s = in.saves.find(out.name); s != in.saves.end()) out.staged = commit.stage(s->second, out.swarm);
    }
    for (auto& out : outs) {
      const Value* v = value_of(out.name);
      if (out.swarm) {
        if (out.staged.empty()) continue;
        const AnySwarm& sw = v->swarm();
        for (int64_t r = 0; r < sw.size(); ++r)
          save_particle(sw.member(r), (fs::path(out.staged) / (*out.files)[size_t(m0 + r)]).string(),
                        format_of(sw.member(r)));
      } else {
        // The population's values (block_rows), of which this batch computed its own.
        const std::vector<double>& vals = v->member_scalars();
        if (int64_t(vals.size()) != n)
          throw std::logic_error("nyto internal error (this is a bug in nyto): the per-member result '" + out.name +
                                 "' has " + std::to_string(vals.size()) + " values for a population of " +
                                 std::to_string(n));
        std::copy(vals.begin() + m0, vals.begin() + m1, out.values.begin() + m0);
      }
    }
  }
  for (const auto& out : outs)
    if (!out.swarm && !out.staged.empty())
      io::write_file(out.staged, [&](io::FileWriter& w) { w.write(numbers_text(out.values, "\n") + "\n"); });
  commit.commit();
  for (const auto& out : outs)
    if (!out.swarm) std::cout << out.name << " = " << numbers_text(out.values, ",") << "\n";
  return true;
}

void run_command(const RunArgs& a) {
  // 1. The command line, checked before anything is read.
  std::map<std::string, std::string> loads, saves;
  std::vector<std::string> load_order;
  for (const auto& arg : a.loads) {
    auto [name, path] = split_arg(arg, "--load", "PATH");
    if (!loads.emplace(name, path).second) throw UsageError("--load " + name + " is given twice");
    load_order.push_back(name);
  }
  for (const auto& arg : a.saves) {
    auto [name, path] = split_arg(arg, "--save", "PATH");
    // The same file under two spellings (keep.pt, ./keep.pt, $PWD/keep.pt, a link) is one target.
    for (const auto& [other, other_path] : saves)
      if (io::same_file(path, other_path))
        throw UsageError("--save " + arg + ": '" + path + "' is the file that --save " + other +
                         "=" + other_path + " writes");
    if (!saves.emplace(name, path).second) throw UsageError("--save " + name + " is given twice");
  }
  // --set NAME=VALUE: a number; NAME=V1,V2,... a per-member vector, bound with those of --load
  // once the swarms are loaded (step 5).
  std::map<std::string, double> sets;
  std::map<std::string, MemberVector> vectors;
  for (const auto& arg : a.sets) {
    auto [name, text] = split_arg(arg, "--set", "VALUE");
    std::vector<double> values;
    bool vector = false;
    if (std::string why = numbers_error(text, &values, &vector); !why.empty())
      throw UsageError("--set " + arg + ": " + why);
    if (loads.count(name)) throw UsageError("'" + name + "' is given both by --load and by --set");
    if (sets.count(name) || vectors.count(name)) throw UsageError("--set " + name + " is given twice");
    if (vector)
      vectors.emplace(name, MemberVector{std::move(values), "--set " + name + ": "});
    else
      sets.emplace(name, values[0]);
  }
  RunOptions options;
  options.seed = a.seed;
  options.invocation = 0;  // the same command gives the same draws
  options.backend = a.backend == "interp" ? Backend::Interp
                    : a.backend == "aten" ? Backend::Aten
                                          : Backend::Llvm;
  if (a.threads > 0) at::set_num_threads(a.threads);
  const Rendezvous rdv = resolve_rendezvous(a.dist);
  std::unique_ptr<ProcessGroup> group;
  if (rdv.world_size > 1) {
    group = std::make_unique<ProcessGroup>(rdv.host, rdv.port, rdv.rank, rdv.world_size, rdv.timeout);
    options.group = group.get();
    std::string settings;
    {
      std::ifstream in(a.file, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      settings = fmt::format("rule={:016x} seed={} backend={}", fnv1a(text), a.seed, a.backend);
    }
    for (const auto& name : load_order) settings += " load=" + name;
    for (const auto& [name, path] : saves) settings += " save=" + name;
    for (const auto& arg : a.sets) settings += " set=" + arg;
    if (const std::string differ = group->compare_settings(settings); !differ.empty())
      throw UsageError("the ranks were started with different settings: " + differ +
                       "; start every rank with the same command line");
    if (rdv.rank != 0) {
      std::fflush(stdout);
      if (!std::freopen("/dev/null", "w", stdout)) throw Error("cannot redirect rank " + std::to_string(rdv.rank) + "'s output");
    }
  }

  // 2. The rule: its inputs must be among the names the command line binds.
  std::vector<std::string> known = load_order;
  for (const auto& [name, v] : sets) known.push_back(name);
  for (const auto& [name, v] : vectors) known.push_back(name);
  Rule rule = [&] {
    try {
      return compile_file(a.file, known);
    } catch (const IOError& e) {
      throw UsageError(e.what());
    }
  }();
  const auto outputs = rule.outputs();
  for (const auto& [name, path] : saves)
    if (std::find(outputs.begin(), outputs.end(), name) == outputs.end())
      throw UsageError("--save " + name + "=" + path + ": the rule " + rule.name() +
                       " produces no '" + name + "' (it assigns " + join(outputs) + ")" +
                       did_you_mean(name, outputs));
  std::vector<std::string> params;
  for (const auto& [name, v] : rule.params()) params.push_back(name);
  const auto inputs = rule.inputs();
  auto reads = [&](const std::string& name) {
    return std::find(inputs.begin(), inputs.end(), name) != inputs.end();
  };
  const std::string inputs_note = inputs.empty() ? std::string(" (it reads no input)")
                                                 : " (its inputs: " + join(inputs) + ")";
  // A load the rule cannot read: a param takes a number, and an output the rule assigns without
  // reading it would only be overwritten (and, bound, updated in place).
  for (const auto& name : load_order) {
    if (reads(name)) continue;
    if (std::find(params.begin(), params.end(), name) != params.end())
      throw UsageError("--load " + name + ": '" + name + "' is a param of the rule " + rule.name() +
                       ", a number: set it with --set " + name + "=VALUE; --load binds an input" +
                       inputs_note);
    if (std::find(outputs.begin(), outputs.end(), name) != outputs.end())
      throw UsageError("--load " + name + ": '" + name + "' is computed by the rule " +
                       rule.name() + ", not read by it: save it with --save " + name +
                       "=PATH; --load binds an input" + inputs_note);
  }

  // A per-member vector binds an input; a param is one number.
  for (const auto& [name, v] : vectors) {
    if (reads(name)) continue;
    if (std::find(params.begin(), params.end(), name) != params.end())
      throw UsageError("--set " + name + ": '" + name + "' is a param of the rule " + rule.name() +
                       ", one number for every member: give a single VALUE; a list of values "
                       "binds a per-member vector to an input" + inputs_note);
    throw UsageError("--set " + name + ": the rule " + rule.name() + " reads no input '" + name +
                     "' to bind a per-member vector to" + inputs_note + did_you_mean(name, inputs));
  }

  // 3. Scalars: --set of a param overrides its default; of an input binds it. Any other name is
  // left to the rule, which reports E0504 with a suggestion.
  Bindings bindings;
  for (const auto& [name, v] : sets) {
    bool is_param = std::find(params.begin(), params.end(), name) != params.end();
    bool is_input = reads(name);
    if (is_input && !is_param)
      bindings.emplace(name, Value(v));
    else
      options.params[name] = v;
  }

  // 4. Big swarms of a rule whose members are independent: a batch of members at a time.
  if (!group && run_batched(RunInputs{a, rule, loads, load_order, saves, outputs, bindings, vectors, options}))
    return;

  // 4b. Particles and swarms. Files of one structure become one species (rules combine only
  // particles of one species); different structures stay apart and the rule reports E0502.
  std::map<std::string, Loaded> loaded;
  std::vector<AnyParticle> species_reps;
  for (const auto& name : load_order) {
    if (!reads(name))
      std::cerr << "nyto: warning: --load " << name << " is not used by the rule " << rule.name()
                << "\n";
    if (is_pickle_archive(loads[name])) {  // a tensor saved by torch.save: a per-member vector
      vectors.emplace(name, load_member_vector(name, loads[name]));
      continue;
    }
    // A swarm directory is read straight into the species of an earlier load of its structure.
    Loaded l(load_models(loads[name], species_reps), loads[name]);
    AnyParticle rep = l.representative();
    auto same = std::find_if(species_reps.begin(), species_reps.end(),
                             [&](const AnyParticle& r) { return same_structure(r, rep); });
    if (same == species_reps.end()) {
      species_reps.push_back(rep);
    } else if (rep.species() != same->species()) {  // a particle, or a swarm file
      if (l.is_swarm())
        l.swarm = to_species(*same, l.swarm);
      else
        l.particle = to_species(*same, l.particle);
    }
    bindings.emplace(name, l.is_swarm() ? Value(l.swarm) : Value(l.particle));
    loaded.emplace(name, std::move(l));
  }

  // 5. Per-member vectors: one value per member of the swarms the rule reads, checked here, before
  // anything is computed, to name the flag that gave the wrong number of values.
  std::vector<std::pair<std::string, int64_t>> swarms;  // (name, members) read by the rule
  for (const auto& name : load_order)
    if (auto l = loaded.find(name); l != loaded.end() && l->second.is_swarm() && reads(name))
      swarms.emplace_back(name, l->second.swarm.size());
  std::string first_vector;
  int64_t first_length = 0;
  for (auto& [name, v] : vectors) {
    if (!reads(name)) continue;  // warned above
    const std::string count = std::to_string(v.values.size()) + " value" +
                              (v.values.size() == 1 ? "" : "s");
    // Without a swarm the vectors say how many members the rule runs for: they must agree.
    if (swarms.empty()) {
      if (first_vector.empty()) first_vector = name, first_length = int64_t(v.values.size());
      if (int64_t(v.values.size()) != first_length)
        throw UsageError(v.flag + count + " but '" + first_vector + "' has " + std::to_string(first_length) +
                         "; the per-member vectors of a rule bound to no swarm give its member count and must agree");
    }
    for (const auto& [swarm, members] : swarms) check_member_count(v, swarm, members);
    bindings.emplace(name, Value(std::move(v.values)));
  }

  // 6. The run: checks everything before it writes; a failure changes nothing.
  std::map<std::string, Value> results;
  try {
    results = rule.run(bindings, options);
  } catch (const SpeciesError& e) {
    // Files of one structure were made one species above, so this is a structure mismatch: say
    // where the first two structures differ.
    std::string note;
    if (species_reps.size() > 1) try {
        to_species(species_reps[0], species_reps[1]);
      } catch (const ShapeError& d) {
        note = std::string("note: the loaded files have different structures: ") + d.what() + "\n";
      }
    std::string what = e.what();
    if (!note.empty() && !what.empty() && what.back() != '\n') what += '\n';
    throw SpeciesError(what + note);
  }
  // A result: new (returned), or an input updated in place (bound).
  auto value_of = [&](const std::string& name) -> const Value* {
    auto r = results.find(name);
    if (r != results.end()) return &r->second;
    auto b = bindings.find(name);
    return b != bindings.end() ? &b->second : nullptr;
  };
  auto is_number = [](const Value* v) {
    return v && (v->kind() == Value::Kind::Scalar || v->kind() == Value::Kind::MemberScalars);
  };
  // Over several processes: a rule that ran on each rank's own members leaves the other rows of
  // its swarm outputs to their owners; rank 0, which writes, gathers them.
  if (group && (rule.members_independent() || rule.runs_on_blocks(bindings))) {
    for (const auto& o : outputs)
      if (const Value* v = value_of(o); v && v->kind() == Value::Kind::Swarm)
        group->gather_rows(v->swarm(), "the gather of the result '" + o + "'");
  }
  if (group && group->rank() != 0) return;  // rank 0 writes and prints
  for (const auto& o : outputs)
    if (!saves.count(o) && !is_number(value_of(o)))  // numbers are printed (step 8)
      std::cerr << "nyto: warning: the result '" << o << "' is not saved (add --save " << o
                << "=PATH)\n";

  // 7. Stage every output beside its target, then put them all in place as one commit (all or
  // none; see io::Commit). Targets of the wrong kind are refused before anything is written.
  struct Plan {
    std::string name, path;
    const Value* value;
    const Loaded* layout;  ///< for a swarm: the loaded swarm whose layout (file or names) it takes
    bool dir;
  };
  std::vector<Plan> plans;
  for (const auto& [name, path] : saves) {
    Plan p{name, path, value_of(name), nullptr, false};
    if (!p.value) throw std::logic_error("the rule's result '" + name + "' is missing");
    if (p.value->kind() == Value::Kind::Swarm) {
      p.layout = loaded.count(name) ? &loaded.at(name) : nullptr;
      // A new swarm is laid out as the first loaded swarm of its size.
      for (size_t i = 0; !p.layout && i < load_order.size(); ++i) {
        auto l = loaded.find(load_order[i]);  // none for a per-member vector
        if (l != loaded.end() && l->second.is_swarm() &&
            l->second.swarm.size() == p.value->swarm().size())
          p.layout = &l->second;
      }
      p.dir = !(p.layout && p.layout->swarm_file);
    }
    check_save_target(name, path, p.dir);
    plans.push_back(p);
  }
  io::Commit commit;
  for (const auto& p : plans) {
    std::string staged = commit.stage(p.path, p.dir);
    if (is_number(p.value)) {
      // A text file, one number per line (as printed: each reads back exactly).
      std::vector<double> values = p.value->kind() == Value::Kind::Scalar
                                       ? std::vector<double>{p.value->scalar()}
                                       : p.value->member_scalars();
      io::write_file(staged, [&](io::FileWriter& w) { w.write(numbers_text(values, "\n") + "\n"); });
    } else if (p.value->kind() == Value::Kind::Particle) {
      save_particle(p.value->particle(), staged);
    } else if (!p.dir) {
      p.value->swarm().save(staged);
    } else {
      const AnySwarm& sw = p.value->swarm();
      save_swarm_dir(sw, staged, p.layout ? p.layout->members : std::vector<std::string>{},
                     format_of(sw.member(0)));
    }
  }
  commit.commit();

  // 8. Scalar and per-member-vector results, once everything is written: "name = 0.5",
  // "name = 3,1,4,2" (text that --set reads back exactly).
  for (const auto& o : outputs) {
    const Value* v = value_of(o);
    if (v && v->kind() == Value::Kind::Scalar)
      std::cout << o << " = " << number_text(v->scalar()) << "\n";
    else if (v && v->kind() == Value::Kind::MemberScalars)
      std::cout << o << " = " << numbers_text(v->member_scalars(), ",") << "\n";
  }
}

}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Apply a rule to models loaded from files (nyto checkpoints, TorchScript archives, "
             "directories of them as swarms) and save the results");
  cmd->add_option("FILE", a->file, "rule script (.nyto)")->required();
  cmd->add_option("--load,-l", a->loads,
                  "NAME=PATH: bind input NAME to a model file (nyto checkpoint or TorchScript "
                  "archive), to a swarm (a directory of model files, or a nyto swarm checkpoint) "
                  "or to a per-member vector (a 1-D tensor saved by torch.save)")
      ->allow_extra_args(false);
  cmd->add_option("--save,-s", a->saves,
                  "NAME=PATH: write the rule's result NAME (a new output or an input updated in "
                  "place) in the format it was loaded from; a swarm to a directory; a number or "
                  "per-member vector as text, one number per line")
      ->allow_extra_args(false);
  cmd->add_option("--set", a->sets,
                  "NAME=VALUE: override a param default or bind a scalar input; NAME=V1,V2,...: "
                  "bind a per-member vector (one value per swarm member)")
      ->allow_extra_args(false);
  cmd->add_option("--seed", a->seed, "seed of rand() and randn()")->check(seed_validator())->capture_default_str();
  cmd->add_option("--backend", a->backend, "llvm (JIT), interp (reference) or aten (LibTorch ops)")
      ->check(CLI::IsMember({"llvm", "interp", "aten"}))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "intra-op threads (default: the number of cores; at most 4 per core)")
      ->check(threads_validator());
  cmd->add_option("--batch", a->batch,
                  "members loaded, run and written at a time when every swarm is a directory and "
                  "the rule's members are independent (the same files as one run on the whole "
                  "swarms, with a batch of them in memory); 0: all at once (default: as many as "
                  "hold 64 MiB of model files)")
      ->check(CLI::NonNegativeNumber);
  add_dist_options(cmd, a->dist);
  cmd->callback([a] {
    if (a->threads == 0) a->threads = int(std::max(1u, std::thread::hardware_concurrency()));
    launch_if_requested(a->dist);
    run_command(*a);
  });
}

}  // namespace nyto::cli
