"""Cross-entropy method with a separable Gaussian, one generation, in numpy: the reference of
examples/rules/cem.nyto.

Rubinstein: "The Cross-Entropy Method for Combinatorial and Continuous Optimization", Methodology
and Computing in Applied Probability 1 (1999); de Boer, Kroese, Mannor, Rubinstein: "A Tutorial on
the Cross-Entropy Method", Annals of Operations Research 134 (2005).
evosax (0.3.1) ships no CEM; this follows EvoTorch 0.6.1's CEM (src/evotorch/algorithms/
distributed/gaussian.py, class CEM, with SeparableGaussian._compute_gradients_via_parenthood_ratio
in src/evotorch/distributions.py and learning rates 1):
- the elite are the floor(parenthood_ratio * M) members of lowest fitness;
- new mean = mean of the elite; new sigma = their standard deviation with Bessel's correction
  (torch.std's default, divisor n_elite - 1) around that new mean;
- next population = mean + sigma * noise.
Deviation: EvoTorch takes exactly n_elite members by argsort, breaking ties arbitrarily; nyto's
rule takes the members whose rank(f) (tied members share their mean rank) is below n_elite, and
divides by their count, so a tie across the boundary keeps all or none of the tied members.
Without ties at the boundary both are the same.
"""
import numpy as np

import nyto_random
from ranks import rank


def step(x, f, eps_next, parenthood_ratio=0.5):
    """x (M, P): the population; f (M,): its fitness; eps_next (M, P): the next ask's noise.
    Returns (mean (P,), sigma (P,), next population (M, P)). Needs at least 2 elite members."""
    x = np.asarray(x, dtype=np.float64)
    elite = rank(f) < np.floor(parenthood_ratio * len(f))
    if elite.sum() < 2:
        raise ValueError("CEM needs at least two elite members for their standard deviation")
    mu = x[elite].mean(axis=0)
    sigma = x[elite].std(axis=0, ddof=1)
    return mu, sigma, mu + sigma * np.asarray(eps_next, dtype=np.float64)


def rule_draws(seed, invocation, members, elements, dtype, group=0):
    """The draws cem.nyto makes: randn() at random site 0 for every member and element."""
    return {"eps_next": nyto_random.v0_draw(seed, invocation, group, 0, True,
                                            np.arange(members)[:, None],
                                            np.asarray(elements)[None, :], dtype)}
