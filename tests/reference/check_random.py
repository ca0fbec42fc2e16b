#!/usr/bin/python3
"""Checks tests/reference/nyto_random.py, the numpy reference of nyto's random stream.

usage: check_random.py NYTO_BINARY [--quick]

1. Self-tests (numpy only): Philox4x32-10 against the Random123 known-answer vectors, the libm-free
   log and cos against numpy's, the version-1 layouts (member draws, keyed draws, pick's
   permutation) for the properties the language promises, the rank helpers, and the one-generation
   references of the example rules (tests/reference/*.py) against loop forms of their algorithms.
2. Against nyto (needs Python's torch to write and read TorchScript models): `nyto run` on a rule
   with six rand()/randn() sites, on swarms of 3 members with a float32 and a float64 storage group
   and with a float64-only model, for two seeds and every backend: uniforms must match bit for bit,
   normals within 2 ulp (the maximum found is printed). --quick (sanitizer builds): the llvm and
   interp backends only.
Exits 77 (CTest's SKIP_RETURN_CODE) when numpy is missing, or when torch is missing and the
self-tests passed; 1 when a check fails.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except Exception as e:  # ImportError, or a broken installation
    print(f"SKIP: the reference checks need numpy (Debian: python3-numpy): {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cem  # noqa: E402
import de  # noqa: E402
import ga  # noqa: E402
import lbest_pso  # noqa: E402
import nyto_random as R  # noqa: E402
import openai_es  # noqa: E402
import ranks  # noqa: E402
import snes  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def words(*counter_and_key):
    return [int(w) for w in R.philox4x32_10(*counter_and_key)]


# ------------------------------------------------------------------ 1. self-tests

def test_philox():
    # Random123 (github.com/DEShawResearch/random123), tests/kat_vectors, the "philox4x32 10"
    # lines: counter (4 words), key (2 words) -> output (4 words).
    kat = [((0, 0, 0, 0, 0, 0), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
           ((0xffffffff,) * 6, [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1])]
    for args, want in kat:
        check(words(*args) == want, f"Philox4x32-10 known answer for counter/key {args[:1]}...")
    # Vectorized calls give what scalar calls give.
    c0 = np.array([0, 1, 0xffffffff, 12345])
    vec = R.philox4x32_10(c0, 7, 0xffffffff, 3, 0x89abcdef, 0x01234567)
    check(all(list(vec[:, i]) == words(int(c), 7, 0xffffffff, 3, 0x89abcdef, 0x01234567)
              for i, c in enumerate(c0)), "Philox broadcast over counters = scalar calls")
    # Lane-major layout: blocks of B = 16 S elements (S = 5 draws per call for float32, 2 for
    # float64) are served by 16 calls, element e taking call 16 (e // B) + e % 16 and slot
    # (e % B) // 16; counter (call, member, invocation, group << 16 | site).
    ok32 = ok64 = True
    u32 = R.v0_draw(0x0123456789abcdef, 9, 2, 5, False, 3, np.arange(200), np.float32)
    u64 = R.v0_draw(0x0123456789abcdef, 9, 2, 5, False, 3, np.arange(200), np.float64)
    for e in range(200):
        w = words(16 * (e // 80) + e % 16, 3, 9, (2 << 16) | 5, 0x89abcdef, 0x01234567)
        s_ = e % 80 // 16
        bits = w[s_] >> 8 if s_ < 4 else (w[0] ^ (w[1] << 8) ^ (w[2] << 16)) & 0xFFFFFF
        ok32 &= float(u32[e]) == bits * 2.0**-24
        w = words(16 * (e // 32) + e % 16, 3, 9, (2 << 16) | 5, 0x89abcdef, 0x01234567)
        s_ = e % 32 // 16
        ok64 &= float(u64[e]) == (((w[2 * s_] << 32) | w[2 * s_ + 1]) >> 11) * 2.0**-53
    check(ok32, "float32 uniform: call 16 (e // 80) + e % 16; slot s < 4 the top 24 bits of word s, "
          "slot 4 the low 24 bits of r0 ^ r1 << 8 ^ r2 << 16")
    check(ok64, "float64 uniform: call 16 (e // 32) + e % 16, words 2s, 2s + 1 of slot s")


def test_log_cos():
    # Random.h's measured accuracy of its own log and cos, over the u1, u2 its normals use.
    w = R.philox4x32_10(np.arange(1 << 16), 0, 0, 0, 42, 0)
    u1 = ((w[0] >> np.uint32(8)) + np.uint32(1)).astype(np.float32) * np.float32(2.0**-24)
    u2 = (w[1] >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    rel32 = np.max(np.abs(R.log_f32(u1) - np.log(u1.astype(np.float64)))
                   / np.maximum(np.abs(np.log(u1.astype(np.float64))), 1e-300))
    cos32 = np.max(np.abs(R.cos2pi_f32(u2) - np.cos(2 * np.pi * u2.astype(np.float64))))
    d1 = R._bits53(w[0], w[1]).astype(np.float64) * 2.0**-53 + 2.0**-53
    d2 = R._bits53(w[2], w[3]).astype(np.float64) * 2.0**-53
    rel64 = np.max(np.abs(R.log_f64(d1) - np.log(d1)) / np.maximum(np.abs(np.log(d1)), 1e-300))
    cos64 = np.max(np.abs(R.cos2pi_f64(d2) - np.cos(2 * np.pi * d2)))
    check(R.log_f32(np.float32(1.0)) == 0 and rel32 < 2.5e-7 and rel64 < 1e-15,
          f"log: max relative error {rel32:.2g} (float32), {rel64:.2g} (float64)")
    check(cos32 < 2.5e-7 and cos64 < 1e-15,
          f"cos(2 pi u): max absolute error {cos32:.2g} (float32), {cos64:.2g} (float64)")
    one = np.float32(1.0)
    check(R.ulp_distance(np.float32([0.0, 1.0]),
                         np.array([-0.0, np.nextafter(one, np.float32(2))], np.float32)).tolist()
          == [0, 1], "ulp distance: -0 and +0 are 0 apart, 1 and its successor 1")


def moments_ok(x, what, normal=True):
    """Mean and variance of a standard normal / U[0, 1) sample within 5 standard errors."""
    n = x.size
    mean, var = (0.0, 1.0) if normal else (0.5, 1.0 / 12)
    var_se = np.sqrt(2.0 / n) if normal else np.sqrt((1.0 / 80 - 1.0 / 144) / n)
    got_m, got_v = float(np.mean(x, dtype=np.float64)), float(np.var(x, dtype=np.float64))
    check(abs(got_m - mean) < 5 * np.sqrt(var / n) and abs(got_v - var) < 5 * var_se,
          f"{what}: mean {got_m:.4f}, variance {got_v:.4f} over {n}")


def test_member_draws():
    seed, inv = 0x0123456789ABCDEF, 5
    u = R.member_draw(seed, inv, 3, False, 64)
    w = words(0, 9, inv, (0xFFFF << 16) | 3, seed & 0xffffffff, seed >> 32)
    want9 = float((((w[0] << 32) | w[1]) >> 11) * 2.0**-53)
    check(u.shape == (64,) and u.dtype == np.float64 and u[9] == want9,
          "mrand(): one double per member, counter (0, m, invocation, 0xFFFF<<16 | site)")
    check(np.array_equal(R.member_draw(seed, inv, 3, False, 7), u[:7]),
          "mrand(): member m's draw does not depend on the swarm size")
    check(not np.array_equal(R.member_draw(seed, inv + 1, 3, False, 64), u)
          and not np.array_equal(R.member_draw(seed, inv, 4, False, 64), u),
          "mrand(): another invocation or site gives other draws")
    moments_ok(R.member_draw(seed, inv, 0, True, 20000), "mrandn() over members")


def test_keyed_draws():
    seed, e = 0xFEEDFACE, np.arange(8192)
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        z = R.keyed_draw(seed, 3, np.arange(8)[:, None], 1, True, e[None, :], dtype)
        check(z.dtype == dtype, f"keyed randn(k, j) in {name}")
        moments_ok(z, f"keyed randn(3, 0..7), {name}")
        corr = np.corrcoef(z.astype(np.float64))
        off = np.max(np.abs(corr - np.eye(8)))
        check(off < 5 / np.sqrt(e.size), f"keyed randn(3, j): streams j = 0..7 uncorrelated "
              f"(max |r| {off:.4f}), {name}")
        B = 32 if dtype == np.float64 else 80
        first = np.array([b * B + l for b in range(e.size // B) for l in range(16)])  # slot 0
        lag = np.corrcoef(z[0, first].astype(np.float64), z[0, first + 16].astype(np.float64))[0, 1]
        check(abs(lag) < 5 / np.sqrt(first.size), f"keyed randn(3, 0): the r cos / r sin halves of a "
              f"pair (slots 0 and 1) uncorrelated (|r| {abs(lag):.4f}), {name}")
        zk = R.keyed_draw(seed, 4, 0, 1, True, e, dtype)
        r = np.corrcoef(z[0].astype(np.float64), zk.astype(np.float64))[0, 1]
        check(abs(r) < 5 / np.sqrt(e.size), f"keyed randn(3, 0) vs randn(4, 0): |r| {abs(r):.4f}")
        moments_ok(R.keyed_draw(seed, 3, 0, 1, False, e, dtype), f"keyed rand(3, 0), {name}",
                   normal=False)
    # The layout, from scalar Philox calls: counter (call, j, k, group << 16 | 0x8000 | normal),
    # call and slot of the lane-major layout (as v0 draws).
    u32 = R.keyed_draw(seed, 3, 11, 0, False, e, np.float32)
    u64 = R.keyed_draw(seed, 3, 11, 0, False, e, np.float64)
    n32 = R.keyed_draw(seed, 3, 11, 1, True, e, np.float32)
    n64 = R.keyed_draw(seed, 3, 11, 1, True, e, np.float64)
    ok_u = ok_n = True

    def fifth(w):
        return (w[0] ^ (w[1] << 8) ^ (w[2] << 16)) & 0xFFFFFF

    for blk in (0, 1, 77, 100):
        for lane in range(16):
            c = 16 * blk + lane
            wu = words(c, 11, 3, 0x8000, seed, 0)  # group 0
            wn = words(c, 11, 3, (1 << 16) | 0x8001, seed, 0)
            for s_ in range(5):  # float32 uniform
                bits = wu[s_] >> 8 if s_ < 4 else fifth(wu)
                ok_u &= float(u32[80 * blk + 16 * s_ + lane]) == bits * 2.0**-24
            for s_ in range(2):  # float64 uniform: words 2s, 2s+1
                ok_u &= float(u64[32 * blk + 16 * s_ + lane]) == (((wu[2 * s_] << 32) | wu[2 * s_ + 1]) >> 11) * 2.0**-53
            for p in range(2):  # float32 normal: the pair (slots 2p, 2p+1) gives r cos and r sin
                u1 = ((wn[2 * p] >> 8) + 1) * 2.0**-24
                u2 = (wn[2 * p + 1] >> 8) * 2.0**-24
                r = np.sqrt(-2.0 * np.log(u1))
                ok_n &= abs(float(n32[80 * blk + 32 * p + lane]) - r * np.cos(2 * np.pi * u2)) < 1e-5 * max(1.0, r)
                ok_n &= abs(float(n32[80 * blk + 32 * p + 16 + lane]) - r * np.sin(2 * np.pi * u2)) < 1e-5 * max(1.0, r)
            if lane < 8:  # float32 normal, slot 4: lane l (u1, r cos) with lane l + 8 (u2, r sin)
                wp = words(c + 8, 11, 3, (1 << 16) | 0x8001, seed, 0)
                u1 = (fifth(wn) + 1) * 2.0**-24
                u2 = fifth(wp) * 2.0**-24
                r = np.sqrt(-2.0 * np.log(u1))
                ok_n &= abs(float(n32[80 * blk + 64 + lane]) - r * np.cos(2 * np.pi * u2)) < 1e-5 * max(1.0, r)
                ok_n &= abs(float(n32[80 * blk + 72 + lane]) - r * np.sin(2 * np.pi * u2)) < 1e-5 * max(1.0, r)
            u1 = ((((wn[0] << 32) | wn[1]) >> 11) + 1) * 2.0**-53
            u2 = (((wn[2] << 32) | wn[3]) >> 11) * 2.0**-53
            r = np.sqrt(-2.0 * np.log(u1))
            ok_n &= abs(float(n64[32 * blk + lane]) - r * np.cos(2 * np.pi * u2)) < 1e-12 * max(1.0, r)
            ok_n &= abs(float(n64[32 * blk + 16 + lane]) - r * np.sin(2 * np.pi * u2)) < 1e-12 * max(1.0, r)
    check(ok_u, "keyed rand(k, j): counter (call, j, k, 0x8000) in group 0, the slot's bits")
    check(ok_n, "keyed randn(k, j): counter (call, j, k, g<<16 | 0x8001), r cos / r sin of a pair")
    check(not np.array_equal(R.keyed_draw(seed, 3, 11, 1, False, e, np.float32), u32),
          "keyed rand(k, j): another storage group gives other draws")
    try:
        R.keyed_draw(seed, -1, 0, 0, False, e, np.float32)
        check(False, "keyed draws refuse k < 0")
    except ValueError:
        check(True, "keyed draws refuse k < 0")


def pick_scalar(seed, inv, M, K, m):
    """pick's documented permutation for one member, with Python lists (the vectorized code's
    independent twin)."""
    o = [i for i in range(M) if i != m]
    for i in range(K):
        w = words(i, m, inv, (0xFFFF << 16) | 0x8000, seed & 0xffffffff, seed >> 32)
        u = ((((w[0] << 32) | w[1]) >> 11) * 2.0**-53)
        r = min(i + int(np.floor(u * (M - 1 - i))), M - 2)
        o[i], o[r] = o[r], o[i]
    return o[:K]


def test_pick():
    seed = 99
    for M in (2, 3, 4, 7, 64):
        for K in sorted({1, min(3, M - 1), M - 1}):
            t = R.pick_table(seed, 17, M, K)
            rows_ok = all(len(set(row)) == K and m not in row and all(0 <= i < M for i in row)
                          for m, row in enumerate(t.tolist()))
            check(t.shape == (M, K) and rows_ok,
                  f"pick(0..{K - 1}) with {M} members: distinct members other than m")
            check(t.tolist() == [pick_scalar(seed, 17, M, K, m) for m in range(M)],
                  f"pick table with {M} members, {K} picks = the documented shuffle member by member")
        check(np.array_equal(R.pick_table(seed, 17, M, 1)[:, 0], R.pick_table(seed, 17, M, M - 1)[:, 0]),
              f"pick(0) with {M} members does not depend on how many picks the rule uses")
    # Uniform choice: pick(0) and pick(1) of member 0 of 4 over 3000 invocations.
    t = np.stack([R.pick_table(seed, inv, 4, 2)[0] for inv in range(3000)])
    for k in range(2):
        counts = np.bincount(t[:, k], minlength=4)
        check(counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 5 * np.sqrt(3000 * 2 / 9)),
              f"pick({k}) of member 0 of 4 is uniform over members 1..3: {counts[1:].tolist()}")
    try:
        R.pick_table(seed, 0, 3, 3)
        check(False, "pick(2) with 3 members is refused")
    except ValueError:
        check(True, "pick(2) with 3 members is refused")


def test_ranks():
    f = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    check(ranks.rank(f).tolist() == [2.0, 0.5, 3.0, 0.5, 4.0], "rank: ties share their mean rank")
    check(ranks.centered_rank(f).tolist() == [0.0, -0.375, 0.25, -0.375, 0.5], "centered_rank")
    check(ranks.centered_rank(np.array([7.0])).tolist() == [0.0], "centered_rank of one member is 0")
    check(ranks.rank(np.array([np.nan, 1.0, np.nan])).tolist() == [1.5, 0.0, 1.5],
          "rank: NaN ranks last, as evosax")
    g = np.random.default_rng(1).integers(0, 6, 200).astype(np.float64)
    brute = np.array([(g < v).sum() + ((g == v).sum() - 1) / 2 for v in g])
    check(np.array_equal(ranks.rank(g), brute), "rank = #smaller + (#equal - 1)/2 on 200 values")


def sphere(x):
    return np.sum(np.asarray(x) ** 2, axis=-1)


def test_references():
    rng = np.random.default_rng(7)
    M, P = 8, 5

    # OpenAI-ES: the gradient as the paper's loop, antithetic pairs around the new mean.
    mu = rng.normal(size=P)
    eps, eps_next = rng.normal(size=(M // 2, P)), rng.normal(size=(M // 2, P))
    x = mu + 0.1 * openai_es.antithetic(eps)
    f = sphere(x)
    mu1, x1 = openai_es.step(mu, f, eps, eps_next, sigma=0.1, lr=0.05)
    cr = ranks.centered_rank(f)
    grad = sum(cr[m] * (1 if m < M // 2 else -1) * eps[m % (M // 2)] for m in range(M)) / (M * 0.1)
    check(np.allclose(mu1, mu - 0.05 * grad) and np.allclose(x1[:M // 2] + x1[M // 2:], 2 * mu1),
          "openai_es: mean by the loop form; the next population is antithetic about it")
    check(sphere(mu1) < sphere(mu), "openai_es: one step on the sphere lowers the mean's fitness")

    # SNES: utilities as evosax's get_weights; the best member's noise weighs most.
    u = snes.utilities(M)
    check(abs(u.sum()) < 1e-15 and np.all(np.diff(u) <= 0) and u[-1] == -1 / M,
          "snes: utilities sum to 0, fall with rank, the worse half gets -1/M")
    sigma = np.full(P, 0.5)
    z = rng.normal(size=(M, P))
    f = sphere(mu + sigma * z)
    mu1, s1, x1 = snes.step(mu, sigma, f, z, z, lr_mean=1.0)
    w = u[np.argsort(np.argsort(f))]
    check(np.allclose(mu1, mu + sigma * sum(w[m] * z[m] for m in range(M)))
          and np.allclose(x1, mu1 + s1 * z), "snes: mean update by the loop form")
    check(sphere(mu1) < sphere(mu), "snes: one step on the sphere lowers the mean's fitness")

    # CEM: mean and standard deviation of the n_e best, by argsort.
    x = rng.normal(size=(M, P))
    f = sphere(x)
    mu1, s1, x1 = cem.step(x, f, np.zeros((M, P)), parenthood_ratio=0.5)
    best = x[np.argsort(f)[:M // 2]]
    check(np.allclose(mu1, best.mean(0)) and np.allclose(s1, np.sqrt(((best - mu1) ** 2).sum(0) / (M // 2 - 1)))
          and np.allclose(x1, mu1), "cem: mean and (n-1) standard deviation of the elite half")

    # DE: selection keeps the better, ties go to the trial; the trial mixes the mutant and p.
    p, x = rng.normal(size=(M, P)), rng.normal(size=(M, P))
    pf, f = sphere(p), sphere(x)
    f[0] = pf[0]  # a tie: the trial replaces its member
    picks = R.pick_table(3, 0, M, 3)
    uu = rng.uniform(size=(M, P))
    p1, pf1, x1 = de.step(p, pf, x, f, picks, uu, F=0.8, CR=0.9)
    keep = [x[m] if f[m] <= pf[m] else p[m] for m in range(M)]
    check(np.array_equal(p1, np.array(keep)) and np.array_equal(pf1, np.minimum(f, pf)),
          "de: selection keeps the lower fitness, a tie takes the trial")
    a, b, c = picks.T
    mutant = p1[a] + 0.8 * (p1[b] - p1[c])
    check(np.allclose(x1, np.where(uu < 0.9, mutant, p1)), "de: binomial crossover of the mutant")
    forced = rng.integers(0, P, M)
    _, _, x2 = de.step(p, pf, x, f, picks, np.ones((M, P)), forced=forced)
    check(all(np.allclose(x2[m, forced[m]], mutant[m, forced[m]]) and
              np.sum(x2[m] != p1[m]) <= 1 for m in range(M)),
          "de: the forced element comes from the mutant, the rest from the member when u >= CR")

    # GA: the parents are the tournament winners.
    x, f = rng.normal(size=(M, P)), rng.normal(size=M)
    f[1] = f[2]
    cont = np.array([[1, 2, 3, 4]] + [list(rng.integers(0, M, 4)) for _ in range(M - 1)])
    uu, eps = rng.uniform(size=(M, P)), rng.normal(size=(M, P))
    x1 = ga.step(x, f, cont, uu, eps, cr=0.5, std=0.1)
    for m in range(M):
        i1 = cont[m, 0] if f[cont[m, 0]] <= f[cont[m, 1]] else cont[m, 1]
        i2 = cont[m, 2] if f[cont[m, 2]] <= f[cont[m, 3]] else cont[m, 3]
        ok = np.allclose(x1[m], np.where(uu[m] < 0.5, x[i2], x[i1]) + 0.1 * eps[m])
        if not ok:
            break
    check(ok, "ga: parents are the tournament winners (a tie goes to the first contestant)")
    check(np.array_equal(ga.tournament_members(np.array([0.0, 0.999999]), 4), [0, 3]),
          "ga: contestants floor(u * M)")

    # lbest PSO: the ring neighbourhood's best, by a loop.
    for M2 in (1, 2, 3, 8):
        pf = rng.integers(0, 3, M2).astype(float)  # many ties
        want = []
        for m in range(M2):
            window = [(m - 1) % M2, m, (m + 1) % M2]
            want.append(window[int(np.argmin([pf[i] for i in window]))])
        check(lbest_pso.ring_best(pf).tolist() == want, f"lbest_pso: ring best of {M2} members")
    x, v, pb = (rng.normal(size=(M, P)) for _ in range(3))
    f, pf = sphere(x), sphere(pb)
    r1, r2 = rng.uniform(size=M), rng.uniform(size=M)
    x1, v1, pb1, pf1 = lbest_pso.step(x, v, f, pb, pf, r1, r2)
    nb = lbest_pso.ring_best(pf1)
    check(np.allclose(v1, 0.729 * v + 1.49445 * r1[:, None] * (pb1 - x)
                      + 1.49445 * r2[:, None] * (pb1[nb] - x)) and np.allclose(x1, x + v1)
          and np.array_equal(pf1, np.minimum(f, pf)), "lbest_pso: velocity and position update")

    # The draws each rule would make, regenerated (shapes; values are nyto_random's).
    e = np.arange(P)
    shapes = [openai_es.rule_draws(1, 0, M, e, np.float32)["eps"].shape == (M // 2, P),
              snes.rule_draws(1, 0, M, e, np.float64)["z_next"].shape == (M, P),
              cem.rule_draws(1, 0, M, e, np.float32)["eps_next"].shape == (M, P),
              de.rule_draws(1, 0, M, e, np.float32)["picks"].shape == (M, 3),
              ga.rule_draws(1, 0, M, e, np.float32)["contestants"].max() < M,
              lbest_pso.rule_draws(1, 0, M)["r2"].shape == (M,)]
    check(all(shapes), "every reference regenerates the draws of its rule")


# ------------------------------------------------------------------ 2. against nyto

RULE = """\
a = 0*x + rand()
b = 0*x + randn()
c = randn() - rand() + 0*x
d = 0*x + randn()
e = 0*x + rand()
f = 0*x + mrand()
h = mrandn() + 0*x
u = 0*x + rand(member(), 3)
z = randn(5, member() + 1) + 0*x
"""
# Per output, its draws as (random site, normal?): one draw, or the first minus the second. Sites
# count in source order, left to right (`nyto compile --emit ir` shows "rand site N").
OUTPUTS = [("a", [(0, False)]), ("b", [(1, True)]), ("c", [(2, True), (3, False)]),
           ("d", [(4, True)]), ("e", [(5, False)]),
           # member draws (version 1): one double per member, rounded to the dtype once
           ("f", [(6, False, "member")]), ("h", [(7, True, "member")]),
           # keyed draws (version 1): (k, j) of member m, no site, no invocation
           ("u", [(lambda m: m, lambda m: 3, False, "keyed")]),
           ("z", [(lambda m: 5, lambda m: m + 1, True, "keyed")])]


def layout(model):
    """name -> (group, offset, numpy dtype) in nyto's flat storage: parameters in
    named_parameters() order, one group per dtype in order of first appearance
    (runtime/particle.cpp)."""
    groups, out = {}, {}
    for name, p in model.named_parameters():
        g = groups.setdefault(p.dtype, [len(groups), 0])
        out[name] = (g[0], g[1], np.float64 if p.element_size() == 8 else np.float32)
        g[1] += p.numel()
    return out


def compare_run(saved, lay, seed, worst, counted):
    """Differences between nyto's outputs (saved[name] = list of member files) and nyto_random's
    draws for RULE; updates the worst ulp per dtype and the counts."""
    import torch
    bad = []
    for name, sites in OUTPUTS:
        for member, path in enumerate(saved[name]):
            for pname, got in torch.jit.load(path).named_parameters():
                got = got.detach().numpy().reshape(-1)
                g, off, dt = lay[pname]
                elem = off + np.arange(got.size)
                members = len(saved[name])
                def one(s):
                    if len(s) == 4:
                        return R.keyed_draw(seed, s[0](member), s[1](member), g, s[2], elem, dt)
                    if len(s) == 3:
                        return np.full(got.size, R.member_draw(seed, 0, s[0], s[1], members)[member]).astype(dt)
                    return R.v0_draw(seed, 0, g, s[0], s[1], member, elem, dt)
                draw = [one(s) for s in sites]
                want = draw[0] if len(draw) == 1 else draw[0] - draw[1]
                where = f"{name}.{pname} member {member}"
                if any(s[2] if len(s) == 4 else s[1] for s in sites):
                    ulp = int(R.ulp_distance(got, want).max())
                    worst[np.dtype(dt).name] = max(worst[np.dtype(dt).name], ulp)
                    counted["normal"] += got.size
                    if ulp > 2:
                        bad.append(f"{where}: {ulp} ulp")
                else:
                    counted["uniform"] += got.size
                    if not np.array_equal(got.view(np.uint8), want.view(np.uint8)):
                        bad.append(f"{where}: not bit-exact")
    return bad


def test_nyto(nyto, quick):
    try:
        import torch
    except Exception as e:
        print(f"SKIP: the comparison with nyto needs Python's torch to write TorchScript models "
              f"(Debian: python3-torch): {e}")
        return False

    class Mixed(torch.nn.Module):  # storage group 0: float32 (a, c); group 1: float64 (b, d)
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(40, 33))
            self.b = torch.nn.Parameter(torch.randn(31, 29, dtype=torch.float64))
            self.c = torch.nn.Parameter(torch.randn(517))
            self.d = torch.nn.Parameter(torch.randn(211, dtype=torch.float64))

        def forward(self, x):
            return x

    class Double(torch.nn.Module):  # one storage group, float64
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(57, 41, dtype=torch.float64))

        def forward(self, x):
            return x

    # Every backend and thread count with a 64-bit seed (both key words); seed 0 and a single
    # particle (which draws as member 0) on the default backend.
    big = 0xDEADBEEF12345678
    runs = [(big, "llvm", 1, True), (big, "llvm", 2, True), (big, "interp", 1, True),
            (big, "aten", 2, True), (0, "llvm", 1, True), (big, "llvm", 1, False)]
    if quick:
        runs = [runs[0], runs[2]]
    worst = {"float32": 0, "float64": 0}
    counted = {"uniform": 0, "normal": 0}
    with tempfile.TemporaryDirectory() as tmp:
        P = lambda *n: os.path.join(tmp, *n)  # noqa: E731
        with open(P("rule.nyto"), "w") as fh:
            fh.write(RULE)
        torch.manual_seed(0)
        for kind, cls in (("mixed", Mixed), ("double", Double)):
            os.mkdir(P(kind))
            for i in range(3):
                torch.jit.save(torch.jit.script(cls()), P(kind, f"m{i}.pt"))
            lay = layout(cls())
            for n, (seed, backend, threads, swarm) in enumerate(runs):
                what = (f"{kind} {'swarm of 3' if swarm else 'particle'}, seed {seed:#x}, "
                        f"{backend} backend, {threads} thread(s)")
                out = {name: P(f"{kind}-{n}-{name}") for name, _ in OUTPUTS}
                r = subprocess.run(
                    [nyto, "run", P("rule.nyto"), "--load",
                     "x=" + (P(kind) if swarm else P(kind, "m1.pt")), "--seed", str(seed),
                     "--backend", backend, "--threads", str(threads)]
                    + [a for name, path in out.items() for a in ("--save", f"{name}={path}")],
                    capture_output=True, text=True)
                if r.returncode != 0:
                    check(False, f"{what}: nyto run exits 0 ({r.stderr.strip()})")
                    continue
                saved = {name: [os.path.join(path, f"m{i}.pt") for i in range(3)] if swarm
                         else [path] for name, path in out.items()}
                bad = compare_run(saved, lay, seed, worst, counted)
                check(not bad, f"{what}: draws as nyto_random computes them"
                      + (f" ({'; '.join(bad[:4])})" if bad else ""))
    check(counted["uniform"] > 0 and counted["normal"] > 0,
          f"compared {counted['uniform']} uniform and {counted['normal']} normal draws with nyto's")
    print(f"normal draws: largest distance from nyto_random {worst['float32']} ulp (float32), "
          f"{worst['float64']} ulp (float64); uniforms bit for bit")
    return True


def command_line(usage):
    """(NYTO_BINARY, quick) from the arguments NYTO_BINARY [--quick]; else prints `usage` and
    exits 2. Makes numpy raise on overflow and invalid operations (in the references, a bug)."""
    args = sys.argv[1:]
    quick = "--quick" in args
    if quick:
        args.remove("--quick")
    if len(args) != 1:
        print(usage)
        sys.exit(2)
    np.seterr(all="raise")
    return args[0], quick


def main():
    nyto, quick = command_line(__doc__)
    for test in (test_philox, test_log_cos, test_member_draws, test_keyed_draws, test_pick,
                 test_ranks, test_references):
        test()
    with np.errstate(all="ignore"):  # 0*x etc. in torch-made models are fine
        compared = test_nyto(nyto, quick)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    if not compared:
        sys.exit(77)
    print("all reference checks passed")


if __name__ == "__main__":
    main()
