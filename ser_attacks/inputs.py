"""What an attack perturbs (config group ``input``), and what the run says about its sound.

``input=spectrogram`` (default): the attack perturbs the normalized log-Mel spectrogram, as in the paper.
With ``input.realize=true`` every adversarial spectrogram is then turned back into audio (``ser_attacks.realize``:
the Mel-domain change as a gain on the segment's STFT, original phase; Griffin-Lim too), re-analysed by the
real front end and classified again: ``realized_adv_acc`` (+ ``_gl``), ``audio_snr_db`` of the waveform change.

``input=waveform``: the attack perturbs the 3 s segment's audio through the differentiable TF front end
(``ser_attacks.frontend_tf``) and the trained model, one ART estimator on waveforms clipped to [-1, 1];
``attack.snr_db`` sets the budget as an SNR (``ser_attacks.waveform``). The run's metrics that describe the
perturbation (``perturbation``, ``l2``, ``linf``, ...) and ``adversarial.npz`` are then computed on the
model inputs (normalized log-Mel) of the audio, so they compare with spectrogram runs; ``audio_snr_db`` is the
SNR of the audio perturbation.

Both log, per gender, a few WAV files (original, adversarial, perturbation ×10, 16-bit) under ``audio/`` with
``audio/index.json``, and per-sample ``audio.npz`` (SNR, realized predictions) for the report.
"""
from __future__ import annotations

import inspect
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .attacks import AttackConfigError, build_attack
from .metrics import GROUPS
from .progress import track
from .waveform import SNRBudget, clip_range, snr_db, snr_summary, takes_eps, waveform_classifier

log = logging.getLogger(__name__)
KINDS = ("spectrogram", "waveform")
SPECTROGRAM_ONLY = ("ser_attacks.attacks.square.",)   # attacks whose search needs 2-D inputs


class InputConfigError(AttackConfigError):
    """An input / SNR-budget configuration that cannot run (reported before any data is read, no traceback)."""


def check(cfg) -> None:
    """Fail fast on a bad ``input`` / ``attack.snr_db`` combination, before data or model."""
    inp = cfg.get("input")
    name = str(inp.name) if inp is not None else "spectrogram"
    if name not in KINDS:
        raise InputConfigError(f"input.name must be one of {KINDS}, got {name!r}")
    if name == "waveform" and str(cfg.attack.get("_target_", "")).startswith(SPECTROGRAM_ONLY):
        raise InputConfigError(f"attack {cfg.attack.name} perturbs (frames, mels) spectrograms: it needs "
                               "input=spectrogram")
    snr = cfg.attack.get("snr_db")
    if snr is None:
        return
    if name != "waveform":
        raise InputConfigError("attack.snr_db is a budget on the audio: it needs input=waveform "
                               "(spectrogram attacks are budgeted by attack.eps; "
                               "their SNR is measured by input.realize)")
    from hydra.utils import get_class
    cls = get_class(str(cfg.attack._target_))
    if "eps" not in inspect.signature(cls.__init__).parameters:
        raise InputConfigError(f"attack.snr_db needs an attack with an eps budget (e.g. fgsm, bim, pgd); "
                               f"{cfg.attack.name} ({cls.__name__}) has none: its SNR is measured, not budgeted")
    norm = cfg.attack.get("norm")
    if norm not in (None, "inf", "2"):
        raise InputConfigError(f"attack.snr_db supports attack.norm inf or 2, not {norm}")
    if not float(inp.step_ratio) > 0:
        raise InputConfigError(f"input.step_ratio must be > 0, got {inp.step_ratio}")


def segment_waveforms(segs, fe, known=(), progress: bool = False) -> np.ndarray:
    """(n, samples) audio of feature rows (columns path, segment, augment), each recording decoded once."""
    from .data.audio import Augmentation, recording_segments
    cache: dict = {}
    out = np.empty((len(segs), fe.segment_samples), np.float32)
    augs = segs["augment"] if "augment" in segs else ["none"] * len(segs)
    for i, (path, seg, aug) in enumerate(track(list(zip(segs.path, segs.segment, augs)), "segment audio",
                                               progress, unit="segment")):
        key = (path, str(aug))
        if key not in cache:
            cache[key] = recording_segments(path, fe, (Augmentation.from_label(aug, known),))[0]
        out[i] = cache[key][int(seg)]
    return out


def _write_wav(path: Path, y: np.ndarray, sr: int) -> int:
    """16-bit PCM WAV (plays everywhere); returns how many samples were clipped to full scale."""
    import soundfile as sf
    y = np.asarray(y, np.float64)
    clipped = int(np.sum(np.abs(y) > 1.0))
    sf.write(str(path), np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")
    return clipped


class InputStage:
    """One attack run's input: builds the model input and classifier, budgets the attack, and after the attack
    adds the audio metrics and artifacts. ``app.attack_job`` calls ``model_input``, ``budgeted`` and ``finish``."""

    def __init__(self, cfg, tm, X_db: np.ndarray, segs, tracking=None, run_id: str | None = None, defense=None):
        from .data import augmentations, front_end
        inp = cfg.get("input")
        self.cfg, self.tm, self.X_db = cfg, tm, np.asarray(X_db, np.float32)
        self.segs = segs.reset_index(drop=True)
        self.name = str(inp.name) if inp is not None else "spectrogram"
        self.inp = inp
        self.fe = front_end(cfg.features)
        self.known = augmentations(cfg)
        self.tracking, self.run_id = tracking, run_id
        self.defense = defense            # estimator.DefenseSpec (or a defense node): applied by the one builder
        self.audio: np.ndarray | None = None
        self.audio_snr: np.ndarray | None = None     # per-segment SNR dB of the audio change (after finish)
        self._front = None

    @property
    def _speakers(self) -> np.ndarray:
        """Each attacked segment's speaker (a per-speaker normalizer shifts by that speaker's mean)."""
        return self.segs.speaker.astype(str).to_numpy()

    @property
    def waveform(self) -> bool:
        return self.name == "waveform"

    def _opt(self, key: str, default):
        return self.inp.get(key, default) if self.inp is not None else default

    def load_audio(self) -> np.ndarray:
        if self.audio is None:
            self.audio = segment_waveforms(self.segs, self.fe, self.known, progress=bool(self.cfg.get("progress")))
        return self.audio

    # -- before the attack ---------------------------------------------------------------------------
    def model_input(self, x: np.ndarray, clf):
        """(attack input, classifier): the spectrogram ones unchanged (``clf``, built with the defense by the app),
        or the segments' audio + the waveform classifier (defense + front end + model; ``clf`` is not used)."""
        if not self.waveform:
            self._spec_clf = getattr(clf, "deployed", clf)   # re-classifies the resynthesized audio's features
            return x, clf
        audio = self.load_audio()
        wclf = waveform_classifier(self.tm, self.fe, self.cfg.estimator.kind, self.cfg.estimator.batch_size,
                                   clip_range(audio), defense=self.defense)
        diff = float(np.max(np.abs(self.features(audio) - x))) if len(x) else 0.0
        self._frontend_diff = diff
        if diff > 1e-3:
            log.warning("TF front end differs from the cached features by %.3g (normalized units)", diff)
        return audio, wclf

    def budgeted(self, attack):
        """The attack, with the ``attack.snr_db`` budget applied per sample when set."""
        snr = self.cfg.attack.get("snr_db")
        if snr is None:
            if self.waveform and takes_eps(attack):
                log.info("input=waveform without attack.snr_db: attack.eps is in full-scale amplitude units")
            return attack
        conf = self.cfg.attack
        ratio = float(self._opt("step_ratio", 0.1)) if conf.get("eps_step") is not None else None

        def rebuild(eps: float, eps_step: float | None):         # the attack with one sample's scalar budget
            over = {"eps": eps, **({} if eps_step is None else {"eps_step": eps_step})}
            return build_attack(OmegaConf.merge(conf, over), attack.estimator)
        return SNRBudget(attack, float(snr), ratio, int(self.cfg.seed), rebuild)

    def features(self, a: np.ndarray) -> np.ndarray:
        """Model inputs (normalized log-Mel) of attack inputs: identity for spectrograms; for waveforms the
        TF front end (equal to the librosa features to ~1e-6, see frontend_tf)."""
        if not self.waveform:
            return a
        if self._front is None:
            from .frontend_tf import TFFrontEnd
            self._front = TFFrontEnd(self.fe, self.tm.normalizer)
        return self._front.features(a)

    # -- after the attack ----------------------------------------------------------------------------
    def finish(self, x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, clean_logits: np.ndarray,
               adv_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """(x, x_adv as model inputs, audio metrics); logs the WAV artifacts and ``audio.npz``."""
        genders = self.segs.gender.to_numpy().astype(str)
        extra: dict[str, np.ndarray] = {}
        metrics: dict[str, float] = {}
        if self.waveform:
            audio, audio_adv = np.asarray(x, np.float32), np.asarray(x_adv, np.float32)
            x, x_adv = self.features(audio), self.features(audio_adv)
            snr = snr_db(audio, audio_adv)
            metrics["frontend_max_abs_diff"] = getattr(self, "_frontend_diff", float("nan"))
            if self.cfg.attack.get("snr_db") is not None:
                metrics["snr_budget_db"] = float(self.cfg.attack.snr_db)
        elif self._opt("realize", True):
            audio_adv, snr, extra, m = self._realize(x, x_adv, y, genders)
            audio = self.load_audio()
            metrics.update(m)
        else:
            return x, x_adv, metrics
        metrics.update(snr_summary(snr, genders))
        self.audio_snr = np.asarray(snr, np.float64)     # per segment: ser_attacks.min_norm reads it
        self._log_artifacts(audio, audio_adv, snr, y, clean_logits, adv_logits, extra, genders)
        return x, x_adv, metrics

    def _realize(self, x, x_adv, y, genders):
        from .realize import features, realize
        audio = self.load_audio()
        n_gl = int(self._opt("griffin_lim_iter", 32))
        r = realize(self.fe, self.tm.normalizer, audio, self.X_db, x, x_adv, int(self._opt("refine", 3)), n_gl,
                    int(self.cfg.seed), progress=bool(self.cfg.get("progress")))
        predict = self._predict
        x_real = features(self.fe, self.tm.normalizer, r.audio, self._speakers)
        pred = predict(x_real)
        extra = {"realized_pred": pred}
        m: dict[str, float] = {}
        err = np.abs(x_real - x_adv).reshape(len(x), -1).mean(1)
        if n_gl > 0:
            extra["realized_pred_gl"] = predict(features(self.fe, self.tm.normalizer, r.audio_gl, self._speakers))
            extra["clean_pred_gl"] = predict(features(self.fe, self.tm.normalizer, r.clean_gl, self._speakers))
        for g in GROUPS:
            sel = np.ones(len(y), bool) if g == "all" else genders == g
            if not sel.any():
                continue
            sfx = "" if g == "all" else f"_{g}"
            m[f"realized_adv_acc{sfx}"] = float(np.mean(pred[sel] == y[sel]))
            m[f"realized_feature_err{sfx}"] = float(np.mean(err[sel]))
            if n_gl > 0:
                m[f"realized_adv_acc_gl{sfx}"] = float(np.mean(extra["realized_pred_gl"][sel] == y[sel]))
                m[f"realized_clean_acc_gl{sfx}"] = float(np.mean(extra["clean_pred_gl"][sel] == y[sel]))
        extra["realized_feature_err"] = err
        return r.audio, snr_db(audio, r.audio), extra, m

    def _predict(self, feats: np.ndarray) -> np.ndarray:
        from .estimator import make_classifier
        if not hasattr(self, "_spec_clf"):
            self._spec_clf = make_classifier(self.tm.model, len(self.tm.classes), self.tm.normalizer.clip_values,
                                             self.cfg.estimator.kind, self.cfg.estimator.batch_size,
                                             defense=self.defense).deployed
        return self._spec_clf.predict(feats).argmax(1) if len(feats) else np.zeros(0, int)

    def _log_artifacts(self, audio, audio_adv, snr, y, clean_logits, adv_logits, extra, genders) -> None:
        if self.tracking is None or self.run_id is None:
            return
        sr, classes = self.fe.sample_rate, self.tm.classes
        n_per = int(self._opt("n_audio_per_gender", 1))
        picks = [i for g in ("female", "male") for i in np.flatnonzero(genders == g)[:n_per]]
        entries = []
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "audio"
            folder.mkdir()
            for k, i in enumerate(picks):
                stem = f"{k:02d}_{genders[i]}_{self.segs.speaker.iloc[i]}_{classes[y[i]]}"
                e = {"index": int(i), "gender": genders[i], "speaker": str(self.segs.speaker.iloc[i]),
                     "recording_id": str(self.segs.recording_id.iloc[i]), "segment": int(self.segs.segment.iloc[i]),
                     "label": classes[y[i]], "clean_pred": classes[int(clean_logits[i].argmax())],
                     "adv_pred": classes[int(adv_logits[i].argmax())], "input": self.name,
                     "snr_db": None if not np.isfinite(snr[i]) else float(snr[i]), "sample_rate": sr, "files": {}}
                if "realized_pred" in extra:
                    e["realized_pred"] = classes[int(extra["realized_pred"][i])]
                for kind, sig in (("original", audio[i]), ("adversarial", audio_adv[i]),
                                  ("perturbation_x10", 10.0 * (audio_adv[i].astype(np.float64) - audio[i]))):
                    name = f"{stem}_{kind}.wav"
                    clipped = _write_wav(folder / name, sig, sr)
                    e["files"][kind] = f"audio/{name}"
                    if clipped:
                        e.setdefault("clipped_samples", {})[kind] = clipped
                entries.append(e)
            (folder / "index.json").write_text(json.dumps(entries, indent=2))
            self.tracking.log_artifacts(self.run_id, folder, "audio")
            np.savez_compressed(Path(tmp) / "audio.npz", snr_db=snr, gender=genders, label=y,
                                clean_pred=clean_logits.argmax(1), adv_pred=adv_logits.argmax(1),
                                input=np.asarray(self.name), **extra)
            self.tracking.log_artifact(self.run_id, Path(tmp) / "audio.npz")
        self.tracking.set_tag(self.run_id, "input", self.name)
