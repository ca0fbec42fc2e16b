// (c) The particle loaders on any file: TorchScript archives (runtime/any_module.cpp), nyto
// particle and swarm checkpoints (runtime/particle.cpp, swarm.cpp) and values of torch.save
// (load_pickle_checked, for per-member vectors), through load_models (which
// detects the kind) and through AnyParticle::load / AnySwarm::load into a small zoo MLP. A load
// either throws a nyto::Error or gives values that are read in full (so ASan sees any byte
// beyond the data). See FuzzUtil.h for the input format (a zip, or records packed into one).
//
// NYTO_FUZZ_WRITE_SEEDS=DIR: writes the checkpoints of the structures used here to DIR and exits
// (fuzz/make_seeds.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/any_module.h>
#include <nyto/checked_load.h>
#include <nyto/errors.h>
#include <nyto/particle.h>
#include <nyto/swarm.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cli/Zoo.h"
#include "fuzz/FuzzUtil.h"

using namespace nyto;

namespace {

struct Targets {
  AnyParticle particle;
  AnySwarm swarm;
};

Targets& targets() {
  static auto* t = [] {
    at::manual_seed(1);
    cli::ZooOptions o;
    o.hidden = 3;
    auto* t = new Targets{cli::make_model("mlp", o), {}};
    t->swarm = AnySwarm(t->particle, 2);
    return t;
  }();
  return *t;
}

// Reads every value, so a tensor that points past its storage is caught here.
double touch_all(const AnyParticle& p) {
  double s = 0;
  for (const auto& t : p.param_tensors()) s += t.to(at::kDouble).sum().item<double>();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  if (const char* dir = std::getenv("NYTO_FUZZ_WRITE_SEEDS")) {
    targets().particle.save(std::string(dir) + "/particle.pt");
    targets().swarm.save(std::string(dir) + "/swarm.pt");
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = fuzz::write_archive("model.pt", data, size);
  volatile double sink = 0;
  try {
    LoadedModels m = load_models(path);
    if (m.particle.defined()) sink = sink + touch_all(m.particle);
    for (int64_t i = 0; i < m.swarm.size(); ++i) sink = sink + touch_all(m.swarm.member(i));
  } catch (const Error&) {
  } catch (const std::exception& e) {
    fuzz::internal_error(e, "load_models");
  }
  try {
    targets().particle.load(path);
    sink = sink + touch_all(targets().particle);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    fuzz::internal_error(e, "AnyParticle::load");
  }
  try {
    targets().swarm.load(path);
    for (int64_t i = 0; i < targets().swarm.size(); ++i) sink = sink + touch_all(targets().swarm.member(i));
  } catch (const Error&) {
  } catch (const std::exception& e) {
    fuzz::internal_error(e, "AnySwarm::load");
  }
  // A value of torch.save (nyto run --load f=FILE of a 1-D tensor): every tensor in it is read.
  try {
    if (is_pickle_archive(path)) {
      std::vector<c10::IValue> todo{load_pickle_checked(path, "a torch.save file")};
      while (!todo.empty()) {
        c10::IValue v = std::move(todo.back());
        todo.pop_back();
        if (v.isTensor() && v.toTensor().defined())
          sink = sink + v.toTensor().to(at::kDouble).sum().item<double>();
        else if (v.isList())
          for (const c10::IValue& e : v.toListRef()) todo.push_back(e);
        else if (v.isTuple())
          for (const c10::IValue& e : v.toTupleRef().elements()) todo.push_back(e);
        else if (v.isGenericDict())
          for (const auto& e : v.toGenericDict()) todo.push_back(e.value());
      }
    }
  } catch (const Error&) {
  } catch (const std::exception& e) {
    fuzz::internal_error(e, "load_pickle_checked");
  }
  return 0;
}
