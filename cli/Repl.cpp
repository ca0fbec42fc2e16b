// The `nyto repl` session: named values (scalars, particles, swarms), rule statements run against
// them, and the meta-commands. See Repl.h.
#include "cli/Repl.h"

#include "cli/Limits.h"
#include "cli/Parse.h"
#include "cli/Vectors.h"
#include <nyto/checked_load.h>
#include "cli/Zoo.h"
#include "frontend/Source.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <nyto/any_module.h>
#include <nyto/errors.h>
#include <nyto/particle.h>
#include <nyto/rule.h>
#include <nyto/swarm.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include <sys/stat.h>

namespace nyto::cli {

// ------------------------------------------------------------------ model zoo

namespace {

std::string zoo_help() {
  std::string text;
  for (const auto& m : zoo_models()) text += (text.empty() ? "" : ", ") + m.name;
  return text + " (option hidden=H for mlp)";
}

/// Checks a zoo model name and its `:new` options (those of the REPL already taken out).
ZooOptions zoo_options(const std::string& model, std::map<std::string, std::string> options) {
  ZooOptions zoo;
  if (auto it = options.find("hidden"); it != options.end()) {
    double v = 0;
    if (std::string why = interval_error(it->second, integers(1, kMaxHidden), &v); !why.empty())
      throw Error("hidden: " + why);
    zoo.hidden = int64_t(v);
    options.erase(it);
  }
  auto names = zoo_model_names();
  if (std::find(names.begin(), names.end(), model) == names.end())
    throw Error("no model or session value '" + model + "'; the zoo has " + zoo_help());
  if (!options.empty())
    throw Error("unknown option '" + options.begin()->first + "' of :new; the zoo has " +
                zoo_help() + ", and :new takes seed=S dtype=float32|float64 swarm=N init=...");
  return zoo;
}

}  // namespace

// ------------------------------------------------------------------ words

const std::vector<std::string>& meta_commands() {
  static const std::vector<std::string> m = {
      ":help", ":new", ":load", ":save", ":ls", ":show", ":config", ":ir",
      ":llvm", ":time", ":set", ":seed", ":quit"};
  return m;
}

const std::vector<std::string>& language_words() {
  static const std::vector<std::string> w = {
      "abs",  "sqrt", "exp", "log", "sin",  "cos",   "tanh", "sigmoid", "sign", "floor", "ceil",
      "acos", "asin", "atan", "atan2", "min",  "max",  "mod", "clamp", "lerp", "where", "rand",
      "randn", "mrand", "mrandn", "member", "members", "msum", "mmean", "mmin", "mmax", "rank",
      "centered_rank", "argmin", "argmax", "pick", "tsum", "tmean", "tmin", "tmax", "psum", "pmean", "pmin",
      "pmax", "tkth", "pkth", "numel", "elem", "elems", "param", "let"};
  return w;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum((unsigned char)c) || c == '_')) return false;
  return true;
}

using frontend::edit_distance;

std::string stat(double v) {
  if (v == 0) v = 0;  // -0 (a minimum of x*0) shows as 0
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// A species as the session shows it: "Mlp#1" for "nyto::cli::(anonymous namespace)::MlpImpl#1"
/// (C++ module type names are long; the number is what tells species apart).
std::string species_name(const std::shared_ptr<Species>& species) {
  std::string n = species->name();
  size_t hash = n.rfind('#');
  std::string base = n.substr(0, hash), id = hash == std::string::npos ? "" : n.substr(hash);
  if (size_t colon = base.rfind("::"); colon != std::string::npos) base = base.substr(colon + 2);
  if (base.size() > 4 && base.compare(base.size() - 4, 4, "Impl") == 0) base.resize(base.size() - 4);
  return base + id;
}

bool parse_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw Error(key + "=" + v + ": expected true or false");
}

struct Stats {
  int64_t count = 0;
  double mean = NAN, std = NAN, min = NAN, max = NAN;
};

// Mean and (unbiased) std over all elements of `parts`, combined part by part (Chan et al.'s
// pairwise update, in double) so a large swarm is never copied into one tensor.
Stats stats_of(const std::vector<at::Tensor>& parts) {
  at::NoGradGuard no_grad;
  Stats s;
  double mean = 0, m2 = 0;
  for (const auto& t : parts) {
    at::Tensor d = t.detach().to(at::kDouble);
    int64_t n = d.numel();
    if (n == 0) continue;
    double pmean = d.mean().item<double>();
    double pm2 = (d - pmean).pow(2).sum().item<double>();
    double pmin = d.min().item<double>(), pmax = d.max().item<double>();
    if (s.count == 0) {
      s.min = pmin, s.max = pmax;
    } else {
      s.min = std::isnan(pmin) || pmin < s.min ? pmin : s.min;
      s.max = std::isnan(pmax) || pmax > s.max ? pmax : s.max;
    }
    double total = double(s.count + n), delta = pmean - mean;
    mean += delta * double(n) / total;
    m2 += pm2 + delta * delta * double(s.count) * double(n) / total;
    s.count += n;
  }
  if (s.count == 0) return s;
  s.mean = mean;
  s.std = s.count > 1 ? std::sqrt(m2 / double(s.count - 1)) : 0.0;
  return s;
}

std::string stats_text(const Stats& s) {
  if (s.count == 0) return "(no operational parameters)";
  return "mean=" + stat(s.mean) + " std=" + stat(s.std) + " min=" + stat(s.min) +
         " max=" + stat(s.max);
}

// The particle whose species/params describe a value (a swarm's first member).
AnyParticle representative(const Value& v) {
  return v.kind() == Value::Kind::Swarm ? v.swarm().member(0) : v.particle();
}

std::vector<AnyParticle> members_of(const Value& v) {
  if (v.kind() == Value::Kind::Particle) return {v.particle()};
  std::vector<AnyParticle> out;
  for (int64_t i = 0; i < v.swarm().size(); ++i) out.push_back(v.swarm().member(i));
  return out;
}

int64_t param_count(const AnyParticle& p) {
  int64_t n = 0;
  for (const auto& info : p.params()) n += info.numel;
  return n;
}

bool is_array(const Value& v) {
  return v.kind() == Value::Kind::Particle || v.kind() == Value::Kind::Swarm;
}

std::string kind_text(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Scalar: return "scalar";
    case Value::Kind::MemberScalars: return "vector[" + std::to_string(v.member_scalars().size()) + "]";
    case Value::Kind::Particle: return "particle";
    case Value::Kind::Swarm: return "swarm[" + std::to_string(v.swarm().size()) + "]";
  }
  return "?";
}

/// The values of a per-member vector as `:new NAME vector` and `:set` read them ("3,1,4,2"), the
/// first 8 only of a longer one ("3,1,4,1,5,9,2,6,...").
std::string vector_values(const std::vector<double>& values) {
  constexpr size_t kShown = 8;
  if (values.size() <= kShown) return numbers_text(values, ",");
  return numbers_text(std::vector<double>(values.begin(), values.begin() + kShown), ",") + ",...";
}

std::string vector_head(const std::vector<double>& values) {
  return "vector of " + std::to_string(values.size()) + " value" + (values.size() == 1 ? "" : "s");
}

/// A one-line summary of a value: the number for a scalar; length and values for a per-member
/// vector; kind, species, parameter count and statistics over the operational parameters for a
/// particle or a swarm.
std::string summary(const Value& v) {
  if (v.kind() == Value::Kind::Scalar) return number_text(v.scalar());
  if (v.kind() == Value::Kind::MemberScalars)
    return vector_head(v.member_scalars()) +
           (v.member_scalars().empty() ? "" : ": " + vector_values(v.member_scalars()));
  AnyParticle rep = representative(v);
  int64_t total = param_count(rep), operational = 0;
  for (const auto& info : rep.params())
    if (info.config.operational) operational += info.numel;
  std::vector<at::Tensor> parts;
  for (const AnyParticle& m : members_of(v))
    for (size_t i = 0; i < m.params().size(); ++i)
      if (m.params()[i].config.operational) parts.push_back(m.param_tensors()[i]);
  std::string head = v.kind() == Value::Kind::Swarm
                         ? "swarm of " + std::to_string(v.swarm().size()) + " " +
                               species_name(rep.species()) + ", " + std::to_string(total) +
                               " params each"
                         : "particle " + species_name(rep.species()) + ", " + std::to_string(total) +
                               " params";
  head += " in " + std::to_string(rep.params().size()) + " tensors";
  if (operational != total) head += " (" + std::to_string(operational) + " operational)";
  return head + ": " + stats_text(stats_of(parts));
}

/// Columns padded to their widest cell; the last column is not padded.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// A 1-element float64 particle: how a statement over scalars only is evaluated (the rule runtime
// needs a particle to write a result into; Scalar nodes are computed in double and stored exactly).
struct ScratchImpl : torch::nn::Cloneable<ScratchImpl> {
  at::Tensor v;
  ScratchImpl() : Module("scalar") { reset(); }
  void reset() override { v = register_parameter("v", at::zeros({1}, at::kDouble)); }
};

// "%MODELS%" is replaced by the zoo's model names.
const char* kHelp =
    "Statements of the rule language run against the session's values:\n"
    "  net2 = 0.5*net + 10          assign (a new particle, or an update in place)\n"
    "  param w = 0.729              define a session scalar\n"
    "  w*net + 1                    a bare expression shows a summary of its value (kept as _)\n"
    "  an open parenthesis continues the input on the next line\n"
    "Commands:\n"
    "  :help                        this text\n"
    "  :new NAME MODEL [k=v ...]    a particle from the model zoo; options: hidden=H (mlp),\n"
    "                               seed=S (LibTorch's generator), dtype=float32|float64,\n"
    "                               swarm=N init=copies|rand|randn (a swarm of N members)\n"
    "  :new NAME OTHER [k=v ...]    a copy of session particle OTHER, of its species (or of\n"
    "                               member=I of swarm OTHER); swarm=N init=... as above\n"
    "  :new NAME vector V1,V2,...   a per-member vector: one number per member of a swarm\n"
    "  :load NAME PATH              a particle from a nyto checkpoint or TorchScript file, or a\n"
    "                               swarm (swarm checkpoint, directory of particle files); it\n"
    "                               joins the species of a session value of its structure; or\n"
    "                               a per-member vector (a 1-D tensor saved by torch.save)\n"
    "  :save NAME PATH [format=nyto|torchscript]\n"
    "                               write a particle (as loaded, by default) or a swarm\n"
    "  :ls                          names, kind, species, parameter count\n"
    "  :show NAME                   per parameter: path, shape, mean, std, min, max\n"
    "  :config NAME [PATH] operational=BOOL clone=BOOL\n"
    "                               the ParamConfig of NAME's species (all, or PATH)\n"
    "  :ir STMT                     the optimized IR of a statement\n"
    "  :llvm STMT                   its LLVM IR for the session's values\n"
    "  :time STMT                   run it and show compile and run times\n"
    "  :set NAME=VALUE              set a session scalar (overrides a param); NAME=V1,V2,...\n"
    "                               a per-member vector\n"
    "  :seed S                      key of the random draws; reseeds :new and restarts the count\n"
    "  :quit                        leave (also Ctrl-D)\n"
    "The model zoo:%MODELS%\n";

}  // namespace

// ------------------------------------------------------------------ the session

struct ReplSession::Impl {
  ReplConfig config;
  std::ostream& out;
  std::ostream& err;
  std::map<std::string, Value> vars;
  uint64_t seed = 0;
  uint64_t invocation = 0;  // statements run since the last :seed: the Philox invocation key
  int64_t internal_errors = 0;
  AnyParticle scratch;      // lazily made 1-element float64 particle

  Impl(const ReplConfig& c, std::ostream& o, std::ostream& e) : config(c), out(o), err(e) {
    if (c.threads > 0) at::set_num_threads(c.threads);
    reseed(c.seed);
  }

  std::string file() const { return config.interactive ? "<repl>" : "<stdin>"; }

  void reseed(uint64_t s) {
    seed = s;
    invocation = 0;
    at::manual_seed(s);
  }

  void report(std::string msg) {
    // The runtime names species by their C++ module type; show them as the session does.
    for (const auto& [name, v] : vars) {
      if (!is_array(v)) continue;
      const auto& sp = representative(v).species();
      std::string full = sp->name(), short_name = species_name(sp);
      for (size_t at = msg.find(full); at != std::string::npos; at = msg.find(full, at))
        msg.replace(at, full.size(), short_name), at += short_name.size();
    }
    if (msg.empty() || msg.back() != '\n') msg += '\n';
    if (!starts_with(msg, file()) && !starts_with(msg, "error")) msg = "error: " + msg;
    // The frontend's advice for `nyto run` (--set NAME=VALUE) reads :set NAME=VALUE here.
    for (size_t at = msg.find("e.g. --set "); at != std::string::npos; at = msg.find("e.g. --set ", at))
      msg.replace(at + 5, 5, ":set"), at += 9;
    if (config.color) {
      size_t at = msg.find("error");
      if (at != std::string::npos) msg.replace(at, 5, "\033[1;31merror\033[0m");
    }
    out.flush();
    err << msg;
    err.flush();
  }

  // Source text for a statement: blank lines before it so diagnostics carry the line numbers of
  // the whole input, and spaces over a meta-command prefix so columns match what was typed.
  std::string located_source(const std::string& input, size_t prefix, int first_line) const {
    std::string src = config.interactive ? "" : std::string(size_t(std::max(first_line, 1) - 1), '\n');
    for (size_t i = 0; i < input.size(); ++i)
      src += i < prefix && input[i] != '\n' ? ' ' : input[i];
    return src;
  }

  Rule compile_statement(const std::string& src) const {
    CompileOptions opts;
    opts.repl = true;
    std::vector<std::string> known;
    for (const auto& [name, v] : vars) known.push_back(name);
    opts.known_names = known;
    return compile(src, file(), opts);
  }

  AnyParticle new_scratch(double value) {
    if (!scratch.defined()) scratch = AnyParticle::adopt(std::make_shared<ScratchImpl>());
    AnyParticle p = scratch.clone();
    at::NoGradGuard no_grad;
    p.storage()[0].fill_(value);
    return p;
  }

  /// Compiles and runs one statement block; the session changes only when it all succeeded.
  void run_statement(const std::string& src, bool timed) {
    auto t0 = Clock::now();
    Rule rule = compile_statement(src);
    auto t1 = Clock::now();
    const RuleSignature& sig = rule.signature();

    Bindings bindings;
    bool arrays = false;
    std::shared_ptr<Species> species;
    int64_t swarm_size = 0;
    for (const auto& name : sig.inputs) {
      const Value& v = vars.at(name);  // known_names guarantees it is bound
      bindings.emplace(name, v);
      if (is_array(v)) {
        arrays = true;
        if (!species) species = representative(v).species();
        if (v.kind() == Value::Kind::Swarm && !swarm_size) swarm_size = v.swarm().size();
      }
    }
    // Outputs: a value without the element axis comes back as a number or a per-member vector
    // (language v1); a particle or swarm result updates a session value of its species and shape
    // in place, and replaces anything else, as a name is rebound in Python. A statement on
    // numbers alone (no particle, swarm or vector) runs on a 1-element float64 scratch particle,
    // so `rand()` draws one number.
    bool vectors = false;
    for (const auto& name : sig.inputs) vectors = vectors || vars.at(name).kind() == Value::Kind::MemberScalars;
    const bool scalars_only = !arrays && !vectors;
    std::map<std::string, AnyParticle> scratch_out;
    for (const auto& name : sig.outputs) {
      if (scalars_only) {
        auto it = bindings.find(name);
        double init = it != bindings.end() ? it->second.scalar() : 0.0;
        AnyParticle p = new_scratch(init);
        scratch_out.emplace(name, p);
        bindings.erase(name);
        bindings.emplace(name, Value(p));
        continue;
      }
      if (!arrays || bindings.count(name)) continue;  // read and written: in place (or an error)
      auto it = vars.find(name);
      if (it == vars.end() || !is_array(it->second)) continue;  // a new particle
      const Value& old = it->second;
      bool fits = representative(old).species() == species &&
                  (swarm_size ? old.kind() == Value::Kind::Swarm && old.swarm().size() == swarm_size
                              : old.kind() == Value::Kind::Particle);
      if (fits) bindings.emplace(name, old);
    }

    std::map<std::string, Value> results;
    auto t2 = Clock::now();
    if (!sig.outputs.empty()) {
      RunOptions opts;
      opts.seed = seed;
      opts.invocation = invocation;
      opts.backend = config.backend;
      try {
        results = rule.run(bindings, opts);
      } catch (const BindError& e) {
        // `a = a * net` with a session scalar a: say what to do in a session.
        for (const auto& name : sig.outputs) {
          auto it = bindings.find(name);
          if (arrays && it != bindings.end() && !is_array(it->second)) {
            std::string msg = e.what();
            if (!msg.empty() && msg.back() != '\n') msg += '\n';
            throw BindError(msg + "note: '" + name + "' holds a " +
                            (it->second.kind() == Value::Kind::Scalar ? "scalar"
                                                                      : "per-member vector") +
                            " in this session and this statement makes a particle of it; "
                            "assign the result to another name");
          }
        }
        throw;
      }
      ++invocation;
    }
    auto t3 = Clock::now();

    // Success: commit.
    for (const auto& [name, value] : sig.params) vars.insert_or_assign(name, Value(value));
    for (const auto& name : sig.outputs) {
      if (scalars_only) {
        at::NoGradGuard no_grad;
        vars.insert_or_assign(name, Value(scratch_out.at(name).storage()[0][0].item<double>()));
      } else if (auto it = results.find(name); it != results.end()) {
        vars.insert_or_assign(name, it->second);
      }  // else updated in place
    }
    if (std::find(sig.outputs.begin(), sig.outputs.end(), "_") != sig.outputs.end())
      out << summary(vars.at("_")) << "\n";
    if (timed) {
      auto ms = [](Clock::duration d) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f ms",
                      std::chrono::duration<double, std::milli>(d).count());
        return std::string(buf);
      };
      out << "compile " << ms(t1 - t0) << ", run " << ms(t3 - t2) << "\n";
    }
  }

  const Value& lookup(const std::string& name) const {
    auto it = vars.find(name);
    if (it == vars.end()) {
      std::string best;
      size_t best_d = std::min(std::max<size_t>(1, name.size() / 3), name.size() - 1) + 1;
      for (const auto& [n, v] : vars)
        if (size_t d = edit_distance(name, n); d < best_d) best = n, best_d = d;
      throw Error("no value named '" + name + "'" +
                  (best.empty() ? "; :ls lists the session's values" : "; did you mean '" + best + "'?"));
    }
    return it->second;
  }

  void check_new_name(const std::string& name) const {
    if (!is_identifier(name))
      throw Error("'" + name + "' is not a name; use letters, digits and _, not starting with a digit");
    for (const auto& w : language_words())
      if (w == name)
        throw Error("'" + name + "' is a keyword or built-in function; choose another name");
  }

  // ---- meta-commands

  /// `:new NAME vector V1,V2,...`: a per-member vector (spaces after the commas allowed).
  void cmd_new_vector(const std::vector<std::string>& a) {
    const std::string& name = a[1];
    std::string text;
    for (size_t i = 3; i < a.size(); ++i) text += (i > 3 ? " " : "") + a[i];
    if (text.empty())
      throw Error("usage: :new NAME vector V1,V2,... (one number per member of a swarm)");
    std::vector<double> values;
    bool several = false;
    if (std::string why = numbers_error(text, &values, &several); !why.empty())
      throw Error(":new " + name + " vector " + text + ": " + why);
    vars.insert_or_assign(name, Value(std::move(values)));
    out << name << ": " << summary(vars.at(name)) << "\n";
  }

  void cmd_new(const std::vector<std::string>& a) {
    if (a.size() < 3) throw Error("usage: :new NAME MODEL [option=value ...]; the zoo has " + zoo_help());
    const std::string& name = a[1];
    check_new_name(name);
    // `vector` makes a per-member vector, unless it names a session particle or swarm that the
    // rest (options key=value only) copies.
    if (a[2] == "vector") {
      auto from = vars.find(a[2]);
      bool copy = from != vars.end() && is_array(from->second) &&
                  std::all_of(a.begin() + 3, a.end(),
                              [](const std::string& w) { return w.find('=') != std::string::npos; });
      if (!copy) return cmd_new_vector(a);
    }
    std::map<std::string, std::string> options;
    for (size_t i = 3; i < a.size(); ++i) {
      size_t eq = a[i].find('=');
      if (eq == std::string::npos || eq == 0)
        throw Error("option '" + a[i] + "' of :new is not of the form key=value");
      options[a[i].substr(0, eq)] = a[i].substr(eq + 1);
    }
    auto take = [&](const std::string& key) -> std::optional<std::string> {
      auto it = options.find(key);
      if (it == options.end()) return std::nullopt;
      std::string v = it->second;
      options.erase(it);
      return v;
    };
    // One check for every integer option: "swarm: must be an integer in [1, 100000], got 0".
    auto as_int = [](const std::string& key, const std::string& v, const Interval& iv) {
      double d = 0;
      if (std::string why = interval_error(v, iv, &d); !why.empty()) throw Error(key + ": " + why);
      return int64_t(d);
    };
    auto seed_opt = take("seed");
    auto member_opt = take("member");
    auto dtype_opt = take("dtype");
    auto swarm_opt = take("swarm");
    auto init_opt = take("init");
    at::ScalarType dtype = at::kFloat;
    if (dtype_opt) {
      if (*dtype_opt == "float32" || *dtype_opt == "f32") dtype = at::kFloat;
      else if (*dtype_opt == "float64" || *dtype_opt == "f64") dtype = at::kDouble;
      else throw Error("dtype=" + *dtype_opt + ": expected float32 or float64");
    }
    int64_t n = swarm_opt ? as_int("swarm", *swarm_opt, integers(1, kMaxMembers)) : 0;
    SwarmInit init = SwarmInit::Copies;
    if (init_opt) {
      if (!swarm_opt) throw Error("init=" + *init_opt + " needs swarm=N");
      if (*init_opt == "copies") init = SwarmInit::Copies;
      else if (*init_opt == "rand") init = SwarmInit::Rand;
      else if (*init_opt == "randn") init = SwarmInit::Randn;
      else throw Error("init=" + *init_opt + ": expected copies, rand or randn");
    }
    std::optional<uint64_t> seed_value;
    if (seed_opt) {
      unsigned long long s = 0;
      if (std::string why = seed_error(*seed_opt, &s); !why.empty()) throw Error("seed: " + why);
      seed_value = s;
    }
    AnyParticle p;
    auto from = vars.find(a[2]);
    // Every option is checked before the generator is reseeded: a failed :new changes nothing.
    if (from != vars.end() && is_array(from->second)) {
      // From a session value: a copy of the particle (or of a swarm's member), of its species.
      if (dtype_opt) throw Error("dtype= makes a new species; it cannot apply to a copy of '" + a[2] + "'");
      if (!options.empty())
        throw Error("option '" + options.begin()->first + "' is for zoo models; a copy of '" +
                    a[2] + "' takes seed=, swarm=, init= and member=");
      if (from->second.kind() == Value::Kind::Swarm) {
        const AnySwarm& s = from->second.swarm();
        int64_t i = member_opt ? as_int("member", *member_opt, integers(0, kMaxMembers - 1)) : 0;
        if (i >= s.size())
          throw Error("member=" + *member_opt + ": swarm '" + a[2] + "' has members 0 to " +
                      std::to_string(s.size() - 1));
        if (seed_value) at::manual_seed(*seed_value);
        p = s.member(i).clone();
      } else {
        if (member_opt) throw Error("member= needs a swarm, but '" + a[2] + "' is a particle");
        if (seed_value) at::manual_seed(*seed_value);
        p = from->second.particle().clone();
      }
    } else {
      if (member_opt) throw Error("member= needs a swarm, but '" + a[2] + "' is not a session value");
      ZooOptions zoo = zoo_options(a[2], options);
      if (seed_value) at::manual_seed(*seed_value);
      p = make_model(a[2], zoo);
      if (dtype != at::kFloat) {
        // The zoo builds float32 particles: a float64 one is a converted copy, a new species.
        std::shared_ptr<torch::nn::Module> m = p.module_ptr()->clone();
        m->to(dtype);
        p = AnyParticle::adopt(m);
      }
    }
    if (swarm_opt) {
      if (std::string why = memory_error(param_bytes(p) * double(n), "swarm=" + *swarm_opt); !why.empty())
        throw Error(why);
    }
    if (swarm_opt)
      vars.insert_or_assign(name, Value(AnySwarm(p, n, init)));
    else
      vars.insert_or_assign(name, Value(p));
    out << name << ": " << summary(vars.at(name)) << "\n";
  }

  void cmd_ls() {
    if (vars.empty()) {
      out << "no values yet; :new NAME MODEL makes a particle, param NAME = VALUE a scalar\n";
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"name", "kind", "species", "params / value"}};
    for (const auto& [name, v] : vars) {
      if (is_array(v)) {
        AnyParticle rep = representative(v);
        rows.push_back({name, kind_text(v), species_name(rep.species()),
                        std::to_string(param_count(rep)) +
                            (v.kind() == Value::Kind::Swarm ? " each" : "")});
      } else if (v.kind() == Value::Kind::MemberScalars) {
        rows.push_back({name, kind_text(v), "-", vector_values(v.member_scalars())});
      } else {
        rows.push_back({name, kind_text(v), "-", summary(v)});
      }
    }
    out << table(rows);
  }

  void cmd_show(const std::vector<std::string>& a) {
    if (a.size() != 2) throw Error("usage: :show NAME");
    const Value& v = lookup(a[1]);
    if (v.kind() == Value::Kind::MemberScalars) {
      // Statistics, then every member's value.
      const std::vector<double>& values = v.member_scalars();
      out << a[1] << ": " << vector_head(values);
      if (!values.empty())  // (:load of an empty tensor)
        out << ": " << stats_text(stats_of({at::tensor(at::ArrayRef<double>(values), at::kDouble)}));
      out << "\n";
      std::vector<std::vector<std::string>> rows;
      for (size_t k = 0; k < values.size(); ++k)
        rows.push_back({"  member " + std::to_string(k), number_text(values[k])});
      out << table(rows);
      return;
    }
    if (!is_array(v)) {
      out << a[1] << " = " << summary(v) << "\n";
      return;
    }
    out << a[1] << ": " << summary(v) << "\n";
    AnyParticle rep = representative(v);
    std::vector<AnyParticle> members = members_of(v);
    std::vector<std::vector<std::string>> rows = {{"path", "shape", "mean", "std", "min", "max", ""}};
    for (size_t i = 0; i < rep.params().size(); ++i) {
      const ParamInfo& info = rep.params()[i];
      std::vector<at::Tensor> parts;
      for (const auto& m : members) parts.push_back(m.param_tensors()[i]);
      Stats s = stats_of(parts);
      std::string note;
      if (!info.config.operational)
        note = info.config.clone ? "not operational" : "not operational, shared";
      std::string shape = shape_text(info.shape);
      if (info.dtype == at::kDouble) shape += " float64";
      else if (info.dtype != at::kFloat) shape += " " + std::string(c10::toString(info.dtype));
      rows.push_back({"  " + info.path, shape, stat(s.mean), stat(s.std), stat(s.min),
                      stat(s.max), note});
    }
    if (v.kind() == Value::Kind::Swarm) {
      // One row per member too: its operational parameters.
      for (size_t k = 0; k < members.size(); ++k) {
        std::vector<at::Tensor> parts;
        for (size_t i = 0; i < rep.params().size(); ++i)
          if (rep.params()[i].config.operational) parts.push_back(members[k].param_tensors()[i]);
        Stats s = stats_of(parts);
        rows.push_back({"  member " + std::to_string(k), "", stat(s.mean), stat(s.std),
                        stat(s.min), stat(s.max), ""});
      }
    }
    out << table(rows);
  }

  void cmd_config(const std::vector<std::string>& a) {
    if (a.size() < 3)
      throw Error("usage: :config NAME [PATH] operational=BOOL clone=BOOL");
    const Value& v = lookup(a[1]);
    if (!is_array(v))
      throw Error("'" + a[1] + "' is a " + kind_text(v) + "; :config takes a particle or a swarm");
    std::string path;
    std::optional<bool> operational, clone;
    for (size_t i = 2; i < a.size(); ++i) {
      size_t eq = a[i].find('=');
      if (eq == std::string::npos) {
        if (!path.empty() || i != 2)
          throw Error("usage: :config NAME [PATH] operational=BOOL clone=BOOL ('" + a[i] +
                      "' is unexpected)");
        path = a[i];
        continue;
      }
      std::string key = a[i].substr(0, eq), val = a[i].substr(eq + 1);
      if (key == "operational") operational = parse_bool(key, val);
      else if (key == "clone") clone = parse_bool(key, val);
      else throw Error("unknown config key '" + key + "'; expected operational or clone");
    }
    if (!operational && !clone)
      throw Error("usage: :config NAME [PATH] operational=BOOL clone=BOOL (give at least one)");
    AnyParticle rep = representative(v);
    size_t count = rep.species()->select(path).size();  // NameError for an unknown path
    rep.apply_param_config(
        [&](const ParamConfig& c) {
          ParamConfig n = c;
          if (operational) n.operational = *operational;
          if (clone) n.clone = *clone;
          return n;
        },
        path);
    out << a[1] << (path.empty() ? "" : " " + path) << ": " << count << " parameter"
        << (count == 1 ? "" : "s");
    if (operational) out << " operational=" << (*operational ? "true" : "false");
    if (clone) out << " clone=" << (*clone ? "true" : "false");
    out << " (species " << species_name(rep.species()) << ")\n";
  }

  void cmd_set(const std::string& rest) {
    std::string text;
    for (char c : rest)
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') text += c;
    size_t eq = text.find('=');
    if (eq == std::string::npos) throw Error("usage: :set NAME=VALUE");
    std::string name = text.substr(0, eq), value = text.substr(eq + 1);
    check_new_name(name);
    std::vector<double> values;
    bool vector = false;
    if (std::string why = numbers_error(value, &values, &vector); !why.empty())
      throw Error(":set " + name + "=" + value + ": " + why);
    auto it = vars.find(name);
    if (it != vars.end() && is_array(it->second))
      throw Error("'" + name + "' is a " + kind_text(it->second) +
                  ", not a number; :set only sets scalars and per-member vectors");
    vars.insert_or_assign(name, vector ? Value(std::move(values)) : Value(values[0]));
  }

  void cmd_seed(const std::vector<std::string>& a) {
    if (a.size() != 2) throw Error("usage: :seed S (a non-negative integer)");
    unsigned long long s = 0;
    if (std::string why = seed_error(a[1], &s); !why.empty()) throw Error(":seed: " + why);
    reseed(s);
  }

  // A loaded particle joins the species of a session particle of the same structure (NAME's
  // old value first, then others by name), so it combines with them in rules.
  std::optional<AnyParticle> same_structure_as(const AnyParticle& loaded, const std::string& name) const {
    std::vector<const Value*> order;
    if (auto it = vars.find(name); it != vars.end()) order.push_back(&it->second);
    for (const auto& [n, v] : vars)
      if (n != name) order.push_back(&v);
    for (const Value* v : order)
      if (is_array(*v) && same_structure(representative(*v), loaded)) return representative(*v);
    return std::nullopt;
  }

  void cmd_load(const std::vector<std::string>& a) {
    if (a.size() != 3) throw Error("usage: :load NAME PATH (a nyto checkpoint, a TorchScript file, "
                                   "a nyto swarm checkpoint, a directory of particle files or a "
                                   "1-D tensor saved by torch.save)");
    const std::string& name = a[1];
    const std::string& path = a[2];
    check_new_name(name);
    if (is_pickle_archive(path)) {
      vars.insert_or_assign(name, Value(load_vector_file(path)));
      out << name << ": " << summary(vars.at(name)) << " (torch.save)\n";
      return;
    }
    bool swarm = false;
    std::string what;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      swarm = true, what = "directory of particle files";
    } else {
      FileKind kind = inspect_file(path);  // IOError for a missing or unknown file
      swarm = kind.swarm;
      what = kind.format == Format::TorchScript ? "TorchScript"
             : kind.swarm                       ? "nyto swarm checkpoint"
                                                : "nyto checkpoint";
    }
    std::string joined;
    if (swarm) {
      AnySwarm s = load_swarm(path);
      if (auto rep = same_structure_as(s.member(0), name)) {
        s = to_species(*rep, s);
        joined = ", species of the session's " + species_name(rep->species());
      }
      vars.insert_or_assign(name, Value(s));
    } else {
      AnyParticle p = load_particle(path);
      if (auto rep = same_structure_as(p, name)) {
        p = to_species(*rep, p);
        joined = ", species of the session's " + species_name(rep->species());
      }
      vars.insert_or_assign(name, Value(p));
    }
    out << name << ": " << summary(vars.at(name)) << " (" << what << joined << ")\n";
  }

  void cmd_save(const std::vector<std::string>& a) {
    if (a.size() < 3 || a.size() > 4)
      throw Error("usage: :save NAME PATH [format=nyto|torchscript]");
    const Value& v = lookup(a[1]);
    std::optional<Format> format;
    if (a.size() == 4) {
      if (a[3] == "format=nyto") format = Format::Nyto;
      else if (a[3] == "format=torchscript") format = Format::TorchScript;
      else throw Error("'" + a[3] + "': expected format=nyto or format=torchscript");
    }
    if (v.kind() == Value::Kind::Particle) {
      save_particle(v.particle(), a[2], format ? *format : format_of(v.particle()));
    } else if (v.kind() == Value::Kind::Swarm) {
      if (format == Format::TorchScript)
        save_swarm_dir(v.swarm(), a[2], {}, Format::TorchScript);
      else
        v.swarm().save(a[2]);
    } else {
      throw Error("'" + a[1] + "' is a " + kind_text(v) + "; :save takes a particle or a swarm");
    }
  }

  bool meta(const std::string& input, int first_line) {
    size_t b = input.find_first_not_of(" \t");
    size_t e = input.find_first_of(" \t\r\n", b);
    if (e == std::string::npos) e = input.size();
    std::string cmd = input.substr(b, e - b);
    std::string rest = input.substr(e);
    std::vector<std::string> a = split_words(input);
    if (cmd == ":quit" || cmd == ":q" || cmd == ":exit") return false;
    if (cmd == ":help" || cmd == ":h" || cmd == ":?") {
      std::string text = kHelp, models;
      for (const auto& m : zoo_models()) models += "\n    " + m.name + ": " + m.usage;
      text.replace(text.find("%MODELS%"), 8, models);
      out << text;
    } else if (cmd == ":new") {
      cmd_new(a);
    } else if (cmd == ":load") {
      cmd_load(a);
    } else if (cmd == ":save") {
      cmd_save(a);
    } else if (cmd == ":ls") {
      cmd_ls();
    } else if (cmd == ":show") {
      cmd_show(a);
    } else if (cmd == ":config") {
      cmd_config(a);
    } else if (cmd == ":ir" || cmd == ":llvm" || cmd == ":time") {
      if (trim(rest).empty()) throw Error("usage: " + cmd + " STATEMENT");
      std::string src = located_source(input, e, first_line);
      if (cmd == ":time") {
        run_statement(src, true);
      } else {
        Rule rule = compile_statement(src);
        Bindings bound;  // the session's values: the kernel :llvm shows is the one a run compiles
        for (const auto& name : rule.inputs()) bound.emplace(name, vars.at(name));
        std::string text = rule.emit(cmd == ":ir" ? "ir-opt" : "llvm", bound, config.backend);
        out << text;
        if (!text.empty() && text.back() != '\n') out << "\n";
      }
    } else if (cmd == ":set") {
      cmd_set(rest);
    } else if (cmd == ":seed") {
      cmd_seed(a);
    } else {
      std::string best;
      size_t best_d = 3;
      for (const auto& m : meta_commands())
        if (size_t d = edit_distance(cmd, m); d < best_d) best = m, best_d = d;
      throw Error("unknown command '" + cmd + "'" +
                  (best.empty() ? "" : "; did you mean '" + best + "'?") + " (:help lists them)");
    }
    return true;
  }
};

ReplSession::ReplSession(const ReplConfig& config, std::ostream& out, std::ostream& err)
    : impl_(std::make_unique<Impl>(config, out, err)) {}
ReplSession::~ReplSession() = default;

std::vector<std::string> ReplSession::names() const {
  std::vector<std::string> n;
  for (const auto& [name, v] : impl_->vars) n.push_back(name);
  return n;
}

bool ReplSession::handle(const std::string& input, int first_line) {
  Impl& s = *impl_;
  // Skip blank and comment-only input.
  bool empty = true;
  bool comment = false;
  for (char c : input) {
    if (c == '\n') comment = false;
    else if (c == '#') comment = true;
    else if (!comment && c != ' ' && c != '\t' && c != '\r') empty = false;
  }
  if (empty) return true;
  try {
    if (trim(input)[0] == ':') return s.meta(input, first_line);
    s.run_statement(s.located_source(input, 0, first_line), false);
  } catch (const CompileError& e) {
    s.report(e.rendered());
  } catch (const Error& e) {
    s.report(e.what());
  } catch (const c10::Error& e) {
    s.report(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    s.report("out of memory");
  } catch (const std::filesystem::filesystem_error& e) {
    s.report(e.what());
  } catch (const std::exception& e) {
    ++s.internal_errors;
    s.report(std::string("internal error (this is a bug in nyto): ") + e.what());
  }
  return true;
}

int64_t ReplSession::internal_errors() const { return impl_->internal_errors; }

}  // namespace nyto::cli
