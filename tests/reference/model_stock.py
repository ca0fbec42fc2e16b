"""Model Stock in numpy, tensor by tensor: the reference of examples/rules/model_stock.nyto.

Jang, Yun, Han: "Model Stock: All we need is just a few fine-tuned models", ECCV 2024
(arXiv:2403.19522). Written from mergekit (github arcee-ai/mergekit at a6e4028),
mergekit/merge_methods/model_stock.py, ModelStockMergeTask.execute with filter_wise = False (its
default): per tensor, flattened, offsets w_i - w_0; cos_theta = mean over pairs i < j of
(o_i . o_j) / clamp(|o_i| |o_j|, min 1e-6), each clamped to [-1, 1]; t = N cos / (1 + (N - 1) cos);
w_h = t * mean(w_i) + (1 - t) * w_0. Needs N >= 2 fine-tuned models. float64 here (mergekit: the
tensors' dtype).
"""
import numpy as np


def model_stock_tensor(w_0, ws):
    out_shape = np.shape(w_0)
    w_0 = np.asarray(w_0, dtype=np.float64).reshape(-1)
    ws = [np.asarray(w, dtype=np.float64).reshape(-1) for w in ws]
    if len(ws) < 2:
        raise ValueError("ModelStockMerge requires at least 3 models (base plus two+ others)")
    offsets = [w - w_0 for w in ws]
    cos_thetas = []
    for i, w_0_offset in enumerate(offsets):
        for j in range(i + 1, len(offsets)):
            w_1_offset = offsets[j]
            norm_product = np.linalg.norm(w_0_offset) * np.linalg.norm(w_1_offset)
            cos_theta = np.clip((w_0_offset * w_1_offset).sum() / max(norm_product, 1e-6), -1, 1)
            cos_thetas.append(cos_theta)
    cos_theta = np.mean(cos_thetas)
    N = len(ws)
    t = (N * cos_theta) / (1 + (N - 1) * cos_theta)
    w_avg = sum(ws) / len(ws)
    w_h = t * w_avg + (1 - t) * w_0
    return w_h.reshape(out_shape)


def model_stock(base, fts):
    """base: list of arrays; fts: list (models) of lists of arrays."""
    return [model_stock_tensor(b, [ft[t] for ft in fts]) for t, b in enumerate(base)]


def selftest(check):
    rng = np.random.default_rng(9)
    w0 = rng.normal(size=50)
    # Two offsets at 60 degrees of equal norm: cos = 1/2, t = 2/3 (the paper's two-model case).
    e1, e2 = np.zeros(50), np.zeros(50)
    e1[0], e2[0], e2[1] = 1.0, 0.5, np.sqrt(0.75)
    r = model_stock_tensor(w0, [w0 + 2 * e1, w0 + 2 * e2])
    check(np.allclose(r, w0 + (2 / 3) * (e1 + e2)), "model_stock: two models at 60 degrees, t = 2/3")
    # Orthogonal offsets: cos = 0, t = 0 -> the base.
    r = model_stock_tensor(w0, [w0 + e1, w0 + np.eye(50)[2], w0 + np.eye(50)[3]])
    check(np.allclose(r, w0), "model_stock: orthogonal offsets give the base")
    # Identical offsets: cos = 1, t = 1 -> their mean.
    o = rng.normal(size=50)
    r = model_stock_tensor(w0, [w0 + o, w0 + o, w0 + o])
    check(np.allclose(r, w0 + o), "model_stock: equal offsets give their mean")
    # Mean pairwise cosine = (|sum u|^2 - sum |u|^2) / (N (N - 1)) (what the rule computes).
    os_ = [rng.normal(size=50) for _ in range(4)]
    u = [x / np.linalg.norm(x) for x in os_]
    c = (np.sum(sum(u) ** 2) - sum(np.sum(x * x) for x in u)) / 12
    t = 4 * c / (1 + 3 * c)
    r = model_stock_tensor(w0, [w0 + x for x in os_])
    check(np.allclose(r, t * (w0 + sum(os_) / 4) + (1 - t) * w0), "model_stock: pairwise mean = norm identity")


if __name__ == "__main__":
    fails = []
    selftest(lambda ok, what: (print(("ok   " if ok else "FAIL ") + what), ok or fails.append(what)))
    raise SystemExit(1 if fails else 0)
