// A generation rule's states (cli/Generation.h).
#include "cli/Generation.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

#include "cli/Commands.h"

namespace nyto::cli {

namespace {

std::string kind_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Scalar: return "scalar";
    case Value::Kind::MemberScalars: return "vector";
    case Value::Kind::Particle: return "particle";
    case Value::Kind::Swarm: return "swarm";
  }
  return "?";
}

AnySwarm copy_of(const AnySwarm& s) {
  AnySwarm c(s.member(0), s.size());
  at::NoGradGuard ng;
  for (size_t g = 0; g < s.storage().size(); ++g) c.storage()[g].copy_(s.storage()[g]);
  return c;
}

}  // namespace

GenerationState::GenerationState(const Rule& rule) : rule_(rule) {
  for (const StateDecl& st : rule.states()) states_.push_back({st.name, st.kind});
  for (const std::string& name : rule.summands("x"))
    if (mean_.empty() && find(name)) mean_ = name;
}

GenerationState::State* GenerationState::find(const std::string& name) {
  auto it = std::find_if(states_.begin(), states_.end(), [&](const State& s) { return s.name == name; });
  return it == states_.end() ? nullptr : &*it;
}

const AnySwarm* GenerationState::swarm(const std::string& name) const {
  for (const State& st : states_)
    if (st.name == name && st.name != "x" && st.value.kind() == Value::Kind::Swarm) return &st.value.swarm();
  return nullptr;
}

void GenerationState::start(const AnySwarm& x, const std::map<std::string, double>& params, uint64_t seed,
                            const RunOptions& block) {
  std::optional<Rule> init = rule_.init();
  if (!init) return;
  at::NoGradGuard ng;
  RunOptions ro = block;
  ro.params = params;
  ro.seed = seed;
  ro.invocation = 0;
  std::map<std::string, Value> out = init->run(init_bindings(x), ro);
  static const Rule fill = compile("y = 0 * like + value", "<state fill>");
  for (State& st : states_) {
    if (st.name == "x") {
      if (!st.kind.empty() && st.kind != "swarm")
        throw BindError(rule_.state_diagnostic(st.name, "E0510", "the population x is a swarm, not a " + st.kind));
      st.kind = "swarm";
      st.value = Value(x);
      continue;
    }
    Value v = out.at(st.name);
    const std::string have = kind_of(v);
    if (st.kind.empty()) st.kind = have;
    if (have != st.kind) {
      bool fits = (have == "scalar" && st.kind != "scalar") || (have == "vector" && st.kind == "swarm") ||
                  (have == "particle" && st.kind == "swarm");
      if (!fits)
        throw BindError(rule_.state_diagnostic(
            st.name, "E0510",
            "state '" + st.name + "' is declared a " + st.kind + " but its initial value is a " + have +
                (have == "swarm" || st.kind == "scalar" ? "; a state's initial value may be broadcast to more, never reduced"
                                                         : "; declare it a " + have + " or give it a value of that kind")));
      if (st.kind == "vector") {
        v = Value(std::vector<double>(size_t(block.block_rows ? block.population : x.size()), v.scalar()));
      } else {
        // 0 * like is 0 for the finite values of a fresh model, so y is `value` exactly.
        RunOptions fo = st.kind == "swarm" ? block : RunOptions{};
        fo.seed = seed;
        fo.invocation = 0;
        v = fill.run({{"value", v}, {"like", st.kind == "particle" ? Value(x.member(0)) : Value(x)}}, fo).at("y");
      }
    }
    st.value = v;
  }
  if (const State* m = find(mean_); m && m->kind != "particle") mean_.clear();
}

void GenerationState::bind(Bindings& b, bool copies) const {
  for (const State& st : states_) {
    if (st.name == "x") continue;
    const Value& v = st.value;
    if (!copies || (v.kind() != Value::Kind::Swarm && v.kind() != Value::Kind::Particle))
      b.emplace(st.name, v);
    else
      b.emplace(st.name, v.kind() == Value::Kind::Swarm ? Value(copy_of(v.swarm())) : Value(v.particle().clone()));
  }
}

std::vector<std::string> GenerationState::names() const {
  std::vector<std::string> out;
  for (const State& st : states_)
    if (st.name != "x") out.push_back(st.name);
  return out;
}

void GenerationState::take(const std::map<std::string, Value>& outputs, bool check) {
  for (const auto& [name, v] : outputs) {
    State* st = find(name);
    if (!st) {
      if (!check) continue;
      throw UsageError(rule_.name() + ": error: the rule assigns '" + name + "', which is neither x nor a state, so "
                       "its value would be lost after every generation; declare it ('state " + name +
                       " = ...') or make it a let");
    }
    if (check) {
      bool fits = (v.kind() == Value::Kind::Scalar && st->kind == "scalar") ||
                  (v.kind() == Value::Kind::MemberScalars && st->kind == "vector");
      if (!fits)
        throw BindError(rule_.state_diagnostic(
            name, "E0510",
            "state '" + name + "' is a " + st->kind + ", but the rule assigns it " +
                (v.kind() == Value::Kind::MemberScalars
                     ? "a value that varies per member; declare it 'state " + name + ": vector = ...'"
                     : "another kind of value; declare it of the kind the rule assigns")));
      continue;
    }
    st->value = v;
  }
}

const AnyParticle* GenerationState::mean(std::string* name) const {
  for (const State& st : states_)
    if (!mean_.empty() && st.name == mean_ && st.value.kind() == Value::Kind::Particle) {
      if (name) *name = st.name;
      return &st.value.particle();
    }
  return nullptr;
}

std::string GenerationState::signature() const {
  std::string list;
  for (const State& st : states_)
    if (st.name != "x") list += (list.empty() ? "" : " ") + st.name + ":" + st.kind;
  return list;
}

void GenerationState::save(const std::function<void(const std::string&, const c10::IValue&, bool)>& put) const {
  for (const State& st : states_) {
    if (st.name == "x") continue;
    const Value& v = st.value;
    const std::string k = "state_" + st.name;
    const std::vector<at::Tensor>* groups = nullptr;
    switch (v.kind()) {
      case Value::Kind::Scalar: put(k, c10::IValue(v.scalar()), false); break;
      case Value::Kind::MemberScalars: put(k, at::tensor(v.member_scalars(), at::kDouble), true); break;
      case Value::Kind::Particle: groups = &v.particle().storage(); break;
      case Value::Kind::Swarm: groups = &v.swarm().storage(); break;
    }
    if (groups)
      for (size_t g = 0; g < groups->size(); ++g)
        put(k + "_" + std::to_string(g), (*groups)[g].detach(), v.kind() == Value::Kind::Swarm);
  }
}

void GenerationState::restore(const std::string& signature, const std::map<std::string, c10::IValue>& fields,
                              const std::function<void(const std::string&)>& unfit) {
  // `unfit` throws; should it return, nothing is touched either.
  auto fail = [&](const std::string& what) {
    unfit(what);
    throw std::logic_error("nyto internal error (this is a bug in nyto): GenerationState::restore's unfit returned");
  };
  if (signature != this->signature())
    fail("its states ('" + signature + "', the rule declares '" + this->signature() + "')");
  size_t used = 0;
  auto field = [&](const std::string& key) -> const c10::IValue& {
    auto it = fields.find(key);
    if (it == fields.end()) fail("field '" + key + "' (missing)");
    ++used;
    return it->second;
  };
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  std::vector<std::pair<State*, Value>> values;
  for (State& st : states_) {
    if (st.name == "x") continue;
    const std::string k = "state_" + st.name;
    auto groups = [&](const std::vector<at::Tensor>& mine) {
      for (size_t g = 0; g < mine.size(); ++g) {
        const std::string key = k + "_" + std::to_string(g);
        const c10::IValue& v = field(key);
        if (!v.isTensor() || v.toTensor().sizes() != mine[g].sizes() || v.toTensor().scalar_type() != mine[g].scalar_type())
          fail("field '" + key + "'");
        copies.emplace_back(mine[g], v.toTensor());
      }
    };
    switch (st.value.kind()) {
      case Value::Kind::Scalar: {
        const c10::IValue& v = field(k);
        if (!v.isDouble()) fail("field '" + k + "'");
        values.emplace_back(&st, Value(v.toDouble()));
        break;
      }
      case Value::Kind::MemberScalars: {
        const c10::IValue& v = field(k);
        const int64_t n = int64_t(st.value.member_scalars().size());
        if (!v.isTensor() || v.toTensor().scalar_type() != at::kDouble || v.toTensor().sizes() != at::IntArrayRef{n})
          fail("field '" + k + "'");
        at::Tensor t = v.toTensor().contiguous();
        values.emplace_back(&st, Value(std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + n)));
        break;
      }
      case Value::Kind::Particle: groups(st.value.particle().storage()); break;
      case Value::Kind::Swarm: groups(st.value.swarm().storage()); break;
    }
  }
  if (used != fields.size()) fail("a state field the rule does not declare");
  at::NoGradGuard ng;
  for (auto& [dst, src] : copies) dst.copy_(src);
  for (auto& [st, v] : values) st->value = v;
}

}  // namespace nyto::cli
