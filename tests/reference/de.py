"""Differential evolution DE/rand/1/bin, one generation (selection, then new trials), in numpy:
the reference of examples/rules/de.nyto.

Storn & Price: "Differential Evolution - A Simple and Efficient Heuristic for Global Optimization
over Continuous Spaces", Journal of Global Optimization 11 (1997). Conventions of evosax 0.3.1,
evosax/algorithms/population_based/differential_evolution.py (DifferentialEvolution with
elitism=False, num_diff=1, no dithering; defaults F = 0.8, CR = 0.9):
- selection (evosax's tell): a trial replaces its member when its fitness is lower or EQUAL;
- new trial of member m (evosax's ask): base a and difference b - c from three distinct members
  other than m; mutant = a + F (b - c); binomial crossover: element i takes the mutant where
  u_i < CR, else the member's own value.
The forced crossover element (one element per member, uniform, always from the mutant, so a
trial never equals its parent) needs the element index elem() of language version 1 part 2:
`forced` gives it per member when the rule has it; None leaves it out, as the part-1 rule does
(a trial then equals its parent with probability (1 - CR)^P, nil for a network's P).
"""
import numpy as np

import nyto_random


def step(p, pf, x, f, picks, u, F=0.8, CR=0.9, forced=None):
    """p (M, P): the population; pf (M,): its fitness; x (M, P): the trials of the last
    generation; f (M,): their fitness; picks (M, 3): member indices a, b, c per member (distinct,
    never m: pick(0), pick(1), pick(2)); u (M, P): crossover uniforms; forced: (M,) element
    indices or None. Returns (new population, its fitness, new trials)."""
    p, x = np.asarray(p, dtype=np.float64), np.asarray(x, dtype=np.float64)
    better = np.asarray(f) <= np.asarray(pf)
    p = np.where(better[:, None], x, p)
    pf = np.where(better, f, pf)
    picks = np.asarray(picks)
    mutant = p[picks[:, 0]] + F * (p[picks[:, 1]] - p[picks[:, 2]])
    cross = np.asarray(u) < CR
    if forced is not None:
        cross = cross.copy()
        cross[np.arange(len(p)), np.asarray(forced)] = True
    return p, pf, np.where(cross, mutant, p)


def rule_draws(seed, invocation, members, elements, dtype, group=0):
    """The draws de.nyto makes: rand() at random site 0, and pick(0..2)'s table."""
    return {"u": nyto_random.v0_draw(seed, invocation, group, 0, False,
                                     np.arange(members)[:, None], np.asarray(elements)[None, :],
                                     dtype),
            "picks": nyto_random.pick_table(seed, invocation, members, 3)}
