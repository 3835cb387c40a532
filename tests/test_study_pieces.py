"""recipes/study_v2/pieces.py: a piece's times from the exported files alone; the leaky comparison's model (no
fold) is named by its split, a fold is an integer even beside it."""
from __future__ import annotations

import pandas as pd

from tests.helpers import load_script


def test_pieces_from_the_export(tmp_path, capsys):
    models = pd.DataFrame({
        "model_run_id": ["a", "b", "c"], "dataset": "emodb", "split": ["speaker_cv", "paper", "speaker_cv"],
        "fold": [1, None, 2], "seed": 42, "from_cache": [True, False, None], "epochs": [20, 25, 21],
        "train_seconds": [600.0, 1200.0, 500.0], "resumed_after_epoch": [5, None, None],
        "device": ["CPU: AMD EPYC (2 cores)", None, None],
        "start_time": ["2026-12-07T10:10:00+00:00", "2026-12-07T11:00:00+00:00", "2026-12-07T08:00:00+00:00"]})
    runs = pd.DataFrame({"tags.model_run_id": ["a", "a", "b", "c", "a", "b"],
                         "start_time": ["2026-12-07T10:11:00+00:00", "2026-12-07T10:14:00+00:00",
                                        "2026-12-07T11:21:00+00:00", "2026-12-07T08:01:00+00:00",
                                        "2026-12-07T11:02:00+00:00", "2026-12-07T10:59:50+00:00"],
                         "metrics.attack_time_s": [60.0, 120.0, 30.0, 10.0, 240.0, 30.0],
                         "metrics.n_samples": [83, 8, 690, 8, 8, 8]})
    models.to_csv(tmp_path / "models.csv", index=False)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    pieces = load_script("recipes/study_v2/pieces.py", "study_pieces")
    t = pieces.pieces(tmp_path, pd.Timestamp("2026-12-07T09:00", tz="UTC"))
    assert list(t.fold) == [1, "split=paper"]                 # fold 2 began before --since: left out
    a, b = t.iloc[0], t.iloc[1]
    # a model of study_models: its run logged at 10:10 when training (600 s) had ended, the first attack at once
    assert (a.training_began, a.jobs, a.attacked_segments, a.attack_s) == ("10:00", 3, 99, 420)
    # 10:00 (training began) → 11:06 (last attack ends), less the break 10:16 → 11:02 (a stop; the sweep resumed):
    # pauses of 1-2 min between jobs are the piece's own time
    assert (a.wall_min, a.break_min) == (20.0, 46.0)
    # resumed after epoch 5 (its training seconds count both processes); the leaky model trained in one
    assert (a.resumed_after_epoch, b.resumed_after_epoch) == (5, "")
    # the machine that trained it; blank where not recorded (models trained before the column)
    assert (a.device, b.device) == ("CPU: AMD EPYC (2 cores)", "")
    # the leaky model trained inside the sweep: its run starts with training (11:00, 20 min); the first job's run
    # opened at 10:59:50, before the training inside it: its attack (30 s) follows the training, not a break
    assert (b.training_began, b.jobs, b.wall_min, b.break_min) == ("11:00", 2, 21.5, "")
    assert pieces.main([str(tmp_path), "--out", str(tmp_path / "p.csv")]) == 0
    assert "| emodb | split=paper | 42 |" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3
