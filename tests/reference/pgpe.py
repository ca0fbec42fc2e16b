"""PGPE with ClipUp, one generation (tell, then ask), in numpy: the reference of
examples/rules/pgpe.nyto.

Sehnke, Osendorfer, Rückstieß, Graves, Peters, Schmidhuber: "Parameter-exploring policy
gradients", Neural Networks 23(4), 2010; Toklu, Liskowski, Srivastava: "ClipUp: A Simple and
Powerful Optimizer for Distribution-based Policy Evolution", PPSN XVI (2020). Written from
EvoTorch (github nnaisense/evotorch at cebcac4):
- population (SymmetricSeparableGaussian._unbatched_functional_sample): solution 2j is
  mu + eps_j, solution 2j + 1 is mu - eps_j, eps_j = sigma * z_j;
- utilities (tools/ranking.py, centered, objective "min"): argsort(f, descending) gets
  0/(n-1) - 0.5 ... (n-1)/(n-1) - 0.5, so the best gets +0.5. EvoTorch orders ties by
  torch.argsort; this reference gives tied members their mean rank, as nyto's centered_rank
  (the two agree on distinct fitness values);
- gradients (SymmetricSeparableGaussian._compute_gradients, divide by num_directions):
  grad_mu = sum_j (u[2j] - u[2j+1]) / 2 * eps_j / n_dir,
  grad_sigma = sum_j (u[2j] + u[2j+1]) / 2 * (eps_j^2 - sigma^2) / sigma / n_dir;
  EvoTorch takes eps_j as samples[2j] - mu, this reference the noise itself (nyto regenerates it);
- center (optimizers.py ClipUp.ascent): velocity = clip(momentum * velocity +
  grad_mu / |grad_mu| * stepsize, max_speed), mu += velocity;
- stdev (GaussianSearchAlgorithm._update_distribution, tools/misc.py modify_tensor):
  sigma + stdev_learning_rate * grad_sigma clamped to old sigma -/+ |old sigma| * stdev_max_change;
- next population from the new mu and sigma with the next draws.
Everything in float64.
"""
import numpy as np

import nyto_random
from ranks import rank


def centered(f):
    """EvoTorch's centered ranking for minimization, ties given their mean rank."""
    n = len(f)
    return 0.5 - rank(f) / (n - 1)


def clip(x, limit):
    normx = np.linalg.norm(x)
    if normx > limit:
        return x * (limit / normx)
    return x


def step(mu, sigma, velocity, f, z, z_next, stepsize=0.0075, max_speed=0.015, momentum=0.9,
         stdev_learning_rate=0.1, stdev_max_change=0.2):
    """mu, sigma, velocity (P,): the state; f (M,): the fitness of the population sampled with
    the base noise z (M/2, P); z_next (M/2, P): the next ask's base noise.
    Returns (mu, sigma, velocity, next population (M, P), whether the velocity was clipped)."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    velocity = np.asarray(velocity, dtype=np.float64)
    weights = centered(np.asarray(f, dtype=np.float64))
    nslns = len(weights)
    ndirs = nslns // 2
    scaled_noises = sigma * np.asarray(z, dtype=np.float64)  # samples[0::2] - mu
    fdplus = weights[0::2]
    fdminus = weights[1::2]
    grad_mu = np.sum(((fdplus - fdminus) / 2)[:, None] * scaled_noises, axis=0) / ndirs
    grad_sigma = np.sum(((fdplus + fdminus) / 2)[:, None] * ((scaled_noises**2) - (sigma**2)) / sigma,
                        axis=0) / ndirs
    # ClipUp.ascent
    grad = (grad_mu / np.linalg.norm(grad_mu)) * stepsize
    v = momentum * velocity + grad
    clipped = np.linalg.norm(v) > max_speed
    velocity = clip(v, max_speed)
    mu = mu + velocity
    # sigma: learning rate, then modify_tensor(old, new, max_change)
    target = sigma + stdev_learning_rate * grad_sigma
    allowed = np.abs(sigma) * stdev_max_change
    sigma = np.minimum(np.maximum(target, sigma - allowed), sigma + allowed)
    eps_next = sigma * np.asarray(z_next, dtype=np.float64)
    x = np.empty((nslns, mu.size))
    x[0::2] = mu + eps_next
    x[1::2] = mu - eps_next
    return mu, sigma, velocity, x, clipped


def rule_draws(seed, g, members, elements, dtype, group=0):
    """The draws pgpe.nyto makes: keyed randn(g, j) and randn(g + 1, j), j = 0 .. M/2 - 1."""
    j = np.arange(members // 2)[:, None]
    e = np.asarray(elements)[None, :]
    return {"z": nyto_random.keyed_draw(seed, g, j, group, True, e, dtype),
            "z_next": nyto_random.keyed_draw(seed, g + 1, j, group, True, e, dtype)}


def selftest(check):
    f = np.array([3.0, 1.0, 4.0, 0.5, 5.0, 9.0])
    check(np.allclose(centered(f), [0.1, 0.3, -0.1, 0.5, -0.3, -0.5]),
          "pgpe: centered ranking, +0.5 for the lowest fitness")
    rng = np.random.default_rng(17)
    P, M = 9, 8
    mu, sigma = rng.normal(size=P), rng.uniform(0.1, 0.3, P)
    z = rng.normal(size=(M // 2, P))
    x = np.empty((M, P))
    x[0::2], x[1::2] = mu + sigma * z, mu - sigma * z
    f = np.sum(x**2, axis=1)
    mu1, s1, v1, x1, clipped = step(mu, sigma, np.zeros(P), f, z, z, stepsize=0.05, max_speed=1.0)
    check(not clipped and np.isclose(np.linalg.norm(v1), 0.05) and np.sum(mu1**2) < np.sum(mu**2),
          "pgpe: first step has length stepsize and descends the sphere")
    check(np.all(np.abs(s1 - sigma) <= 0.2 * sigma + 1e-15) and np.allclose(x1[0::2] + x1[1::2], 2 * mu1),
          "pgpe: sigma moves at most 20%; the next population is symmetric about mu")
    _, _, v2, _, clipped = step(mu, sigma, 5 * np.ones(P), f, z, z, stepsize=0.05, max_speed=0.1)
    check(clipped and np.isclose(np.linalg.norm(v2), 0.1), "pgpe: ClipUp clips the velocity to max_speed")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
