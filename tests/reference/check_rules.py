#!/usr/bin/python3
"""Checks the version-1 example rules against their numpy references: one generation of each of
examples/rules/{openai_es,snes,cem,de,ga,lbest_pso}.nyto, run by `nyto run`, against `step(...)`
of tests/reference/<rule>.py fed with the draws its `rule_draws(...)` regenerates.

usage: check_rules.py NYTO_BINARY [--quick]

The model is float32 (a vector of 3 and a Linear(7, 5): three parameter tensors, P = 43 elements,
one storage group). Swarms of M = 8 members are written as directories of TorchScript files (one
member per file), particles as single files, per-member vectors with --set f=v1,v2,... (case 1) or
as 1-D tensors saved by torch.save (case 2), scalars with --set; nyto's results (TorchScript files,
a directory for a swarm, and a text file of one number per line for a per-member vector) are read
back and flattened in nyto's storage layout.
Each rule runs for two cases (seed, fitness, state): every fitness vector has distinct values and
a tie, placed where ties decide: inside CEM's elite and across its boundary, in GA tournaments
(checked), in lbest PSO neighbourhoods; DE and lbest PSO also get a trial as good as its parent
and a parent of fitness +inf. OpenAI-ES and SNES bind no swarm: their per-member vectors give the
member count, and their per-member result x comes back as a swarm.

Tolerance: per output, element by element, |nyto - reference| <= 1e-6 * scale + 1e-5 * |reference|,
scale = the largest |reference| of that output: nyto computes in float32 (sums over the members,
normal draws within 2 ulp of nyto_random's), the reference in float64 from the same float32
inputs. Per-member vectors (pf) are computed in double and must be equal. The largest differences
found are printed per rule.
Backends: llvm, interp and aten; --quick (sanitizer builds): llvm and interp.
Exits 77 (CTest's SKIP_RETURN_CODE) when numpy or torch is missing, 1 when a check fails.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except Exception as e:  # ImportError, or a broken installation
    print(f"SKIP: the rule checks need numpy and Python's torch (Debian: python3-numpy, "
          f"python3-torch): {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "..", "examples", "rules")
sys.path.insert(0, HERE)
import cem  # noqa: E402
import de  # noqa: E402
import ga  # noqa: E402
import lbest_pso  # noqa: E402
import openai_es  # noqa: E402
import snes  # noqa: E402
from check_random import check, command_line, failures, layout  # noqa: E402

M = 8
RTOL, ATOL = 1e-5, 1e-6  # ATOL is relative to the output's scale (its largest |value|)
INF = float("inf")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(7, 5)
        self.s = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return self.lin(x) * self.s.sum()


LAYOUT = layout(Net())  # name -> (group, offset, dtype); one float32 group
P = sum(p.numel() for p in Net().parameters())
ELEMENTS = np.arange(P)
assert all(g == 0 and dt == np.float32 for g, _, dt in LAYOUT.values())


# ------------------------------------------------------------------ files

class Files:
    """Writes models with given flat parameters (the scripted module is compiled once) and reads
    nyto's results back as flat float32 arrays, in the storage layout of `model` (default: Net(),
    one float32 group)."""

    def __init__(self, model=None):
        model = Net() if model is None else model
        self.layout = layout(model)
        self.P = sum(p.numel() for p in model.parameters())
        self.module = torch.jit.script(model)

    def particle(self, path, flat):
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                _, off, _ = self.layout[name]
                p.copy_(torch.from_numpy(np.asarray(flat[off:off + p.numel()], np.float32))
                        .reshape(p.shape))
        torch.jit.save(self.module, path)

    def swarm(self, path, rows):
        """One file per member; names zero-padded so that nyto's order by name is member order."""
        os.mkdir(path)
        width = len(str(len(rows) - 1))
        for m, row in enumerate(rows):
            self.particle(os.path.join(path, f"m{m:0{width}d}.pt"), row)

    def read_particle(self, path):
        flat = np.empty(self.P, np.float32)
        for name, p in torch.jit.load(path).named_parameters():
            _, off, _ = self.layout[name]
            flat[off:off + p.numel()] = p.detach().numpy().reshape(-1)
        return flat

    def read_output(self, path, kind, members=M):
        """A result as nyto wrote it, or a string saying why it is not of that kind. Kinds:
        "vector" and "value" (text, one number per line), "particle" (a file), "swarm" (a
        directory of `members` files)."""
        if kind in ("vector", "value"):
            return np.loadtxt(path, ndmin=1) if os.path.isfile(path) else f"no text file {path}"
        if kind == "particle":
            return self.read_particle(path) if os.path.isfile(path) else f"no particle file {path}"
        if not os.path.isdir(path):
            return f"not a swarm directory: {path}"
        files = sorted(os.listdir(path))
        if len(files) != members:
            return f"{len(files)} members in {path}, want {members}"
        return np.stack([self.read_particle(os.path.join(path, f)) for f in files])


def numbers(v):
    """--set text that nyto reads back exactly (repr of a double; inf as inf)."""
    return ",".join(repr(float(x)) for x in np.atleast_1d(v))


# ------------------------------------------------------------------ cases

class Case:
    """One generation of one rule: its inputs (swarms, particles, per-member vectors, scalars),
    the reference's outputs (name -> (kind, value)), and the seed."""

    def __init__(self, rule, what, seed, swarms=None, particles=None, vectors=None, scalars=None):
        self.rule, self.what, self.seed = rule, what, seed
        self.swarms, self.particles = swarms or {}, particles or {}
        self.vectors, self.scalars = vectors or {}, scalars or {}
        self.vector_files = False  # bind the vectors as torch.save files (--load), not --set
        self.want = {}

    def f64(self, name):
        for d in (self.swarms, self.particles, self.vectors):
            if name in d:
                return np.asarray(d[name], np.float64)
        raise KeyError(name)


def population(rng, scale=1.0):
    return (scale * rng.normal(size=(M, P))).astype(np.float32)


def vector(rng, scale=1.0):
    return (scale * rng.normal(size=P)).astype(np.float32)


# Fitness: distinct values and a tie. F1's tie (members 1 and 2, ranks 0 and 1: both 0.5) is the
# best; F2's (members 3 and 5, ranks 3 and 4) straddles CEM's elite boundary n = 4, so its elite
# has 5 members.
F1 = np.array([0.75, -1.25, -1.25, 3.0, 0.5, 2.5, 5.0, 1.75])
F2 = np.array([2.0, 0.25, -0.5, 1.0, 4.0, 1.0, -3.0, 3.0])
# Fitness of the parents / personal bests: +inf (never evaluated), and values equal to F's (the
# trial or position is taken: "lower or equal"). For lbest PSO, the new personal bests tie within
# a neighbourhood: members 1 and 2 (case 1: member 2's best is its left neighbour), members 3 and
# 5 about member 4 (case 2: the left one wins).
PF1 = np.array([INF, -1.0, 0.0, 3.0, 0.5, INF, 4.0, 1.75])
PF2 = np.array([2.5, 0.25, -1.0, 1.5, INF, 1.0, -2.0, 3.5])
SEEDS = (0x5EED0123456789AB, 2)  # with F1, F2: GA tournaments between tied members


def cases():
    rng = np.random.default_rng(2024)
    out = []
    tied_tournaments = set()  # GA: parents (0: first, 2: second) chosen between tied members
    for n, (seed, f, pf) in enumerate(zip(SEEDS, (F1, F2), (PF1, PF2))):
        what = f"case {n + 1}, seed {seed:#x}"
        first = len(out)

        c = Case("openai_es", what, seed, particles={"mu": vector(rng)}, vectors={"f": f},
                 scalars={"g": 3 + n})
        d = openai_es.rule_draws(seed, c.scalars["g"], M, ELEMENTS, np.float32)
        mu, x = openai_es.step(c.f64("mu"), f, d["eps"], d["eps_next"], sigma=0.02, lr=0.003)
        c.want = {"mu": ("particle", mu), "x": ("swarm", x)}
        out.append(c)

        sigma = rng.uniform(0.05, 0.5, P).astype(np.float32)
        c = Case("snes", what, seed, particles={"mu": vector(rng), "sigma": sigma},
                 vectors={"f": f}, scalars={"g": 5 * n, "lr_std": 0.2})
        d = snes.rule_draws(seed, c.scalars["g"], M, ELEMENTS, np.float32)
        mu, sigma, x = snes.step(c.f64("mu"), c.f64("sigma"), f, d["z"], d["z_next"],
                                 lr_mean=1.0, lr_std=0.2)
        c.want = {"mu": ("particle", mu), "sigma": ("particle", sigma), "x": ("swarm", x)}
        out.append(c)

        c = Case("cem", what, seed, swarms={"x": population(rng)}, vectors={"f": f})
        d = cem.rule_draws(seed, 0, M, ELEMENTS, np.float32)
        mu, sigma, x = cem.step(c.f64("x"), f, d["eps_next"], parenthood_ratio=0.5)
        c.want = {"mu": ("particle", mu), "sigma": ("particle", sigma), "x": ("swarm", x)}
        out.append(c)

        c = Case("de", what, seed, swarms={"p": population(rng), "x": population(rng)},
                 vectors={"pf": pf, "f": f})
        d = de.rule_draws(seed, 0, M, ELEMENTS, np.float32)
        p, pf1, x = de.step(c.f64("p"), pf, c.f64("x"), f, d["picks"], d["u"], F=0.8, CR=0.9)
        c.want = {"p": ("swarm", p), "pf": ("vector", pf1), "x": ("swarm", x)}
        out.append(c)

        c = Case("ga", what, seed, swarms={"x": population(rng)}, vectors={"f": f})
        d = ga.rule_draws(seed, 0, M, ELEMENTS, np.float32)
        k = d["contestants"]
        tied_tournaments |= {t for t in (0, 2) for m in range(M)
                             if k[m, t] != k[m, t + 1] and f[k[m, t]] == f[k[m, t + 1]]}
        c.want = {"x": ("swarm", ga.step(c.f64("x"), f, d["contestants"], d["u"], d["eps"],
                                         cr=0.5, std=0.02))}
        out.append(c)

        c = Case("lbest_pso", what, seed,
                 swarms={"x": population(rng), "v": population(rng, 0.1),
                         "pbest": population(rng)},
                 vectors={"f": f, "pf": pf})
        d = lbest_pso.rule_draws(seed, 0, M)
        x, v, pbest, pf1 = lbest_pso.step(c.f64("x"), c.f64("v"), f, c.f64("pbest"), pf,
                                          d["r1"], d["r2"], w=0.729, c1=1.49445, c2=1.49445)
        c.want = {"x": ("swarm", x), "v": ("swarm", v), "pbest": ("swarm", pbest),
                  "pf": ("vector", pf1)}
        out.append(c)
        for c in out[first:]:
            c.vector_files = n == 1
    check(tied_tournaments == {0, 2}, "ga: the cases hold tournaments between tied members, "
          "for the first and for the second parent")
    return out


# ------------------------------------------------------------------ runs

def run(nyto, files, tmp, case, backend, tag):
    """Runs the case on a backend; returns outputs name -> array, or an error string. `files`:
    a Files for the case's model; the case's params go to --set with its scalars."""
    base = os.path.join(tmp, f"{case.rule}-{tag}")
    os.makedirs(base, exist_ok=True)
    args = [nyto, "run", os.path.join(RULES, case.rule + ".nyto"), "--seed", str(case.seed),
            "--backend", backend]
    for name, rows in case.swarms.items():
        path = os.path.join(base, "in-" + name)
        if not os.path.exists(path):
            files.swarm(path, rows)
        args += ["--load", f"{name}={path}"]
    for name, flat in case.particles.items():
        path = os.path.join(base, f"in-{name}.pt")
        if not os.path.exists(path):
            files.particle(path, flat)
        args += ["--load", f"{name}={path}"]
    for name, v in case.vectors.items():
        if case.vector_files:
            path = os.path.join(base, f"in-{name}.pt")
            torch.save(torch.tensor(v, dtype=torch.float64), path)
            args += ["--load", f"{name}={path}"]
        else:
            args += ["--set", f"{name}={numbers(v)}"]
    for name, v in case.scalars.items():
        args += ["--set", f"{name}={numbers(v)}"]
    outs = {}
    for name, (kind, _) in case.want.items():
        outs[name] = os.path.join(base, f"{backend}-{name}" + (".txt" if kind in ("vector", "value")
                                                               else ".pt" if kind == "particle" else ""))
        args += ["--save", f"{name}={outs[name]}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return f"nyto run exits {r.returncode}: {r.stderr.strip()}"
    return {name: files.read_output(path, case.want[name][0], len(case.want[name][1])
                                    if case.want[name][0] == "swarm" else None)
            for name, path in outs.items()}


def compare(case, got, stats):
    """Differences from the reference beyond the tolerance, as messages; updates stats[rule]
    (largest difference, largest difference / scale, largest fraction of the tolerance used,
    values compared). "vector" outputs must be equal; particles, swarms and "value" outputs (a
    number computed from element values) are compared with the float32 tolerance."""
    bad = []
    s = stats.setdefault(case.rule, [0.0, 0.0, 0.0, 0])
    for name, (kind, want) in case.want.items():
        g = got[name]
        if isinstance(g, str):
            bad.append(f"{name}: {g}")
            continue
        want = np.asarray(want, np.float64)
        if g.shape != want.shape:
            bad.append(f"{name}: shape {g.shape}, want {want.shape}")
            continue
        g = g.astype(np.float64)
        if kind == "vector":
            if not np.array_equal(g, want):
                bad.append(f"{name}: {g.tolist()}, want {want.tolist()}")
            s[3] += g.size
            continue
        if not np.all(np.isfinite(g)):
            bad.append(f"{name}: not finite")
            continue
        scale = np.max(np.abs(want))
        diff = np.abs(g - want)
        tol = ATOL * scale + RTOL * np.abs(want)
        s[0] = max(s[0], float(diff.max()))
        s[1] = max(s[1], float(diff.max() / scale))
        s[2] = max(s[2], float(np.max(diff / tol)))
        s[3] += g.size
        over = diff > tol
        if over.any():
            i = np.unravel_index(np.argmax(diff / tol), diff.shape)
            bad.append(f"{name}: {int(over.sum())} of {g.size} values off, e.g. at "
                       f"{tuple(map(int, i))}: {g[i]!r}, want {want[i]!r}")
    return bad


def check_all(nyto, quick, files, all_cases, passed):
    """Runs every case on every backend (llvm and interp with quick), compares with its reference,
    prints the largest differences per rule and `passed`, or exits 1 naming the failures."""
    backends = ("llvm", "interp") if quick else ("llvm", "interp", "aten")
    stats = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, case in enumerate(all_cases):
            for backend in backends:
                got = run(nyto, files, tmp, case, backend, str(n))
                what = (f"{case.rule} {case.what}, {backend}: {', '.join(case.want)} as the "
                        "reference")
                if isinstance(got, str):
                    check(False, f"{what} ({got})")
                    continue
                bad = compare(case, got, stats)
                check(not bad, what + (f" ({'; '.join(bad[:3])})" if bad else ""))
    for rule, (mabs, mrel, used, count) in stats.items():
        print(f"{rule}: largest difference from the reference {mabs:.2g} ({mrel:.2g} of the "
              f"output's scale), {used:.0%} of the tolerance, over {count} values")
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print(passed)


def main():
    nyto, quick = command_line(__doc__)
    torch.manual_seed(0)
    check_all(nyto, quick, Files(), cases(), "all rule checks passed")


if __name__ == "__main__":
    main()
