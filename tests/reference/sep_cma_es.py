"""Separable CMA-ES, one generation (tell, then ask), in numpy: the reference of
examples/rules/sep_cma_es.nyto.

Ros, Hansen: "A Simple Modification in CMA-ES Achieving Linear Time and Space Complexity",
PPSN X (2008). Written from the cmaes package (github CyberAgentAILab/cmaes at d4d96d9),
cmaes/_sepcma.py: constants() is SepCMA.__init__ for dimension n_dim and population_size,
step() is SepCMA.tell (no bounds) followed by one _sample_solution per member with the normal
draws given as an argument (SepCMA draws them from its numpy RandomState; nyto's rule uses the
keyed randn(g + 1, member())). The solutions are sorted by fitness with Python's stable sort
(ties keep member order). `g` is SepCMA.generation before tell; tell increments it first, so its
h_sigma exponent 2 * (generation + 1) is 2 * (g + 2). The fitness history kept for should_stop
is left out. Everything in float64.
"""
import math

import numpy as np

import nyto_random

_EPS = 1e-8
_SIGMA_MAX = 1e32


def constants(n_dim, population_size):
    """SepCMA.__init__'s weights and learning rates."""
    mu = population_size // 2
    weights_prime = np.array([math.log(mu + 1) - math.log(i + 1) for i in range(mu)])
    weights = weights_prime / sum(weights_prime)
    mu_eff = 1 / sum(weights**2)
    alpha_cov = 2
    c1 = alpha_cov / ((n_dim + 1.3) ** 2 + mu_eff)
    cmu_full = 2 / mu_eff / ((n_dim + np.sqrt(2)) ** 2) + (1 - 1 / mu_eff) * min(
        1, (2 * mu_eff - 1) / ((n_dim + 2) ** 2 + mu_eff))
    cmu = (n_dim + 2) / 3 * cmu_full
    c_sigma = (mu_eff + 2) / (n_dim + mu_eff + 3)
    d_sigma = 1 + 2 * max(0, math.sqrt((mu_eff - 1) / (n_dim + 1)) - 1) + c_sigma
    cc = 4 / (n_dim + 4)
    chi_n = math.sqrt(n_dim) * (1.0 - (1.0 / (4.0 * n_dim)) + 1.0 / (21.0 * (n_dim**2)))
    return dict(mu=mu, weights=weights, mu_eff=mu_eff, c1=c1, cmu=cmu, c_sigma=c_sigma,
                d_sigma=d_sigma, cc=cc, cm=1, chi_n=chi_n)


def step(mean, sigma, C, p_sigma, pc, x, f, g, z_next):
    """mean, C, p_sigma, pc (P,): the state; sigma: the step size; x (M, P): the population
    sampled from it; f (M,): its fitness (lower is better); g: tells before this one;
    z_next (M, P): standard normal draws of the next ask. Returns (mean, sigma, C, p_sigma, pc,
    next population (M, P), h_sigma)."""
    mean = np.array(mean, dtype=np.float64)
    C = np.array(C, dtype=np.float64)
    p_sigma = np.array(p_sigma, dtype=np.float64)
    pc = np.array(pc, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n_dim, popsize = mean.size, len(f)
    k = constants(n_dim, popsize)
    generation = g + 1  # self._g += 1
    solutions = sorted([(x[m], f[m]) for m in range(popsize)], key=lambda s: s[1])  # stable
    D = np.sqrt(np.where(C < 0, _EPS, C))

    x_k = np.array([s[0] for s in solutions])
    y_k = (x_k - mean) / sigma
    y_w = np.sum(y_k[: k["mu"]].T * k["weights"][: k["mu"]], axis=1)
    mean = mean + k["cm"] * sigma * y_w

    p_sigma = (1 - k["c_sigma"]) * p_sigma + math.sqrt(
        k["c_sigma"] * (2 - k["c_sigma"]) * k["mu_eff"]) * (y_w / D)
    norm_p_sigma = np.linalg.norm(p_sigma)
    sigma = sigma * np.exp((k["c_sigma"] / k["d_sigma"]) * (norm_p_sigma / k["chi_n"] - 1))
    sigma = min(sigma, _SIGMA_MAX)

    h_sigma_cond_left = norm_p_sigma / math.sqrt(1 - (1 - k["c_sigma"]) ** (2 * (generation + 1)))
    h_sigma_cond_right = (1.4 + 2 / (n_dim + 1)) * k["chi_n"]
    h_sigma = 1.0 if h_sigma_cond_left < h_sigma_cond_right else 0.0

    pc = (1 - k["cc"]) * pc + h_sigma * math.sqrt(k["cc"] * (2 - k["cc"]) * k["mu_eff"]) * y_w
    delta_h_sigma = (1 - h_sigma) * k["cc"] * (2 - k["cc"])
    rank_one = pc**2
    rank_mu = np.sum(np.array([w * (y**2) for w, y in zip(k["weights"], y_k)]), axis=0)
    C = ((1 + k["c1"] * delta_h_sigma - k["c1"] - k["cmu"] * np.sum(k["weights"])) * C
         + k["c1"] * rank_one + k["cmu"] * rank_mu)

    # ask: _sample_solution for every member, D from the new C
    D = np.sqrt(np.where(C < 0, _EPS, C))
    x_next = mean + sigma * (D * np.asarray(z_next, dtype=np.float64))
    return mean, sigma, C, p_sigma, pc, x_next, h_sigma


def rule_draws(seed, g, members, elements, dtype, group=0):
    """The draws sep_cma_es.nyto makes: keyed randn(g + 1, m) for every member m."""
    return {"z_next": nyto_random.keyed_draw(seed, g + 1, np.arange(members)[:, None], group,
                                             True, np.asarray(elements)[None, :], dtype)}


def selftest(check):
    k = constants(10, 10)  # SepCMA(mean=zeros(10), sigma=...) default popsize: 4 + floor(3 ln 10)
    check(k["mu"] == 5 and abs(k["weights"].sum() - 1) < 1e-15 and np.all(np.diff(k["weights"]) < 0)
          and 1 < k["mu_eff"] < 5, "sep_cma_es: mu = M // 2 positive decreasing weights summing to 1")
    rng = np.random.default_rng(21)
    P, M = 12, 8
    mean, sigma, C = rng.normal(size=P), 0.5, np.ones(P)
    ps, pc = np.zeros(P), np.zeros(P)
    z = rng.normal(size=(M, P))
    x = mean + sigma * z
    f = np.sum(x**2, axis=1)
    m1, s1, C1, ps1, pc1, x1, h = step(mean, sigma, C, ps, pc, x, f, 0, z)
    order = np.argsort(f, kind="stable")
    yw = (k2 := constants(P, M))["weights"] @ z[order[: M // 2]]
    check(np.allclose(m1, mean + sigma * yw), "sep_cma_es: mean moves by sigma times the weighted best steps")
    check(np.allclose(ps1, math.sqrt(k2["c_sigma"] * (2 - k2["c_sigma"]) * k2["mu_eff"]) * yw)
          and h == 1.0 and np.allclose(pc1, math.sqrt(k2["cc"] * (2 - k2["cc"]) * k2["mu_eff"]) * yw),
          "sep_cma_es: first paths from zero (h_sigma = 1)")
    check(np.sum(m1**2) < np.sum(mean**2) and np.allclose(x1, m1 + s1 * np.sqrt(C1) * z),
          "sep_cma_es: one step on the sphere lowers the mean's fitness; ask uses the new state")
    f2 = f.copy()
    f2[order[1]] = f2[order[0]]  # a tie between the two best: member order decides (stable sort)
    a = step(mean, sigma, C, ps, pc, x, f2, 0, z)
    lo, hi = sorted(order[:2])
    sw = list(order)
    sw[0], sw[1] = lo, hi
    check(np.allclose(a[0], mean + sigma * (k2["weights"] @ z[sw[: M // 2]])),
          "sep_cma_es: tied fitness keeps member order (stable sort)")
    big = step(mean, sigma, C, 10 * np.ones(P), pc, x, f, 3, z)
    check(big[6] == 0.0, "sep_cma_es: a long p_sigma stalls p_c (h_sigma = 0)")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
