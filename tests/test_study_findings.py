"""recipes/study/findings.py: the verdicts on the paper's attack ranking say only what the intervals support."""
from __future__ import annotations

import importlib.util

import pandas as pd

from tests.helpers import ROOT


def _findings():
    spec = importlib.util.spec_from_file_location("study_findings", ROOT / "recipes" / "study" / "findings.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _df(rows):
    return pd.DataFrame(rows, columns=["other", "diff", "lo", "hi", "p", "p_holm"])


def test_rank_verdicts():
    v = _findings().rank_verdict
    # JSMA below every other attack after Holm: supported
    assert v(_df([("fgsm", -0.4, -0.6, -0.2, 0.001, 0.002), ("bim", -0.3, -0.5, -0.1, 0.002, 0.002)]),
             True).startswith("supported")
    # one attack significantly lower than JSMA: contradicted, naming it
    out = v(_df([("fgsm", 0.4, 0.2, 0.6, 0.001, 0.002), ("bim", -0.3, -0.5, -0.1, 0.002, 0.002)]), True)
    assert out.startswith("contradicted (fgsm lower")
    # ties, a CI that excludes 0 without Holm, and overlap: not shown, each named
    out = v(_df([("fgsm", 0.0, 0.0, 0.0, 1.0, 1.0), ("bim", -0.2, -0.4, -0.05, 0.06, 0.3),
                 ("deepfool", -0.1, -0.3, 0.1, 0.5, 1.0)]), True)
    assert out.startswith("not shown: tied with fgsm (the same accuracy on every segment)")
    assert "below bim beyond the CI but not after Holm" in out and "not distinguishable from deepfool" in out
    # weakest: PixelAttack above all after Holm
    assert v(_df([("fgsm", 0.5, 0.3, 0.7, 0.001, 0.003)]), False).startswith("supported")
    assert v(_df([("fgsm", -0.5, -0.7, -0.3, 0.001, 0.003)]), False).startswith("contradicted (fgsm higher")
