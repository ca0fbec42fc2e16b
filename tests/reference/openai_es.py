"""OpenAI-ES, one generation (tell, then ask), in numpy: the reference of
examples/rules/openai_es.nyto.

Salimans, Ho, Chen, Sidor, Sutskever: "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", arXiv:1703.03864 (2017). Conventions of evosax 0.3.1,
evosax/algorithms/distribution_based/open_es.py (class Open_ES):
- antithetic sampling: z = concat([z_plus, -z_plus]), so member m < M/2 uses +eps[m] and member
  m >= M/2 uses -eps[m - M/2] (M even);
- fitness shaping: centered ranks (evosax/core/fitness_shaping.py), lower fitness is better;
- grad = centered_rank(f) @ z / (M * sigma); the optimizer is plain SGD: mu -= lr * grad;
- sigma constant (evosax's default std_schedule is a constant).
Deviation: evosax recovers the noise as (population - mean) / std; nyto regenerates it with the
keyed draw randn(g, j) of the ask step, so this reference takes the noise itself (equal up to
the rounding of that division).
"""
import numpy as np

import nyto_random
from ranks import centered_rank


def antithetic(eps):
    """The signed noise of every member from the M/2 base rows eps: +eps[j] for the first half,
    -eps[j] for the second (evosax's concat([z_plus, -z_plus]))."""
    return np.concatenate([eps, -eps])


def step(mu, f, eps, eps_next, sigma, lr):
    """mu (P,): the mean that population x = mu + sigma * antithetic(eps) was sampled around;
    f (M,): the fitness of x (lower is better); eps, eps_next (M/2, P): the base noise of that
    ask and of the next one. Returns (new mean (P,), next population (M, P))."""
    M = len(f)
    if M % 2:
        raise ValueError("antithetic OpenAI-ES needs an even number of members")
    z = antithetic(np.asarray(eps, dtype=np.float64))
    grad = centered_rank(f) @ z / (M * sigma)
    mu_new = np.asarray(mu, dtype=np.float64) - lr * grad
    return mu_new, mu_new + sigma * antithetic(np.asarray(eps_next, dtype=np.float64))


def rule_draws(seed, g, members, elements, dtype, group=0):
    """The draws openai_es.nyto makes at generation g, regenerated: keyed randn(g, j) and
    randn(g + 1, j) for j = 0 .. M/2 - 1 (rows), elements `elements` of storage group `group`."""
    j = np.arange(members // 2)[:, None]
    e = np.asarray(elements)[None, :]
    return {"eps": nyto_random.keyed_draw(seed, g, j, group, True, e, dtype),
            "eps_next": nyto_random.keyed_draw(seed, g + 1, j, group, True, e, dtype)}
