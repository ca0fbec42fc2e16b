"""SNES (separable natural evolution strategy), one generation (tell, then ask), in numpy: the
reference of examples/rules/snes.nyto.

Schaul, Glasmachers, Schmidhuber: "High Dimensions and Heavy Tails for Natural Evolution
Strategies", GECCO 2011; Wierstra et al., "Natural Evolution Strategies", JMLR 15 (2014).
Conventions of evosax 0.3.1, evosax/algorithms/distribution_based/snes.py (class SNES) and the
utilities of xnes.py (get_weights), applied by evosax/core/fitness_shaping.py
(weights_fitness_shaping_fn):
- utilities u_i = max(0, log(M/2 + 1) - log(i)), i = 1..M, normalized to sum 1, minus 1/M; member
  of rank r (0 = lowest fitness = best) gets u_{floor(r) + 1}: evosax indexes the table with
  `ranks.astype(int32)`, which truncates the mean rank of tied members;
- mean: grad = -sigma * (w @ z); SGD with lr_mean (evosax default 1.0): mu += lr_mean * sigma * (w @ z)
- sigma (per parameter): sigma *= exp(0.5 * lr_std * (w @ (z^2 - 1))), with the old z and the
  mean's update using the old sigma; lr_std = (3 + log P) / (5 sqrt P) by default.
Deviation as in openai_es.py: z is the noise itself (nyto regenerates it with randn(g, m)),
where evosax divides it back out of the population.
"""
import numpy as np

import nyto_random
from ranks import rank


def utilities(M):
    """evosax's get_weights(M): the utility of rank 0 (best) .. M - 1 (worst); they sum to 0."""
    u = np.maximum(0.0, np.log(M / 2 + 1) - np.log(np.arange(1, M + 1)))
    return u / u.sum() - 1.0 / M


def default_lr_std(P):
    return (3 + np.log(P)) / (5 * np.sqrt(P))


def step(mu, sigma, f, z, z_next, lr_mean=1.0, lr_std=None):
    """mu, sigma (P,): the search distribution that sampled x = mu + sigma * z; f (M,): the
    fitness of x; z, z_next (M, P): the noise of that ask and of the next one.
    Returns (new mu, new sigma, next population (M, P))."""
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if lr_std is None:
        lr_std = default_lr_std(mu.size)
    w = utilities(len(f))[np.floor(rank(f)).astype(int)]
    mu_new = mu + lr_mean * sigma * (w @ z)
    sigma_new = sigma * np.exp(0.5 * lr_std * (w @ (z * z - 1)))
    return mu_new, sigma_new, mu_new + sigma_new * np.asarray(z_next, dtype=np.float64)


def rule_draws(seed, g, members, elements, dtype, group=0):
    """The draws snes.nyto makes at generation g: keyed randn(g, m) and randn(g + 1, m)."""
    m = np.arange(members)[:, None]
    e = np.asarray(elements)[None, :]
    return {"z": nyto_random.keyed_draw(seed, g, m, group, True, e, dtype),
            "z_next": nyto_random.keyed_draw(seed, g + 1, m, group, True, e, dtype)}
