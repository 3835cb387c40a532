"""What the MLflow UI shows in a browser that has no saved state: the experiment's saved view and description.

MLflow 3.17.2's runs table opens with the columns Source, Models and Dataset and no metric column (its default UI
state, ``selectedColumns`` in the UI's code); the columns a user picks are kept in that browser's localStorage only.
What the server can hold is a **saved view** ("Views" menu above the runs table; the UI's "Save view" writes the same
thing): an experiment tag ``mlflow.sharedViewState.<id>`` whose value is ``{"name", "createdAt", "updatedAt",
"state"}`` with ``state`` the table's state as JSON (columns, their widths, sort). The link
``…/#/experiments/<id>/runs?viewStateShareKey=<id>`` opens it, and every browser lists it under "Views". The UI
leaves the expanded rows out of a shared view (``runsExpanded``), so a sweep's row stays collapsed; its own metrics
(summary per attack) fill the columns.

``Tracking`` saves the view ``summary`` when it opens the experiment and widens it when a sweep ends (its
``best_adv_acc_<attack>`` columns); ``browser.ui_url`` and ``make ui`` link to it.
"""
from __future__ import annotations

import json
import time

VIEW_TAG = "mlflow.sharedViewState."        # MLflow UI's prefix of a saved view's experiment tag
SUMMARY_VIEW = "summary"                    # the view's id: ?viewStateShareKey=summary
SUMMARY_VIEW_NAME = "Summary: accuracies per run"
# attack runs, training runs and a sweep's summary, in this order (the runs table scrolls sideways past ~8)
SUMMARY_METRICS = ("clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "success_rate", "snr_db",
                   "val_acc", "test_acc")
SUMMARY_TAGS = ("attack", "defense")
DESCRIPTION = (
    "**Speech emotion recognition under adversarial attacks** (ser-attacks). One run per `-m` sweep, named by what "
    "it swept, with its attack and training runs nested below it (the ⊞ before its name); its metrics are the "
    "sweep's summary (`clean_acc`, `best_adv_acc_<attack>`) and its page opens on the summary table and the report.\n\n"
    "**Columns:** the runs table of a new browser shows no metric; the view **Views → "
    f"{SUMMARY_VIEW_NAME}** (or the link `make ui` prints, `…?viewStateShareKey={SUMMARY_VIEW}`) adds the accuracies "
    "(all / female / male), the success rate, the SNR and the training accuracies. Accuracies and rates are shown to "
    "4 decimals; the exact counts are the metrics `n_correct_*`, `n_flipped`, `n_samples`.")


def view_state(metrics=SUMMARY_METRICS, extra_metrics=()) -> dict:
    """The runs table's state in a saved view: ``metrics`` and ``extra_metrics`` (a sweep's ``best_adv_acc_<attack>``)
    as columns, ordered so that a collapsed sweep row shows its own numbers first (``clean_acc``, then the best
    adversarial accuracy per attack), then the Models column and the attack and defense tags; a wide Run Name
    column (sweep names say what they swept). MLflow applies widths only to the columns named in ``columnOrder``."""
    keys = list(dict.fromkeys([*metrics, *sorted(extra_metrics)]))
    cols = ["attributes.`Models`", *[f"metrics.`{m}`" for m in keys], *[f"tags.`{t}`" for t in SUMMARY_TAGS]]
    first = [f"metrics.`{m}`" for m in ("clean_acc", *sorted(extra_metrics))]
    order = ["attributes.`Run Name`", *first, *[c for c in cols if c not in first]]
    return {"selectedColumns": cols, "columnOrder": order, "runsHiddenMode": "SHOW_ALL",
            "columnWidths": {"attributes.`Run Name`": 330, **{c: 112 for c in cols if c.startswith("metrics.")}},
            "orderByKey": "attributes.start_time", "orderByAsc": False}


def envelope(state: dict, name: str = SUMMARY_VIEW_NAME, created: int | None = None) -> str:
    """A saved view's tag value, as the UI's "Save view" writes it."""
    now = int(time.time() * 1000)
    return json.dumps({"name": name, "createdAt": created or now, "updatedAt": now, "state": json.dumps(state)})


def stored_view(value: str | None) -> tuple[dict | None, int | None]:
    """The table state a saved view's tag value holds and its creation time ((None, None) when there is none or it
    cannot be read: a view a user changed into something else is rewritten)."""
    try:
        outer = json.loads(value)
        return json.loads(outer["state"]), outer.get("createdAt")
    except Exception:  # noqa: BLE001
        return None, None


class ViewLogging:
    """The saved view and the description of ``Tracking``'s experiment."""

    def save_summary_view(self, extra_metrics=()) -> None:
        """Write the view ``summary`` (columns ``SUMMARY_METRICS``, then the sweep summaries ``extra_metrics`` and
        those the view had); an unchanged view is not rewritten. Also the experiment's description, if it has
        none. Never raises: the view is a convenience."""
        try:
            exp = self.client.get_experiment(self.experiment_id)
            tag = VIEW_TAG + SUMMARY_VIEW
            stored, created = stored_view(exp.tags.get(tag))
            cols = (stored or {}).get("selectedColumns", [])
            had = {c[len("metrics.`"):-1] for c in cols if c.startswith("metrics.`")}
            extra = set(extra_metrics) | (had - set(SUMMARY_METRICS))
            state = view_state(SUMMARY_METRICS, extra)
            if state != stored:                                # new, widened, or written by another version
                self.client.set_experiment_tag(self.experiment_id, tag, envelope(state, created=created))
            if not exp.tags.get("mlflow.note.content"):
                self.client.set_experiment_tag(self.experiment_id, "mlflow.note.content", DESCRIPTION)
        except Exception as exc:  # noqa: BLE001
            import logging
            logging.getLogger(__name__).warning("The MLflow UI's saved view was not written (%s: %s)",
                                                exc.__class__.__name__, exc)
