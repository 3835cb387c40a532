"""report.export.merge_earlier: an export in pieces (each piece from a fresh MLflow store) keeps the earlier rows
as written, replaces a rerun configuration, and drops only the segments and models that lose their run."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ser_attacks.report.export import MODELS_FILE, RUNS_FILE, SEGMENTS_FILE, merge_earlier


def _earlier(folder):
    pd.DataFrame({"run_id": ["r1", "r2"], "tags.config_hash": ["h1", "h2"], "tags.model_run_id": ["m1", "m2"],
                  "metrics.adv_acc": ["0.30000000000000004", "0.5"]}).to_csv(folder / RUNS_FILE, index=False)
    pd.DataFrame({"run_id": ["r1", "r1", "r2"], "speaker": ["03", "03", "08"], "linf": ["0.0123457", "", "0.5"]}
                 ).to_csv(folder / SEGMENTS_FILE, index=False, compression="gzip")
    pd.DataFrame({"model_run_id": ["m1", "m2"], "test_acc": ["0.759036", "0.7"]}).to_csv(folder / MODELS_FILE,
                                                                                          index=False)


def test_merge_keeps_earlier_rows_replaces_a_rerun_and_formats_new_numbers(tmp_path):
    _earlier(tmp_path)
    runs = pd.DataFrame({"run_id": ["r3", "r4"], "tags.config_hash": ["h2", "h4"], "tags.model_run_id": ["m3", "m1"],
                         "metrics.adv_acc": [0.25, 0.125]})
    seg = pd.DataFrame({"run_id": ["r3", "r4"], "speaker": ["08", "03"], "linf": [1 / 3, np.nan]})
    models = pd.DataFrame({"model_run_id": ["m3"], "test_acc": [2 / 3]})
    r, s, m, counts = merge_earlier(tmp_path, runs, seg, models)
    assert counts == (1, 0, 1)                                     # r2 ran again as r3 (same config_hash h2)
    assert list(r.run_id) == ["r1", "r3", "r4"] and r["metrics.adv_acc"].iloc[0] == "0.30000000000000004"
    assert list(s.run_id) == ["r1", "r1", "r3", "r4"]              # r2's segment went with its run
    assert list(s.speaker) == ["03", "03", "08", "03"]             # text kept: "03" stays "03"
    assert list(s.linf) == ["0.0123457", "", "0.333333", ""]       # new numbers as to_csv(float_format) writes them
    assert list(m.model_run_id) == ["m1", "m3"]                    # m2 is attacked by no kept run; m1 by r1 and r4
    assert list(m.test_acc) == ["0.759036", "0.666667"]


def test_merge_into_an_empty_folder_is_the_new_export(tmp_path):
    runs = pd.DataFrame({"run_id": ["r1"], "tags.config_hash": ["h1"], "tags.model_run_id": ["m1"]})
    seg, models = pd.DataFrame({"run_id": ["r1"]}), pd.DataFrame({"model_run_id": ["m1"]})
    r, s, m, counts = merge_earlier(tmp_path, runs, seg, models)
    assert r is runs and s is seg and m is models and counts == (0, 0, 0)


def test_a_run_exported_again_is_counted_apart_from_a_rerun(tmp_path):
    _earlier(tmp_path)
    runs = pd.DataFrame({"run_id": ["r1"], "tags.config_hash": ["h1"], "tags.model_run_id": ["m1"]})
    r, _, m, counts = merge_earlier(tmp_path, runs, pd.DataFrame({"run_id": ["r1"]}),
                                    pd.DataFrame({"model_run_id": ["m1"]}))
    assert counts == (1, 1, 0) and list(r.run_id) == ["r2", "r1"] and list(m.model_run_id) == ["m2", "m1"]
