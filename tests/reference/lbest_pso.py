"""Local-best PSO on a ring, one generation (personal bests, then the move), in numpy: the
reference of examples/rules/lbest_pso.nyto.

Ring (lbest) topology: Kennedy: "Small worlds and mega-minds", CEC 1999; Kennedy & Mendes:
"Population structure and particle swarm performance", CEC 2002. Inertia form (Shi & Eberhart
1998) with the constriction constants of Clerc & Kennedy: "The particle swarm - explosion,
stability, and convergence in a multidimensional complex space", IEEE TEC 6 (2002):
w = chi = 0.729 (0.72984 for phi = 4.1, rounded as usual), c1 = c2 = chi * 2.05 = 1.49445, as
examples/rules/pso.nyto.
Tell and ask as evosax 0.3.1, evosax/algorithms/population_based/pso.py (class PSO) with the
swarm's best replaced by the ring neighbourhood's:
- a personal best is replaced when the new fitness is lower or EQUAL;
- r1, r2 are drawn once per member and shared by all its dimensions (evosax: "Sharing r1, r2
  across dimensions seems more robust"), nyto's mrand();
- neighbourhood of m: members m - 1, m, m + 1 (mod M); its best is the first minimum of their
  personal-best fitness in that order (numpy's argmin over the window).
"""
import numpy as np

import nyto_random


def ring_best(pf):
    """Per member, the index of the best personal best among m - 1, m, m + 1 (mod M)."""
    M = len(pf)
    m = np.arange(M)
    window = np.stack([(m - 1) % M, m, (m + 1) % M], axis=1)
    return window[m, np.argmin(np.asarray(pf)[window], axis=1)]


def step(x, v, f, pbest, pf, r1, r2, w=0.729, c1=1.49445, c2=1.49445):
    """x, v, pbest (M, P): positions (just evaluated), velocities, personal bests; f (M,): the
    fitness of x; pf (M,): that of pbest; r1, r2 (M,): per-member uniforms.
    Returns (x, v, pbest, pf) of the next generation."""
    x, v, pbest = (np.asarray(a, dtype=np.float64) for a in (x, v, pbest))
    better = np.asarray(f) <= np.asarray(pf)
    pbest = np.where(better[:, None], x, pbest)
    pf = np.where(better, f, pf)
    lbest = pbest[ring_best(pf)]
    r1, r2 = np.asarray(r1)[:, None], np.asarray(r2)[:, None]
    v = w * v + c1 * r1 * (pbest - x) + c2 * r2 * (lbest - x)
    return x + v, v, pbest, pf


def rule_draws(seed, invocation, members):
    """The draws lbest_pso.nyto makes: mrand() at random sites 0 (r1) and 1 (r2)."""
    return {"r1": nyto_random.member_draw(seed, invocation, 0, False, members),
            "r2": nyto_random.member_draw(seed, invocation, 1, False, members)}
