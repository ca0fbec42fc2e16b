#include "backend/aten/AtenBackend.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "backend/Prelude.h"
#include "backend/Random.h"
#include "ir/Error.h"
#include "ir/Eval.h"
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
    for (size_t i = 0; i < g_.nodes.size(); ++i) vals_[i] = eval(g_.nodes[i]);
    // Every result is read before the first write: a result that is an input as it is (a view
    // of its storage, as v in `t = x; x = v; v = t`) is copied when that storage is an output,
    // or writing one output would change another's value (the fused kernels go element by
    // element, so they read every input of an element before storing it).
    std::vector<at::Tensor> src(g_.outputs.size());
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      src[o] = as_tensor(vals_[g_.outputs[o].node], opts_.dtype());
      for (const at::Tensor& out : c_.out)
        if (shares_memory(src[o], out)) {
          src[o] = src[o].clone(at::MemoryFormat::Contiguous);
          break;
        }
    }
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
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

 private:
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
      case Op::MMax: return member_fold(n.op, vals_[n.args[0]]);
      case Op::MRead: return member_read(n, vals_[n.args[0]], vals_[n.args[1]]);
      case Op::Rank:
      case Op::CRank: {
        std::vector<double> r(static_cast<size_t>(N));
        member_ranks(vals_[n.args[0]].s.data(), N, n.op == Op::CRank, r.data());
        return Value{false, std::move(r), {}};
      }
      case Op::ArgMin:
      case Op::ArgMax:
        return Value{false, std::vector<double>(static_cast<size_t>(N),
                                                double(member_arg_best(vals_[n.args[0]].s.data(), N, n.op == Op::ArgMax))), {}};
      case Op::Pick: {
        std::vector<double> r(static_cast<size_t>(N));
        for (int64_t m = 0; m < N; ++m) r[size_t(m)] = double(pick_member(c_.seed, c_.invocation, N, m, n.index));
        return Value{false, std::move(r), {}};
      }
      case Op::KRand:
      case Op::KRandn: return tensor(keyed_draws(n, vals_[n.args[0]].s, vals_[n.args[1]].s));
      default: break;
    }
    const Value* a[3] = {nullptr, nullptr, nullptr};
    bool any_tensor = false;
    for (int k = 0; k < ir::op_arity(n.op); ++k) {
      a[k] = &vals_[n.args[k]];
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
        const uint32_t kk = uint32_t(k[size_t(m)]), kj = uint32_t(j[size_t(m)]), el = uint32_t(begin_ + e);
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
        const uint32_t el = uint32_t(begin_ + j);
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
  int64_t begin_ = 0, len_ = 0;
};

}  // namespace

void run(const ir::Graph& graph, const Call& call) {
  const size_t ni = graph.inputs.size();
  if (call.kinds.size() != ni || call.in.size() != ni || call.scalar.size() != ni ||
      call.params.size() != graph.params.size() || call.out.size() != graph.outputs.size() ||
      call.out.empty())
    ir::internal_error("aten backend: call does not match the graph");
  std::vector<ir::Type> types;
  for (BindKind k : call.kinds)
    types.push_back(bind_type(k));
  ir::Graph g = ir::specialize_inputs(graph, types);
  if (call.members == 0) return;
  at::NoGradGuard no_grad;
  Evaluator ev(g, call, call.out[0].options());
  for (auto [b, e] : call.ranges)
    if (e > b) ev.range(b, e - b);
}

namespace {
class AtenKernel : public Kernel {
 public:
  AtenKernel(ir::Graph g, KernelSpec spec) : g_(std::move(g)), spec_(std::move(spec)) {}
  void run(const KernelArgs& a) const override {
    auto dt = spec_.dtype == DType::F64 ? at::kDouble : at::kFloat;
    int64_t P = 0;
    for (auto [b, e] : a.ranges) P = std::max(P, e);
    Call c;
    c.members = a.members;
    c.ranges = a.ranges;
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
    for (size_t o = 0; o < a.out.size(); ++o)
      c.out.push_back(at::from_blob(a.out[o], {a.members, P}, {std::max<int64_t>(a.out_stride[o], 1), 1}, dt));
    aten_backend::run(g_, c);
  }

 private:
  ir::Graph g_;
  KernelSpec spec_;
};
}  // namespace

std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec) {
  ir::verify(g);
  if (spec.kinds.size() != g.inputs.size()) ir::internal_error("aten backend: spec does not match the graph");
  return std::make_unique<AtenKernel>(g, spec);
}

}  // namespace nyto::aten_backend
