"""DARE (linear) and DARE-TIES in numpy, tensor by tensor: the reference of
examples/rules/dare.nyto and examples/rules/dare_ties.nyto.

Yu, Yu, Yu, Huang, Li: "Language Models are Super Mario: Absorbing Abilities from Homologous
Models as a Free Lunch", ICML 2024 (arXiv:2311.03099). Written from mergekit (github
arcee-ai/mergekit at a6e4028):
- bernoulli() is mergekit/sparsify.py's `bernoulli` with rescaled_masked_tensor(norm=l1): the
  mask keeps an entry with probability density; the kept entries are scaled by
  sum|delta| / sum|masked| unless either sum is below eps = 1e-7 (then left unscaled); density
  >= 1 returns the tensor as is. mergekit draws the mask with torch.bernoulli; here the uniforms
  are arguments (nyto's rand(): keep where u < density; the reference compares the float32
  uniform with density rounded to float32, as docs/language.md's numerics rule rounds a scalar
  where it meets an element value; check_merge.py asserts that no draw lies between density and
  its float32 rounding, so the cases do not depend on it).
- the merge is ties.gta(): `dare_linear` = no consensus, mergekit's defaults rescale = True,
  normalize = False; `dare_ties` = consensus "sum", rescale = True, normalize = False.
All arithmetic in float64; tensors are lists of arrays.
"""
import numpy as np

import nyto_random
from ties import gta


def rescaled_masked(tensor, mask, eps=1e-7):
    """mergekit's rescaled_masked_tensor with RescaleNorm.l1."""
    masked = tensor * mask
    before = np.abs(tensor).sum()
    after = np.abs(masked).sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def bernoulli(tensor, density, u, rescale=True):
    """mergekit's bernoulli() with the uniforms u (same shape) as its random source."""
    if density >= 1:
        return tensor
    mask = (np.asarray(u, dtype=np.float32) < np.float32(density)).astype(np.float64)
    return rescaled_masked(tensor, mask) if rescale else tensor * mask


def dare(base, fts, weights, u, density=0.1, consensus=None, normalize=False, lambda_=1.0):
    """u[m][t]: the uniforms of model m's tensor t. consensus None: dare_linear; "sum":
    dare_ties."""
    return gta(base, fts, weights, sparsify=lambda d, m, t: bernoulli(d, density, u[m][t]),
               consensus=consensus, normalize=normalize, lambda_=lambda_)


def dare_ties(base, fts, weights, u, density=0.1, normalize=False, lambda_=1.0):
    return dare(base, fts, weights, u, density, "sum", normalize, lambda_)


def rule_draws(seed, members, elements, dtype, group=0, invocation=0):
    """The draws dare.nyto / dare_ties.nyto make: rand() at random site 0, (members, elements)
    in the flat storage of group `group` (split them per tensor with the model's layout)."""
    return nyto_random.v0_draw(seed, invocation, group, 0, False, np.arange(members)[:, None],
                               np.asarray(elements)[None, :], dtype)


def selftest(check):
    rng = np.random.default_rng(5)
    d = rng.normal(size=(40, 30))
    u = rng.uniform(size=d.shape).astype(np.float32)
    r = bernoulli(d, 0.3, u)
    kept = u < np.float32(0.3)
    check(np.allclose(np.abs(r).sum(), np.abs(d).sum()) and np.array_equal(r != 0, kept),
          "dare: kept entries rescaled to the L1 norm of the whole task vector")
    check(np.array_equal(bernoulli(d, 1.0, u), d) and np.array_equal(bernoulli(d, 0.0, u), 0 * d),
          "dare: density 1 keeps the tensor, density 0 drops it (below eps: no rescale)")
    tiny = np.full(4, 1e-9)
    check(np.array_equal(bernoulli(tiny, 0.5, np.array([0.1, 0.9, 0.2, 0.7])), [1e-9, 0, 1e-9, 0]),
          "dare: no rescale when the norm is below 1e-7")
    # dare_linear = base + sum_m w_m * rescaled delta_m (normalize off).
    base = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    fts = [[b + rng.normal(size=b.shape) for b in base] for _ in range(3)]
    w = np.array([0.3, 0.5, 0.2])
    uu = [[rng.uniform(size=b.shape) for b in base] for _ in range(3)]
    got = dare(base, fts, w, uu, density=0.5)
    want = [b + sum(w[m] * bernoulli(fts[m][t] - b, 0.5, uu[m][t]) for m in range(3))
            for t, b in enumerate(base)]
    check(all(np.allclose(g, x) for g, x in zip(got, want)), "dare: linear merge of the rescaled deltas")
    got = dare_ties(base, fts, w, uu, density=0.5)
    ok = True
    for t, b in enumerate(base):
        tau = np.stack([w[m] * bernoulli(fts[m][t] - b, 0.5, uu[m][t]) for m in range(3)])
        s = np.where(tau.sum(0) >= 0, 1.0, -1.0)
        ok &= np.allclose(got[t], b + np.where(np.sign(tau) == s, tau, 0).sum(0))
    check(ok, "dare_ties: the agreeing weighted deltas, not normalized")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
