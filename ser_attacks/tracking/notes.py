"""Run descriptions (``mlflow.note.content``, the first panel of a run's page in the MLflow UI): what the run is
and what came out, in a few lines of Markdown with every number rounded as a reader wants it."""
from __future__ import annotations

import math


def clip_words(text: str, width: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters ("…" marks the cut)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0] if " " in text[:width - 1] else text[:width - 1]
    return cut.rstrip(",;:") + "…"


def f3(value) -> str:
    """A rate or an accuracy as the notes show it: three decimals; "–" when missing or NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.3f}"


def g3(value) -> str:
    """Any other measurement: three significant digits; "–" when missing or NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.3g}"


def _split(cfg) -> str:
    split = cfg.get("split", {})
    mode = str(split.get("mode", "")) if split else ""
    return f"{mode} split, fold {split.get('fold')}" if mode == "speaker_cv" else f"{mode} split" if mode else ""


def attack_note(cfg, metrics: dict, effect: str = "ok", reason: str = "") -> str:
    """An attack run: which attack with which settings, on which model and data, and its result (all, female,
    male), the success rate, the perturbation and the time."""
    a = cfg.attack
    settings = ", ".join(f"{k}={a[k]}" for k in ("eps", "max_iter", "theta", "th", "es", "confidence", "snr_db",
                                                 "norm", "targeted") if a.get(k) is not None)
    where = ", ".join(x for x in (f"model `{cfg.model.name}`", f"seed {cfg.seed}", _split(cfg)) if x)
    m = metrics
    lines = [f"**Attack {a.name}**" + (f" ({settings})" if settings else "")
             + f" on {g3(m.get('n_samples'))} test segments of **{cfg.dataset.name}** ({where}).", "",
             f"Accuracy: clean {f3(m.get('clean_acc'))} → adversarial **{f3(m.get('adv_acc'))}** "
             f"(female {f3(m.get('adv_acc_female'))}, male {f3(m.get('adv_acc_male'))}); success rate on the "
             f"correctly classified segments {f3(m.get('success_rate'))}.",
             f"Perturbation: mean |δ| {g3(m.get('perturbation'))} (model input units)"
             + (f", SNR {m['snr_db']:.1f} dB" if isinstance(m.get("snr_db"), float) and math.isfinite(m["snr_db"])
                else "") + f"; attack time {g3(m.get('attack_time_s'))} s."]
    if effect != "ok":
        lines += ["", f"**Attack effect: {effect}** ({reason})."]
    lines += ["", "Per segment: `adversarial.npz`; the whole config: `config.yaml` and the params."]
    return "\n".join(lines)


def train_note(meta: dict, info: dict | None = None) -> str:
    """A training run: which model on which data, its accuracies, the kept epoch and the registered model."""
    info = info or {}
    fold = meta.get("fold")
    data = f"**{meta.get('dataset')}**" + (f" ({meta.get('split')} split" + (f", fold {fold}" if fold is not None
                                                                             else "") + ")" if meta.get("split")
                                           else "")
    lines = [f"**Training of model `{meta.get('model')}`** on {data}, seed {meta.get('seed')}.", "",
             f"Validation accuracy {f3(meta.get('val_acc'))}, test accuracy {f3(meta.get('test_acc'))}; "
             f"{meta.get('epochs')} epochs" + (f", kept epoch {meta['epoch_kept']}" if meta.get("epoch_kept")
                                               else "") + f", {g3(meta.get('train_seconds'))} s."]
    if info.get("model_uri"):
        lines += ["", f"Registered as `{info['model_uri']}` (the pyfunc wrapper: audio or features in, emotion "
                      "probabilities out); the Keras model is the logged model `keras_model`."]
    return "\n".join(lines)


def sweep_title(task_overrides: list[str], swept: dict[str, str], when: str, width: int = 90) -> str:
    """A sweep's run name: what it sweeps first (the runs table cuts long names), then its other command-line
    overrides except paths and URIs, then the time."""
    shown = [f"grid of {len(v.split(' | '))} override sets" if k == "grid" else f"{k}={v}" for k, v in swept.items()]
    for o in task_overrides:
        key, _, value = str(o).partition("=")
        if key.lstrip("+~") not in swept and "/" not in value:
            shown.append(str(o))
    return f"sweep {clip_words(' '.join(shown), width) if shown else '(no overrides)'} · {when}"
