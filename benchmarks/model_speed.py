"""The paper's final model, stock form vs fast form (``ser_attacks.fast_model``), side by side in one process.

    python benchmarks/model_speed.py                        # profile + comparison, ~10 minutes on 2 busy cores
    python benchmarks/model_speed.py --repeats 7 --json recipes/model_speed/model_speed.json

Model: ``conf/model/final.yaml`` (3,960,389 parameters), seeded random weights (timing does not depend on
them), seeded random inputs of shape (261, 128, 1). Every measurement is a compiled ``tf.function`` (graph
mode, as training and the compiled estimator run), traced and run once untimed, then A (stock) and B (fast)
alternate ``--repeats`` times; the tables give medians and the median of the per-repeat ratios, with the load
average before and after (the machine may be shared: the alternation keeps ratios fair, not absolute times).

1. ``peak``: a float32 matrix product (2048 x 2048 x 2048) - the practical GFLOP/s limit of these cores.
2. ``profile``: every CNN layer alone, at its input shape in each form (stock: the TimeDistributed layer on
   (B, 9, ...); fast: the layer on the folded (B * 9, ...) batch), forward and forward+backward (gradients
   w.r.t. its input and its weights; BatchNorm in training mode), then the head (Dropout, BiLSTM, Dense),
   the CNN as a whole and the whole model, with the FLOPs of each convolution and matrix product.
4. ``--fold-epochs E`` (alone, with ``--skip profile,parts,compare,attacks``): one fold's real training
   (``train.fit``: the study's protocol, data, normalization and callbacks, test accuracy per epoch) for E
   epochs, stock form then fast form from the same seed: seconds per epoch (median, and the first epoch with
   graph tracing apart), and how the two runs' weights, losses and accuracies differ epoch by epoch.
3. ``compare``: training step (Keras ``train_on_batch``, Adam, op determinism on, as ``train.compiled_model``),
   forward (logits) and forward+backward w.r.t. the input (the compiled estimator's ``loss_gradient``) at
   attack batch sizes; plus the outputs' largest differences.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHAPE = (261, 128, 1)


def final_model(seed: int):
    import keras
    from omegaconf import OmegaConf

    from ser_attacks.train import build_model
    keras.utils.set_random_seed(seed)
    return build_model(OmegaConf.load(ROOT / "conf" / "model" / "final.yaml"), SHAPE, 5)


def timed(fns: dict, repeats: int) -> dict:
    """``fns``: name -> zero-argument callable; each run once untimed, then all alternated ``repeats`` times."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def med(v):
    return statistics.median(v)


def ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def load():
    return [round(v, 2) for v in os.getloadavg()]


# --- FLOPs --------------------------------------------------------------------------------------------------
def conv_flops(layer, out_shape) -> float:
    """Multiply-adds x 2 of a Conv2D for one image: output cells x kernel cells x input channels x filters."""
    kh, kw, cin, cout = layer.kernel.shape
    return 2.0 * out_shape[0] * out_shape[1] * kh * kw * cin * cout


def lstm_flops(model, batch: int) -> float:
    """The (Bi)LSTM's matrix products, forward: per direction and step 2 x 4u x (features + u) per sample."""
    import keras
    total = 0.0
    for layer in model.layers:
        cells = []
        if isinstance(layer, keras.layers.Bidirectional):
            cells = [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.LSTM):
            cells = [layer]
        for c in cells:
            feat, u = c.cell.kernel.shape[0], c.units
            total += 2.0 * 4 * u * (feat + u) * batch * 9
        if isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1] * batch
    return total


def cnn_flops(model, batch: int) -> tuple[float, float]:
    """(forward, training backward) FLOPs of the CNN for ``batch`` inputs (9 windows each); the training
    backward needs no gradient w.r.t. the input image (the first convolution's input gradient is skipped)."""
    import keras
    fwd = bwd = 0.0
    first = True
    for layer in model.layers:
        if isinstance(layer, keras.layers.TimeDistributed) and isinstance(layer.layer, keras.layers.Conv2D):
            f = conv_flops(layer.layer, layer.output.shape[2:]) * batch * 9
            fwd += f
            bwd += f if first else 2 * f
            first = False
    return fwd, bwd


# --- 1. peak ------------------------------------------------------------------------------------------------
def peak(repeats: int) -> dict:
    import tensorflow as tf
    n = 2048
    a = tf.random.stateless_normal((n, n), (1, 2))
    b = tf.random.stateless_normal((n, n), (3, 4))
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    t = timed({"matmul": lambda: mm().numpy()}, repeats)["matmul"]
    return {"n": n, "seconds": med(t), "gflops": 2 * n ** 3 / med(t) / 1e9}


# --- 2. profile ---------------------------------------------------------------------------------------------
def layer_fns(layer, x, training: bool, inner: bool = False):
    """(forward, forward+backward) graphs of one layer on input ``x`` (gradients w.r.t. x and its weights)."""
    import tensorflow as tf
    call = layer
    kwargs = {"training": training} if training else {}
    xv = tf.constant(x)
    cot = None

    @tf.function
    def fwd():
        return call(xv, **kwargs)

    out = fwd()
    cot = tf.constant(np.random.default_rng(0).normal(size=out.shape).astype(np.float32))

    @tf.function
    def fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(xv)
            y = call(xv, **kwargs)
            s = tf.reduce_sum(y * cot)
        return tape.gradient(s, [xv, *layer.trainable_weights])

    return (lambda: fwd().numpy()), (lambda: [g.numpy() for g in fwd_bwd() if g is not None])


def profile(model, batch: int, repeats: int, training: bool) -> list[dict]:
    """Per CNN layer: stock (TimeDistributed on (B, 9, ...)) vs fast (the same layer on (B*9, ...))."""
    import keras

    from ser_attacks.fast_model import fast_form
    fast = fast_form(model)
    rng = np.random.default_rng(1)
    rows = []
    x_stock = rng.normal(size=(batch, *SHAPE)).astype(np.float32)
    x_stock = keras.ops.convert_to_numpy(model.get_layer("windows")(x_stock))
    fast_by_stock = {}
    flayers = fast.layers
    for fl in flayers:
        for tl in model.layers:
            wrapped = (fl, getattr(fl, "bn", None), getattr(fl, "conv", None))
            if isinstance(tl, keras.layers.TimeDistributed) and any(tl.layer is w for w in wrapped):
                fast_by_stock[tl.name] = fl
    for tl in model.layers:
        if not isinstance(tl, keras.layers.TimeDistributed) or tl.name == "flatten":
            continue
        fl = fast_by_stock[tl.name]
        x_fast = x_stock.reshape(-1, *x_stock.shape[2:])
        is_bn = isinstance(tl.layer, keras.layers.BatchNormalization)
        tr = training and is_bn
        sf, sb = layer_fns(tl, x_stock, tr)
        ff, fb = layer_fns(fl, x_fast, tr)
        t = timed({"stock_fwd": sf, "fast_fwd": ff, "stock_fb": sb, "fast_fb": fb}, repeats)
        out = keras.ops.convert_to_numpy(tl(x_stock, training=tr) if tr else tl(x_stock))
        if tr:                                   # put the moving statistics back (they were updated)
            pass
        flops = conv_flops(tl.layer, out.shape[2:]) * batch * 9 if isinstance(tl.layer, keras.layers.Conv2D) else 0.0
        rows.append({"layer": f"{tl.name} ({type(tl.layer).__name__}{', training' if tr else ''})",
                     "in": list(x_stock.shape[1:]), "out": list(out.shape[1:]), "gflop_fwd": flops / 1e9,
                     **{k: med(v) for k, v in t.items()},
                     "ratio_fwd": ratio(t["stock_fwd"], t["fast_fwd"]), "ratio_fb": ratio(t["stock_fb"], t["fast_fb"])})
        print(f"  {rows[-1]['layer']}: fwd {rows[-1]['stock_fwd'] * 1e3:.1f} -> {rows[-1]['fast_fwd'] * 1e3:.1f} ms, "
              f"fwd+bwd {rows[-1]['stock_fb'] * 1e3:.1f} -> {rows[-1]['fast_fb'] * 1e3:.1f} ms", flush=True)
        x_stock = out
    return rows


def parts(model, batch: int, repeats: int) -> list[dict]:
    """The CNN (input -> (B, 9, 1664)), the head ((B, 9, 1664) -> logits) and the whole model, training mode,
    forward and forward+backward w.r.t. the weights (a training step without the optimizer)."""
    import keras
    import tensorflow as tf

    from ser_attacks.fast_model import fast_form
    fast = fast_form(model)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(batch, *SHAPE)).astype(np.float32))
    y = tf.constant(np.eye(5, dtype=np.float32)[rng.integers(0, 5, batch)])
    lossf = keras.losses.CategoricalCrossentropy(from_logits=True)
    cnn_stock = keras.Model(model.input, model.get_layer("flatten").output)
    cnn_fast = keras.Model(fast.input, fast.get_layer("unfold_windows").output)
    head_in = keras.Input((9, cnn_stock.output.shape[-1]))
    h = head_in
    for layer in model.layers[model.layers.index(model.get_layer("flatten")) + 1:]:
        h = layer(h)
    head = keras.Model(head_in, h)
    feats = tf.constant(cnn_stock(x, training=False).numpy())

    def fb(m, inp, target=None):
        cot = None if target is not None else tf.constant(
            rng.normal(size=m(inp, training=False).shape).astype(np.float32))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                out = m(inp, training=True)
                s = lossf(target, out) if target is not None else tf.reduce_sum(out * cot)
            return tape.gradient(s, m.trainable_weights)
        return lambda: [g.numpy() for g in step()]

    def fw(m, inp):
        f = tf.function(lambda: m(inp, training=True))
        return lambda: f().numpy()

    fns = {"cnn stock fwd": fw(cnn_stock, x), "cnn fast fwd": fw(cnn_fast, x),
           "cnn stock fwd+bwd": fb(cnn_stock, x), "cnn fast fwd+bwd": fb(cnn_fast, x),
           "head fwd": fw(head, feats), "head fwd+bwd": fb(head, feats, y),
           "model stock fwd+bwd": fb(model, x, y), "model fast fwd+bwd": fb(fast, x, y)}
    t = timed(fns, repeats)
    return {k: med(v) for k, v in t.items()}, t


# --- 3. compare ---------------------------------------------------------------------------------------------
def compare(seed: int, repeats: int, attack_batches: list[int], train_batch: int) -> dict:
    import keras
    import tensorflow as tf

    from ser_attacks.estimator import make_classifier
    from ser_attacks.fast_model import fast_form
    tf.config.experimental.enable_op_determinism()           # as training runs (train.deterministic)
    rng = np.random.default_rng(seed)
    out = {}

    # training step: two identical models (same seed), one trained through its fast form
    models = {}
    for kind in ("stock", "fast"):
        m = final_model(seed)
        run = fast_form(m) if kind == "fast" else m
        run.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
        models[kind] = (m, run)
    x = rng.normal(size=(train_batch, *SHAPE)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, train_batch)]
    first = {k: float(run.train_on_batch(x, y)[0]) for k, (m, run) in models.items()}
    w = {k: m.get_weights() for k, (m, run) in models.items()}
    t = timed({k: (lambda run=run: run.train_on_batch(x, y)) for k, (m, run) in models.items()}, repeats)
    out["train_step"] = {"batch": train_batch, "stock": med(t["stock"]), "fast": med(t["fast"]),
                         "ratio": ratio(t["stock"], t["fast"]), "times": t,
                         "first_loss_diff": abs(first["stock"] - first["fast"]),
                         "weights_after_1_step_max_diff": max(float(np.abs(a - b).max())
                                                              for a, b in zip(w["stock"], w["fast"]))}
    print(f"  train step (batch {train_batch}): stock {med(t['stock']):.3f} s, fast {med(t['fast']):.3f} s, "
          f"x{out['train_step']['ratio']:.2f}", flush=True)

    # attack-side: the compiled estimator on one model, stock vs fast form
    model = final_model(seed)
    for n in attack_batches:
        xa = np.clip(rng.normal(size=(n, *SHAPE)), -4, 6).astype(np.float32)
        ya = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
        clfs = {k: make_classifier(model, 5, (-4.0, 6.0), "compiled", batch_size=n, fast=(k == "fast"))
                for k in ("stock", "fast")}
        preds = {k: c.predict(xa) for k, c in clfs.items()}
        grads = {k: c.loss_gradient(xa, ya) for k, c in clfs.items()}
        t = timed({**{f"fwd {k}": (lambda c=c: c.predict(xa)) for k, c in clfs.items()},
                   **{f"grad {k}": (lambda c=c: c.loss_gradient(xa, ya)) for k, c in clfs.items()}}, repeats)
        out[f"attack_batch_{n}"] = {
            "forward": {"stock": med(t["fwd stock"]), "fast": med(t["fwd fast"]),
                        "ratio": ratio(t["fwd stock"], t["fwd fast"])},
            "forward_backward": {"stock": med(t["grad stock"]), "fast": med(t["grad fast"]),
                                 "ratio": ratio(t["grad stock"], t["grad fast"])},
            "logits_max_diff": float(np.abs(preds["stock"] - preds["fast"]).max()),
            "input_grad_max_diff": float(np.abs(grads["stock"] - grads["fast"]).max()),
            "input_grad_max": float(np.abs(grads["stock"]).max()), "times": t}
        r = out[f"attack_batch_{n}"]
        print(f"  batch {n}: forward x{r['forward']['ratio']:.2f}, "
              f"forward+backward x{r['forward_backward']['ratio']:.2f} (logits diff {r['logits_max_diff']:.1e}, "
              f"gradient diff {r['input_grad_max_diff']:.1e})", flush=True)
    return out


def attacks(seed: int, repeats: int, names: list[str], n: int) -> list[dict]:
    """A few of the paper grid's attacks at their paper settings (``conf/attack/*.yaml``), compiled estimator,
    on the stock model vs its fast form: seconds per segment (median), and the outputs' largest difference."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from estimator import attack_cfg

    from ser_attacks.attacks import attack_labels, build_attack
    from ser_attacks.estimator import make_classifier
    model = final_model(seed)
    rng = np.random.default_rng(seed + 1)
    clip = (-4.0, 6.0)
    x = np.clip(rng.normal(size=(n, *SHAPE)), *clip).astype(np.float32)
    y = rng.integers(0, 5, n)
    clfs = {k: make_classifier(model, 5, clip, "compiled", batch_size=max(n, 1), fast=(k == "fast"))
            for k in ("stock", "fast")}
    rows = []
    for spec in names:
        name, *ov = spec.split(":")
        cfg = attack_cfg(name, ov).attack
        outs = {}

        def run(kind, cfg=cfg):
            attack = build_attack(cfg, clfs[kind])
            labels = attack_labels(attack, y, 5, seed)[0]
            np.random.seed(seed)
            outs[kind] = np.asarray(attack.generate(x=x, y=labels))
        t = timed({k: (lambda k=k: run(k)) for k in clfs}, repeats)
        rows.append({"attack": " ".join([name, *ov]), "stock": med(t["stock"]) / n, "fast": med(t["fast"]) / n,
                     "ratio": ratio(t["stock"], t["fast"]),
                     "max_diff": float(np.abs(outs["stock"] - outs["fast"]).max())})
        print(f"  {rows[-1]['attack']}: {rows[-1]['stock']:.2f} -> {rows[-1]['fast']:.2f} s/segment, "
              f"x{rows[-1]['ratio']:.2f}, max diff {rows[-1]['max_diff']:.1e}", flush=True)
    return rows


FOLD_MODEL = ["experiment=study_models", "augment=none", "dataset=emodb", "dataset.root=/work/shared/data/emodb",
              "+hparams=emodb_paper", "split.n_folds=5", "split.fold=0", "seed=42"]


def fold_training(overrides: list[str], epochs: int) -> dict:
    """One fold's training for ``epochs`` epochs, stock form then fast form, same seed (``compiled_model``
    re-seeds and makes the ops deterministic each time): per-epoch seconds and load, curves, and the two runs'
    weights compared after every epoch (the stock model's weights; the fast form shares them)."""
    import keras

    from ser_attacks.data import prepare
    from ser_attacks.fast_model import stock_form
    from ser_attacks.train import accuracy, compiled_model, fit, normalized_parts
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from grid import compose
    cfg = compose([*overrides, f"train.max_epochs={epochs}", f"train.min_epochs={min(epochs, 10)}", "train.verbose=0",
                   "progress=false"])
    data = prepare(cfg, progress=False)
    _, tr, va, te = normalized_parts(cfg.normalization, data)
    n_classes = len(data.classes)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.load, self.weights = [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):                  # after validation and the test accuracy
            self.seconds.append(time.perf_counter() - self.t0)
            self.load.append(os.getloadavg()[0])
            self.weights.append([w.copy() for w in stock_form(self.model).get_weights()])

    out = {"config": overrides, "epochs": epochs, "train_segments": int(len(tr[1])), "batch": int(cfg.train.batch_size),
           "forms": {}}
    runs = {}
    for kind in ("stock", "fast"):
        model = compiled_model(cfg.model, cfg.train, cfg.seed, tr[0].shape[1:], n_classes, fast=(kind == "fast"))
        timer = Timer()
        t0 = time.perf_counter()
        hist = fit(cfg.train, model, tr, va, n_classes, [timer], test=te)
        total = time.perf_counter() - t0
        runs[kind] = timer
        out["forms"][kind] = {"seconds_per_epoch": timer.seconds, "load": timer.load, "total_s": total,
                              "median_s_after_first": med(timer.seconds[1:]) if epochs > 1 else None,
                              "curves": hist.curves, "epoch_kept": hist.kept_epoch,
                              "val_acc": accuracy(model, *va), "test_acc": accuracy(model, *te),
                              "test_pred": np.argmax(model.predict(te[0], batch_size=64, verbose=0), 1).tolist()}
        f = out["forms"][kind]
        print(f"  {kind} form: {epochs} epochs in {total:.0f} s, epochs {[round(v) for v in timer.seconds]} s, "
              f"kept epoch {hist.kept_epoch}, val {f['val_acc']:.3f}, test {f['test_acc']:.3f}", flush=True)
    diffs = []
    for e in range(min(len(runs["stock"].weights), len(runs["fast"].weights))):
        a, b = runs["stock"].weights[e], runs["fast"].weights[e]
        num = sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b))
        den = sum(float(np.sum(x ** 2)) for x in a)
        diffs.append({"epoch": e + 1, "max_abs": max(float(np.abs(x - y).max()) for x, y in zip(a, b)),
                      "rel_l2": (num / den) ** 0.5})
    out["weights_diff"] = diffs
    # the platform's own model of this config, if cached (trained by `python -m ser_attacks mode=train ...`, fast
    # form): does this run's fast form reproduce it? (same seed, deterministic ops, another process and load)
    from ser_attacks.identity import model_key
    from ser_attacks.train import load_trained
    plain = compose([*overrides, "progress=false"])
    cached = Path(plain.paths.cache_dir) / "models" / model_key(plain, data)
    if cached.is_dir() and int(plain.train.max_epochs) >= epochs:
        tm = load_trained(cached, cached.name)
        if tm.meta.get("epochs") == len(runs["fast"].weights):
            w = stock_form(model).get_weights()               # the fast run, best epoch restored (as saved)
            out["cached_model"] = {"key": cached.name, "epochs": tm.meta["epochs"], "test_acc": tm.meta["test_acc"],
                                   "fast_run_max_abs_diff": max(float(np.abs(a - b).max())
                                                                for a, b in zip(w, tm.model.get_weights()))}
            print(f"  cached model {cached.name}: fast run's weights differ by at most "
                  f"{out['cached_model']['fast_run_max_abs_diff']:.1e}", flush=True)
    s, f = out["forms"]["stock"], out["forms"]["fast"]
    out["test_pred_agree"] = float(np.mean(np.array(s["test_pred"]) == np.array(f["test_pred"])))
    if epochs > 1:
        out["ratio_median_epoch"] = statistics.median(
            x / y for x, y in zip(s["seconds_per_epoch"][1:], f["seconds_per_epoch"][1:]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--profile-batch", type=int, default=32, help="batch of the per-layer profile (training)")
    ap.add_argument("--attack-batches", default="8,10")
    ap.add_argument("--attacks", default="fgsm,bim,deepfool,jsma:attack.theta=1",
                    help="paper-grid attacks (name[:override...]) timed per segment, stock vs fast form")
    ap.add_argument("--attack-n", type=int, default=2, help="segments attacked (one batch)")
    ap.add_argument("--fold-epochs", type=int, default=0, help="time one fold's training (part 4) for this many "
                    "epochs per form; config overrides after -- (default: the study's EmoDB fold 0, seed 42)")
    ap.add_argument("fold_model", nargs="*", help="config overrides of --fold-epochs' training (after --)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: profile,parts,compare,attacks")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import tensorflow as tf

    from ser_attacks.machine import device_name
    res = {"device": device_name(), "tf": tf.__version__, "repeats": args.repeats, "load_before": load(),
           "cores": os.cpu_count(), "command": "python benchmarks/model_speed.py " + " ".join(argv or sys.argv[1:])}
    print(f"# {res['device']}, {res['cores']} cores, TF {res['tf']}, load {res['load_before']}", flush=True)
    if args.fold_epochs:
        res["fold_training"] = fold_training(args.fold_model or FOLD_MODEL, args.fold_epochs)
    if not {"profile", "parts", "compare", "attacks"} - skip:
        res["load_after"] = load()
        report(res)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return 0
    res["peak"] = peak(args.repeats)
    print(f"  matmul 2048^3: {res['peak']['gflops']:.0f} GFLOP/s", flush=True)
    model = final_model(args.seed)
    B = args.profile_batch
    fwd_flops, bwd_flops = cnn_flops(model, B)
    res["flops"] = {"batch": B, "cnn_fwd_gflop": fwd_flops / 1e9, "cnn_train_bwd_gflop": bwd_flops / 1e9,
                    "head_fwd_gflop": lstm_flops(model, B) / 1e9}
    if "profile" not in skip:
        res["profile"] = profile(model, B, args.repeats, training=True)
    if "parts" not in skip:
        res["parts"], _ = parts(model, B, args.repeats)
        print("  " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in res["parts"].items()), flush=True)
    if "compare" not in skip:
        res["compare"] = compare(args.seed, args.repeats, [int(v) for v in args.attack_batches.split(",")],
                                 args.train_batch)
    if "attacks" not in skip:
        res["attacks"] = attacks(args.seed, max(1, args.repeats // 2), args.attacks.split(","), args.attack_n)
    res["load_after"] = load()
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def report(res: dict) -> None:
    print(f"\n{res['device']}, {res['cores']} cores, TF {res['tf']}; load average before {res['load_before']}, "
          f"after {res['load_after']}; medians of {res['repeats']} alternated repeats")
    if "fold_training" in res:
        ft = res["fold_training"]
        s, f = ft["forms"]["stock"], ft["forms"]["fast"]
        print(f"\none fold's training, {ft['epochs']} epochs per form, {ft['train_segments']} training segments, "
              f"batch {ft['batch']}:")
        print("\n| | stock form | fast form | ratio |\n|---|---:|---:|---:|")
        print(f"| first epoch (graph tracing), s | {s['seconds_per_epoch'][0]:.1f} | {f['seconds_per_epoch'][0]:.1f} "
              f"| {s['seconds_per_epoch'][0] / f['seconds_per_epoch'][0]:.2f}x |")
        if ft["epochs"] > 1:
            print(f"| later epochs, median s | {s['median_s_after_first']:.1f} | {f['median_s_after_first']:.1f} | "
                  f"**{ft['ratio_median_epoch']:.2f}x** |")
        print(f"| load average during the epochs | {min(s['load']):.1f}-{max(s['load']):.1f} "
              f"| {min(f['load']):.1f}-{max(f['load']):.1f} | |")
        for k in ("epoch_kept", "val_acc", "test_acc"):
            print(f"| {k} | {s[k]:.3f} | {f[k]:.3f} | |" if k != "epoch_kept" else f"| {k} | {s[k]} | {f[k]} | |")
        print(f"\ntest predictions agreeing: {ft['test_pred_agree']:.3f}")
        print("\n| epoch | weights max abs diff | weights relative L2 diff | training loss stock / fast "
              "| val acc stock / fast |\n|---:|---:|---:|---|---|")
        for d in ft["weights_diff"]:
            e = d["epoch"] - 1
            print(f"| {d['epoch']} | {d['max_abs']:.1e} | {d['rel_l2']:.1e} | {s['curves']['loss'][e]:.6f} / "
                  f"{f['curves']['loss'][e]:.6f} | {s['curves']['val_accuracy'][e]:.3f} / "
                  f"{f['curves']['val_accuracy'][e]:.3f} |")
    if "peak" not in res:
        return
    pk = res["peak"]["gflops"]
    print(f"\nmatmul 2048x2048x2048 float32: **{pk:.0f} GFLOP/s** (the peak below)")
    fl = res["flops"]
    if "profile" in res:
        print(f"\n| layer (batch {fl['batch']}) | input per sample | GFLOP fwd | stock fwd ms | fast fwd ms | "
              "stock fwd+bwd ms | fast fwd+bwd ms | fwd+bwd ratio | fast fwd GFLOP/s (% of peak) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in res["profile"]:
            g = r["gflop_fwd"]
            eff = f"{g / r['fast_fwd']:.0f} ({100 * g / r['fast_fwd'] / pk:.0f} %)" if g else ""
            ms = " | ".join(f"{r[k] * 1e3:.1f}" for k in ("stock_fwd", "fast_fwd", "stock_fb", "fast_fb"))
            print(f"| {r['layer']} | {tuple(r['in'])} | {g:.2f} | {ms} | **{r['ratio_fb']:.1f}x** | {eff} |")
    if "parts" in res:
        p = res["parts"]
        cnn_g = fl["cnn_fwd_gflop"] + fl["cnn_train_bwd_gflop"]
        head_g = fl["head_fwd_gflop"]
        rows = [("CNN forward", p["cnn stock fwd"], p["cnn fast fwd"], fl["cnn_fwd_gflop"]),
                ("CNN forward+backward (weights)", p["cnn stock fwd+bwd"], p["cnn fast fwd+bwd"], cnn_g),
                ("head (Dropout, BiLSTM, Dense) forward", None, p["head fwd"], head_g),
                ("head forward+backward", None, p["head fwd+bwd"], 3 * head_g),
                ("whole model forward+backward", p["model stock fwd+bwd"], p["model fast fwd+bwd"],
                 cnn_g + 3 * head_g)]
        print(f"\n| part (training mode, batch {fl['batch']}) | stock ms | fast ms | GFLOP | fast GFLOP/s (% peak) |")
        print("|---|---:|---:|---:|---:|")
        for name, a, b, g in rows:
            stock = "(same layers)" if a is None else f"{a * 1e3:.0f}"
            print(f"| {name} | {stock} | {b * 1e3:.0f} | {g:.2f} | {g / b:.0f} ({100 * g / b / pk:.0f} %) |")
    if "compare" in res:
        c = res["compare"]
        ts = c["train_step"]
        print("\n| measurement | stock (s, median) | fast (s, median) | speed-up (median of pairs) | max abs diff |")
        print("|---|---:|---:|---:|---|")
        print(f"| training step, batch {ts['batch']} (train_on_batch, Adam) | {ts['stock']:.3f} | {ts['fast']:.3f} | "
              f"**{ts['ratio']:.2f}x** | first loss {ts['first_loss_diff']:.1e}; weights after one step "
              f"{ts['weights_after_1_step_max_diff']:.1e} |")
        for k, r in c.items():
            if not k.startswith("attack_batch_"):
                continue
            n = k.rsplit("_", 1)[1]
            print(f"| forward (logits), batch {n} | {r['forward']['stock']:.3f} | {r['forward']['fast']:.3f} | "
                  f"**{r['forward']['ratio']:.2f}x** | logits {r['logits_max_diff']:.1e} |")
            print(f"| forward+backward w.r.t. the input, batch {n} | {r['forward_backward']['stock']:.3f} | "
                  f"{r['forward_backward']['fast']:.3f} | **{r['forward_backward']['ratio']:.2f}x** | gradient "
                  f"{r['input_grad_max_diff']:.1e} (largest entry {r['input_grad_max']:.1e}) |")
    if "attacks" in res:
        print("\n| attack (paper settings, compiled estimator) | stock form s/segment | fast form s/segment | speed-up "
              "| max abs diff of the adversarial examples |")
        print("|---|---:|---:|---:|---:|")
        for r in res["attacks"]:
            print(f"| {r['attack']} | {r['stock']:.2f} | {r['fast']:.2f} | **{r['ratio']:.2f}x** "
                  f"| {r['max_diff']:.1e} |")


if __name__ == "__main__":
    raise SystemExit(main())
