#include "backend/aten/AtenBackend.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "backend/Prelude.h"
#include "backend/Random.h"
#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/ParamAxis.h"
#include "ir/Passes.h"

namespace nyto::aten_backend {

namespace {

using ir::Node;
using ir::Op;

// A node's value over one range: per-member doubles for Scalar nodes (and scalar masks, as 0/1),
// a [members or 1, len] tensor for Elem nodes and element masks.
struct Value {
  bool is_tensor = false;
  std::vector<double> s;
  at::Tensor t;
};

class Evaluator {
 public:
  Evaluator(const ir::Graph& g, const Call& c, at::TensorOptions opts)
      : g_(g), c_(c), opts_(opts), vals_(g.nodes.size()) {}

  void range(int64_t begin, int64_t len) {
    begin_ = begin;
    len_ = len;
    cur_ = &vals_;
    for (size_t i = 0; i < g_.nodes.size(); ++i) vals_[i] = eval(g_.nodes[i]);
    store();
  }

  // A parameter-axis rule (ir/ParamAxis.h): the graph is evaluated node by node over every
  // tensor (a block per parameter tensor, so a tensor scalar, numel() or tsum(x), is a plain
  // per-member value within its block), a particle-wide reduction from the blocks of all tensors,
  // and nothing is stored before every node of every tensor is known (so an output updated in
  // place is never read back by a reduction). Value outputs are filled last.
  void particle(std::vector<std::pair<int64_t, int64_t>> tensors) {
    if (tensors.empty()) tensors.emplace_back(0, 0);  // no element: reductions give identities
    const size_t T = tensors.size(), n_nodes = g_.nodes.size();
    seg_.clear();
    P_ = 0;
    for (auto [b, e] : tensors) {
      seg_.push_back({b, e - b, P_});
      P_ += e - b;
    }
    std::vector<std::vector<Value>> vals(T, std::vector<Value>(n_nodes));
    for (size_t i = 0; i < n_nodes; ++i) {
      const Node& n = g_.nodes[i];
      if (ir::is_particle_reduce(n.op)) {
        const Value v = particle_reduce(n, vals);
        for (size_t t = 0; t < T; ++t) vals[t][i] = v;
        continue;
      }
      for (size_t t = 0; t < T; ++t) {
        enter(t, vals);
        vals[t][i] = eval(n);
      }
    }
    for (size_t t = 0; t < T; ++t) {
      enter(t, vals);
      store();
    }
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      if (!is_value_output(o)) continue;
      const Value& v = vals[0][size_t(g_.outputs[o].node)];
      if (v.is_tensor) ir::internal_error("aten backend: a value output varies per element");
      const at::Tensor& dst = c_.out[o];
      const int64_t n = std::min<int64_t>(dst.numel(), int64_t(v.s.size()));
      dst.narrow(0, 0, n).copy_(at::tensor(at::ArrayRef<double>(v.s.data(), size_t(n)), at::kDouble));
    }
  }

 private:
  struct Segment {
    int64_t begin, len, first;  // storage range, and its first element's index among the P
  };

  // Makes block t of a parameter-axis rule the current one.
  void enter(size_t t, std::vector<std::vector<Value>>& vals) {
    begin_ = seg_[t].begin;
    len_ = seg_[t].len;
    first_ = seg_[t].first;
    cur_ = &vals[t];
  }

  bool is_value_output(size_t o) const { return o < c_.values.size() && c_.values[o]; }

  // The current block's outputs, once its nodes (and, for a parameter-axis rule, every block's
  // nodes) are evaluated.
  void store() {
    const std::vector<Value>& vals = *cur_;
    // Every result is read before the first write: a result that is an input as it is (a view
    // of its storage, as v in `t = x; x = v; v = t`) is copied when that storage is an output,
    // or writing one output would change another's value (the fused kernels go element by
    // element, so they read every input of an element before storing it).
    std::vector<at::Tensor> src(g_.outputs.size());
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      if (is_value_output(o)) continue;
      src[o] = as_tensor(vals[g_.outputs[o].node], opts_.dtype());
      for (const at::Tensor& out : c_.out)
        if (shares_memory(src[o], out)) {
          src[o] = src[o].clone(at::MemoryFormat::Contiguous);
          break;
        }
    }
    const int64_t begin = begin_, len = len_;
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      if (is_value_output(o)) continue;
      at::Tensor dst = c_.out[o];
      at::Tensor view = dst.dim() == 1 ? dst.narrow(0, begin, len).unsqueeze(0)
                                       : dst.narrow(1, begin, len);
      // A value without the member axis may still come as one row per member (a per-member
      // scalar that is the same for all): any row is the value.
      at::Tensor v = src[o];
      if (view.size(0) == 1 && v.size(0) > 1) v = v.narrow(0, 0, 1);
      view.copy_(v.expand({view.size(0), len}));
    }
  }

  // A Scalar value meets an Elem one: rounded once to the dtype, broadcast over the range.
  at::Tensor as_tensor(const Value& v, caffe2::TypeMeta dtype) const {
    if (v.is_tensor) return v.t;
    return at::tensor(v.s, at::TensorOptions().dtype(at::kDouble))
        .to(opts_.device(), dtype)
        .view({int64_t(v.s.size()), 1});
  }
  at::Tensor as_mask(const Value& v) const {
    if (v.is_tensor) return v.t;
    std::vector<uint8_t> b(v.s.begin(), v.s.end());
    return at::tensor(at::ArrayRef<uint8_t>(b)).to(opts_.device(), at::kBool).view({int64_t(b.size()), 1});
  }
  Value tensor(at::Tensor t) const { return Value{true, {}, std::move(t)}; }

  Value eval(const Node& n) {
    const std::vector<Value>& vals = *cur_;
    const int64_t N = c_.members;
    switch (n.op) {
      case Op::Const: return Value{false, std::vector<double>(N, n.value), {}};
      case Op::Param: return Value{false, std::vector<double>(N, c_.params.at(n.index)), {}};
      case Op::Member: {
        std::vector<double> m(N);
        for (int64_t i = 0; i < N; ++i) m[i] = double(i);
        return Value{false, std::move(m), {}};
      }
      case Op::Members: return Value{false, std::vector<double>(N, double(N)), {}};
      case Op::MRand:
      case Op::MRandn: {
        const rng::Key key{c_.seed, c_.invocation, c_.group};
        std::vector<double> d(N);
        for (int64_t m = 0; m < N; ++m)
          d[m] = rng::member_draw(key, uint32_t(n.index), n.op == Op::MRandn, uint32_t(m));
        return Value{false, std::move(d), {}};
      }
      case Op::Input: {
        const at::Tensor& t = c_.in[n.index];
        switch (c_.kinds[n.index]) {
          case BindKind::Scalar: return Value{false, std::vector<double>(N, c_.scalar[n.index]), {}};
          case BindKind::MemberScalar: {
            at::Tensor d = t.to(at::kCPU, at::kDouble).contiguous();
            return Value{false, std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + N), {}};
          }
          case BindKind::Particle: return tensor(t.narrow(0, begin_, len_).unsqueeze(0));
          case BindKind::Swarm: return tensor(t.narrow(1, begin_, len_));
        }
        break;
      }
      case Op::Rand:
      case Op::Randn: return tensor(draws(n.op == Op::Randn, uint32_t(n.index)));
      case Op::MSum:
      case Op::MMin:
      case Op::MMax: return member_fold(n.op, vals[n.args[0]]);
      case Op::MRead: return member_read(n, vals[n.args[0]], vals[n.args[1]]);
      case Op::Rank:
      case Op::CRank: {
        std::vector<double> r(static_cast<size_t>(N));
        member_ranks(vals[n.args[0]].s.data(), N, n.op == Op::CRank, r.data());
        return Value{false, std::move(r), {}};
      }
      case Op::ArgMin:
      case Op::ArgMax:
        return Value{false, std::vector<double>(static_cast<size_t>(N),
                                                double(member_arg_best(vals[n.args[0]].s.data(), N, n.op == Op::ArgMax))), {}};
      case Op::Pick: {
        std::vector<double> r(static_cast<size_t>(N));
        for (int64_t m = 0; m < N; ++m) r[size_t(m)] = double(pick_member(c_.seed, c_.invocation, N, m, n.index));
        return Value{false, std::move(r), {}};
      }
      case Op::KRand:
      case Op::KRandn: return tensor(keyed_draws(n, vals[n.args[0]].s, vals[n.args[1]].s));
      case Op::Numel: return Value{false, std::vector<double>(size_t(N), double(len_)), {}};
      case Op::Elems: return Value{false, std::vector<double>(size_t(N), double(P_)), {}};
      case Op::Elem:  // the index among the P, an element value in the dtype (rounded once)
        return tensor(at::arange(first_, first_ + len_, at::TensorOptions().dtype(at::kLong))
                          .to(at::kDouble).to(opts_.device(), opts_.dtype()).unsqueeze(0));
      case Op::TSum:
      case Op::TMin:
      case Op::TMax: return Value{false, fold(n.op, vals[n.args[0]]), {}};
      case Op::TKth: {
        const at::Tensor keys = order_keys(elements(vals[n.args[0]]), false);
        return Value{false, kth(keys, vals[n.args[1]].s), {}};
      }
      default: break;
    }
    const Value* a[3] = {nullptr, nullptr, nullptr};
    bool any_tensor = false;
    for (int k = 0; k < ir::op_arity(n.op); ++k) {
      a[k] = &vals[n.args[k]];
      any_tensor = any_tensor || a[k]->is_tensor;
    }
    if (!any_tensor) {  // Scalar in double, per member, with the shared semantics of ir/Eval.h
      std::vector<double> r(N);
      for (int64_t m = 0; m < N; ++m) {
        if (ir::op_arity(n.op) == 1)
          r[m] = ir::eval_unary<double>(n.op, a[0]->s[m]);
        else if (ir::is_compare_op(n.op))
          r[m] = ir::eval_compare<double>(n.op, a[0]->s[m], a[1]->s[m]) ? 1.0 : 0.0;
        else if (n.op == Op::Select)
          r[m] = a[0]->s[m] != 0 ? a[1]->s[m] : a[2]->s[m];
        else
          r[m] = ir::eval_binary<double>(n.op, a[0]->s[m], a[1]->s[m]);
      }
      return Value{false, std::move(r), {}};
    }
    auto dt = opts_.dtype();
    if (n.op == Op::Select) return tensor(at::where(as_mask(*a[0]), as_tensor(*a[1], dt), as_tensor(*a[2], dt)));
    at::Tensor x = as_tensor(*a[0], dt);
    switch (n.op) {
      case Op::Neg: return tensor(at::neg(x));
      case Op::Abs: return tensor(at::abs(x));
      case Op::Sqrt: return tensor(at::sqrt(x));
      case Op::Exp: return tensor(at::exp(x));
      case Op::Log: return tensor(at::log(x));
      case Op::Sin: return tensor(at::sin(x));
      case Op::Cos: return tensor(at::cos(x));
      case Op::Tanh: return tensor(at::tanh(x));
      // 1 / (1 + exp(-x)), the IR's definition (ATen's sigmoid rounds differently).
      case Op::Sigmoid: return tensor(at::reciprocal(at::add(at::exp(at::neg(x)), 1)));
      case Op::Sign: return tensor(at::where(at::isnan(x), x, at::sign(x)));  // NaN stays NaN
      case Op::Floor: return tensor(at::floor(x));
      case Op::Ceil: return tensor(at::ceil(x));
      case Op::Acos: return tensor(at::acos(x));
      case Op::Asin: return tensor(at::asin(x));
      case Op::Atan: return tensor(at::atan(x));
      default: break;
    }
    at::Tensor y = as_tensor(*a[1], dt);
    switch (n.op) {
      case Op::Add: return tensor(at::add(x, y));
      case Op::Sub: return tensor(at::sub(x, y));
      case Op::Mul: return tensor(at::mul(x, y));
      case Op::Div: return tensor(at::div(x, y));
      case Op::Pow: return tensor(at::pow(x, y));
      case Op::Atan2: return tensor(at::atan2(x, y));
      case Op::Min: return tensor(minimum(x, y));
      case Op::Max: return tensor(maximum(x, y));
      case Op::Mod: {  // ir::floored_mod: fmod, + y where the signs differ, a zero takes y's sign
        at::Tensor r = at::fmod(x, y);
        at::Tensor fix = at::ne(r, 0).logical_and(at::ne(at::lt(r, 0), at::lt(y, 0)));
        r = at::where(fix, at::add(r, y), r);
        return tensor(at::where(at::eq(r, 0), at::copysign(at::zeros_like(r), y), r));
      }
      case Op::Lt: return tensor(at::lt(x, y));
      case Op::Le: return tensor(at::le(x, y));
      case Op::Gt: return tensor(at::gt(x, y));
      case Op::Ge: return tensor(at::ge(x, y));
      case Op::Eq: return tensor(at::eq(x, y));
      case Op::Ne: return tensor(at::ne(x, y));
      default: break;
    }
    ir::internal_error(std::string("aten backend: unhandled op ") + ir::op_name(n.op));
  }

  // A value as the current block's elements, [1 or members, len_] in the dtype.
  at::Tensor elements(const Value& v) const {
    at::Tensor t = as_tensor(v, opts_.dtype());
    return t.expand({t.size(0), len_});
  }

  // Per member, the value of row m of a [rows, ...] result with rows 1 or members, as doubles.
  std::vector<double> per_member(const at::Tensor& r) const {
    const at::Tensor d = r.to(at::kCPU, at::kDouble).contiguous();
    std::vector<double> v(size_t(c_.members));
    for (int64_t m = 0; m < c_.members; ++m) v[size_t(m)] = d.data_ptr<double>()[d.size(0) == 1 ? 0 : m];
    return v;
  }

  // The order-preserving integer key of each value's bits (a larger value, a larger key; -0 below
  // +0), in the signed integer type of the dtype's width; NaN the largest key, or the smallest
  // when nan_low (so a min or max over the keys propagates NaN). from_keys inverts it (the keys of
  // NaN give back NaN bits).
  static at::ScalarType key_type(int64_t element_size) {
    switch (element_size) {
      case 2: return at::kShort;
      case 4: return at::kInt;
      case 8: return at::kLong;
      default: ir::internal_error("aten backend: no integer key for a " + std::to_string(element_size) + "-byte dtype");
    }
  }
  static int64_t key_max(at::ScalarType k) {
    return k == at::kShort ? 32767 : k == at::kInt ? 2147483647 : std::numeric_limits<int64_t>::max();
  }
  static at::Tensor order_keys(const at::Tensor& x, bool nan_low) {
    const at::ScalarType kt = key_type(x.element_size());
    const int64_t mx = key_max(kt);
    const at::Tensor bits = x.view(kt);
    return at::where(bits.lt(0), bits.bitwise_xor(mx), bits).masked_fill(at::isnan(x), nan_low ? -mx - 1 : mx);
  }
  at::Tensor from_keys(const at::Tensor& keys) const {
    const int64_t mx = key_max(keys.scalar_type());
    return at::where(keys.lt(0), keys.bitwise_xor(mx), keys).view(opts_.dtype().toScalarType());
  }

  // tsum/tmin/tmax over the current block, per member: sums in float64 (at::sum's order, not the
  // blocked one of ir/IR.h; a sum of -0s is -0 as there), min/max the IEEE minimum/maximum by
  // their order-preserving keys (NaN propagates, -0 < +0). No element: the identity.
  std::vector<double> fold(Op op, const Value& a) const {
    const bool sum = op == Op::TSum || op == Op::PSum, mn = op == Op::TMin || op == Op::PMin;
    if (len_ == 0) return std::vector<double>(size_t(c_.members), sum ? -0.0 : mn ? INFINITY : -INFINITY);
    const at::Tensor x = elements(a);
    if (!sum) {
      const at::Tensor keys = order_keys(x, mn);
      return per_member(from_keys(mn ? keys.amin(1) : keys.amax(1)));
    }
    at::Tensor s = x.sum(1, false, at::kDouble);
    if (s.eq(0).any().item<bool>())  // only -0s add to -0 (IEEE round to nearest)
      s = at::where(order_keys(x, false).eq(-1).all(1), at::full_like(s, -0.0), s);
    return per_member(s);
  }

  // The k-th largest of `keys` ([rows, n] order keys) per member, k floored and clamped to [1, n]
  // (NaN: 1), exactly (a selection, counting repeated keys): at::kthvalue on the keys.
  std::vector<double> kth(const at::Tensor& keys, const std::vector<double>& k) const {
    const int64_t N = c_.members, n = keys.size(1), rows = keys.size(0);
    if (n == 0) return std::vector<double>(size_t(N), std::numeric_limits<double>::quiet_NaN());
    std::vector<int64_t> kk(static_cast<size_t>(N));  // k-th largest = (n - k + 1)-th smallest
    for (int64_t m = 0; m < N; ++m) {
      const double v = k[size_t(m)];
      kk[size_t(m)] = n + 1 - (std::isnan(v) ? 1 : int64_t(std::clamp(std::floor(v), 1.0, double(n))));
    }
    std::vector<double> r(static_cast<size_t>(N));
    if (std::all_of(kk.begin(), kk.end(), [&](int64_t x) { return x == kk[0]; }))
      return per_member(from_keys(std::get<0>(at::kthvalue(keys, kk[0], 1))));
    for (int64_t m = 0; m < N; ++m) {
      // Rows of one value for all members: one selection per distinct k.
      const int64_t row = rows == 1 ? 0 : m;
      bool done = false;
      if (rows == 1)
        for (int64_t j = 0; j < m && !done; ++j)
          if (kk[size_t(j)] == kk[size_t(m)]) r[size_t(m)] = r[size_t(j)], done = true;
      if (done) continue;
      const at::Tensor v = from_keys(std::get<0>(at::kthvalue(keys[row], kk[size_t(m)], 0)));
      r[size_t(m)] = v.to(at::kCPU, at::kDouble).item<double>();
    }
    return r;
  }

  // psum/pmin/pmax/pkth: over the blocks of every tensor (`vals` holds each block's values).
  // Sums: the tensors' float64 sums added in parameter order from -0; min/max folded (exact).
  Value particle_reduce(const Node& n, std::vector<std::vector<Value>>& vals) {
    const int64_t N = c_.members;
    const size_t T = seg_.size();
    if (n.op == Op::PKth) {
      std::vector<at::Tensor> keys;
      int64_t rows = 1;
      for (size_t t = 0; t < T; ++t) {
        enter(t, vals);
        keys.push_back(order_keys(elements((*cur_)[size_t(n.args[0])]), false));
        rows = std::max(rows, keys.back().size(0));
      }
      for (at::Tensor& k : keys) k = k.expand({rows, k.size(1)});
      return Value{false, kth(at::cat(keys, 1), vals[0][size_t(n.args[1])].s), {}};
    }
    const Op f = n.op == Op::PSum ? Op::Add : n.op == Op::PMin ? Op::Min : Op::Max;
    std::vector<double> acc(size_t(N), f == Op::Add ? -0.0 : f == Op::Min ? INFINITY : -INFINITY);
    for (size_t t = 0; t < T; ++t) {
      enter(t, vals);
      const std::vector<double> part = fold(n.op, (*cur_)[size_t(n.args[0])]);
      for (int64_t m = 0; m < N; ++m) acc[size_t(m)] = ir::eval_binary<double>(f, acc[size_t(m)], part[size_t(m)]);
    }
    return Value{false, std::move(acc), {}};
  }

  // Whether two tensors' storages overlap: is_alias_of compares storages, but tensors wrapped
  // around the same memory by separate from_blob calls (the Kernel ABI wrapper) have separate ones.
  static bool shares_memory(const at::Tensor& a, const at::Tensor& b) {
    if (a.is_alias_of(b)) return true;
    if (!a.has_storage() || !b.has_storage() || a.device() != b.device()) return false;
    auto* a0 = static_cast<const char*>(a.storage().data());
    auto* b0 = static_cast<const char*>(b.storage().data());
    return a0 && b0 && a0 < b0 + b.storage().nbytes() && b0 < a0 + a.storage().nbytes();
  }

  // IEEE 754-2019 minimum/maximum as ir/Eval.h: NaN wins, and -0 < +0 (at::minimum keeps
  // whichever zero comes first).
  static at::Tensor minimum(const at::Tensor& x, const at::Tensor& y) {
    return at::where(x < y, x, at::where(y < x, y, at::where(x == y, at::where(at::signbit(x), x, y), at::where(at::isnan(x), x, y))));
  }
  static at::Tensor maximum(const at::Tensor& x, const at::Tensor& y) {
    return at::where(x > y, x, at::where(y > x, y, at::where(x == y, at::where(at::signbit(x), y, x), at::where(at::isnan(x), x, y))));
  }

  // msum/mmin/mmax: folded left to right over members 0..M-1 (IR.h), one row at a time, so the
  // bits are those of the other backends (at::sum would choose its own order).
  Value member_fold(Op op, const Value& x) const {
    const int64_t N = c_.members;
    const Op f = op == Op::MSum ? Op::Add : op == Op::MMin ? Op::Min : Op::Max;
    if (!x.is_tensor) {
      double acc = x.s[0];
      for (int64_t m = 1; m < N; ++m) acc = ir::eval_binary<double>(f, acc, x.s[size_t(m)]);
      return Value{false, std::vector<double>(size_t(N), acc), {}};
    }
    auto row = [&](int64_t m) { return x.t.size(0) == 1 ? x.t[0] : x.t[m]; };
    at::Tensor acc = row(0).clone();
    for (int64_t m = 1; m < N; ++m)
      acc = f == Op::Add ? at::add(acc, row(m)) : f == Op::Min ? minimum(acc, row(m)) : maximum(acc, row(m));
    return tensor(acc.unsqueeze(0));
  }

  // x[i]: member i(m) of x for each member m; every index checked before anything is written
  // (all nodes of a range are evaluated before its outputs are stored, and the indices are the
  // same for every range).
  Value member_read(const Node& n, const Value& x, const Value& idx) const {
    const int64_t N = c_.members;
    std::vector<int64_t> rows(static_cast<size_t>(N));
    for (int64_t m = 0; m < N; ++m) {
      check_member_index(n, m, idx.s[size_t(m)], N);
      rows[size_t(m)] = int64_t(idx.s[size_t(m)]);
    }
    if (!x.is_tensor) {
      std::vector<double> r(static_cast<size_t>(N));
      for (int64_t m = 0; m < N; ++m) r[size_t(m)] = x.s[size_t(rows[size_t(m)])];
      return Value{false, std::move(r), {}};
    }
    if (x.t.size(0) == 1) return x;  // no member axis: every member holds the same value
    at::Tensor index = at::tensor(rows, at::kLong).to(x.t.device());
    return tensor(at::index_select(x.t, 0, index));
  }

  // rand(k, j) / randn(k, j) for this range (backend/Random.h's keyed layout), keys checked.
  at::Tensor keyed_draws(const Node& n, const std::vector<double>& k, const std::vector<double>& j) const {
    const rng::Key key{c_.seed, c_.invocation, c_.group};
    const bool f64 = opts_.dtype() == at::kDouble, normal = n.op == Op::KRandn;
    for (int w = 0; w < 2; ++w)
      for (int64_t m = 0; m < c_.members; ++m) check_key(n, w, m, (w == 0 ? k : j)[size_t(m)], c_.members);
    at::Tensor t = at::empty({c_.members, len_}, at::TensorOptions().dtype(f64 ? at::kDouble : at::kFloat));
    for (int64_t m = 0; m < c_.members; ++m)
      for (int64_t e = 0; e < len_; ++e) {
        const uint32_t kk = uint32_t(k[size_t(m)]), kj = uint32_t(j[size_t(m)]), el = uint64_t(begin_ + e);
        if (f64)
          t.data_ptr<double>()[m * len_ + e] = rng::keyed_f64(key, kk, kj, normal, el);
        else
          t.data_ptr<float>()[m * len_ + e] = rng::keyed_f32(key, kk, kj, normal, el);
      }
    return t.to(opts_.device(), opts_.dtype());
  }

  // The draws of backend/Random.h for this range, computed on the CPU in the group's dtype.
  at::Tensor draws(bool normal, uint32_t site) const {
    const rng::Key key{c_.seed, c_.invocation, c_.group};
    bool f64 = opts_.dtype() == at::kDouble;
    at::Tensor t = at::empty({c_.members, len_}, at::TensorOptions().dtype(f64 ? at::kDouble : at::kFloat));
    for (int64_t m = 0; m < c_.members; ++m)
      for (int64_t j = 0; j < len_; ++j) {
        const uint64_t el = uint64_t(begin_ + j);
        if (f64)
          t.data_ptr<double>()[m * len_ + j] = rng::draw_f64(key, site, normal, uint32_t(m), el);
        else
          t.data_ptr<float>()[m * len_ + j] = rng::draw_f32(key, site, normal, uint32_t(m), el);
      }
    return t.to(opts_.device(), opts_.dtype());
  }

  const ir::Graph& g_;
  const Call& c_;
  at::TensorOptions opts_;
  std::vector<Value> vals_;
  std::vector<Value>* cur_ = &vals_;  // the current block's node values
  int64_t begin_ = 0, len_ = 0;
  // Parameter-axis rules: the blocks (one per tensor), the current one's first element among the
  // P, and P.
  std::vector<Segment> seg_;
  int64_t first_ = 0, P_ = 0;
};

}  // namespace

void run(const ir::Graph& graph, const Call& call) {
  const size_t ni = graph.inputs.size();
  if (call.kinds.size() != ni || call.in.size() != ni || call.scalar.size() != ni ||
      call.params.size() != graph.params.size() || call.out.size() != graph.outputs.size() ||
      call.out.empty())
    ir::internal_error("aten backend: call does not match the graph");
  ir::Graph g = ir::specialize_inputs(graph, bind_types(call.kinds));
  if (call.members == 0) return;
  at::NoGradGuard no_grad;
  const bool values = std::find(call.values.begin(), call.values.end(), true) != call.values.end();
  if (ir::has_param_axis(g) || values) {
    // The element outputs' options: a value output is a float64 [members] tensor.
    size_t first = 0;
    while (first < call.values.size() && call.values[first]) ++first;
    at::TensorOptions opts = first < call.out.size() ? call.out[first].options() : call.out[0].options();
    if (first >= call.out.size()) {  // value outputs only: the dtype of a bound array input
      for (size_t i = 0; i < ni; ++i)
        if (call.kinds[i] == BindKind::Particle || call.kinds[i] == BindKind::Swarm) opts = call.in[i].options();
    }
    std::vector<std::pair<int64_t, int64_t>> tensors;
    for (auto [b, e] : call.tensors.empty() ? call.ranges : call.tensors)
      if (e > b) tensors.emplace_back(b, e);
    Evaluator ev(g, call, opts);
    ev.particle(std::move(tensors));
    return;
  }
  Evaluator ev(g, call, call.out[0].options());
  for (auto [b, e] : call.ranges)
    if (e > b) ev.range(b, e - b);
}

namespace {
class AtenKernel : public Kernel {
 public:
  AtenKernel(ir::Graph g, KernelSpec spec) : g_(std::move(g)), spec_(std::move(spec)) {
    const ir::Graph typed = ir::specialize_inputs(g_, bind_types(spec_.kinds));
    for (const ir::Output& o : typed.outputs) member_.push_back(typed.nodes[size_t(o.node)].type.member);
  }
  void run(const KernelArgs& a) const override {
    auto dt = spec_.dtype == DType::F64 ? at::kDouble : at::kFloat;
    int64_t P = 0;
    for (auto [b, e] : a.ranges) P = std::max(P, e);
    Call c;
    c.members = a.members;
    c.ranges = a.ranges;
    c.tensors = a.tensors;
    c.values = spec_.values;
    c.kinds = spec_.kinds;
    c.scalar = a.scalar;
    c.params = a.params;
    c.seed = a.seed;
    c.invocation = a.invocation;
    c.group = a.group;
    for (size_t i = 0; i < spec_.kinds.size(); ++i) {
      void* p = const_cast<void*>(a.in[i]);
      switch (spec_.kinds[i]) {
        case BindKind::Scalar: c.in.emplace_back(); break;
        case BindKind::MemberScalar: c.in.push_back(at::from_blob(p, {a.members}, at::kDouble)); break;
        case BindKind::Particle: c.in.push_back(at::from_blob(p, {P}, dt)); break;
        case BindKind::Swarm:
          c.in.push_back(at::from_blob(p, {a.members, P}, {std::max<int64_t>(a.in_stride[i], 1), 1}, dt));
          break;
      }
    }
    for (size_t o = 0; o < a.out.size(); ++o) {
      if (o < spec_.values.size() && spec_.values[o]) {  // one double per member, or one
        c.out.push_back(at::from_blob(a.out[o], {member_[o] ? a.members : 1}, at::kDouble));
        continue;
      }
      c.out.push_back(at::from_blob(a.out[o], {a.members, P}, {std::max<int64_t>(a.out_stride[o], 1), 1}, dt));
    }
    aten_backend::run(g_, c);
  }

 private:
  ir::Graph g_;
  KernelSpec spec_;
  std::vector<bool> member_;  // per output: varies per member
};
}  // namespace

std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec) {
  ir::verify(g);
  if (spec.kinds.size() != g.inputs.size()) ir::internal_error("aten backend: spec does not match the graph");
  if (spec.has_chunk_outputs()) ir::internal_error("aten backend: chunk outputs are llvm-only (KernelSpec::chunk)");
  return std::make_unique<AtenKernel>(g, spec);
}

}  // namespace nyto::aten_backend
