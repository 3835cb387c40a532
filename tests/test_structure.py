"""Structure rules of the package (issue 16): no import circles outside the report package; the config schema,
identity and locations import no pipeline stage (no pandas, TensorFlow or MLflow)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parent.parent


def _structure():
    return load_script("scripts/structure_counts.py", "structure_counts")


def test_no_import_circle_outside_the_report_package():
    s = _structure()
    graph, *_ = s.scan(ROOT)
    assert graph["ser_attacks.tune"] and "ser_attacks.app" in graph["ser_attacks.__main__"]   # the scan sees imports
    bad = [c for c in s.cycles(graph) if not all(m.startswith("ser_attacks.report") for m in c)]
    assert not bad, f"import circles: {bad}"


def test_cycle_finder_finds_a_circle():
    s = _structure()
    assert s.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_schema_and_identity_import_no_pipeline_stage():
    code = ("import sys, ser_attacks.schema, ser_attacks.identity, ser_attacks.paths; "
            "print(sorted(m for m in sys.modules if m.startswith(('ser_attacks.', 'tensorflow', 'mlflow', 'pandas'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["ser_attacks.cache", "ser_attacks.frontend", "ser_attacks.identity", "ser_attacks.paths",
                         "ser_attacks.schema"]
