// Random bindings of a graph for differential runs of two kernels (the interpreter against another
// backend): members, element ranges, a binding kind per input, values with IEEE specials, params,
// and outputs stored in place into their target inputs. Header-only; used by
// tests/backend/test_differential.cpp and fuzz/fuzz_pipeline.cpp.
//
//   std::mt19937_64 rng(key);
//   nyto::test::RandomBindings<float> b(graph, rng, /*in_place=*/true, /*max_row=*/120);
//   std::vector<std::vector<float>> want, got;
//   b.run(*interp_kernel, want);  b.run(*other_kernel, got);   // outputs, [k][member * row + e]
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "backend/Kernel.h"
#include "ir/IR.h"
#include "tests/ir/RandomRules.h"

namespace nyto::test {

template <class T>
struct RandomBindings {
  /// Draws everything from `rng`: 1-4 members (or `members_` when > 0), rows of 1..max_row elements (1..big_row one time
  /// in four), sorted disjoint ranges. Inputs typed Elem get Particle or Swarm, others any kind;
  /// with `in_place`, each output with an Elem target stores into it (a Swarm then, unless there
  /// is one member, as the runtime guarantees).
  RandomBindings(const ir::Graph& g, std::mt19937_64& rng, bool in_place_, int64_t max_row,
                 int64_t big_row = 0, int64_t members_ = 0)
      : graph(g), in_place(in_place_) {
    const std::vector<bool> elem = ir::testing::elem_inputs(g);
    members = 1 + int64_t(rng() % 4);
    if (members_ > 0) members = members_;
    for (const ir::Node& n : g.nodes)  // pick(k) chooses among the other members: k + 2 at least
      if (n.op == ir::Op::Pick) members = std::max<int64_t>(members, n.index + 2);
    row = 1 + int64_t(rng() % uint64_t(big_row > 0 && rng() % 4 == 0 ? big_row : max_row));
    for (int64_t at = int64_t(rng() % 3); at < row;) {
      int64_t len = 1 + int64_t(rng() % uint64_t(row));
      args.ranges.push_back({at, std::min(row, at + len)});
      at += len + int64_t(rng() % 5);
    }
    spec.dtype = sizeof(T) == 4 ? DType::F32 : DType::F64;
    args.members = members;
    args.seed = rng();
    args.invocation = rng() % 1000;
    args.group = uint32_t(rng() % 4);
    const double specials[] = {0.0, -0.0, 1.0, -2.5, 1e30, -1e-30, std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::quiet_NaN()};
    auto value = [&]() {
      if (rng() % 8 == 0) return specials[rng() % 8];
      return (double(rng() % 2001) - 1000.0) / 250.0;
    };
    target_of_input.assign(g.inputs.size(), -1);
    if (in_place)
      for (size_t k = 0; k < g.outputs.size(); ++k)
        if (g.outputs[k].target >= 0 && elem[g.outputs[k].target]) target_of_input[g.outputs[k].target] = int(k);
    data.resize(g.inputs.size());
    member_scalars.resize(g.inputs.size());
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      int kind = elem[i] ? 2 + int(rng() % 2) : int(rng() % 4);
      if (target_of_input[i] >= 0 && members > 1) kind = int(BindKind::Swarm);
      spec.kinds.push_back(BindKind(kind));
      args.in_stride.push_back(kind == int(BindKind::Swarm) ? row : 0);
      args.scalar.push_back(value());
      data[i].resize(size_t(members * row));
      for (auto& v : data[i]) v = T(value());
      member_scalars[i].resize(size_t(members));
      for (auto& v : member_scalars[i]) v = value();
    }
    for (auto& p : g.params) args.params.push_back(rng() % 3 == 0 ? value() : p.default_value);
    args.out_stride.assign(g.outputs.size(), row);
  }

  /// Runs `k` on a copy of the inputs; `out[k]` receives output k (members * row values; -123
  /// where the ranges leave it unwritten).
  /// `adjust`, when given, edits the arguments last (a member window, its outside rows: pointers
  /// into the copies of the inputs it receives).
  void run(const Kernel& k, std::vector<std::vector<T>>& out,
           const std::function<void(KernelArgs&, const std::vector<std::vector<T>>&)>& adjust = {}) const {
    std::vector<std::vector<T>> in = data;
    KernelArgs b = args;
    for (size_t i = 0; i < graph.inputs.size(); ++i) {
      switch (spec.kinds[i]) {
        case BindKind::Scalar: b.in.push_back(nullptr); break;
        case BindKind::MemberScalar: b.in.push_back(member_scalars[i].data()); break;
        default: b.in.push_back(in[i].data());
      }
    }
    out.assign(graph.outputs.size(), std::vector<T>(size_t(members * row), T(-123)));
    for (size_t o = 0; o < graph.outputs.size(); ++o) {
      int t = graph.outputs[o].target;
      bool here = t >= 0 && target_of_input[t] == int(o);
      b.out.push_back(here ? static_cast<void*>(in[t].data()) : static_cast<void*>(out[o].data()));
    }
    if (adjust) adjust(b, in);
    k.run(b);
    for (size_t o = 0; o < graph.outputs.size(); ++o) {
      int t = graph.outputs[o].target;
      if (t >= 0 && target_of_input[t] == int(o)) out[o] = in[t];
    }
  }

  const ir::Graph& graph;
  bool in_place;
  int64_t members = 1, row = 1;
  KernelSpec spec;
  KernelArgs args;  // everything but in/out pointers
  std::vector<std::vector<T>> data;                 // per input: members * row values
  std::vector<std::vector<double>> member_scalars;  // per input: one per member
  std::vector<int> target_of_input;                 // output stored into input i, or -1
};

}  // namespace nyto::test
