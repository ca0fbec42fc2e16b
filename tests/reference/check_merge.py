#!/usr/bin/python3
"""Checks the parameter-axis example rules against their numpy references: the merges
examples/rules/{ties,dare,dare_ties,slerp,model_stock,breadcrumbs}.nyto and one generation of
examples/rules/{sep_cma_es,pgpe}.nyto, each run by `nyto run` and compared with tests/reference/
<rule>.py (dare_ties: dare.py) fed with the draws nyto_random.py regenerates.

usage: check_merge.py NYTO_BINARY [--quick]

1. Self-tests (numpy only) of the references: each against mergekit's / cmaes's / EvoTorch's
   code paths where nyto's semantics agree with them, and against loop forms.
2. Against nyto (reusing check_rules.py's Files, run and compare): the model is float32 with
   five parameter tensors of different sizes, a vector of 3, a Linear(7, 5) and a Linear(20, 50)
   (3 + 35 + 5 + 1000 + 50 = 1093 elements, one storage group), so per-tensor reductions and
   thresholds (tsum, tkth, numel) are seen on tensors from 3 to 1000 entries. Cases:
   - ties: task vectors on a coarse grid (magnitudes tie at the trimming threshold, the weighted
     sum of an election is exactly 0); density 0.02 (k = density * numel < 1 on three tensors:
     tkth takes k = 1), density 1.5 (k > numel: everything kept), normalize off and lambda;
   - dare / dare_ties: rand() masks regenerated from nyto's stream, tensors dropped entirely
     (no rescale) and a tensor whose task vector's L1 norm is below 1e-7 (no rescale); normalize;
   - breadcrumbs: mergekit's default gamma with tensors of fewer than 100 entries (top = 0),
     ties at both cuts, and the n_bot < 0 case (top shrinks to numel - keep);
   - slerp: per tensor, near-colinear and near-anti-colinear pairs (the lerp branch), a zero
     tensor (not normalized), generic pairs; particles, and swarms of pairs;
   - model_stock: N = 3 and N = 2 fine-tuned models, an offset that is 0 on one tensor;
   - sep_cma_es: generation 0 (h_sigma = 1), a later one with long paths (h_sigma = 0), a
     negative diagonal entry, tied fitness (stable order), M = 8 and M = 10, and a p_sigma for
     which SepCMA's h_sigma exponent 2 (g + 2) passes the test where 2 (g + 1) would not; sigma
     is a value output;
   - pgpe: zero velocity (no clipping) and a fast one (ClipUp clips), tied fitness.
   Every input is exactly representable in float32 and chosen so that no comparison the rules
   make (trimming thresholds, elected signs, rand() < density, |dot| > 0.9995, the h_sigma
   test, ClipUp's clip) is within rounding of flipping; the checker asserts these margins.
Tolerance (check_rules.py's): per output, |nyto - reference| <= 1e-6 * scale + 1e-5 * |reference|,
scale = the output's largest |reference|; sigma (sep_cma_es) likewise.
Backends: llvm, interp and aten; --quick (sanitizer builds): llvm and interp.
Exits 77 (CTest's SKIP_RETURN_CODE) when numpy or torch is missing, 1 when a check fails.
"""
import os
import sys

try:
    import numpy as np
    import torch
except Exception as e:  # ImportError, or a broken installation
    print(f"SKIP: the merge checks need numpy and Python's torch (Debian: python3-numpy, "
          f"python3-torch): {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import breadcrumbs  # noqa: E402
import dare  # noqa: E402
import model_stock  # noqa: E402
import pgpe  # noqa: E402
import sep_cma_es  # noqa: E402
import slerp  # noqa: E402
import ties  # noqa: E402
from check_random import check, command_line, layout  # noqa: E402
from check_rules import F1, F2, Case, Files, check_all  # noqa: E402


class MergeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.zeros(3))
        self.lin1 = torch.nn.Linear(7, 5)
        self.lin2 = torch.nn.Linear(20, 50)

    def forward(self, x):
        return self.lin2(torch.cat([self.lin1(x), x, x, x[:, :1]], 1)) * self.s.sum()


LAYOUT = layout(MergeNet())
# (offset, shape) of every tensor in storage order
TENSORS = sorted((off, tuple(p.shape)) for name, p in MergeNet().named_parameters()
                 for off in [LAYOUT[name][1]])
P = sum(int(np.prod(s)) for _, s in TENSORS)
ELEMENTS = np.arange(P)
assert all(g == 0 and dt == np.float32 for g, _, dt in LAYOUT.values())
SIZES = [int(np.prod(s)) for _, s in TENSORS]  # [3, 35, 5, 1000, 50] in storage order


def split(flat):
    """Flat storage (P,) -> list of float64 tensors in storage order."""
    return [np.asarray(flat[off:off + int(np.prod(s))], np.float64).reshape(s) for off, s in TENSORS]


def join(ts):
    return np.concatenate([np.asarray(t, np.float64).reshape(-1) for t in ts])


def grid(x, step):
    """x rounded to multiples of step (inputs exact in float32 and under subtraction)."""
    return (np.round(np.asarray(x) / step) * step).astype(np.float32)


def tensor_of(e):
    """Index of the tensor holding flat element e."""
    return int(np.searchsorted([off for off, _ in TENSORS], e, side="right") - 1)


# ------------------------------------------------------------------ cases

def merge_inputs(rng, M, step, scale, models_scale=1.0):
    """base on a 2^-8 grid; fine-tuned = base + a task vector on the `step` grid."""
    base = grid(rng.normal(size=P), 2.0**-8)
    ft = np.stack([base + grid(models_scale * scale * rng.normal(size=P), step) for _ in range(M)])
    return base, ft.astype(np.float32)


def as_lists(base, ft):
    return split(base), [split(row) for row in ft]


def ties_cases(rng):
    out = []
    w = np.array([1.0, 0.5, 0.75, 1.25])
    # Case 1: task vectors in {-3..3} / 64: magnitudes tie everywhere, elections sum to 0.
    base = grid(rng.normal(size=P), 2.0**-8)
    ft = np.stack([base + rng.integers(-3, 4, P) / 64.0 for _ in range(4)]).astype(np.float32)
    b, fs = as_lists(base, ft)
    tied = zero_sum = 0
    for t in range(len(b)):
        d = np.abs(fs[0][t] - b[t])
        thr = ties.kth_largest(d, 0.2 * d.size)
        tied += int((d == thr).sum() > 1 and (d >= thr).sum() > np.floor(0.2 * d.size))
        tau = np.stack([w[m] * ties.magnitude(fs[m][t] - b[t], 0.2) for m in range(4)])
        zero_sum += int(np.sum((tau.sum(0) == 0) & (np.abs(tau).sum(0) > 0)))
    check(tied >= 3 and zero_sum > 0, f"ties case 1: magnitudes tied at the threshold in {tied} "
          f"tensors, {zero_sum} elections between nonzero votes summing to exactly 0")
    c = Case("ties", "case 1 (ties, zero-sum elections), density 0.2", 1,
             particles={"base": base}, swarms={"ft": ft}, vectors={"w": w})
    c.want = {"merged": ("particle", join(ties.ties(b, fs, w, density=0.2)))}
    out.append(c)
    # Case 2: density 0.02: k = 0.06, 0.7, 0.1 on the vector of 3, lin1.weight, lin1.bias.
    base, ft = merge_inputs(rng, 4, 2.0**-12, 0.1)
    b, fs = as_lists(base, ft)
    check(sorted(np.floor(0.02 * np.array(SIZES))) == [0, 0, 0, 1, 20],
          "ties case 2: density 0.02 gives k = 0 on three tensors, 1 and 20 on the others")
    c = Case("ties", "case 2, density 0.02 (k < 1)", 2, particles={"base": base},
             swarms={"ft": ft}, vectors={"w": w}, scalars={"density": 0.02})
    c.vector_files = True
    c.want = {"merged": ("particle", join(ties.ties(b, fs, w, density=0.02)))}
    out.append(c)
    # Case 3: density 1.5 (k > numel), normalize off, lambda 0.5, three models.
    base, ft = merge_inputs(rng, 3, 2.0**-12, 0.1)
    b, fs = as_lists(base, ft)
    w3 = np.array([0.25, 1.0, 0.5])
    c = Case("ties", "case 3, density 1.5 (k > numel), normalize 0, lambda 0.5", 3,
             particles={"base": base}, swarms={"ft": ft}, vectors={"w": w3},
             scalars={"density": 1.5, "normalize": 0, "lambda": 0.5})
    c.want = {"merged": ("particle", join(ties.ties(b, fs, w3, density=1.5, normalize=False,
                                                    lambda_=0.5)))}
    out.append(c)
    return out


def dare_cases(rng):
    out = []
    M = 4
    w = np.array([0.5, 1.0, 0.75, 0.25])
    for n, (rule, seed, density, normalize) in enumerate(
            [("dare", 0x5EED0123456789AB, 0.3, 0), ("dare", 7, 0.5, 1),
             ("dare_ties", 0xDA2E, 0.3, 0), ("dare_ties", 8, 0.5, 1)]):
        base, ft = merge_inputs(rng, M, 2.0**-12, 0.1)
        # model 1's task vector on the vector of 3 is tiny: L1 norm below 1e-7, no rescale
        off, s = TENSORS[0]
        base[off:off + 3] = 0
        ft[:, off:off + 3] = grid(rng.normal(size=(M, 3)), 2.0**-8)
        ft[1, off:off + 3] = np.array([1e-9, -2e-9, 5e-10], np.float32)
        u = dare.rule_draws(seed, M, ELEMENTS, np.float32)
        between = (u >= min(density, np.float32(density))) & (u < max(density, np.float32(density)))
        check(not between.any(), f"{rule}: no rand() draw between {density} and float32({density})")
        uu = [split(row) for row in u]
        b, fs = as_lists(base, ft)
        dropped = sum(int(not (uu[m][t] < np.float32(density)).any()) for m in range(M)
                      for t in range(len(b)))
        if n == 0:
            check(dropped > 0, f"{rule}: {dropped} tensor(s) of a model dropped entirely (no rescale)")
        fn = dare.dare if rule == "dare" else dare.dare_ties
        c = Case(rule, f"case {n % 2 + 1}, density {density}, normalize {normalize}", seed,
                 particles={"base": base}, swarms={"ft": ft}, vectors={"w": w},
                 scalars={"density": density, "normalize": normalize})
        c.want = {"merged": ("particle", join(fn(b, fs, w, uu, density=density,
                                                 normalize=bool(normalize))))}
        out.append(c)
    return out


def breadcrumbs_cases(rng):
    out = []
    w = np.array([1.0, 0.5, 0.75])
    for n, (density, gamma) in enumerate([(0.9, 0.01), (0.5, 0.1), (0.95, 0.1)]):
        base = grid(rng.normal(size=P), 2.0**-8)
        # coarse grid: ties at the cuts
        ft = np.stack([base + rng.integers(-40, 41, P) / 256.0 for _ in range(3)]).astype(np.float32)
        b, fs = as_lists(base, ft)
        tops = [max(0, min(int(gamma * k), k - int(density * k))) for k in SIZES]
        c = Case("breadcrumbs", f"case {n + 1}, density {density}, gamma {gamma} (top = {tops})",
                 n + 1, particles={"base": base}, swarms={"ft": ft}, vectors={"w": w},
                 scalars={"density": density, "gamma": gamma} if n else {})
        c.want = {"merged": ("particle", join(breadcrumbs.breadcrumbs(b, fs, w, density, gamma)))}
        out.append(c)
        if n == 0:
            check(0 in tops and max(tops) > 0, "breadcrumbs case 1: tensors with top = 0 and top > 0")
        if n == 2:
            check(any(int(gamma * k) > k - int(density * k) for k in SIZES),
                  "breadcrumbs case 3: n_bot < 0 on some tensor (top = numel - keep)")
    return out


def slerp_pair(rng, kinds):
    """a, b (flat) with tensor t of kind kinds[t]: zero, colinear, anti, generic, near (slerp)."""
    a, b = [], []
    for (off, s), kind in zip(TENSORS, kinds):
        x = rng.normal(size=s)
        y = rng.normal(size=s)
        if kind == "zero":
            x = np.zeros(s)
        elif kind == "colinear":
            y = 2 * x + 0.01 * y
        elif kind == "anti":
            y = -x + 0.01 * y
        elif kind == "near":
            y = x + 0.5 * y
        a.append(x)
        b.append(y)
    return grid(join(a), 2.0**-12), grid(join(b), 2.0**-12)


def slerp_cases(rng):
    out = []
    kinds = ["zero", "colinear", "anti", "generic", "near"]
    a, b = slerp_pair(rng, kinds)
    branches = []
    margin = np.inf
    for x, y in zip(split(a), split(b)):
        d = slerp.dot(x, y)
        branches.append(abs(d) > 0.9995)
        margin = min(margin, abs(abs(d) - 0.9995))
    check(branches == [False, True, True, False, False] and margin > 1e-5,
          f"slerp case 1: lerp branch on the colinear tensors only (|dot| margin {margin:.2g})")
    c = Case("slerp", "case 1, particles, t 0.3", 1, particles={"a": a, "b": b}, scalars={"t": 0.3})
    c.want = {"merged": ("particle", join(slerp.slerp(split(a), split(b), 0.3)))}
    out.append(c)
    rows = [slerp_pair(rng, k) for k in (["generic"] * 5, ["colinear", "generic", "near", "anti", "zero"],
                                         ["near", "anti", "colinear", "colinear", "generic"])]
    A = np.stack([r[0] for r in rows])
    B = np.stack([r[1] for r in rows])
    margin = min(abs(abs(slerp.dot(x, y)) - 0.9995) for r in rows
                 for x, y in zip(split(r[0]), split(r[1])))
    check(margin > 1e-5, f"slerp case 2: |dot| margin {margin:.2g} from 0.9995")
    c = Case("slerp", "case 2, swarms of 3 pairs, default t", 2, swarms={"a": A, "b": B})
    c.want = {"merged": ("swarm", np.stack([join(slerp.slerp(split(x), split(y), 0.5))
                                            for x, y in zip(A, B)]))}
    out.append(c)
    return out


def model_stock_cases(rng):
    out = []
    base = grid(rng.normal(size=P), 2.0**-8)
    common = rng.normal(size=P)
    ft = np.stack([grid(base + 0.1 * (common + rng.normal(size=P)), 2.0**-12) for _ in range(3)])
    c = Case("model_stock", "case 1, N = 3 correlated offsets", 1, particles={"base": base},
             swarms={"ft": ft})
    c.want = {"merged": ("particle", join(model_stock.model_stock(*as_lists(base, ft))))}
    out.append(c)
    base = grid(rng.normal(size=P), 2.0**-8)
    ft = np.stack([grid(base + 0.05 * rng.normal(size=P) + 0.05 * common, 2.0**-12) for _ in range(2)])
    off, s = TENSORS[2]  # lin1.bias: model 0's offset is 0
    ft[0, off:off + 5] = base[off:off + 5]
    c = Case("model_stock", "case 2, N = 2, a zero offset on one tensor", 2,
             particles={"base": base}, swarms={"ft": ft})
    c.want = {"merged": ("particle", join(model_stock.model_stock(*as_lists(base, ft))))}
    out.append(c)
    return out


F10 = np.array([1.5, -0.5, 2.0, -0.5, 3.25, 0.0, 4.0, 2.0, -1.0, 0.75])  # ties: 1 & 3, 2 & 7


def h_sigma_ratio(ps1, g, M, exponent_g=None):
    """SepCMA's h_sigma test, left / right (h_sigma = 1 below 1); exponent_g replaces g + 2."""
    k = sep_cma_es.constants(P, M)
    e = 2 * (g + 2 if exponent_g is None else exponent_g)
    left = np.linalg.norm(ps1) / np.sqrt(1 - (1 - k["c_sigma"]) ** e)
    return left / ((1.4 + 2 / (P + 1)) * k["chi_n"])


def sep_cma_es_cases(rng):
    out = []
    # Case 3: g = 0 with p_sigma scaled so that the test passes with SepCMA's exponent
    # 2 (g + 2) and would fail with 2 (g + 1): it tells the two apart.
    for n, (f, g) in enumerate([(F1, 0), (F10, 4), (F2, 0)]):
        M = len(f)
        mean = grid(rng.normal(size=P), 2.0**-10)
        direction = rng.normal(size=P)
        if n == 1:
            sigma = 0.05
            C = grid(rng.uniform(0.5, 2.0, P), 2.0**-12)
            C[[5, 700]] = -0.25  # a negative diagonal entry: D uses 1e-8 there
            pc = grid(rng.normal(size=P), 2.0**-12)
        else:
            sigma, C, pc = 0.3, np.ones(P, np.float32), np.zeros(P, np.float32)
        z = rng.normal(size=(M, P))
        x = grid(mean + sigma * np.sqrt(np.maximum(C, 1e-8)) * z, 2.0**-14)
        d = sep_cma_es.rule_draws(7 + n, g, M, ELEMENTS, np.float32)

        def state(alpha):
            ps = grid(alpha * direction, 2.0**-12)
            return ps, sep_cma_es.step(mean, sigma, C, ps, pc, x, f, g, d["z_next"])

        if n == 0:
            alpha = 0.0
        elif n == 1:
            alpha = 3.0
        else:  # bisect for a test ratio of 0.85
            lo, hi = 0.0, 10.0
            for _ in range(50):
                alpha = (lo + hi) / 2
                lo, hi = (alpha, hi) if h_sigma_ratio(state(alpha)[1][3], g, M) < 0.85 else (lo, alpha)
        ps, (mean1, sigma1, C1, ps1, pc1, x1, h) = state(alpha)
        ratio = h_sigma_ratio(ps1, g, M)
        check(h == (0.0 if n == 1 else 1.0) and abs(ratio - 1) > 1e-3,
              f"sep_cma_es case {n + 1}: h_sigma = {h:g} (test ratio {ratio:.3g})")
        if n == 2:
            wrong = h_sigma_ratio(ps1, g, M, exponent_g=g + 1)
            check(wrong > 1.05, f"sep_cma_es case 3: with the exponent 2 (g + 1) the ratio would be "
                  f"{wrong:.3g} (h_sigma 0): the case tells the exponents apart")
        c = Case("sep_cma_es", f"case {n + 1}, M = {M}, g = {g}, h_sigma = {h:g}", 7 + n,
                 particles={"mean": mean, "C": C, "p_sigma": ps, "p_c": pc}, swarms={"x": x},
                 vectors={"f": f}, scalars={"sigma": sigma, "g": g})
        c.vector_files = n == 1
        c.want = {"mean": ("particle", mean1), "sigma": ("value", np.array([sigma1])),
                  "C": ("particle", C1), "p_sigma": ("particle", ps1), "p_c": ("particle", pc1),
                  "x": ("swarm", x1)}
        out.append(c)
    return out


def pgpe_cases(rng):
    out = []
    for n, (f, g) in enumerate([(F1, 3), (F2, 7)]):
        seed = 0x9E9E + n
        mu = grid(rng.normal(size=P), 2.0**-10)
        sigma = grid(rng.uniform(0.05, 0.3, P), 2.0**-12)
        velocity = np.zeros(P, np.float32) if n == 0 else grid(0.01 * rng.normal(size=P), 2.0**-16)
        kw = {} if n == 0 else {"stepsize": 0.01, "max_speed": 0.05}
        d = pgpe.rule_draws(seed, g, len(f), ELEMENTS, np.float32)
        mu1, sigma1, v1, x1, clipped = pgpe.step(mu, sigma, velocity, f, d["z"], d["z_next"], **kw)
        check(clipped == (n == 1), f"pgpe case {n + 1}: ClipUp {'clips' if clipped else 'does not clip'}")
        c = Case("pgpe", f"case {n + 1}, g = {g}, {'clipped' if clipped else 'not clipped'}", seed,
                 particles={"mu": mu, "sigma": sigma, "velocity": velocity}, vectors={"f": f},
                 scalars={"g": g, **kw})
        c.want = {"mu": ("particle", mu1), "sigma": ("particle", sigma1),
                  "velocity": ("particle", v1), "x": ("swarm", x1)}
        out.append(c)
    return out


def cases():
    rng = np.random.default_rng(1093)
    return (ties_cases(rng) + dare_cases(rng) + breadcrumbs_cases(rng) + slerp_cases(rng)
            + model_stock_cases(rng) + sep_cma_es_cases(rng) + pgpe_cases(rng))


# ------------------------------------------------------------------ main

def selftests():
    for mod in (ties, dare, breadcrumbs, slerp, model_stock, sep_cma_es, pgpe):
        mod.selftest(check)


def main():
    nyto, quick = command_line(__doc__)
    selftests()
    torch.manual_seed(0)
    check_all(nyto, quick, Files(MergeNet()), cases(), "all merge and parameter-axis rule checks passed")


if __name__ == "__main__":
    main()
