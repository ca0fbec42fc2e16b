#!/usr/bin/python3
"""TorchScript round trip: models scripted and saved by Python's torch (torch.jit.save), run
through `nyto run`, loaded back by torch.jit.load and compared with the values computed here; and
per-member vectors saved by torch.save.

usage: torchscript_roundtrip.py NYTO_BINARY RULES_DIR
Exits 77 (CTest SKIP_RETURN_CODE) when torch cannot be imported.
"""
import os
import subprocess
import sys
import tempfile

try:
    import torch
except Exception as e:  # ImportError, or a broken installation
    print(f"SKIP: the TorchScript round trip needs Python's torch (Debian: python3-torch): {e}")
    sys.exit(77)

NYTO, RULES = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 4)
        self.fc2 = torch.nn.Linear(4, 2)
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.register_buffer("offset", torch.zeros(2))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) * self.scale + self.offset


class Other(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 5)

    def forward(self, x):
        return self.fc(x)


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(2, 2)
        self.b = torch.nn.Linear(2, 2)
        self.b.weight = self.a.weight  # one parameter under two paths

    def forward(self, x):
        return self.b(self.a(x))


def nyto(*args):
    r = subprocess.run([NYTO, *args], capture_output=True, text=True)
    return r.returncode, r.stderr


def params(path):
    return {k: v.detach().clone() for k, v in torch.jit.load(path).named_parameters()}


def close(got, want):
    return got.keys() == want.keys() and all(
        torch.allclose(got[k], want[k], atol=1e-6, rtol=1e-6) for k in want)


def snapshot(d):
    out = {}
    for root, dirs, files in os.walk(d):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.join(root, f)] = fh.read()
        for sub in dirs:
            out[os.path.join(root, sub) + "/"] = b""
    return out


with tempfile.TemporaryDirectory() as tmp:
    P = lambda *n: os.path.join(tmp, *n)
    torch.manual_seed(0)
    models = {}
    for name in ["base", "ft_a", "ft_b"]:
        m = torch.jit.script(Net())
        with torch.no_grad():
            m.offset.copy_(torch.randn(2))
        torch.jit.save(m, P(name + ".pt"))
        models[name] = params(P(name + ".pt"))
    os.mkdir(P("swarm"))
    for i in range(3):
        torch.jit.save(torch.jit.script(Net()), P("swarm", f"member{i}.pt"))
    torch.jit.save(torch.jit.script(Other()), P("other.pt"))
    torch.save(Net().state_dict(), P("state_dict.pt"))  # not TorchScript

    # 1. Task arithmetic on two fine-tuned models and their base.
    rc, err = nyto("run", os.path.join(RULES, "merge.nyto"), "--load", "base=" + P("base.pt"),
                   "--load", "ft_a=" + P("ft_a.pt"), "--load", "ft_b=" + P("ft_b.pt"),
                   "--set", "t=0.3", "--save", "merged=" + P("merged.pt"))
    check(rc == 0, f"merge exits 0 ({err.strip()})")
    b, a, c = models["base"], models["ft_a"], models["ft_b"]
    want = {k: b[k] + 0.3 * (a[k] - b[k]) + 0.3 * (c[k] - b[k]) for k in b}
    merged = torch.jit.load(P("merged.pt"))
    check(close(params(P("merged.pt")), want), "merged parameters as computed by Python")
    check(torch.equal(merged.offset, torch.jit.load(P("base.pt")).offset),
          "merged keeps the buffers of its first operand")
    ref = Net()
    ref.load_state_dict({**want, "offset": merged.offset})
    x = torch.randn(5, 3)
    check(torch.allclose(merged(x), ref(x), atol=1e-6), "merged model's forward runs in Python")

    # 1b. TIES and SLERP (the parameter axis) on copies fine-tuned here, in Python, from the
    # base: a few SGD steps each on its own random regression task.
    os.mkdir(P("ft"))
    tuned = []
    for i in range(3):
        m = torch.jit.load(P("base.pt"))
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(10 + i)
        for _ in range(5):
            x, y = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
        torch.jit.save(m, P("ft", f"{i}.pt"))
        tuned.append(params(P("ft", f"{i}.pt")))
    rc, err = nyto("run", os.path.join(RULES, "ties.nyto"), "--load", "base=" + P("base.pt"),
                   "--load", "ft=" + P("ft"), "--set", "w=1,0.5,2", "--set", "density=0.5",
                   "--save", "merged=" + P("ties.pt"))
    check(rc == 0, f"TIES exits 0 ({err.strip()})")
    w = [1.0, 0.5, 2.0]
    want = {}
    for k in b:  # TIES as examples/rules/ties.nyto states it, per tensor
        deltas = [t[k] - b[k] for t in tuned]
        kept = []
        for d in deltas:
            n = d.numel()
            kk = min(max(int(0.5 * n), 1), n)
            thr = d.abs().flatten().sort(descending=True).values[kk - 1]
            kept.append(torch.where(d.abs() >= thr, d, torch.zeros_like(d)))
        tau = [wi * d for wi, d in zip(w, kept)]
        elected = torch.where(sum(tau) >= 0, 1.0, -1.0)
        agree = [torch.sign(t) == elected for t in tau]
        den = sum(torch.where(a, torch.tensor(wi), torch.tensor(0.0)) for a, wi in zip(agree, w))
        num = sum(torch.where(a, t, torch.zeros_like(t)) for a, t in zip(agree, tau))
        want[k] = b[k] + num / torch.where(den == 0, torch.ones_like(den), den)
    check(close(params(P("ties.pt")), want), "TIES of models fine-tuned in Python as computed by Python")
    ties = torch.jit.load(P("ties.pt"))
    check(ties(torch.randn(4, 3)).shape == (4, 2), "the TIES merge runs forward in Python")
    rc, err = nyto("run", os.path.join(RULES, "slerp.nyto"), "--load", "a=" + P("ft", "0.pt"),
                   "--load", "b=" + P("ft", "1.pt"), "--set", "t=0.3", "--save", "merged=" + P("slerp.pt"))
    check(rc == 0, f"SLERP exits 0 ({err.strip()})")
    want = {}
    for k in b:  # mergekit's slerp, per tensor, in float64
        v0, v1 = tuned[0][k].double(), tuned[1][k].double()
        n0, n1 = v0 / v0.norm(), v1 / v1.norm()
        dot = (n0 * n1).sum()
        if dot.abs() > 0.9995:
            want[k] = ((1 - 0.3) * v0 + 0.3 * v1).float()
        else:
            th = torch.acos(dot)
            want[k] = (torch.sin(th * 0.7) / torch.sin(th) * v0 + torch.sin(th * 0.3) / torch.sin(th) * v1).float()
    got = params(P("slerp.pt"))
    check(got.keys() == want.keys() and all(torch.allclose(got[k], want[k], atol=1e-5, rtol=1e-4) for k in want),
          "SLERP of models fine-tuned in Python as computed by Python (float32)")

    # 2. A swarm directory updated in place (accelerated PSO), written to another directory.
    rc, err = nyto("run", os.path.join(RULES, "apso.nyto"), "--load", "x=" + P("swarm"),
                   "--load", "gbest=" + P("base.pt"), "--set", "alpha=0.25",
                   "--save", "x=" + P("swarm_out"))
    check(rc == 0, f"apso on a swarm directory exits 0 ({err.strip()})")
    check(sorted(os.listdir(P("swarm_out"))) == ["member0.pt", "member1.pt", "member2.pt"],
          "swarm saved with the member file names")
    for i in range(3):
        xs = params(P("swarm", f"member{i}.pt"))
        want = {k: 0.75 * xs[k] + 0.25 * b[k] for k in xs}
        check(close(params(P("swarm_out", f"member{i}.pt")), want), f"member {i} as computed by Python")

    # 3. An output particle of a swarm rule: net2 = 0.5*net + 10 for every member, a new swarm.
    rc, err = nyto("run", os.path.join(RULES, "scale.nyto"), "--load", "net=" + P("swarm"),
                   "--save", "net2=" + P("scaled"))
    check(rc == 0, f"scale on a swarm exits 0 ({err.strip()})")
    for i in range(3):
        xs = params(P("swarm", f"member{i}.pt"))
        check(close(params(P("scaled", f"member{i}.pt")), {k: 0.5 * v + 10 for k, v in xs.items()}),
              f"scaled member {i}")

    # 4. Tied weights stay one parameter: computed once, saved as one tensor under both paths.
    torch.jit.save(torch.jit.script(Tied()), P("tied.pt"))
    rc, err = nyto("run", os.path.join(RULES, "scale.nyto"), "--load", "net=" + P("tied.pt"),
                   "--save", "net2=" + P("tied2.pt"))
    check(rc == 0, f"scale on a model with tied weights exits 0 ({err.strip()})")
    t0, t2 = torch.jit.load(P("tied.pt")), torch.jit.load(P("tied2.pt"))
    check(close(params(P("tied2.pt")), {k: 0.5 * v + 10 for k, v in params(P("tied.pt")).items()}),
          "tied model's parameters as computed by Python")
    check(t2.a.weight.data_ptr() == t2.b.weight.data_ptr(), "the tie survives the round trip")

    # 5. Bad input: exit codes, and nothing written or changed.
    bad = [
        ("different structures", 2, "E0502",
         ["--load", "base=" + P("base.pt"), "--load", "ft_a=" + P("ft_a.pt"), "--load",
          "ft_b=" + P("other.pt")]),
        ("a state_dict, not TorchScript", 1, "torch.jit.save",
         ["--load", "base=" + P("state_dict.pt"), "--load", "ft_a=" + P("ft_a.pt"), "--load",
          "ft_b=" + P("ft_b.pt")]),
        ("a truncated archive", 1, "neither a nyto checkpoint nor a TorchScript archive",
         ["--load", "base=" + P("truncated.pt"), "--load", "ft_a=" + P("ft_a.pt"), "--load",
          "ft_b=" + P("ft_b.pt")]),
    ]
    with open(P("base.pt"), "rb") as fh, open(P("truncated.pt"), "wb") as out:
        out.write(fh.read()[:1000])
    for what, code, message, args in bad:
        before = snapshot(tmp)
        rc, err = nyto("run", os.path.join(RULES, "merge.nyto"), *args,
                       "--save", "merged=" + P("merged2.pt"))
        check(rc == code and message in err, f"{what}: exit {rc} (want {code}), '{message}' in: {err.strip()}")
        check(snapshot(tmp) == before, f"{what}: nothing written")

    # 6. Per-member vectors saved by torch.save: member i of the swarm gets value i.
    with open(P("add.nyto"), "w") as fh:
        fh.write("x = x + f\n")
    for dtype in [torch.float32, torch.float64, torch.int64, torch.float16]:
        f = torch.tensor([1, -2, 3], dtype=dtype)
        torch.save(f, P("f.pt"))
        rc, err = nyto("run", P("add.nyto"), "--load", "x=" + P("swarm"), "--load", "f=" + P("f.pt"),
                       "--save", "x=" + P("added"))
        check(rc == 0, f"a {dtype} vector of torch.save exits 0 ({err.strip()})")
        for i in range(3):
            xs = params(P("swarm", f"member{i}.pt"))
            check(close(params(P("added", f"member{i}.pt")), {k: v + float(f[i]) for k, v in xs.items()}),
                  f"{dtype}: member {i} + f[{i}]")
    torch.save(torch.ones(2, 3), P("matrix.pt"))
    torch.save(torch.ones(4), P("four.pt"))
    for what, code, message, path in [
            ("a 2-D tensor", 2, "holds a tensor of shape [2, 3]", P("matrix.pt")),
            ("4 values for 3 members", 2, "holds 4 values for a swarm of 3 members ('x')", P("four.pt")),
            ("a state_dict", 1, "torch.jit.save(torch.jit.script(model), path)", P("state_dict.pt"))]:
        before = snapshot(tmp)
        rc, err = nyto("run", P("add.nyto"), "--load", "x=" + P("swarm"), "--load", "f=" + path,
                       "--save", "x=" + P("added2"))
        check(rc == code and message in err, f"{what}: exit {rc} (want {code}), '{message}' in: {err.strip()}")
        check(snapshot(tmp) == before, f"{what}: nothing written")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("all TorchScript round-trip checks passed")
