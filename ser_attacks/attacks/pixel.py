"""PixelAttack for float log-Mel spectrograms (``conf/attack/pixel.yaml``).

ART's ``PixelAttack`` (``art/attacks/evasion/pixel_threshold.py``) was written for 8-bit images.
On a float spectrogram model it goes wrong in four ways, all fixed here while keeping ART's search
(the same parameters per cell, bounds, DE population size, CMA-ES step size and iteration counts):

1. **Round-off instead of "no change".** ART maps the whole input to 0-255 using ``clip_values``,
   attacks there and maps the result back. That round trip alone moves *every* cell of *every*
   returned sample by ~1e-7 (float32), including the samples where the attack failed and ART
   returns "the original". So a failed run looks like a tiny perturbation everywhere: ``x_adv == x``
   never holds, a no-op cannot be detected and the L0 of a 1-cell attack is ~100 %. Here the
   original float sample is copied and only the ``th`` chosen cells are written; a failed sample is
   returned bit-for-bit unchanged.
2. **Wrong objective for this model.** ART minimises ``predict(x)[:, true_class]``, i.e. assumes
   probabilities. With softmax outputs of a confident model that score is ~1.0 for almost every
   one-cell change: the evolution sees a flat landscape, finds nothing, and with (1) the run shows
   only 1e-7 noise. With logits it minimises one raw logit, which is not the decision (all logits
   may move together). Here candidates are scored by the logit margin
   ``z_true - max_{j != true} z_j`` (targeted: ``max_{j != t} z_j - z_t``); the attack succeeds
   exactly when the margin is negative.
3. **Memory and speed.** ART builds the images of the whole DE population (~400 candidates x 261 x 128) and
   predicts them in one call (3.5 GB RSS was measured with an unchunked estimator). Here candidate
   images are built and predicted ``batch_size`` at a time, so memory depends on ``batch_size``.
   CMA-ES (``es=0``) is evaluated one generation per predict call (ART calls predict per candidate).
   With the compiled estimator, a candidate's CNN features are recomputed only for the windows its cells
   fall in (``ser_attacks.attacks.windowed``; same logits bit for bit, checked on the model before use).
4. **Already-misclassified samples.** ART's untargeted attack "succeeds" on them at once and returns
   them with a random cell overwritten. Here they are returned unchanged (nothing to do), so the
   perturbation statistics describe real attacks only. (Success rate counts correctly classified
   samples anyway.)

5. **Unseeded.** ART runs differential evolution with ``seed=None`` and draws the CMA-ES seed from
   NumPy's global generator. Here sample i of ``generate``'s input searches with its own generator,
   seeded from ``(seed, i)`` (``attack.seed``, the job's seed by default): the same config gives the same
   adversarial examples.

A cell value is ``clip_min + v / 255 * (clip_max - clip_min)`` for the searched ``v`` in [0, 255]
(ART's parametrisation, not truncated to an integer), so a changed cell can take any value in the
data range: perturbations are comparable to the data range, as in the paper's pixel attack.
"""
from __future__ import annotations

import logging

import numpy as np
from art.attacks.evasion import PixelAttack
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class _Success(Exception):
    pass


class SpectrogramPixelAttack(PixelAttack):
    """ART's PixelAttack (DE ``es=1`` or CMA-ES ``es=0``) on float inputs, scored by logit margin."""

    attack_params = PixelAttack.attack_params + ["batch_size", "seed", "windowed"]

    def __init__(self, classifier, th: int | None = None, es: int = 1, max_iter: int = 100,
                 targeted: bool = False, verbose: bool = False, batch_size: int | None = None,
                 seed: int | None = 0, windowed: bool = True) -> None:
        super().__init__(classifier, th=th, es=es, max_iter=max_iter, targeted=targeted, verbose=verbose)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")
        self.seed = 0 if seed is None else int(seed)
        self.windowed = bool(windowed)
        self._windowed = None
        self._base_cache: dict = {}
        if th is None or int(th) != th or th < 1:
            raise ValueError(f"`th` (number of cells to change) must be a positive integer, got {th!r}")
        if es not in (0, 1):
            raise ValueError(f"`es` must be 0 (CMA-ES) or 1 (differential evolution), got {es!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"`batch_size` must be positive, got {batch_size}")
        self.th = int(th)
        self.batch_size = int(batch_size or getattr(classifier, "batch_size", 64))
        self.n_predictions = 0            # candidate images scored (for logging / tests)
        self.max_chunk = 0                # the largest number of images built at once

    # --- candidates -------------------------------------------------------------------------------
    def _cells(self, params: np.ndarray):
        """(n, 3*th) parameters → integer rows, cols and float values, each (n, th)."""
        p = np.asarray(params, dtype=np.float64).reshape(len(params), self.th, 2 + self.img_channels)
        rows = np.floor(p[..., 0]).astype(int) % self.img_rows
        cols = np.floor(p[..., 1]).astype(int) % self.img_cols
        lo, hi = self._lo[rows, cols], self._hi[rows, cols]          # (n, th, channels): each cell's own box
        vals = lo + np.clip(p[..., 2:], 0.0, 255.0) / 255.0 * (hi - lo)
        return rows, cols, vals.astype(np.float32)

    def _set_box(self) -> None:
        """The data box per (row, column) as float64 arrays (rows, cols, channels): ``clip_values`` may be
        two floats or two arrays broadcastable to the input (per-band boxes)."""
        if self.estimator.clip_values is None:
            raise ValueError("SpectrogramPixelAttack needs clip_values (the range a changed cell may take)")
        shape = tuple(self.estimator.input_shape)
        box = [np.broadcast_to(np.asarray(v, np.float64), shape) for v in self.estimator.clip_values]
        if self.estimator.channels_first:
            box = [np.moveaxis(b, 0, -1) for b in box]
        self._lo, self._hi = box

    def _images(self, params: np.ndarray, image: np.ndarray) -> np.ndarray:
        rows, cols, vals = self._cells(params)
        imgs = np.repeat(image[None], len(rows), axis=0)
        n = np.arange(len(rows))[:, None]
        if self.estimator.channels_first:
            imgs[n, :, rows, cols] = vals
        else:
            imgs[n, rows, cols] = vals
        return imgs

    def _margins(self, params: np.ndarray, image: np.ndarray, label: int) -> np.ndarray:
        params = np.atleast_2d(params)
        if self._windowed is not None:          # only the changed windows through the CNN, same logits
            rows, cols, vals = self._cells(params)
            if self._windowed.worth_it(rows, self.batch_size):
                z = self._windowed.predict_changed(image, rows, cols, vals, self.batch_size, self._base_cache)
                self.n_predictions += len(params)
                self.max_chunk = max(self.max_chunk, min(len(params), self.batch_size))
                return self._margin(z, label)
        out = np.empty(len(params))
        for s in range(0, len(params), self.batch_size):
            chunk = self._images(params[s:s + self.batch_size], image)
            self.max_chunk = max(self.max_chunk, len(chunk))
            out[s:s + len(chunk)] = self._margin(self.estimator.predict(chunk, batch_size=self.batch_size), label)
            self.n_predictions += len(chunk)
        return out

    def _margin(self, z: np.ndarray, label: int) -> np.ndarray:
        """< 0 exactly when the attack succeeds (prediction != label, or == target if targeted)."""
        others = np.delete(z, label, axis=1).max(axis=1)
        return others - z[:, label] if self.targeted else z[:, label] - others

    # --- search -----------------------------------------------------------------------------------
    def _bounds(self, image: np.ndarray):
        per_cell = [[0, self.img_rows], [0, self.img_cols]] + [[0, 255]] * self.img_channels
        return per_cell * self.th

    def _search(self, image: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray | None:
        """Best parameters found, or None when no candidate succeeded (``rng``: this sample's generator)."""
        bounds = self._bounds(image)
        self._base_cache = {}                   # the original's window features, per chunk size
        if self.es == 1:
            from art.attacks.evasion.pixel_threshold import differential_evolution
            res = differential_evolution(    # ART's copy of SciPy's DE draws with RandomState methods
                lambda p: self._margins(p, image, label), bounds, maxiter=self.max_iter,
                popsize=max(1, 400 // len(bounds)), recombination=1, atol=-1, polish=False, disp=False,
                seed=np.random.RandomState(rng.integers(2**32, dtype=np.uint64)),
                callback=lambda xk, convergence=None: bool(self._margins(xk, image, label)[0] < 0))
            best = np.asarray(res.x)
        else:
            from cma import CMAEvolutionStrategy, CMAOptions
            initial = []                              # ART's start: the first th cells, unchanged
            for c in range(self.th):
                i, j = divmod(c, self.img_cols)
                v = image[:, i, j] if self.estimator.channels_first else image[i, j]
                lo, hi = self._lo[i, j], self._hi[i, j]
                initial += [i, j, *((np.asarray(v, np.float64) - lo) / (hi - lo) * 255.0)]
            opts = CMAOptions()
            for k, v in (("verbose", -9), ("verb_disp", 0), ("verb_log", 0), ("verb_time", False)):
                opts.set(k, v)
            opts.set("bounds", [[b[0] for b in bounds], [b[1] for b in bounds]])
            opts.set("seed", int(rng.integers(1, 2**31 - 1)))
            strategy = CMAEvolutionStrategy(initial, 63 / 4, opts)   # ART's step size for PixelAttack
            best, best_f = np.asarray(initial), np.inf
            for _ in range(self.max_iter):
                cands = strategy.ask()
                f = self._margins(np.asarray(cands), image, label)
                strategy.tell(cands, f.tolist())
                if f.min() < best_f:
                    best_f, best = float(f.min()), np.asarray(cands[int(f.argmin())])
                if best_f < 0 or strategy.stop():
                    break
        return best if self._margins(best, image, label)[0] < 0 else None

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        from art.utils import check_and_transform_label_format
        x = np.asarray(x, dtype=np.float32)
        self._set_box()
        if self.windowed and not self.estimator.channels_first:
            from .windowed import WindowedPredictor
            self._windowed = WindowedPredictor.build(self.estimator)
        if y is None:
            if self.targeted:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            labels = self.estimator.predict(x).argmax(1)
        else:
            labels = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes,
                                                      return_one_hot=False).reshape(-1)
        x_adv = x.copy()
        z = self.estimator.predict(x)
        done = np.array([self._margin(z[i:i + 1], int(labels[i]))[0] < 0 for i in range(len(x))])
        self.success = np.zeros(len(x), bool)
        for i in tqdm(range(len(x)), desc="PixelAttack", disable=not self.verbose):
            if done[i]:
                continue                                     # already (mis)classified as wanted
            best = self._search(x[i], int(labels[i]), np.random.default_rng([self.seed, i]))
            if best is not None:
                x_adv[i] = self._images(best[None], x[i])[0]
                self.success[i] = True
        log.info("PixelAttack th=%d es=%d: %d of %d attacked samples flipped, %d candidate images scored",
                 self.th, self.es, self.success.sum(), int((~done).sum()), self.n_predictions)
        return x_adv
