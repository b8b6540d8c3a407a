"""WC-DNN speed: labels per second, training time on 200k rows, exported decision latency (JSON).

- collect: ``dsd-gym collect`` of ``--config`` (default the demo's ``small``) in ``--mode`` (default
  ego; one controller per mode, as ``make demo``) into a fresh folder with ``--jobs`` processes:
  oracle-labelled rows per wall-clock second of the labelled simulations; the floor's sweep, where
  the config has one, is timed apart (``floor_seconds``, and ``labels_per_s_with_floor`` counts both);
- train: the config's training on ``--rows`` rows (default 200k, issue 5's target: at most 3 min on
  2 cores), made by repeating the collected shards' rows whole (the time depends on the rows and the
  epochs, not on what they hold); early stopping is on, as in ``dsd-gym train wc-dnn``, so the
  epochs run and seconds per epoch are reported too;
- latency: the exported controller's single-session decision, batch 1, one thread
  (:func:`wc_dnn.export.decision_latency_us`; target at most 20 µs); ``latency_mean_of``: the same
  for the mean of K such networks (``export`` with K checkpoints; here the trained one K times: the
  cost depends on the shape, not the weights), K = 4 as ``make awc`` ships and K = 8.

Timings depend on the machine's load; ``load_avg_1m`` at the start is in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wc_dnn.collect import collect, make_plan
from wc_dnn.config import for_evaluation_mode, load_config
from wc_dnn.dataset import SIDECAR, read_shard, write_shard
from wc_dnn.export import decision_latency_us, export_checkpoint, export_checkpoints
from wc_dnn.train import BEST, train

sys.path.insert(0, str(Path(__file__).parent))
from run import emit  # noqa: E402  (benchmarks/ is not a package)


def repeat_dataset(source: Path, out: Path, rows: int) -> int:
    """Write ``source``'s dataset to ``out`` with every shard's rows repeated to reach ``rows`` in
    total (at least); returns the rows written."""
    sidecar = json.loads((source / SIDECAR).read_text())
    n_candidates = len(sidecar["candidates"])
    shards = [read_shard(source / t["file"], t["id"], n_candidates) for t in sidecar["tasks"]]
    total = sum(len(arrays["label"]) for arrays, _ in shards)
    times = max(1, math.ceil(rows / total))
    out.mkdir(parents=True)
    (out / SIDECAR).write_text((source / SIDECAR).read_text())
    for task, (arrays, meta) in zip(sidecar["tasks"], shards, strict=True):
        tiled = {name: np.concatenate([a] * times) for name, a in arrays.items()}
        write_shard(out / task["file"], tiled, {**meta, "rows": len(tiled["label"])})
    return total * times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/wc_dnn/small.yaml", help="a WC-DNN config")
    parser.add_argument(
        "--mode", choices=("fleet", "ego"), default="ego", help="the evaluation mode's pipeline, as make demo"
    )
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--jobs", type=int, default=2, help="collection processes")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    config = for_evaluation_mode(load_config(args.config), args.mode)
    result: dict = {
        "config": args.config,
        "mode": args.mode,
        "load_avg_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"collect {config.name} ({len(make_plan(config).tasks)} shards) ...", file=sys.stderr)
        summary = collect(config, data, jobs=args.jobs)
        result["collect"] = {
            "jobs": args.jobs, "shards": summary["tasks"], "rows": summary["rows"],
            "seconds": round(summary["seconds"], 2), "labels_per_s": round(summary["rows_per_s"], 1),
        }  # fmt: skip
        if summary["floor"] is not None:
            floor_s = summary["floor"]["seconds"]
            with_floor = round(summary["rows"] / (summary["seconds"] + floor_s), 1)
            result["collect"].update(floor_seconds=round(floor_s, 2), labels_per_s_with_floor=with_floor)
        big = Path(tmp) / "big"
        rows = repeat_dataset(data, big, args.rows)
        print(f"train on {rows} rows ...", file=sys.stderr)
        started = time.perf_counter()
        trained = train(config, big, Path(tmp) / "train")
        seconds = time.perf_counter() - started
        result["train"] = {
            "rows": rows, "train_rows": trained["dataset"]["train_rows"], "epochs": trained["epochs"],
            "threads": config.train.threads, "seconds": round(seconds, 2),
            "seconds_per_epoch": round(seconds / trained["epochs"], 3), "target_s": 180,
            "met": seconds <= 180,
        }  # fmt: skip
        controller = export_checkpoint(Path(tmp) / "train" / BEST, Path(tmp) / "controller.pt")
        import torch  # lazy, as everywhere in the benchmarks

        module = torch.jit.load(str(controller))
        latency = decision_latency_us(module)
        result["latency"] = {**latency, "target_us": 20, "met": latency["forward_us"]["median"] <= 20}
        result["latency_mean_of"] = {}
        for members in (4, 8):
            path = export_checkpoints(
                [Path(tmp) / "train" / BEST] * members, Path(tmp) / f"mean-{members}.pt"
            )
            forward = decision_latency_us(torch.jit.load(str(path)))["forward_us"]
            result["latency_mean_of"][str(members)] = {**forward, "met": forward["median"] <= 20}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
