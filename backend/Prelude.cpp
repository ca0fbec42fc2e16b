#include "backend/Prelude.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "backend/Random.h"
#include "ir/Error.h"
#include "ir/Eval.h"

namespace nyto {

using ir::NodeId;
using ir::Op;

void check_member_index(const ir::Node& n, int64_t m, double v, int64_t M) {
  if (!(v >= 0 && v < double(M) && v == std::floor(v))) throw MemberIndexError(n.index, m, v, M);
}

void check_key(const ir::Node& n, int key, int64_t m, double v, int64_t M) {
  if (!(v >= 0 && v < 0x1p32 && v == std::floor(v))) throw MemberIndexError(n.index, m, v, M, key);
}

void member_ranks(const double* f, int64_t M, bool centered, double* out) {
  // scipy's rankdata(f, "average") - 1 with NaN as +inf (tests/reference/ranks.py).
  std::vector<double> v(f, f + M);
  for (double& x : v)
    if (std::isnan(x)) x = std::numeric_limits<double>::infinity();
  std::vector<int64_t> order(static_cast<size_t>(M));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[size_t(a)] < v[size_t(b)]; });
  for (int64_t lo = 0; lo < M;) {
    int64_t hi = lo + 1;
    while (hi < M && v[size_t(order[size_t(hi)])] == v[size_t(order[size_t(lo)])]) ++hi;
    const double r = double(lo + hi - 1) / 2.0;
    for (int64_t i = lo; i < hi; ++i) out[order[size_t(i)]] = r;
    lo = hi;
  }
  if (centered)
    for (int64_t i = 0; i < M; ++i) out[i] = M == 1 ? 0.0 : out[i] / double(M - 1) - 0.5;
}

int64_t member_arg_best(const double* f, int64_t M, bool max) {
  int64_t best = 0;
  const double worst = max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  auto value = [&](int64_t i) { return std::isnan(f[i]) ? worst : f[i]; };
  for (int64_t i = 1; i < M; ++i)
    if (max ? value(i) > value(best) : value(i) < value(best)) best = i;
  return best;
}

int64_t pick_member(uint64_t seed, uint64_t invocation, int64_t M, int64_t m, int32_t k) {
  NYTO_INTERNAL_ASSERT(k >= 0 && k < M - 1, "pick: too few members (checked at bind time)");
  // Steps 0..k of a partial Fisher-Yates shuffle of the other members in ascending order (slot i
  // holds i, or i + 1 from m on), without materializing the M - 1 slots: only the slots a step
  // swapped differ from that, and there are at most 2 (k + 1) of them.
  std::vector<std::pair<int64_t, int64_t>> changed;  // (slot, member)
  changed.reserve(size_t(2 * k + 2));
  auto get = [&](int64_t slot) {
    for (const auto& [s, v] : changed)
      if (s == slot) return v;
    return slot < m ? slot : slot + 1;
  };
  auto set = [&](int64_t slot, int64_t v) {
    for (auto& [s, old] : changed)
      if (s == slot) return void(old = v);
    changed.emplace_back(slot, v);
  };
  const rng::Key key{seed, invocation, 0};
  for (int64_t i = 0; i <= k; ++i) {
    const double u = rng::pick_uniform(key, uint32_t(i), uint32_t(m));
    const int64_t r = std::min<int64_t>(i + int64_t(std::floor(u * double(M - 1 - i))), M - 2);
    const int64_t a = get(i), b = get(r);
    set(i, b);
    set(r, a);
  }
  return get(k);
}

PreludeValues evaluate_prelude(const ir::Graph& g, const std::vector<BindKind>& kinds,
                               const KernelArgs& a) {
  PreludeValues p;
  const int64_t M = a.members;
  p.members = M;
  p.v.assign(g.nodes.size() * size_t(M), 0.0);
  const rng::Key key{a.seed, a.invocation, a.group};
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (n.type.element) {
      if (n.op == Op::MRead)  // its index has no element axis: already evaluated, checked here
        for (int64_t m = 0; m < M; ++m) check_member_index(n, m, p.at(n.args[1], m), M);
      if (ir::is_keyed(n.op))
        for (int key = 0; key < 2; ++key)
          for (int64_t m = 0; m < M; ++m) check_key(n, key, m, p.at(n.args[key], m), M);
      continue;
    }
    double* out = p.v.data() + i * size_t(M);
    auto arg = [&](int k, int64_t m) { return p.at(n.args[k], m); };
    for (int64_t m = 0; m < M; ++m) {
      double& r = out[m];
      switch (n.op) {
        case Op::Const: r = n.value; break;
        case Op::Param: r = a.params[n.index]; break;
        case Op::Member: r = double(m); break;
        case Op::Members: r = double(M); break;
        case Op::MRand:
        case Op::MRandn: r = rng::member_draw(key, uint32_t(n.index), n.op == Op::MRandn, uint32_t(m)); break;
        case Op::Input:
          NYTO_INTERNAL_ASSERT(kinds[n.index] == BindKind::Scalar || kinds[n.index] == BindKind::MemberScalar,
                               "prelude: an array input without the element axis");
          r = kinds[n.index] == BindKind::Scalar ? a.scalar[n.index]
                                                 : static_cast<const double*>(a.in[n.index])[m];
          break;
        case Op::MSum:
        case Op::MMin:
        case Op::MMax: {
          // Folded left to right in member order (IR.h); the same value for every member.
          const Op f = n.op == Op::MSum ? Op::Add : n.op == Op::MMin ? Op::Min : Op::Max;
          if (m > 0) {
            r = out[0];
            break;
          }
          double acc = arg(0, 0);
          for (int64_t k = 1; k < M; ++k) acc = ir::eval_binary<double>(f, acc, arg(0, k));
          r = acc;
          break;
        }
        case Op::Rank:
        case Op::CRank:
          if (m == 0) member_ranks(p.v.data() + size_t(n.args[0]) * size_t(M), M, n.op == Op::CRank, out);
          break;
        case Op::ArgMin:
        case Op::ArgMax:
          r = m > 0 ? out[0]
                    : double(member_arg_best(p.v.data() + size_t(n.args[0]) * size_t(M), M, n.op == Op::ArgMax));
          break;
        case Op::Pick: r = double(pick_member(a.seed, a.invocation, M, m, n.index)); break;
        case Op::MRead: {
          const double idx = arg(1, m);
          check_member_index(n, m, idx, M);
          r = arg(0, int64_t(idx));
          break;
        }
        case Op::Select: r = arg(0, m) != 0 ? arg(1, m) : arg(2, m); break;
        default:
          if (ir::is_compare_op(n.op))
            r = ir::eval_compare<double>(n.op, arg(0, m), arg(1, m)) ? 1.0 : 0.0;
          else if (ir::op_arity(n.op) == 1)
            r = ir::eval_unary<double>(n.op, arg(0, m));
          else if (ir::op_arity(n.op) == 2)
            r = ir::eval_binary<double>(n.op, arg(0, m), arg(1, m));
          else
            NYTO_INTERNAL_ASSERT(false, std::string("prelude: unexpected op ") + ir::op_name(n.op));
      }
    }
  }
  return p;
}

}  // namespace nyto
