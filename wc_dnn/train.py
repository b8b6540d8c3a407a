"""Train the WC-DNN on a collected dataset (``dsd-gym train wc-dnn``).

**Rows.** Every dataset row whose oracle values are finite (a row where every job would be dropped
teaches nothing). Target: the oracle's decision d* = (γ*, mode*). With ``floor: r`` and ``floor.json``
files in the dataset folders, every row of a variant on which a DAgger learner measured below r ×
the best fixed decision is relabelled to that decision, its values the held shortfalls
(:mod:`wc_dnn.floor`).

**Split.** By scenario variant, never by row: for each scenario with n ≥ 2 variants,
k = min(n − 1, max(1, round(val_fraction · n))) of them, drawn by (train.seed, crc32 of the
scenario's name), are validation; every row of a variant is on one side. A variant the floor
relabelled is never held out (the draw skips it; with fewer than k others, fewer are held out),
unless that would hold out nothing at all.

**Model and loss.** :class:`~wc_dnn.model.FeatureNorm` fitted on the training rows, then
:class:`~wc_dnn.model.WindowNet` (γ̂ = γ_default + Δ, optional mode logits ℓ). Per minibatch

    L = mean_{rows with γ* > 0} Huber_δ(γ̂ − γ*) + w_mode · mean_{rows} CE(ℓ over the enabled modes, mode*)

(autoregressive rows have no window, so only their mode is learnt), plus, with ``regret_weight`` w_r > 0,
w_r times the regret the decision costs by the oracle's own per-candidate values (tokens):

    mean_{rows with γ* > 0} r_{mode*}(clamp(γ̂)) + mean_{rows} Σ_m softmax(ℓ)_m · R_m

where r_m(γ) interpolates value[d*] − value[(g, m)] linearly between neighbouring windows g (zero
at γ*, flat where the values are flat: a window error that costs nothing is not punished) and R_m =
value[d*] − max_g value[(g, m)] is what choosing mode m costs at best. The Huber and cross-entropy
terms keep γ̂ and ℓ anchored where the regret is flat. Adam, minibatches reshuffled
each epoch by a seeded generator, one thread by default: a seed gives the same weights on every run.

**Validation metrics** (per epoch, TensorBoard and ``history``): the loss; ``gamma_mae`` =
mean |γ̂ − γ*| over rows with a window; ``decision_gamma_mae`` the same with γ̂ clamped and
rounded to the nearest window choice (AWC's rules 1 and 3, without smoothing or dwell);
``mode_accuracy``; ``decision_accuracy`` (the whole decision equals d*); and ``regret`` = mean of
value[d*] − value[d̂], d̂ the model's decision per row (mode by argmax, window by rounding), in the
oracle's objective units: tokens per decision (E[committed] − ρ·(E[round time] + X) is tokens). For
scale, ``regret_fixed4`` is the regret of always deciding (4, distributed), and
``regret_tok_s_approx`` = regret / the mean recorded round time, an approximation of the
throughput lost (exact only if the model's rounds took as long as the behaviour's).

**Selection.** ``select: loss`` (the default): the best epoch has the lowest validation loss.
``select: held``: after every epoch the model is exported (``select.pt`` in the run folder) and held
on every variant of the dataset's fixed-decision sweep, and the best epoch has the highest floor score
(:mod:`wc_dnn.floor`, rule 4): the closed loop, not the labels, decides. Its history adds ``held``
(the score), ``held_min`` and ``held_worst`` (the worst variant's ratio and name) and
``held_below`` (variants below ``floor``, or 0.98 without one).

**Checkpoints** (``wc_dnn.checkpoint``): ``last.pt`` after every epoch, ``best.pt`` whenever the
selection criterion (validation loss, or −score) improves by more than ``min_delta``; each holds the
model, the normalisation, the optimiser, the epoch, both RNG states, early stopping's state, the
history and the whole config. Training stops after ``patience`` epochs without improvement or at
``epochs``. ``resume`` continues ``last.pt`` to exactly the state an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dsd_gym.backend import Backend
from dsd_gym.errors import UserError
from dsd_gym.evaluation.stats import capped_geomean
from dsd_gym.sim.controller import Decision, Mode
from wc_dnn.awc import MODE_NAMES
from wc_dnn.checkpoint import load_checkpoint, save_checkpoint
from wc_dnn.collect import make_plan
from wc_dnn.config import WCDNNConfig, config_hash, parse_config
from wc_dnn.dataset import Dataset, decision_records, load_dataset, merge_datasets
from wc_dnn.export import controller_from_checkpoint, export_controller
from wc_dnn.floor import HeldSelection, read_floor, relabel
from wc_dnn.model import FeatureNorm, WindowNet, WindowNetConfig

__all__ = ["Split", "Targets", "evaluate", "split_by_variant", "targets", "train"]

LAST, BEST, METRICS, TENSORBOARD, SELECT = "last.pt", "best.pt", "metrics.json", "tensorboard", "select.pt"
FLOOR_DEFAULT = 0.98  # held_below counts variants below it when train.floor is not set


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices
    val: np.ndarray
    val_groups: list[str]


def split_by_variant(
    dataset: Dataset, val_fraction: float, seed: int, usable: np.ndarray, train_only: Sequence[str] = ()
) -> Split:
    """Hold out whole scenario variants (see the module doc); ``usable``: a row mask; ``train_only``:
    variants never held out (those the floor relabelled: their new labels must be learnt)."""
    val_groups: list[int] = []
    for s, name in enumerate(dataset.scenarios):
        groups = sorted({int(g) for g in np.unique(dataset.group[dataset.scenario == s])})
        if len(groups) < 2:
            continue
        k = min(len(groups) - 1, max(1, round(val_fraction * len(groups))))
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))
        drawn = [groups[i] for i in rng.permutation(len(groups))]
        val_groups += sorted([g for g in drawn if dataset.groups[g] not in train_only][:k])
    if not val_groups and train_only:  # every variant relabelled: validate on some of them after all
        return split_by_variant(dataset, val_fraction, seed, usable)
    if not val_groups:
        raise UserError(
            f"dataset {dataset.directory}: validation holds out scenario variants, and no scenario has "
            "two or more; set collect.scenarios.N.variants >= 2 for at least one scenario"
        )
    held = np.isin(dataset.group, val_groups)
    train_rows, val_rows = np.flatnonzero(usable & ~held), np.flatnonzero(usable & held)
    if not len(train_rows) or not len(val_rows):
        raise UserError(
            f"dataset {dataset.directory}: the split leaves no usable training or validation rows"
        )
    return Split(train_rows, val_rows, [dataset.groups[g] for g in sorted(val_groups)])


@dataclass(frozen=True)
class Targets:
    """Per candidate: its window, mode code and index among the enabled modes; the enabled mode
    codes; the window choices; and the index of a (γ, mode) decision."""

    gamma: np.ndarray
    mode: np.ndarray
    enabled: list[int]
    windows: list[int]
    index: dict[tuple[int, int], int]


def targets(candidates: list[Decision]) -> Targets:
    enabled = sorted({int(d.mode) for d in candidates})
    return Targets(
        np.array([d.gamma for d in candidates], dtype=np.float32),
        np.array([int(d.mode) for d in candidates], dtype=np.int64),
        enabled,
        sorted({d.gamma for d in candidates if d.mode != Mode.AUTOREGRESSIVE}),
        {(d.gamma, int(d.mode)): j for j, d in enumerate(candidates)},
    )


def regret_tables(values: np.ndarray, label: np.ndarray, t: Targets) -> tuple[np.ndarray, np.ndarray]:
    """Per row (finite values): value[d*] − value[(g, mode*)] for each window g ([N, K]; zeros when
    d* is autoregressive), and value[d*] − max_g value[(g, m)] for each enabled mode m ([N, M])."""
    values = values.astype(np.float64)
    rows = np.arange(len(label))
    best = values[rows, label]
    mode_star = t.mode[label]
    window = np.zeros((len(label), len(t.windows)))
    for k, g in enumerate(t.windows):
        for m in t.enabled:
            j = t.index.get((g, m))
            if j is not None:
                chosen = mode_star == m
                window[chosen, k] = best[chosen] - values[chosen, j]
    by_mode = np.stack([values[:, t.mode == m].max(axis=1) for m in t.enabled], axis=1)
    return window.astype(np.float32), (best[:, None] - by_mode).astype(np.float32)


def _interpolated(windows: Tensor, table: Tensor, gamma: Tensor) -> Tensor:
    """table [N, K] over ``windows`` [K] (ascending), linearly interpolated at clamped ``gamma``."""
    if len(windows) == 1:
        return table[:, 0]
    clamped = gamma.clamp(float(windows[0]), float(windows[-1]))
    hi = torch.searchsorted(windows, clamped.detach()).clamp(1, len(windows) - 1)
    lo = hi - 1
    w_lo, w_hi = windows[lo], windows[hi]
    frac = (clamped - w_lo) / (w_hi - w_lo)
    r_lo = table.gather(1, lo[:, None]).squeeze(1)
    r_hi = table.gather(1, hi[:, None]).squeeze(1)
    return r_lo + frac * (r_hi - r_lo)


def _losses(
    net: WindowNet, z: Tensor, gamma: Tensor, mode: Tensor, has_window: Tensor, enabled: Tensor,
    cfg: Any, regret: tuple[Tensor, Tensor, Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """(total, Huber part, CE part, regret part, γ̂, logits over the enabled modes) of a batch;
    ``regret``: the windows [K] and the batch's two :func:`regret_tables`."""
    gamma_hat, logits = net(z)
    if bool(has_window.any()):
        huber = nn.functional.huber_loss(gamma_hat[has_window], gamma[has_window], delta=cfg.huber_delta)
    else:
        huber = gamma_hat.sum() * 0.0
    logits = logits[:, enabled]
    ce = nn.functional.cross_entropy(logits, mode) if net.has_mode_head else huber * 0.0
    total = huber + cfg.mode_weight * ce
    regret_loss = huber * 0.0
    if cfg.regret_weight > 0:
        windows, window_regret, mode_regret = regret
        if bool(has_window.any()):
            regret_loss = _interpolated(windows, window_regret[has_window], gamma_hat[has_window]).mean()
        if net.has_mode_head:
            regret_loss = regret_loss + (logits.softmax(dim=1) * mode_regret).sum(dim=1).mean()
        total = total + cfg.regret_weight * regret_loss
    return total, huber, ce, regret_loss, gamma_hat, logits


def _nearest(windows: np.ndarray, gamma: np.ndarray, low: float, high: float) -> np.ndarray:
    """Each clamped γ̂ rounded to the nearest window; ties to the smaller (AWC's rules 1 and 3)."""
    clamped = np.clip(gamma, low, high)
    distance = np.abs(clamped[:, None] - windows[None, :])
    return windows[np.argmin(distance, axis=1)]  # argmin takes the first: windows ascend


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(x[mask])) if mask.any() else 0.0


def evaluate(
    net: WindowNet, norm: FeatureNorm, arrays: dict[str, np.ndarray], rows: np.ndarray, t: Targets, cfg: Any
) -> dict[str, float]:
    """Validation metrics on ``rows`` (see the module doc)."""
    features = torch.from_numpy(arrays["features"][rows])
    label = arrays["label"][rows].astype(np.int64)
    gamma_star, mode_star = t.gamma[label], t.mode[label]
    enabled = torch.tensor(t.enabled)
    mode_target = torch.from_numpy(np.searchsorted(np.array(t.enabled), mode_star))
    has_window = mode_star != int(Mode.AUTOREGRESSIVE)
    window_regret, mode_regret = regret_tables(arrays["values"][rows], label, t)
    regret_inputs = (
        torch.tensor(t.windows, dtype=torch.float32), torch.from_numpy(window_regret),
        torch.from_numpy(mode_regret),
    )  # fmt: skip
    net.eval()
    with torch.no_grad():
        loss, huber, ce, regret_loss, gamma_hat, logits = _losses(
            net, norm(features), torch.from_numpy(gamma_star), mode_target, torch.from_numpy(has_window),
            enabled, cfg, regret_inputs,
        )  # fmt: skip
    net.train()
    gamma_hat = gamma_hat.numpy().astype(np.float64)
    windows = np.array(t.windows, dtype=np.float64)
    rounded = _nearest(windows, gamma_hat, windows[0], windows[-1])
    if net.has_mode_head:
        mode_hat = np.array(t.enabled)[logits.argmax(dim=1).numpy()]
    else:
        mode_hat = np.full(len(rows), t.enabled[0])
    ar = int(Mode.AUTOREGRESSIVE)
    pairs = zip(rounded, mode_hat, strict=True)
    chosen = np.array([t.index[(0 if m == ar else int(g), int(m))] for g, m in pairs], dtype=np.int64)
    values = arrays["values"][rows].astype(np.float64)
    best = values[np.arange(len(rows)), label]
    regret = best - values[np.arange(len(rows)), chosen]
    fixed4 = t.index.get((4, int(Mode.DISTRIBUTED)))
    round_s = float(np.mean(arrays["features"][rows, 0])) / 1e3  # round_ms of the last round
    out = {
        "loss": float(loss),
        "huber": float(huber),
        "mode_ce": float(ce),
        "regret_loss": float(regret_loss),
        "gamma_mae": _masked_mean(np.abs(gamma_hat - gamma_star), has_window),
        "decision_gamma_mae": _masked_mean(np.abs(rounded - gamma_star), has_window),
        "mode_accuracy": float(np.mean(mode_hat == mode_star)),
        "decision_accuracy": float(np.mean(chosen == label)),
        "regret": float(np.mean(regret)),
        "regret_tok_s_approx": float(np.mean(regret)) / round_s if round_s > 0 else math.nan,
        "rows": int(len(rows)),
    }  # fmt: skip
    if fixed4 is not None:
        out["regret_fixed4"] = float(np.mean(best - values[:, fixed4]))
    return out


def _model_config(config: WCDNNConfig, t: Targets) -> dict[str, Any]:
    spec = config.train.model
    mode_head = len(t.enabled) > 1 if spec.mode_head is None else spec.mode_head
    return {
        "hidden": spec.hidden,
        "depth": spec.depth,
        "default_gamma": spec.default_gamma,
        "mode_head": mode_head,
        "ignore": list(spec.ignore),
    }


def _log(writer: Any, epoch: int, train_loss: float, val: dict[str, float]) -> None:
    writer.add_scalar("loss/train", train_loss, epoch)
    writer.add_scalar("loss/val", val["loss"], epoch)
    for key in ("huber", "mode_ce", "regret_loss"):
        writer.add_scalar(f"loss/val_{key}", val[key], epoch)
    for key in ("gamma_mae", "decision_gamma_mae", "mode_accuracy", "decision_accuracy", "regret"):
        writer.add_scalar(f"val/{key}", val[key], epoch)
    for key, tag in (("held", "score"), ("held_min", "min"), ("held_below", "below")):
        if key in val:
            writer.add_scalar(f"held/{tag}", val[key], epoch)
    writer.flush()


def _held_selection(config: WCDNNConfig, floors: list[dict[str, Any]], jobs: int | None) -> HeldSelection:
    """``select: held``'s scorer: the dataset's fixed sweep, each variant's scenario from the config."""
    sweeps = [f for f in floors if f["learner"] is None]
    if not sweeps:
        raise UserError(
            "train.select held: the data has no fixed-decision sweep (floor.json); collect it with "
            "collect.floor_seeds >= 1, or use train.select loss"
        )
    if sweeps[0]["config_hash"] != config_hash(config.collect):
        raise UserError(
            "train.select held: the data's floor.json was collected with another collect config; "
            "train with the config that collected it"
        )
    plan = make_plan(config)
    scenarios = {f"{task.scenario}/v{task.variant}": plan.scenarios[task.id] for task in plan.tasks}
    return HeldSelection(sweeps[0], scenarios, Backend("processes", jobs))


def _held(
    selector: HeldSelection, config: WCDNNConfig, dataset: Dataset, weights: dict[str, Any], path: Path
) -> dict[str, Any]:
    """Export the model in ``weights`` to ``path`` and score it held (:mod:`wc_dnn.floor`, rule 4)."""
    records = decision_records(dataset.candidates)
    checkpoint = {"config": config.model_dump(mode="json"), "candidates": records, **weights}
    export_controller(controller_from_checkpoint(checkpoint, f"run {path.parent}"), path)
    measured = selector.measure(path)
    ratios = list(measured.values())
    floor = config.train.floor if config.train.floor is not None else FLOOR_DEFAULT
    below = float(sum(r < floor for r in ratios))
    worst = min(measured, key=lambda group: measured[group])
    return {"held": capped_geomean(ratios), "held_min": min(ratios), "held_below": below, "held_worst": worst}


def train(
    config: WCDNNConfig, data: str | Path | Sequence[str | Path], out: str | Path, resume: bool = False,
    stop_after: int | None = None, progress: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None, jobs: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train (or, with ``resume``, continue) and return the summary written to ``metrics.json``.

    ``data``: a dataset folder, or several to train on their union (:func:`merge_datasets`).
    ``stop_after``: end after that many epochs of this call, as an interruption would (tests use it).
    ``on_epoch(epoch, validation)``: called after each epoch's checkpoint (a tuner's pruning hook; an
    exception it raises ends the run there). ``jobs``: worker processes for ``select: held``'s
    simulations (default: one per CPU).
    """
    out = Path(out)
    folders = [data] if isinstance(data, (str, Path)) else list(data)
    dataset = merge_datasets([load_dataset(d) for d in folders])
    cfg = config.train
    arrays, verdicts = dataset.arrays, []
    floors = [f for f in (read_floor(Path(d)) for d in folders) if f is not None]
    if cfg.floor is not None and floors:
        label, values, verdicts = relabel(
            floors, dataset.candidates, dataset.groups, dataset.group, arrays["label"], arrays["values"],
            cfg.floor,
        )  # fmt: skip
        arrays = {**arrays, "label": label, "values": values}
    floor_record = [v.record() for v in verdicts]
    if resume:
        checkpoint = load_checkpoint(out / LAST)
        saved = parse_config(checkpoint["config"], f"checkpoint {out / LAST}: config")
        if saved != config:
            raise UserError(
                f"--resume {out}: the run was started with another config (name {saved.name!r}); "
                "resume with the same config, or give a new --out"
            )
        if (checkpoint["dataset"]["config_hash"], checkpoint["dataset"].get("floor", [])) != (
            dataset.sidecar["config_hash"],
            floor_record,
        ):
            where = ", ".join(map(str, folders))
            raise UserError(f"--resume {out}: the run was trained on another dataset than {where}")
    else:
        if (out / LAST).exists():
            raise UserError(
                f"--out {out}: holds a training run; pass --resume to continue it or give a new --out"
            )
        checkpoint = None
    held = cfg.selection(config.collect.evaluation_modes) == "held"
    selector = _held_selection(config, floors, jobs) if held else None
    t = targets(dataset.candidates)
    usable = np.isfinite(arrays["values"]).any(axis=1)
    relabelled = [v.group for v in verdicts if v.relabelled]
    split = split_by_variant(dataset, cfg.val_fraction, cfg.seed, usable, relabelled)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        model_config = _model_config(config, t)
        net = WindowNet(WindowNetConfig(**model_config))
        norm = FeatureNorm().fit(arrays["features"][split.train])
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        epoch, best_loss, best_epoch, bad, history, stopped = 0, math.inf, 0, 0, [], False
        if checkpoint is not None:
            net.load_state_dict(checkpoint["model"])
            norm.load_state_dict(checkpoint["norm"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            torch.set_rng_state(checkpoint["torch_rng"])
            shuffle.set_state(checkpoint["shuffle_rng"])
            epoch, history = int(checkpoint["epoch"]), list(checkpoint["history"])
            best_loss, best_epoch = float(checkpoint["best_loss"]), int(checkpoint["best_epoch"])
            bad, stopped = int(checkpoint["bad_epochs"]), bool(checkpoint["stopped"])
        from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is slow to import

        writer = SummaryWriter(str(out / TENSORBOARD), purge_step=epoch + 1 if checkpoint else None)
        features = torch.from_numpy(arrays["features"][split.train])
        label = arrays["label"][split.train].astype(np.int64)
        gamma = torch.from_numpy(t.gamma[label])
        mode = torch.from_numpy(np.searchsorted(np.array(t.enabled), t.mode[label]))
        has_window = torch.from_numpy(t.mode[label] != int(Mode.AUTOREGRESSIVE))
        enabled = torch.tensor(t.enabled)
        window_regret, mode_regret = (
            torch.from_numpy(a) for a in regret_tables(arrays["values"][split.train], label, t)
        )
        windows = torch.tensor(t.windows, dtype=torch.float32)
        z_all = norm(features).detach()
        n = len(label)
        run_epochs = 0
        start = time.perf_counter()
        provenance = {
            "directory": ", ".join(str(Path(d)) for d in folders),
            "config_hash": dataset.sidecar["config_hash"], "rows": dataset.rows, "train_rows": int(n),
            "val_rows": int(len(split.val)), "val_groups": split.val_groups, "floor": floor_record,
        }  # fmt: skip
        while not stopped and epoch < cfg.epochs and (stop_after is None or run_epochs < stop_after):
            order = torch.randperm(n, generator=shuffle)
            total = 0.0
            for i in range(0, n, cfg.batch_size):
                batch = order[i : i + cfg.batch_size]
                regret = (windows, window_regret[batch], mode_regret[batch])
                loss, *_ = _losses(
                    net, z_all[batch], gamma[batch], mode[batch], has_window[batch], enabled, cfg, regret
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                net.hold_ignored()
                optimizer.step()
                total += loss.item() * len(batch)
            epoch += 1
            run_epochs += 1
            val = evaluate(net, norm, arrays, split.val, t, cfg)
            criterion = val["loss"]
            if selector is not None:
                weights = {"model": net.state_dict(), "norm": norm.state_dict(), "model_config": model_config}
                val.update(_held(selector, config, dataset, weights, out / SELECT))
                criterion = -val["held"]
            history.append({"epoch": epoch, "train_loss": total / n, **val})
            _log(writer, epoch, total / n, val)
            improved = criterion < best_loss - cfg.min_delta
            if improved:
                best_loss, best_epoch, bad = criterion, epoch, 0
            else:
                bad += 1
            stopped = bad >= cfg.patience
            state = {
                "epoch": epoch, "model": net.state_dict(), "norm": norm.state_dict(),
                "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "shuffle_rng": shuffle.get_state(), "best_loss": best_loss, "best_epoch": best_epoch,
                "bad_epochs": bad, "stopped": stopped, "history": history,
                "config": config.model_dump(mode="json"), "config_hash": config_hash(config),
                "model_config": model_config, "candidates": decision_records(dataset.candidates),
                "dataset": provenance,
            }  # fmt: skip
            if improved:
                save_checkpoint(out / BEST, state)
            save_checkpoint(out / LAST, state)
            if on_epoch is not None:
                on_epoch(epoch, val)
            if progress:
                mark = "  *" if improved else ""
                if selector is not None:
                    mark = f"  held {val['held']:.4f} (min {val['held_min']:.3f} {val['held_worst']}){mark}"
                print(
                    f"epoch {epoch:3d}  train {total / n:.4f}  val {val['loss']:.4f}  "
                    f"γ MAE {val['gamma_mae']:.3f}  mode acc {val['mode_accuracy']:.3f}  "
                    f"regret {val['regret']:.4f}{mark}",
                    file=sys.stderr,
                )
        writer.close()
    finally:
        torch.set_num_threads(threads)
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    summary = {
        "out": str(out), "best_checkpoint": str(out / BEST), "last_checkpoint": str(out / LAST),
        "epochs": epoch, "best_epoch": best_epoch, "stopped_early": stopped,
        "seconds_this_call": time.perf_counter() - start, "dataset": provenance,
        "model": model_config, "window_choices": t.windows, "modes": [MODE_NAMES[m] for m in t.enabled],
        "best_val": best,
    }  # fmt: skip
    (out / METRICS).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
