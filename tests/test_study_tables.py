"""recipes/study/tables.py: the study's README tables from a report's CSV tables, also where the report holds one
protocol only (study v2's pieces before the leaky comparison), and with a seed per model."""
from __future__ import annotations

import pandas as pd

from tests.helpers import load_script


def _tables():
    return load_script("recipes/study/tables.py", "study_tables")


def test_one_protocol_report_names_its_protocol():
    configs = pd.DataFrame({"setting": ["emodb", "emodb"], "split": ["speaker_cv", "speaker_cv"]})
    clean = pd.DataFrame({"setting": ["emodb", "emovo (split=paper)"]})
    _tables().name_protocols([clean], configs)
    assert clean.setting.tolist() == ["emodb (split=speaker_cv)", "emovo (split=paper)"]
    _tables().name_protocols([clean], pd.DataFrame({"setting": ["emodb"]}))     # no split column: left as it is
    assert clean.setting.tolist() == ["emodb (split=speaker_cv)", "emovo (split=paper)"]


def test_training_table_one_row_per_fold_and_seed(tmp_path):
    (tmp_path / "emodb").mkdir()
    pd.DataFrame({"dataset": "emodb", "split": "speaker_cv", "fold": [1, 0, 0], "seed": [42, 43, 42],
                  "epochs": 20, "train_seconds": 400.0, "test_acc": [0.5, 0.7, 0.6], "n_test": 10}).to_csv(
        tmp_path / "emodb" / "models.csv", index=False)
    rows = _tables().training_table(tmp_path)
    assert rows[2:5] == ["| emodb | speaker_cv | 0 | 42 | 20 | 400 | 0.600 (10) |",
                         "| emodb | speaker_cv | 0 | 43 | 20 | 400 | 0.700 (10) |",
                         "| emodb | speaker_cv | 1 | 42 | 20 | 400 | 0.500 (10) |"]
    assert rows[5].startswith("| emodb | speaker_cv | **all 3** | | 60 | **1,200** | 0.600 (30, pooled)")
