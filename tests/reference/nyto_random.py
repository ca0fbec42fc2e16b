"""nyto's random stream, re-implemented with numpy from its documentation.

An independent reference for backend/Random.h (version 0 draws: rand(), randn()) and for the
version-1 layouts of docs/language.md (member draws mrand()/mrandn(), keyed draws rand(k, j) /
randn(k, j), and the permutation behind pick(k)). Every draw is a pure function of a Philox4x32-10
counter and key, so numpy can regenerate any of them: the reference algorithms in this folder take
their draws as arguments, and a test feeds them what these functions return.

Everything is vectorized: counters are numpy arrays (broadcast against each other), keys are
Python integers. Integer arithmetic is done in uint64 holding 32-bit values, masked where C++
would wrap. Floating-point code repeats Random.h's operation sequence op for op in the draw's
dtype (numpy float32 arithmetic rounds every operation to float32, like C++ without FMA
contraction), so the values are meant to match nyto's bit for bit.
"""
import numpy as np

MASK32 = 0xFFFFFFFF
_U64 = np.uint64

# Philox4x32 multipliers and Weyl key increments (Salmon et al., SC 2011; Random123).
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0, c1, c2, c3) (arrays or ints, broadcast) under key (k0, k1)
    (ints). Returns a uint32 array of shape (4, *broadcast shape): the four output words."""
    c = [np.asarray(x, dtype=_U64) & _U64(MASK32) for x in np.broadcast_arrays(c0, c1, c2, c3)]
    c0, c1, c2, c3 = c
    k0, k1 = int(k0) & MASK32, int(k1) & MASK32
    m0, m1, lo = _U64(PHILOX_M0), _U64(PHILOX_M1), _U64(MASK32)
    for _ in range(10):
        p0 = m0 * c0  # 32 x 32 -> 64 bits: never overflows uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = ((p1 >> _U64(32)) ^ c1 ^ _U64(k0), p1 & lo,
                          (p0 >> _U64(32)) ^ c3 ^ _U64(k1), p0 & lo)
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


# ------------------------------------------------------------------ words -> numbers

_F = np.float32
_TWO_M24_F32 = _F(2.0**-24)


def _bits53(hi, lo):
    """The top 53 bits of the 64-bit word (hi << 32) | lo, as uint64."""
    return ((hi.astype(_U64) << _U64(32)) | lo.astype(_U64)) >> _U64(11)


def uniform_f32(words, word=0):
    """Uniform [0, 1) float32 from one word: its top 24 bits, exact in float32."""
    return (words[word] >> np.uint32(8)).astype(_F) * _TWO_M24_F32


def uniform_f64(words):
    """Uniform [0, 1) float64 from words 0 and 1: their top 53 bits, exact in float64."""
    return _bits53(words[0], words[1]).astype(np.float64) * 2.0**-53


# Coefficient tables of Random.h, each entry rounded as C++ rounds it: a float literal once to
# float32, then one float32 division. (Python parses a literal to float64 first; for these
# constants that double rounding gives the same float32.)
_LOG_COEF_F32 = [_F(1.0)] + [_F(1.0) / _F(2 * i + 1) for i in range(1, 6)]
_LOG_COEF_F64 = [1.0 / (2 * i + 1) for i in range(12)]
_FACT = [1.0, 6.0, 120.0, 5040.0, 362880.0, 39916800.0, 6227020800.0, 1307674368000.0,
         355687428096000.0, 121645100408832000.0, 51090942171709440000.0,
         25852016738884976640000.0, 15511210043330985984000000.0]  # (2k+1)!, as C++ literals
_SIN_COEF_F32 = [_F((-1.0) ** k) / _F(_FACT[k]) for k in range(8)]
_SIN_COEF_F64 = [(-1.0) ** k / _FACT[k] for k in range(13)]
_SQRT2_F32, _SQRT2_F64 = _F(1.41421356237309504880), 1.41421356237309504880
_LN2_F32, _LN2_F64 = _F(0.693147180559945309417), 0.693147180559945309417
_TWO_PI_F32, _TWO_PI_F64 = _F(6.28318530717958647693), 6.28318530717958647693


def _horner(z, coef):
    p = coef[-1]
    for c in reversed(coef[:-1]):
        p = p * z + c
    return p


def log_f32(x):
    """Random.h's log_f32 for positive normal float32 x: x = m 2^e, log m = 2 atanh(s)."""
    bits = np.asarray(x, dtype=_F).view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - 127
    m = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(_F)
    big = m > _SQRT2_F32
    m = np.where(big, m * _F(0.5), m)
    e = np.where(big, e + 1, e)
    f = m - _F(1.0)
    s = f / (_F(2.0) + f)
    p = _horner(s * s, _LOG_COEF_F32)
    return e.astype(_F) * _LN2_F32 + (_F(2.0) * s) * p


def log_f64(x):
    """Random.h's log_f64 for positive normal float64 x."""
    bits = np.asarray(x, dtype=np.float64).view(_U64)
    e = (bits >> _U64(52)).astype(np.int64) - 1023
    m = ((bits & _U64(0x000FFFFFFFFFFFFF)) | _U64(0x3FF0000000000000)).view(np.float64)
    big = m > _SQRT2_F64
    m = np.where(big, m * 0.5, m)
    e = np.where(big, e + 1, e)
    f = m - 1.0
    s = f / (2.0 + f)
    p = _horner(s * s, _LOG_COEF_F64)
    return e.astype(np.float64) * _LN2_F64 + (2.0 * s) * p


def cos2pi_f32(u):
    """Random.h's cos(2 pi u) for u in [0, 1): -sin(2 pi (1/4 - |u - 1/2|)), Taylor series."""
    b = _F(0.25) - np.abs(u - _F(0.5))
    x = _TWO_PI_F32 * b
    return -(x * _horner(x * x, _SIN_COEF_F32))


def cos2pi_f64(u):
    b = 0.25 - np.abs(u - 0.5)
    x = _TWO_PI_F64 * b
    return -(x * _horner(x * x, _SIN_COEF_F64))


def normal_f32(words, word=0):
    """Standard normal float32 by Box-Muller on words `word` and `word + 1`; u1 in (0, 1]."""
    u1 = ((words[word] >> np.uint32(8)) + np.uint32(1)).astype(_F) * _TWO_M24_F32
    u2 = (words[word + 1] >> np.uint32(8)).astype(_F) * _TWO_M24_F32
    return np.sqrt(_F(-2.0) * log_f32(u1)) * cos2pi_f32(u2)


def normal_f64(words):
    """Standard normal float64 by Box-Muller on all four words."""
    u1 = (_bits53(words[0], words[1]) + _U64(1)).astype(np.float64) * 2.0**-53
    u2 = _bits53(words[2], words[3]).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * log_f64(u1)) * cos2pi_f64(u2)


def _key(seed):
    return int(seed) & MASK32, (int(seed) >> 32) & MASK32


# ------------------------------------------------------------------ version 0: rand(), randn()

def v0_draw(seed, invocation, group, site, normal, member, element, dtype):
    """rand() (normal=False) or randn() at call site `site` (numbered 0, 1, ... in source order)
    for members `member` and elements `element` (arrays, broadcast; element: index in the
    member's flat storage of group `group`, the group of the parameter's (dtype, device)).
    Counter (call, member, invocation, group << 16 | site), the call and slot of the lane-major
    layout (lane_major)."""
    f64 = _f64(dtype)
    element, member = np.broadcast_arrays(np.asarray(element, dtype=np.int64), np.asarray(member, dtype=np.int64))
    c3 = ((int(group) << 16) | int(site)) & MASK32
    call, slot, lane, partner = lane_major(element, f64)

    def words(c):
        return philox4x32_10(c, member, int(invocation) & MASK32, c3, *_key(seed))

    return block_draw(words(call), slot, normal, f64, lane, words(partner) if normal and not f64 else None)


def _f64(dtype):
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"nyto draws are float32 or float64, not {dtype}")
    return np.dtype(dtype) == np.float64


def lane_major(element, f64):
    """Element e's Philox call and slot: S = 5 (float32) or 2 (float64) draws per call, blocks of
    B = 16 S elements served by 16 calls, call = 16 (e // B) + e % 16 (mod 2^32), slot
    (e % B) // 16. Also the lane e % 16 and the call of lane (e % 16) ^ 8 of the same block (a
    float32 normal of slot 4 pairs lanes l and l + 8)."""
    B = 32 if f64 else 80
    e = np.asarray(element, dtype=np.int64)
    lane = e % 16
    base = 16 * (e // B)
    return ((base + lane) & MASK32, (e % B) // 16, lane, (base + (lane ^ 8)) & MASK32)


def block_draw(w, slot, normal, f64, lane=None, wp=None):
    """The draw of slot `slot` (an array) of Philox words `w` (4 x shape):
    float32 uniform: slot s < 4 the top 24 bits of word s, slot 4 the low 24 bits of
      r0 ^ r1 << 8 ^ r2 << 16 (the words' low bytes, which no other slot reads), times 2^-24;
    float32 normal: Box-Muller on those 24-bit values, slots (0, 1) and (2, 3) paired within a
      call (u1 from the even slot), slot 4 pairing lane l < 8 (u1) with lane l + 8 (u2) of the
      block (`lane`; `wp`: the words of lane l ^ 8's call);
    float64 uniform: words 2s, 2s+1 (53 bits); float64 normal: Box-Muller on all four words;
    a normal is r cos(2 pi u2) for even s (slot 4: lanes 0-7) and r sin(2 pi u2) for odd s
    (slot 4: lanes 8-15)."""
    def word(i):  # word i (an array of word indices, per element) of each element's call
        return np.take_along_axis(w, np.asarray(i)[None], axis=0)[0]

    if f64:
        if not normal:
            return _bits53(word(2 * slot), word(2 * slot + 1)).astype(np.float64) * 2.0**-53
        u1 = (_bits53(w[0], w[1]) + _U64(1)).astype(np.float64) * 2.0**-53
        u2 = _bits53(w[2], w[3]).astype(np.float64) * 2.0**-53
        r = np.sqrt(-2.0 * log_f64(u1))
        return np.where(slot == 1, r * sin2pi_f64(u2), r * cos2pi_f64(u2))

    def fifth(x):
        return (x[0] ^ (x[1] << np.uint32(8)) ^ (x[2] << np.uint32(16))) & np.uint32(0xFFFFFF)

    top = np.minimum(slot, 3)
    if not normal:
        bits = np.where(slot < 4, word(top) >> np.uint32(8), fifth(w))
        return bits.astype(_F) * _TWO_M24_F32
    pair = 2 * (top // 2)
    low = lane < 8
    a = np.where(slot < 4, word(pair) >> np.uint32(8), np.where(low, fifth(w), fifth(wp)))
    b = np.where(slot < 4, word(pair + 1) >> np.uint32(8), np.where(low, fifth(wp), fifth(w)))
    sine = np.where(slot < 4, slot % 2 == 1, ~low)
    u1 = (a + np.uint32(1)).astype(_F) * _TWO_M24_F32
    u2 = b.astype(_F) * _TWO_M24_F32
    r = np.sqrt(_F(-2.0) * log_f32(u1))
    return np.where(sine, r * sin2pi_f32(u2), r * cos2pi_f32(u2)).astype(_F)


# ------------------------------------------------------------------ version 1

MEMBER_GROUP = 0xFFFF  # c3's high half for member draws and pick: no storage group has it
KEYED_BIT = 0x8000     # c3 bit of keyed draws (and of pick, within MEMBER_GROUP)


def member_draw(seed, invocation, site, normal, members):
    """mrand() / mrandn() at random site `site`: one float64 per member (an array of M),
    counter (0, m, invocation, 0xFFFF << 16 | site)."""
    m = np.arange(members)
    words = philox4x32_10(0, m, int(invocation) & MASK32, (MEMBER_GROUP << 16) | int(site),
                          *_key(seed))
    return normal_f64(words) if normal else uniform_f64(words)


def sin2pi_f32(u):
    """sin(2 pi u) for u in [0, 1) as cos(2 pi (u - 1/4 mod 1)); the shift is exact on the grid."""
    return cos2pi_f32(np.where(u >= _F(0.25), u - _F(0.25), u + _F(0.75)).astype(_F))


def sin2pi_f64(u):
    return cos2pi_f64(np.where(u >= 0.25, u - 0.25, u + 0.75))


def keyed_draw(seed, k, j, group, normal, element, dtype):
    """rand(k, j) / randn(k, j) for elements `element` of storage group `group`: the lane-major
    layout of v0_draw with counter (call, j, k, group << 16 | 0x8000 | normal). k and j (ints or
    arrays, broadcast against `element`) must be integers in [0, 2^32). No invocation, member or
    site: the same (seed, k, j) gives the same noise in every rule and run."""
    for name, v in (("k", k), ("j", j)):
        v = np.asarray(v)
        if np.any(v < 0) or np.any(v > MASK32) or np.any(v != np.floor(v)):
            raise ValueError(f"keyed draw: {name} must be an integer in [0, 2^32)")
    f64 = _f64(dtype)
    element, k, j = np.broadcast_arrays(np.asarray(element, dtype=np.int64), np.asarray(k, dtype=np.int64),
                                        np.asarray(j, dtype=np.int64))
    c3 = (((int(group) << 16) | KEYED_BIT | int(bool(normal))) & MASK32)
    call, slot, lane, partner = lane_major(element, f64)

    def words(c):
        return philox4x32_10(c, j, k, c3, *_key(seed))

    return block_draw(words(call), slot, normal, f64, lane, words(partner) if normal and not f64 else None)


def pick_table(seed, invocation, members, picks):
    """The choices behind pick(0) .. pick(picks - 1): an int array (members, picks) whose row m
    holds distinct members other than m. Per member, a partial Fisher-Yates shuffle of the other
    members in ascending order; step i swaps entry i with entry r = i + floor(u_i (M-1-i)),
    u_i = uniform_f64 of counter (i, m, invocation, 0xFFFF << 16 | 0x8000). All pick calls of a
    rule share the table (`picks` = 1 + the largest k the rule uses)."""
    M, K = int(members), int(picks)
    if K > M - 1:
        raise ValueError(f"pick({K - 1}) needs at least {K + 1} members, got {M}")
    m = np.arange(M)
    slots = np.arange(M - 1)
    order = slots[None, :] + (slots[None, :] >= m[:, None])  # row m: 0..M-1 without m
    for i in range(K):
        u = uniform_f64(philox4x32_10(i, m, int(invocation) & MASK32,
                                      (MEMBER_GROUP << 16) | KEYED_BIT, *_key(seed)))
        r = np.minimum(i + np.floor(u * (M - 1 - i)).astype(np.int64), M - 2)
        a, b = order[m, i].copy(), order[m, r].copy()
        order[m, r] = a  # swap entries i and r (r == i leaves the row as it was)
        order[m, i] = b
    return order[:, :K]


def ulp_distance(a, b):
    """Distance in units in the last place between same-dtype float arrays (0 for +0 vs -0)."""
    a, b = np.asarray(a), np.asarray(b)
    ints = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[a.dtype]

    def ordered(x):  # map floats onto integers monotonically, +0 and -0 onto the same one
        i = x.view(ints).astype(np.int64)
        return np.where(i < 0, np.iinfo(ints).min - i, i)

    return np.abs(ordered(a) - ordered(b))
