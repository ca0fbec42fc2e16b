"""Genetic algorithm, one generation: binary tournament selection, uniform crossover, Gaussian
mutation, in numpy: the reference of examples/rules/ga.nyto.

Selection: binary tournaments (Goldberg & Deb: "A Comparative Analysis of Selection Schemes Used
in Genetic Algorithms", FOGA 1991; Miller & Goldberg 1995) as EvoTorch 0.6.1 draws them
(src/evotorch/operators/base.py, CrossOver._do_tournament): two contestants uniformly from the
whole population, with replacement; the better (lower fitness) wins, a tie goes to the first
contestant (torch.argmax keeps the first maximum). evosax's SimpleGA selects uniformly among the
elite half instead; issue 9 asks for tournaments.
Crossover and mutation: evosax 0.3.1, evosax/algorithms/population_based/simple_ga.py
(crossover(), mutation()): child = parent_1 where u >= cr, parent_2 where u < cr (evosax writes
parent_1 * (1 - mask) + parent_2 * mask, the same for finite values); child += std * noise.
Defaults differ from evosax's (crossover_rate 0, std 1): cr = 0.5 (Syswerda 1989's uniform
crossover), std = 0.02 (networks need small steps). No elitism, as SimpleGA.
"""
import numpy as np

import nyto_random


def tournament_members(u, members):
    """Contestant indices from uniforms u in [0, 1): floor(u * M) (as the rule computes them)."""
    return np.floor(np.asarray(u, dtype=np.float64) * members).astype(int)


def step(x, f, contestants, u, eps, cr=0.5, std=0.1):
    """x (M, P): the population; f (M,): its fitness; contestants (M, 4): member m's tournaments
    (c0 vs c1 for parent 1, c2 vs c3 for parent 2); u (M, P): crossover uniforms; eps (M, P):
    mutation noise. Returns the next population (M, P)."""
    x, f, c = np.asarray(x, dtype=np.float64), np.asarray(f), np.asarray(contestants)
    p1 = np.where(f[c[:, 1]] < f[c[:, 0]], c[:, 1], c[:, 0])
    p2 = np.where(f[c[:, 3]] < f[c[:, 2]], c[:, 3], c[:, 2])
    child = np.where(np.asarray(u) < cr, x[p2], x[p1])
    return child + std * np.asarray(eps, dtype=np.float64)


def rule_draws(seed, invocation, members, elements, dtype, group=0):
    """The draws ga.nyto makes, if random sites are numbered in source order over rand, randn,
    mrand and mrandn: mrand() at sites 0-3 (the contestants), rand() at 4, randn() at 5."""
    m, e = np.arange(members)[:, None], np.asarray(elements)[None, :]
    u = np.stack([nyto_random.member_draw(seed, invocation, s, False, members) for s in range(4)],
                 axis=1)
    return {"contestants": tournament_members(u, members),
            "u": nyto_random.v0_draw(seed, invocation, group, 4, False, m, e, dtype),
            "eps": nyto_random.v0_draw(seed, invocation, group, 5, True, m, e, dtype)}
