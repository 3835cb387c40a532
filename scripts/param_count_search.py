"""Which CNN-(B)LSTM layouts have a given parameter count? The evidence behind conf/model/m4.yaml and m6.yaml.

    python scripts/param_count_search.py                     # targets 64,900 (m4) and 133,316 (m6)
    python scripts/param_count_search.py --targets 64900 --broad

The paper gives m4 = 64,900 and m6 = 133,316 parameters, but its layer tables (supplementary Tables 14, 16)
are not available here. This script counts parameters by layer arithmetic (checked against Keras for every
shipped config in tests/test_models.py) for

1. the *neighbours* of m1: every variant that changes m1 in one respect — one block's filters, kernel or
   pooling (pool, stride), all filters scaled x0.5 / x2, or the recurrent layer (LSTM/BiLSTM, 3/6 units);
2. with ``--broad``, a wide space: 1-4 conv blocks, non-decreasing filters 8-128, kernels 3/5/7 (first
   block) and 3/5 (later), pools none/(2,1)/(2,2)/(3,1)/(3,2)/(4,2)/(4,4), BatchNorm after the first block,
   (B)LSTM 3/6 — and prints how many layouts hit each target and which kernel/filter patterns they share.
"""
from __future__ import annotations

import argparse
import itertools
from collections import Counter

FRAMES, N_MELS, N_WINDOWS, N_CLASSES = 261, 128, 9, 5
M1 = ((16, 5, (4, 2)), (32, 3, (2, 2)), (64, 3, (2, 1)))          # (filters, kernel, (pool, stride))
RNNS = [(u, bi) for u in (3, 6) for bi in (False, True)]


def cnn(blocks) -> tuple[int, int] | None:
    """(parameters, flattened features per window) of valid-padding conv blocks, BatchNorm after block 0."""
    h, w, c, params = FRAMES // N_WINDOWS, N_MELS, 1, 0
    for i, (f, k, pool) in enumerate(blocks):
        h, w = h - k + 1, w - k + 1
        if h <= 0 or w <= 0:
            return None
        params += k * k * c * f + f + (4 * f if i == 0 else 0)
        c = f
        if pool:
            p, s = pool
            h, w = (h - p) // s + 1, (w - p) // s + 1
            if h <= 0 or w <= 0:
                return None
    return params, h * w * c


def total(blocks, units: int, bidirectional: bool) -> int | None:
    body = cnn(blocks)
    if body is None:
        return None
    params, feats = body
    lstm = 4 * (units * (feats + units) + units) * (2 if bidirectional else 1)
    return params + lstm + units * (2 if bidirectional else 1) * N_CLASSES + N_CLASSES


def describe(blocks, units, bi) -> str:
    convs = " → ".join(f"conv{f} {k}x{k}" + (f" pool{p[0]} s{p[1]}" if p else "") for f, k, p in blocks)
    return f"{convs} | {'BiLSTM' if bi else 'LSTM'}({units})"


def neighbours():
    """m1 changed in exactly one respect, with a label saying which."""
    pools = [None, (2, 1), (2, 2), (3, 1), (3, 2), (4, 2), (4, 4)]
    for i, (f, k, p) in enumerate(M1):
        for nf in (8, 16, 32, 64, 128):
            if nf != f:
                yield f"block {i} filters {f}→{nf}", M1[:i] + ((nf, k, p),) + M1[i + 1:], 3, False
        for nk in (3, 5, 7):
            if nk != k:
                yield f"block {i} kernel {k}→{nk}", M1[:i] + ((f, nk, p),) + M1[i + 1:], 3, False
        for npool in pools:
            if npool != p:
                yield f"block {i} pool {p}→{npool}", M1[:i] + ((f, k, npool),) + M1[i + 1:], 3, False
    for scale in (0.5, 2):
        yield f"all filters x{scale}", tuple((int(f * scale), k, p) for f, k, p in M1), 3, False
    for units, bi in RNNS:
        if (units, bi) != (3, False):
            yield f"recurrent {'BiLSTM' if bi else 'LSTM'}({units})", M1, units, bi


def broad():
    firsts, laters = (3, 5, 7), (3, 5)
    pools = [None, (2, 1), (2, 2), (3, 1), (3, 2), (4, 2), (4, 4)]
    for n in range(1, 5):
        for filters in itertools.combinations_with_replacement((8, 16, 32, 64, 128), n):
            for kernels in itertools.product(firsts, *([laters] * (n - 1))):
                for pl in itertools.product(pools, repeat=n):
                    blocks = tuple(zip(filters, kernels, pl))
                    body = cnn(blocks)
                    if body is None:
                        continue
                    for units, bi in RNNS:
                        yield blocks, units, bi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", type=int, default=[64_900, 133_316])
    ap.add_argument("--broad", action="store_true", help="also search the wide space (about a minute)")
    a = ap.parse_args(argv)
    print(f"m1 = {total(M1, 3, False):,} parameters ({describe(M1, 3, False)})")
    for target in a.targets:
        hits = [(label, b, u, bi) for label, b, u, bi in neighbours() if total(b, u, bi) == target]
        print(f"\n{target:,}: {len(hits)} single-change neighbour(s) of m1")
        for label, b, u, bi in hits:
            print(f"  {label}: {describe(b, u, bi)}")
    if a.broad:
        found = {t: [] for t in a.targets}
        for blocks, units, bi in broad():
            t = total(blocks, units, bi)
            if t in found:
                found[t].append((blocks, units, bi))
        for target, hits in found.items():
            keep_pools = [h for h in hits if len(h[0]) == 3 and [b[2] for b in h[0]] == [b[2] for b in M1]]
            print(f"\n{target:,}: {len(hits)} layout(s) in the broad space; "
                  f"{len(keep_pools)} keep m1's three pools")
            for name, key in (("kernels", lambda h: tuple(b[1] for b in h[0])),
                              ("filters", lambda h: tuple(b[0] for b in h[0])),
                              ("recurrent", lambda h: f"{'BiLSTM' if h[2] else 'LSTM'}({h[1]})")):
                print(f"  by {name}: " + ", ".join(f"{k}: {v}" for k, v in Counter(map(key, hits)).most_common()))
            for h in keep_pools:
                print(f"  keeps m1's pools: {describe(*h)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
