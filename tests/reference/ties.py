"""TIES-Merging in numpy, tensor by tensor: the reference of examples/rules/ties.nyto, and the
generalized task arithmetic that dare.py and breadcrumbs.py share.

Yadav, Tam, Choshen, Raffel, Bansal: "TIES-Merging: Resolving Interference When Merging Models",
NeurIPS 2023 (arXiv:2306.01708). Written from mergekit (github arcee-ai/mergekit at a6e4028):
- gta() is GTATask.execute of mergekit/merge_methods/generalized_task_arithmetic.py: task vectors
  delta = ft - base; each sparsified on its own (unweighted); deltas times their weights; with a
  consensus method, get_mask keeps the entries whose sign equals the majority sign (sum: the sign
  of the sum of the weighted deltas, a zero sum counting as +), mixed = sum of the masked weighted
  deltas, divisor = sum of the masked weights (0 -> 1); without one, mixed = sum of the weighted
  deltas, divisor = sum of the weights (|divisor| < 1e-8 -> 1); normalize divides mixed by the
  divisor; lambda scales it; result base + mixed.
- magnitude() is mergekit/sparsify.py's `magnitude` (method `ties`: no rescale) in nyto's terms:
  keep the entries with |delta| >= the k-th largest |delta| of the tensor, k = density * numel
  floored and clamped to [1, numel] (tkth of docs/language.md). mergekit keeps exactly
  k = int(density * numel) entries (torch.argsort order among equal magnitudes) and refuses k = 0;
  the two agree when k >= 1 and no two magnitudes tie at the threshold, which
  magnitude_mergekit() (mergekit's code, for the self-test) checks.
mergekit's defaults for `ties`: normalize = True, rescale = False, lambda = 1, consensus "sum".
All arithmetic in float64; tensors are lists of arrays (one per parameter tensor).
"""
import numpy as np


def kth_largest(a, k):
    """nyto's tkth(a, k) over one tensor: the k-th entry of the values in descending order, k
    floored and clamped to [1, n] (a NaN k counts as 1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    k = 1 if np.isnan(k) else int(min(max(np.floor(k), 1), a.size))
    return np.sort(a)[::-1][k - 1]


def magnitude(delta, density):
    """TIES trimming with nyto's threshold semantics (see the module docstring)."""
    a = np.abs(delta)
    return np.where(a >= kth_largest(a, density * a.size), delta, 0.0)


def magnitude_mergekit(delta, density):
    """mergekit/sparsify.py magnitude(), rescale_norm None, as written there (for the self-test)."""
    if density >= 1:
        return delta
    k = int(density * delta.size)
    assert k > 0, "not gonna zero out the whole tensor buddy"
    mask = np.zeros_like(delta)
    w = np.abs(delta).reshape(-1)
    topk = np.argsort(-w, kind="stable")[:k]
    mask.reshape(-1)[topk] = 1
    return delta * mask


def get_mask(weighted, method="sum"):
    """mergekit's get_mask: weighted (models, ...) -> bool mask of the entries that agree with
    the majority sign."""
    sign = np.sign(weighted)
    if method == "sum":
        majority = (weighted.sum(axis=0) >= 0).astype(np.float64) * 2 - 1
    elif method == "count":
        majority = (sign.sum(axis=0) >= 0).astype(np.float64) * 2 - 1
    else:
        raise ValueError(method)
    return sign == majority


def gta(base, fts, weights, sparsify=None, consensus=None, normalize=False, lambda_=1.0):
    """GTATask.execute for every tensor. base: list of arrays; fts: list (models) of lists of
    arrays; weights: (models,); sparsify(delta, model index, tensor index) -> sparsified delta, or
    None. Returns the merged list of arrays."""
    out = []
    w = np.asarray(weights, dtype=np.float64)
    for t, b in enumerate(base):
        b = np.asarray(b, dtype=np.float64)
        deltas = []
        for m, ft in enumerate(fts):
            delta = np.asarray(ft[t], dtype=np.float64) - b
            if sparsify is not None:
                delta = sparsify(delta, m, t)
            deltas.append(delta)
        deltas = np.stack(deltas)
        wt = w.reshape((-1,) + (1,) * b.ndim)
        weighted = deltas * wt
        if consensus:
            mask = get_mask(weighted, consensus).astype(np.float64)
            mixed = (weighted * mask).sum(axis=0)
            divisor = (wt * mask).sum(axis=0)
            divisor[divisor == 0] = 1
        else:
            mixed = weighted.sum(axis=0)
            divisor = np.broadcast_to(wt.sum(axis=0), b.shape).copy()
            divisor[np.abs(divisor) < 1e-8] = 1
        if normalize:
            mixed = mixed / divisor
        if lambda_ != 1:
            mixed = mixed * lambda_
        out.append(b + mixed)
    return out


def ties(base, fts, weights, density=0.2, normalize=True, lambda_=1.0):
    """mergekit's `ties` with nyto's trimming."""
    return gta(base, fts, weights, sparsify=lambda d, m, t: magnitude(d, density),
               consensus="sum", normalize=normalize, lambda_=lambda_)


def selftest(check):
    rng = np.random.default_rng(11)
    # nyto's kth: ties with multiplicity, k clamped, NaN k -> 1.
    a = np.array([3.0, 1.0, 3.0, 2.0])
    check([kth_largest(a, k) for k in (0, 1, 2, 3, 4, 9, np.nan, 2.7)] ==
          [3.0, 3.0, 3.0, 2.0, 1.0, 1.0, 3.0, 3.0], "ties: kth_largest counts ties, clamps k")
    # Without ties and with k >= 1, nyto's trimming is mergekit's.
    d = rng.normal(size=(6, 9))
    check(all(np.array_equal(magnitude(d, q), magnitude_mergekit(d, q)) for q in (0.02, 0.2, 0.5, 1.0, 1.5)),
          "ties: trimming = mergekit's magnitude() when k >= 1 and magnitudes are distinct")
    # Ties: every magnitude equal to the threshold is kept; k = 0 keeps the largest.
    d = np.array([0.5, -0.5, 0.25, 0.5, -1.0, 0.0])
    check(np.array_equal(magnitude(d, 0.5), [0.5, -0.5, 0, 0.5, -1.0, 0]),
          "ties: trimming keeps all magnitudes tied at the threshold")
    check(np.array_equal(magnitude(d, 0.1), [0, 0, 0, 0, -1.0, 0]), "ties: k = 0 keeps the largest")
    # The whole merge against a loop over entries (TIES paper, Algorithm 1 with weights).
    base = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    fts = [[b + rng.normal(size=b.shape) for b in base] for _ in range(3)]
    w = np.array([0.5, 1.0, 0.75])
    got = ties(base, fts, w, density=0.5)
    ok = True
    for t, b in enumerate(base):
        trimmed = [magnitude(ft[t] - b, 0.5) for ft in fts]
        for i in np.ndindex(b.shape):
            vals = [w[m] * trimmed[m][i] for m in range(3)]
            s = 1.0 if sum(vals) >= 0 else -1.0
            num = sum(v for v in vals if np.sign(v) == s)
            den = sum(w[m] for m in range(3) if np.sign(vals[m]) == s) or 1.0
            ok &= np.isclose(got[t][i], b[i] + num / den)
    check(ok, "ties: merge = loop form of trim, elect (zero sum is +), disjoint weighted mean")
    # One model, density 1: base + delta (normalize divides w * delta by w).
    one = ties(base, fts[:1], [2.0], density=1.0)
    check(all(np.allclose(o, f) for o, f in zip(one, fts[0])), "ties: one model, density 1 = that model")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
