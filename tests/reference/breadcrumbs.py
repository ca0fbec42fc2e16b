"""Model Breadcrumbs in numpy, tensor by tensor: the reference of examples/rules/breadcrumbs.nyto.

Davari, Belilovsky: "Model Breadcrumbs: Scaling Multi-Task Model Merging with Sparse Masks",
ECCV 2024 (arXiv:2312.06795). Written from mergekit (github arcee-ai/mergekit at a6e4028),
method `breadcrumbs`: mergekit/sparsify.py magnitude_outliers() (no rescale) and the generalized
task arithmetic of ties.gta() without consensus; defaults normalize = False, lambda = 1,
gamma = 0.01 (density: mergekit's default is 1; 0.9 is its documentation's example).
magnitude_outliers: n = numel, target_n = int(density n), n_top = int(gamma n),
n_bot = n - target_n - n_top (if negative: n_top += n_bot, n_bot = 0); keep the entries at
positions [n_bot, n - n_top) of the ascending sort of |delta|, i.e. ranks (n_top, n_top + target_n]
counted from the largest; density >= 1 returns the tensor.
Where nyto's rule must differ (docs/language.md tkth semantics), outliers() follows the rule:
- ties: every entry with tkth(|delta|, n_top + target_n) <= |delta| < tkth(|delta|, n_top) is
  kept, so equal magnitudes across a cut go together (mergekit: torch.sort order decides);
- n_top = 0: no entry is dropped from the top. mergekit's slice indices[n_bot:-n_top] is then
  indices[n_bot:0], empty, and it zeroes the tensor's whole task vector (a tensor of fewer than
  1 / gamma entries). outliers_mergekit() is mergekit's code, slice included, for the self-test.
"""
import numpy as np

from ties import gta, kth_largest


def outliers(delta, density, gamma=0.01):
    """magnitude_outliers with nyto's threshold semantics (see the module docstring)."""
    n = delta.size
    keep = np.floor(density * n)
    top = max(0.0, min(np.floor(gamma * n), n - keep))
    a = np.abs(delta)
    below_top = np.ones(a.shape, bool) if top < 1 else a < kth_largest(a, top)
    above_bottom = np.zeros(a.shape, bool) if top + keep < 1 else a >= kth_largest(a, top + keep)
    return np.where(below_top & above_bottom, delta, 0.0)


def outliers_mergekit(tensor, density, gamma=0.01):
    """mergekit/sparsify.py magnitude_outliers(), rescale_norm None, as written there."""
    if density >= 1:
        return tensor
    num_elems = tensor.size
    target_n = int(density * num_elems)
    n_top = int(gamma * num_elems)
    n_bot = num_elems - target_n - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    w = np.abs(tensor).reshape(-1)
    indices = np.argsort(w, kind="stable")
    mask = np.zeros_like(tensor)
    mask.reshape(-1)[indices[n_bot:-n_top]] = 1
    return tensor * mask


def breadcrumbs(base, fts, weights, density=0.9, gamma=0.01, normalize=False, lambda_=1.0):
    return gta(base, fts, weights, sparsify=lambda d, m, t: outliers(d, density, gamma),
               consensus=None, normalize=normalize, lambda_=lambda_)


def selftest(check):
    rng = np.random.default_rng(13)
    d = rng.normal(size=(20, 30))  # 600 entries: n_top = 6 at gamma 0.01
    same = all(np.array_equal(outliers(d, q, g), outliers_mergekit(d, q, g))
               for q, g in ((0.9, 0.01), (0.5, 0.1), (0.95, 0.1), (0.3, 0.01), (1.0, 0.01)))
    check(same, "breadcrumbs: = mergekit's magnitude_outliers when n_top >= 1 and magnitudes are distinct")
    r = outliers(d, 0.9, 0.01)
    a = np.sort(np.abs(d).reshape(-1))
    check(np.count_nonzero(r) == 540 and np.abs(r).max() == a[-7] and np.abs(r[r != 0]).min() == a[-546],
          "breadcrumbs: drops the 6 largest, keeps the next 540")
    small = rng.normal(size=35)  # n_top = int(0.35) = 0
    check(not outliers_mergekit(small, 0.9, 0.01).any(),
          "breadcrumbs: mergekit zeroes a tensor with gamma * numel < 1 (slice [n_bot:-0])")
    r = outliers(small, 0.9, 0.01)
    check(np.count_nonzero(r) == 31 and np.abs(r).max() == np.abs(small).max(),
          "breadcrumbs: the rule keeps the 31 largest there (drops no outlier)")
    t = np.array([1.0, -1.0, 2.0, 0.5, -2.0, 3.0, 0.25, 1.0, 0.125, 4.0])
    check(np.array_equal(outliers(t, 0.3, 0.1), [0, 0, 2.0, 0, -2.0, 3.0, 0, 0, 0, 0]),
          "breadcrumbs: top 1 (4.0) dropped, the next 3 kept: 3, and both 2s")
    check(np.array_equal(outliers(t, 0.35, 0.1), outliers(t, 0.3, 0.1)), "breadcrumbs: int(density n)")
    check(not outliers(t, 0.05, 0.1).any() and np.array_equal(outliers(t, 1.0, 0.1), t),
          "breadcrumbs: keep = 0 keeps nothing, density 1 everything")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
