#!/usr/bin/python3
"""Writes the seed inputs of every fuzz target (fuzz/*.cpp) from the repository's tests and
examples, into OUT/<target>/. Check them in through a merge, which keeps only the inputs that add
coverage:
    fuzz/make_seeds.py BUILD_DIR /tmp/seeds
    BUILD_DIR/fuzz/fuzz_NAME -merge=1 fuzz/corpus/NAME /tmp/seeds/NAME
Archives (.pt: zip files) become record lists (see fuzz/FuzzUtil.h), plus one raw copy each.
TorchScript seeds need Python's torch (Debian python3-torch); without it they are left out.
"""
import glob
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD, OUT = sys.argv[1], sys.argv[2]


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def records(path):
    """A zip archive as FuzzUtil.h's records: [u8 name len][name][u32 LE len][data]..."""
    out = b""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
            if name in ("version", ".data/version"):
                continue  # the writer adds its own
            data = z.read(info)
            out += bytes([len(name.encode())]) + name.encode() + struct.pack("<I", len(data)) + data
    return out


def from_harness(target, tmp):
    env = dict(os.environ, NYTO_FUZZ_WRITE_SEEDS=tmp)
    subprocess.run([os.path.join(BUILD, "fuzz", "fuzz_" + target)], env=env, check=True,
                   stdout=subprocess.DEVNULL)


texts = []
for pattern in ("examples/rules/*.nyto", "tests/frontend/diagnostics/*.nyto"):
    for p in sorted(glob.glob(os.path.join(ROOT, pattern))):
        texts.append((os.path.basename(p), open(p, "rb").read()))

# (a) frontend: the scripts as they are.
for name, text in texts:
    put("frontend", name, text)

# (b) pipeline: flags (f32/f64, in place, AVX2 shape) + a key + the script; and generator inputs.
for i, (name, text) in enumerate(texts):
    flags = [0x00, 0x02, 0x04, 0x0e][i % 4]
    put("pipeline", name, bytes([flags]) + struct.pack("<Q", i * 7919 + 1) + text)
for i in range(16):
    opts = bytes([i % 5, i % 4, i % 3, 10 + 5 * i, i % 5, i % 8, i % 8]) + struct.pack("<Q", i)
    put("pipeline", "gen%02d" % i, bytes([1 | (2 * (i % 8))]) + struct.pack("<Q", i) + opts)

with tempfile.TemporaryDirectory() as tmp:
    # (c) particle, swarm and TorchScript files.
    from_harness("models", tmp)
    for f in ("particle.pt", "swarm.pt"):
        put("models", f + ".rec", records(os.path.join(tmp, f)))
        put("models", f, open(os.path.join(tmp, f), "rb").read())
    script = os.path.join(tmp, "ts.pt")
    vector = os.path.join(tmp, "vector.pt")  # torch.save values (load_pickle_checked)
    nested = os.path.join(tmp, "nested.pt")
    # torch.jit.script reads the class's source: it must come from a file.
    with open(os.path.join(tmp, "net.py"), "w") as f:
        f.write(f"""
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 2)
        self.register_buffer("offset", torch.zeros(2))
    def forward(self, x):
        return torch.relu(self.fc1(x)) + self.offset
torch.manual_seed(0)
torch.jit.save(torch.jit.script(Net()), {script!r})
torch.save(torch.tensor([3.0, 1.0, 4.0, 2.0]), {vector!r})
torch.save([torch.arange(3, dtype=torch.int64), {{"a": torch.ones(2, dtype=torch.float64)}}], {nested!r})
""")
    r = subprocess.run(["/usr/bin/python3", os.path.join(tmp, "net.py")], stderr=subprocess.DEVNULL)
    if r.returncode == 0:
        put("models", "torchscript.pt.rec", records(script))
        put("models", "torchscript.pt", open(script, "rb").read())
        for f in (vector, nested):
            put("models", os.path.basename(f) + ".rec", records(f))
    else:
        print("make_seeds: no Python torch: TorchScript seeds left out", file=sys.stderr)

    # (c) training checkpoints.
    from_harness("train_checkpoint", tmp)
    for f in ("hybrid.pt", "pso.pt"):
        put("train_checkpoint", f + ".rec", records(os.path.join(tmp, f)))
        put("train_checkpoint", f, open(os.path.join(tmp, f), "rb").read())

    # (c) IDX files, plain and gzipped (byte 0 picks the file, bit 2 = gzipped): the label files
    # whole; the image files (47 MB and 7.8 MB) only as their header and one image.
    from_harness("idx", tmp)
    for f in sorted(os.listdir(tmp)):
        if "idx" not in f:
            continue
        body = open(os.path.join(tmp, f), "rb").read()
        if "images" in f:
            body = body[:1 + 16 + 784]
        put("idx", f, body)
        put("idx", f + ".gz", bytes([body[0] | 4]) + gzip.compress(body[1:], mtime=0))

# (d) REPL transcripts.
for p in sorted(glob.glob(os.path.join(ROOT, "tests/repl/*.txt"))):
    put("repl", os.path.basename(p), open(p, "rb").read())
