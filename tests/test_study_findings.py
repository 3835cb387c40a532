"""recipes/study/findings.py: the verdicts on the paper's attack ranking say only what the intervals support."""
from __future__ import annotations

import pandas as pd

from tests.helpers import load_script


def _findings():
    return load_script("recipes/study/findings.py", "study_findings")


def _df(rows):
    return pd.DataFrame(rows, columns=["other", "diff", "lo", "hi", "p", "p_holm"])


def test_rank_verdicts():
    """Ranked on the success rate on correctly classified segments: strongest = highest."""
    v = _findings().rank_verdict
    # JSMA above every other attack after Holm: supported
    assert v(_df([("fgsm", 0.4, 0.2, 0.6, 0.001, 0.002), ("bim", 0.3, 0.1, 0.5, 0.002, 0.002)]),
             True).startswith("supported")
    # one attack significantly stronger than JSMA: contradicted, naming it
    out = v(_df([("fgsm", -0.4, -0.6, -0.2, 0.001, 0.002), ("bim", 0.3, 0.1, 0.5, 0.002, 0.002)]), True)
    assert out.startswith("contradicted (fgsm stronger")
    # ties, a CI that excludes 0 without Holm, and overlap: not shown, each named
    out = v(_df([("fgsm", 0.0, -0.07, 0.07, float("nan"), float("nan")), ("bim", 0.2, 0.05, 0.4, 0.06, 0.3),
                 ("deepfool", 0.1, -0.1, 0.3, 0.5, 1.0)]), True)
    assert out.startswith("not shown: tied with fgsm (Δ 0 [-0.07, 0.07])")
    assert "stronger than bim beyond the CI but not after Holm" in out and "not distinguishable from deepfool" in out
    # weakest: PixelAttack below all after Holm
    assert v(_df([("fgsm", -0.5, -0.7, -0.3, 0.001, 0.003)]), False).startswith("supported")
    assert v(_df([("fgsm", 0.5, 0.3, 0.7, 0.001, 0.003)]), False).startswith("contradicted (fgsm weaker")
