// optimize(): the one straight-line pass pipeline (Halide's Lower.cpp: every pass called in
// order, the IR printable after each, each pass timed).
#include <chrono>
#include <ostream>

#include "ir/Passes.h"

namespace nyto::ir {

namespace {

// Runs one pass with the optional verify / print / timing around it.
template <class Pass>
Graph run_pass(const char* name, int round, const Graph& g, const PassOptions& o, Pass&& pass) {
  auto t0 = std::chrono::steady_clock::now();
  Graph out = pass(g);
  auto t1 = std::chrono::steady_clock::now();
  if (o.timings)
    *o.timings << name << " "
               << std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()
               << " us\n";
  if (o.verify_each) verify(out);
  if (o.print_after) *o.print_after << "-- " << name << " (round " << round << ") --\n" << print(out);
  return out;
}

}  // namespace

FusedKernel optimize(Graph g, const PassOptions& o) {
  if (o.verify_each) verify(g);
  if (o.print_after) *o.print_after << "-- input --\n" << print(g);
  for (int round = 1; round <= o.max_rounds; ++round) {
    const Graph before = g;
    g = run_pass("fold", round, g, o, [&](const Graph& x) {
      return constant_fold(x, o.bind_params, o.param_values);
    });
    g = run_pass("simplify", round, g, o, simplify);
    g = run_pass("cse", round, g, o, cse);
    g = run_pass("dce", round, g, o, dce);
    if (same_graph(g, before)) break;  // a fixpoint: one linear comparison, no printing
  }
  auto t0 = std::chrono::steady_clock::now();
  FusedKernel k = fuse(g);
  auto t1 = std::chrono::steady_clock::now();
  if (o.timings)
    *o.timings << "fuse " << std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()
               << " us\n";
  if (o.print_after) *o.print_after << "-- fuse --\n" << print(k);
  return k;
}

}  // namespace nyto::ir
