#!/usr/bin/env python3
"""same_archive.py A B: exit 0 if two LibTorch archives (nyto swarm/particle files) hold the same
records byte for byte. The archives' own names (taken from the file name written) are ignored,
so files saved under different names compare equal when their tensors are bit-identical."""
import sys
import zipfile


def records(path):
    with zipfile.ZipFile(path) as z:
        return {name.split("/", 1)[1]: z.read(name) for name in z.namelist()}


a, b = records(sys.argv[1]), records(sys.argv[2])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
if diff:
    print(f"{sys.argv[1]} and {sys.argv[2]} differ in: {', '.join(diff)}")
    sys.exit(1)
