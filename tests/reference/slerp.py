"""SLERP of two models in numpy, tensor by tensor: the reference of examples/rules/slerp.nyto.

Shoemake: "Animating Rotation with Quaternion Curves", SIGGRAPH 1985. Written from mergekit
(github arcee-ai/mergekit at a6e4028), mergekit/merge_methods/slerp.py, function slerp()
(DOT_THRESHOLD = 0.9995, eps = 1e-8) and normalize(), applied to every tensor with one t
(SlerpTask: the base model is v0). mergekit converts to float32 numpy; this computes in float64.
"""
import numpy as np


def lerp(t, v0, v1):
    return (1 - t) * v0 + t * v1


def normalize(v, eps):
    norm_v = np.linalg.norm(v)
    if norm_v > eps:
        v = v / norm_v
    return v


def slerp_tensor(t, v0, v1, DOT_THRESHOLD=0.9995, eps=1e-8):
    """mergekit's slerp() on one tensor pair (float64). Returns (result, lerp branch taken)."""
    v0 = np.asarray(v0, dtype=np.float64)
    v1 = np.asarray(v1, dtype=np.float64)
    v0_copy = np.copy(v0)
    v1_copy = np.copy(v1)
    v0 = normalize(v0, eps)
    v1 = normalize(v1, eps)
    dot = np.sum(v0 * v1)
    if np.abs(dot) > DOT_THRESHOLD:
        return lerp(t, v0_copy, v1_copy), True
    theta_0 = np.arccos(dot)
    sin_theta_0 = np.sin(theta_0)
    theta_t = theta_0 * t
    sin_theta_t = np.sin(theta_t)
    s0 = np.sin(theta_0 - theta_t) / sin_theta_0
    s1 = sin_theta_t / sin_theta_0
    return s0 * v0_copy + s1 * v1_copy, False


def dot(v0, v1, eps=1e-8):
    """The dot product slerp_tensor compares with the threshold (for choosing test cases)."""
    return float(np.sum(normalize(np.asarray(v0, np.float64), eps) * normalize(np.asarray(v1, np.float64), eps)))


def slerp(a, b, t=0.5):
    """a, b: lists of arrays (a = mergekit's base model). Returns the merged list."""
    return [slerp_tensor(t, x, y)[0] for x, y in zip(a, b)]


def selftest(check):
    rng = np.random.default_rng(3)
    # Unit vectors at angle theta: slerp stays on the circle at angle t * theta.
    th = 1.1
    a, b = np.array([1.0, 0.0]), np.array([np.cos(th), np.sin(th)])
    r, lin = slerp_tensor(0.3, a, b)
    check(not lin and np.allclose(r, [np.cos(0.3 * th), np.sin(0.3 * th)]),
          "slerp: unit vectors interpolate along the arc")
    x = rng.normal(size=(5, 6))
    y = rng.normal(size=(5, 6))
    check(np.allclose(slerp_tensor(0.0, x, y)[0], x) and np.allclose(slerp_tensor(1.0, x, y)[0], y),
          "slerp: t = 0 gives the base, t = 1 the other")
    r, lin = slerp_tensor(0.25, x, 3 * x + 1e-4 * y)
    check(lin and np.allclose(r, 0.75 * x + 0.25 * (3 * x + 1e-4 * y)), "slerp: colinear -> lerp")
    r, lin = slerp_tensor(0.25, x, -2 * x)
    check(lin, "slerp: anti-colinear (dot < -0.9995) -> lerp")
    z = np.zeros(4)
    r, lin = slerp_tensor(0.5, z, np.ones(4))
    check(not lin and np.allclose(r, np.sin(np.pi / 4) * np.ones(4)),
          "slerp: a zero tensor is not normalized: dot 0, theta = pi/2")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
