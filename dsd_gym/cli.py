"""The ``dsd-gym`` command.

    dsd-gym scenarios
    dsd-gym simulate --scenario NAME|PATH [--policy SPEC ...] [--seed N] [--set KEY=VALUE ...] [--json]
    dsd-gym bench [--json] [--quick]
    dsd-gym evaluate --scenario S [...] --policy P [...] [--seeds N] [--mode ego|fleet]
                     [--sweep KEY=V1,V2,...] [--json PATH] [--csv PATH] [--plots DIR] [--jobs N]
                     [--backend processes|ray [--address ADDR]]
    dsd-gym pick CONTROLLER [CONTROLLER ...] --out controller.pt [--scenario S ...] [--mode ego|fleet]
                 [--seeds N] [--seed-base B] [--set KEY=VALUE ...] [--json PATH] [--jobs N]
    dsd-gym collect --config CONFIG [--mode fleet|ego] [--set KEY=VALUE ...] [--out DIR] [--jobs N]
                    [--learner CONTROLLER.pt] [--backend processes|ray [--address ADDR]]
    dsd-gym train wc-dnn --config CONFIG [--mode fleet|ego] [--set KEY=VALUE ...] [--data DIR ...] [--out DIR]
                         [--resume]
    dsd-gym train rl --algo ALGO [--env ID] [--config CONFIG] [--timesteps N] [--seed S] [--out DIR]
                     [--resume]
    dsd-gym tune rl --algo ALGO [--env ID] [--config CONFIG] [--timesteps N] [--trials N]
                    [--storage URL] [--study NAME] [--out DIR] [--jobs N] [--backend processes|ray]
    dsd-gym tune wc-dnn --config CONFIG [--data DIR ...] [--trials N] [--storage URL] [--study NAME]
                        [--out DIR] [--jobs N] [--backend processes|ray [--address ADDR]]
    dsd-gym curves RUN [RUN ...] --out curves.png
    dsd-gym export --checkpoint CKPT [--checkpoint CKPT ...] --out controller.pt
    dsd-gym export --run RUN --out controller.pt

``collect``, ``train wc-dnn`` and ``export --checkpoint`` run the WC-DNN pipeline of the ``wc_dnn``
package, ``train rl``, ``curves`` and ``export --run`` the RL agents of ``agents`` (``--checkpoint``
given an RL run folder or model zip exports it too), each imported inside its function: the CLI is the top
of the stack (DESIGN §2), and ``import dsd_gym.cli`` stays free of torch. A user error prints one line
(``error: ...``) and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from dsd_gym.backend import BACKENDS, Backend
from dsd_gym.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        # Rejected here rather than by the top-level parser, which cannot say what this command allows.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            options = sorted({o for a in self._actions for o in a.option_strings})
            self.error(f"unrecognized arguments: {' '.join(extras)}; allowed: {', '.join(options)}")
        return namespace, extras


def _seed(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"value {text!r} is invalid; allowed: an integer >= 0")
    return int(text)


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"value {text!r} is invalid; allowed: an integer >= 1")
    return int(text)


def _add_backend(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--jobs", type=_positive, metavar="N",
        help=f"{what} at once: worker processes, or a local Ray instance's CPUs (default: one per CPU; "
        "1 with processes: in this process)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=BACKENDS, default="processes",
        help="processes: worker processes on this machine (default); ray: Ray tasks on the cluster at "
        "--address, or on a local Ray instance",
    )  # fmt: skip
    parser.add_argument("--address", metavar="ADDR", help="a Ray cluster's address (host:port, or auto)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dsd-gym", description="Distributed speculative decoding workbench.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("scenarios", help="list the shipped scenarios")

    sim = sub.add_parser("simulate", help="run a scenario under one or more policies")
    sim.add_argument("--scenario", required=True, help="a shipped scenario name or a YAML path")
    sim.add_argument(
        "--policy",
        action="append",
        help="a policy spec (repeat to compare; default: the scenario's control.policy)",
    )
    sim.add_argument("--seed", type=_seed, help="seed of every random stream (default: the scenario's)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    sim.add_argument("--json", action="store_true", help="print JSON instead of a table")

    bench = sub.add_parser("bench", help="simulator speed and memory benchmark")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--quick", action="store_true", help="shorter runs (for smoke tests)")

    ev = sub.add_parser(
        "evaluate",
        help="policies x scenarios x seeds on common random numbers: mean, 95%% CI, ratios",
        description="Every (scenario variant, policy, seed) is one simulation; policies share the seeds "
        "0..N-1 (plus --seed-base), hence the same random numbers. Throughput is the mean over seeds "
        "with a 95% Student-t interval; ratios are ratios of mean throughputs on the same seeds.",
    )
    ev.add_argument(
        "--scenario",
        action="append",
        required=True,
        help="a shipped name, a YAML path, or all (every shipped one) (repeat)",
    )
    ev.add_argument(
        "--policy",
        action="append",
        required=True,
        help="a policy spec, or best-fixed (the best fixed decision in hindsight) (repeat)",
    )
    ev.add_argument("--seeds", type=_positive, default=5, metavar="N", help="seeds per policy (default: 5)")
    ev.add_argument("--seed-base", type=_seed, default=0, metavar="B", help="first seed (default: 0)")
    ev.add_argument(
        "--mode",
        choices=["ego", "fleet"],
        default="fleet",
        help="fleet: every foreground session runs the policy; ego: only the first, the others run the "
        "scenario's control.policy, and the figures are the ego's own (default: fleet)",
    )
    ev.add_argument("--sweep", metavar="KEY=V1,V2,...", help="one scenario variant per value of a key")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    ev.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    ev.add_argument("--csv", metavar="PATH", help="write the rows as CSV")
    ev.add_argument("--plots", metavar="DIR", help="write throughput, TPOT and γ-over-time PNGs")
    _add_backend(ev, "simulations")
    ev.add_argument(
        "--no-oracle",
        action="store_true",
        help="do not simulate the oracle as a reference (× oracle is then '-')",
    )

    pk = sub.add_parser(
        "pick",
        help="pick one controller of several on validation seeds, by its ratio to best-fixed",
        description="Hold every candidate and every fixed decision on the scenarios, on seeds disjoint "
        "from an evaluation's (from 1000 by default), and copy the candidate with the highest capped "
        "geometric mean of its ratios to best-fixed (a gain on one scenario does not pay for a "
        "shortfall on another) to --out.",
    )
    pk.add_argument("candidates", nargs="+", metavar="CONTROLLER", help="exported controller files (.pt)")
    pk.add_argument("--out", required=True, help="where to copy the winning controller file")
    pk.add_argument(
        "--scenario", action="append",
        help="a shipped name, a YAML path, or all (repeat; default: all)",
    )  # fmt: skip
    pk.add_argument(
        "--mode", choices=["ego", "fleet"], default="fleet", help="as evaluate's (default: fleet)"
    )
    pk.add_argument("--seeds", type=_positive, default=4, metavar="N", help="seeds per policy (default: 4)")
    pk.add_argument(
        "--seed-base", type=_seed, default=1000, metavar="B",
        help="first seed (default: 1000, disjoint from evaluate's)",
    )  # fmt: skip
    pk.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    pk.add_argument("--json", metavar="PATH", help="write the scores and the winner as JSON")
    _add_backend(pk, "simulations")

    col = sub.add_parser(
        "collect",
        help="WC-DNN dataset: randomised scenarios under a behaviour policy, labelled by the oracle",
        description="Sharded by (scenario variant, seed); a rerun into the same --out skips complete "
        "shards. Deterministic for the config's collect.seed.",
    )
    col.add_argument("--config", required=True, help="a WC-DNN config (configs/wc_dnn/<name>.yaml)")
    _wc_dnn_arguments(col)
    col.add_argument("--out", help="dataset folder (default: runs/wc_dnn/<name>/data)")
    _add_backend(col, "shards")
    col.add_argument(
        "--learner",
        metavar="PATH",
        help="DAgger: an exported controller that behaviour sessions run (collect.behaviour.learner_share)",
    )

    tr = sub.add_parser("train", help="train a learned controller")
    tr_sub = tr.add_subparsers(dest="model", required=True, parser_class=_Parser)
    wc = tr_sub.add_parser("wc-dnn", help="the WC-DNN window regressor on a collected dataset")
    wc.add_argument("--config", required=True, help="a WC-DNN config (configs/wc_dnn/<name>.yaml)")
    _wc_dnn_arguments(wc)
    wc.add_argument(
        "--data",
        action="append",
        help="dataset folder; repeat to train on their union, e.g. with DAgger rounds "
        "(default: runs/wc_dnn/<name>/data)",
    )
    wc.add_argument("--out", help="run folder: checkpoints, TensorBoard (default: runs/wc_dnn/<name>/train)")
    wc.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")

    rl = tr_sub.add_parser("rl", help="an RL agent (Stable-Baselines3) on a dsd-gym env")
    rl.add_argument("--algo", required=True, help="ppo, a2c, dqn, recurrent-ppo or qrdqn")
    rl.add_argument("--env", default="dsd_gym/DSD-v0", metavar="ID", help="env id (default: dsd_gym/DSD-v0)")
    rl.add_argument("--config", help="hyperparameters (default: configs/agents/<algo>.yaml)")
    rl.add_argument(
        "--timesteps", type=_positive, metavar="N", help="total env steps (default: the config's)"
    )
    rl.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the envs and the agent")
    rl.add_argument("--out", help="run folder (default: runs/agents/<algo>/<env>-seed<S>)")
    rl.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    rl.add_argument("--no-progress", action="store_true", help="no progress bar")

    tu = sub.add_parser(
        "tune",
        help="hyperparameter search with Optuna (a persistent study: the same command resumes it)",
    )
    tu_sub = tu.add_subparsers(dest="model", required=True, parser_class=_Parser)
    tu_rl = tu_sub.add_parser("rl", help="an RL agent's hyperparameters; objective: held-out throughput")
    tu_rl.add_argument("--algo", required=True, help="ppo, a2c or dqn")
    tu_rl.add_argument(
        "--env", default="dsd_gym/DSD-v0", metavar="ID", help="env id (default: dsd_gym/DSD-v0)"
    )
    tu_rl.add_argument(
        "--config", help="the hyperparameters searched around (default: configs/agents/<algo>.yaml)"
    )
    tu_rl.add_argument(
        "--timesteps",
        type=_positive,
        default=50_000,
        metavar="N",
        help="env steps per trial (default: 50000)",
    )
    tu_wc = tu_sub.add_parser("wc-dnn", help="the WC-DNN's training settings; objective: validation regret")
    tu_wc.add_argument("--config", required=True, help="a WC-DNN config (configs/wc_dnn/<name>.yaml)")
    tu_wc.add_argument(
        "--data", action="append", help="dataset folder (repeat; default: runs/wc_dnn/<name>/data)"
    )
    for parser_ in (tu_rl, tu_wc):
        parser_.add_argument(
            "--trials", type=_positive, default=20, metavar="N",
            help="finished trials the study should hold; a rerun runs only the missing ones (default: 20)",
        )  # fmt: skip
        parser_.add_argument(
            "--storage", metavar="URL",
            help="Optuna storage: an RDB URL (sqlite:///runs/tune/ppo.db, postgresql://...) or a journal "
            "file path ending in .log (default: sqlite:///<out>/study.db)",
        )  # fmt: skip
        parser_.add_argument(
            "--study", metavar="NAME", help="study name (default: <algo>-<env> / wc-dnn-<name>)"
        )
        parser_.add_argument("--out", help="trial run folders (default: runs/tune/<study>)")
        parser_.add_argument(
            "--seed", type=_seed, default=0, metavar="S", help="seed of the samplers and runs"
        )
        _add_backend(parser_, "trials")

    cu = sub.add_parser("curves", help="learning curves of RL runs as one PNG")
    cu.add_argument("runs", nargs="+", metavar="RUN", help="run folders dsd-gym train rl wrote")
    cu.add_argument("--out", required=True, help="the PNG to write")

    ex = sub.add_parser("export", help="a trained controller as one TorchScript controller file")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--checkpoint", action="append",
        help="a WC-DNN checkpoint dsd-gym train wc-dnn wrote (best.pt); repeat to export their mean",
    )  # fmt: skip
    what.add_argument("--run", help="an RL run folder dsd-gym train rl wrote, or a model zip inside it")
    ex.add_argument("--out", required=True, help="the .pt file to write (torchscript:PATH runs it)")
    return parser


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """One line per policy; speedups against autoregressive when it is among them."""
    base = next((r for r in rows if r["policy"] == "autoregressive"), None)
    header = [
        "policy", "tok/s", "user tok/s", "TTFT p50 ms", "TPOT p50 ms", "TPOT p99 ms", "accept",
        "tok/round", "util", "batch", "goodput rps",
    ]  # fmt: skip
    if base:
        header.append("× AR")
    lines = []
    for r in rows:
        line = [
            r["policy"], _fmt(r["throughput_tok_s"]), _fmt(r["session_tok_s"]),
            _fmt(r["ttft_ms"]["p50"]), _fmt(r["tpot_ms"]["p50"], 2), _fmt(r["tpot_ms"]["p99"], 2),
            _fmt(r["acceptance_rate"], 3), _fmt(r["tokens_per_round"], 2),
            _fmt(r["target_utilization"], 2), _fmt(r["mean_batch_size"], 1), _fmt(r["goodput_rps"], 2),
        ]  # fmt: skip
        if base:
            line.append(
                _fmt(r["throughput_tok_s"] / base["throughput_tok_s"], 2) if base["throughput_tok_s"] else "-"
            )
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(str(x).rjust(w) for x, w in zip(line, widths, strict=True)) for line in lines)
    return "\n".join(out)


def summary_table(r: dict[str, Any]) -> str:
    """One policy's metrics, one per line."""
    b = r["round_breakdown_ms"]
    pairs = [
        ("scenario", r["scenario"]), ("policy", r["policy"]), ("seed", r["seed"]),
        ("simulated", f"{r['sim_time_s']:g} s ({r['measured_s']:g} s measured after warm-up)"),
        ("throughput", f"{r['throughput_tok_s']:.1f} tok/s (foreground {r['foreground_tok_s']:.1f})"),
        ("user decode speed", f"{r['session_tok_s']:.1f} tok/s"),
        ("TTFT p50/p95/p99", "/".join(_fmt(r["ttft_ms"][p]) for p in ("p50", "p95", "p99")) + " ms"),
        ("TPOT p50/p95/p99", "/".join(_fmt(r["tpot_ms"][p], 2) for p in ("p50", "p95", "p99")) + " ms"),
        ("goodput", f"{r['goodput_rps']:.2f} req/s"),
        ("acceptance rate", f"{r['acceptance_rate']:.3f}"),
        ("tokens per round", f"{r['tokens_per_round']:.2f}"),
        ("target utilization", f"{r['target_utilization']:.2f}"),
        ("mean batch size", f"{r['mean_batch_size']:.1f}"),
        ("rounds", f"{r['rounds']} ({', '.join(f'{k} {v}' for k, v in r['rounds_by_mode'].items() if v)})"),
        ("requests", f"{r['completed_requests']} completed, {r['in_flight_requests']} in flight"),
        ("round breakdown", ", ".join(f"{k} {v:.2f}" for k, v in b.items()) + " ms"),
        ("failures / re-prefills", f"{r['target_failures']} / {r['reprefills']}"),
        ("retransmissions", str(r["retransmissions"])),
    ]  # fmt: skip
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def _simulate(args: argparse.Namespace) -> None:
    from dsd_gym.config import load_scenario
    from dsd_gym.runner import simulate

    scenario = load_scenario(args.scenario, args.set)
    policies = args.policy or [scenario.control.policy]
    from dsd_gym.controllers import parse_policy

    for spec in policies:  # every spec is checked before anything runs
        try:
            parse_policy(spec, scenario)
        except UserError as exc:
            key = "--policy" if args.policy else f"scenario {scenario.name!r}: control.policy"
            raise UserError(f"{key}: {exc}") from None
    rows = [simulate(scenario, spec, args.seed) for spec in policies]
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    elif len(rows) == 1:
        print(summary_table(rows[0]))
    else:
        print(f"scenario {scenario.name}, seed {rows[0]['seed']}, {scenario.duration_s:g} s simulated")
        print(comparison_table(rows))


def _scenarios(args: argparse.Namespace) -> None:
    from dsd_gym.config import list_scenarios

    rows = list_scenarios()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name.ljust(width)}  {description}")


def _bench(args: argparse.Namespace) -> None:
    from dsd_gym.bench import run_benchmarks

    result = run_benchmarks(quick=args.quick, progress=not args.json)
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def _output_path(flag: str, path: str | None, directory: bool = False) -> None:
    """Checked before anything runs: an evaluation is not thrown away for a mistyped path."""
    if path is None:
        return
    target = os.path.abspath(path)
    if directory:
        if os.path.exists(target) and not os.path.isdir(target):
            raise UserError(f"{flag} {path}: exists and is not a directory")
        return
    if os.path.isdir(target):
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    if not os.path.isdir(os.path.dirname(target)):
        raise UserError(f"{flag} {path}: no such directory {os.path.dirname(target)!r}")


def _evaluate(args: argparse.Namespace) -> int:
    from dsd_gym.evaluation import make_plan, run_plan
    from dsd_gym.evaluation.aggregate import title
    from dsd_gym.evaluation.report import table, to_csv, to_json, write_text

    _output_path("--json", args.json)
    _output_path("--csv", args.csv)
    _output_path("--plots", args.plots, directory=True)
    backend = Backend(args.backend, args.jobs, args.address)
    plan = make_plan(
        args.scenario, args.policy, args.seeds, args.seed_base, args.mode, args.sweep, args.set,
        oracle=not args.no_oracle, trace=args.plots is not None,
    )  # fmt: skip
    evaluation = run_plan(plan, backend, progress=True)
    print(table(evaluation))
    if args.json:
        write_text(args.json, to_json(evaluation))
    if args.csv:
        write_text(args.csv, to_csv(evaluation))
    if args.plots:
        from dsd_gym.evaluation.plots import write_plots

        write_plots(evaluation, args.plots)
    if evaluation.failures:
        print(
            f"error: {len(evaluation.failures)} of {len(plan.tasks)} simulations failed; "
            "the rows use the seeds that ran:",
            file=sys.stderr,
        )
        for f in evaluation.failures:
            print(f"  {title(f)}, {f['policy']}, seed {f['seed']}: {f['error']}", file=sys.stderr)
        return 1
    return 0


def _pick(args: argparse.Namespace) -> None:
    from dsd_gym.evaluation.pick import pick, pick_table, write_winner

    _output_path("--out", args.out)
    _output_path("--json", args.json)
    for candidate in args.candidates:
        if not os.path.isfile(candidate):
            raise UserError(f"pick: {candidate}: no such controller file; give files dsd-gym export wrote")
    result = pick(
        args.candidates, args.scenario or ["all"], seeds=args.seeds, seed_base=args.seed_base,
        mode=args.mode, overrides=args.set, backend=Backend(args.backend, args.jobs, args.address),
        progress=True,
    )  # fmt: skip
    print(pick_table(result))
    out = write_winner(result, args.out, args.json)
    print(f"picked {result.candidates[result.winner].name} -> {out}")


def _wc_dnn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("fleet", "ego"),
        help="one controller per evaluation mode: only this entry of collect.evaluation_modes, "
        "and the run is named <name>-<mode> (default: every entry, one controller)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. collect.seed=1 (give collect and train the same)",
    )  # fmt: skip


def _wc_dnn_config(args: argparse.Namespace) -> Any:
    """``--config``, narrowed to ``--mode`` when given."""
    from wc_dnn.config import for_evaluation_mode, load_config

    config = load_config(args.config, args.set)
    return config if args.mode is None else for_evaluation_mode(config, args.mode)


def _collect(args: argparse.Namespace) -> int:
    from wc_dnn.collect import collect

    Backend(args.backend, args.jobs, args.address)  # checked before the config is read
    config = _wc_dnn_config(args)
    out = args.out or str(config.data_dir())
    summary = collect(
        config, out, args.jobs, progress=True, learner=args.learner, backend=args.backend,
        address=args.address,
    )  # fmt: skip
    rate = f", {summary['rows_per_s']:.0f} rows/s" if summary["ran"] else ""
    print(
        f"dataset {out}: {summary['tasks']} shards ({summary['skipped']} already complete, "
        f"{summary['ran']} collected: {summary['rows']} rows in {summary['seconds']:.1f} s{rate})"
    )
    floor = summary["floor"]
    if floor is not None and floor["sims"]:
        what = "the learner held" if args.learner else "every fixed decision held"
        print(
            f"floor {out}/floor.json: {what} on each variant, {floor['sims']} simulations in "
            f"{floor['seconds']:.1f} s"
        )
    if summary["failed"]:
        print(
            f"error: {len(summary['failed'])} shards or floor simulations failed; the others are kept, and "
            "the same command redoes the failed ones:",
            file=sys.stderr,
        )
        for task, error in summary["failed"].items():
            print(f"  {task}: {error}", file=sys.stderr)
        return 1
    return 0


def _train_rl(args: argparse.Namespace) -> None:
    from agents.train import train

    s = train(
        args.algo, env_id=args.env, config=args.config, timesteps=args.timesteps, seed=args.seed,
        out=args.out, resume=args.resume, progress=not args.no_progress,
    )  # fmt: skip
    rate = f", {s['env_steps_per_s']:.0f} env steps/s" if s["env_steps_per_s"] else ""
    print(f"trained {s['algo']} on {s['env_id']}: {s['timesteps']} steps ({s['wall_s']:.1f} s{rate})")
    print(
        f"held-out throughput: last {_fmt(s['last_eval_throughput_tok_s'])} tok/s, "
        f"best {_fmt(s['best_eval_throughput_tok_s'])} tok/s"
    )
    folder = s["folder"]
    print(f"run {folder} (model.zip, best/, evaluations.json, curve.png, tensorboard/)")
    print(f"export: dsd-gym export --run {folder} --out controller.pt; or run it: --policy sb3:{folder}")


def _curves(args: argparse.Namespace) -> None:
    from agents.curves import plot_curves

    _output_path("--out", args.out)
    print(f"wrote {plot_curves(args.runs, args.out)}")


def _train(args: argparse.Namespace) -> None:
    if args.model == "rl":
        return _train_rl(args)
    from wc_dnn.train import train

    config = _wc_dnn_config(args)
    out = args.out or str(config.train_dir())
    summary = train(config, args.data or [str(config.data_dir())], out, resume=args.resume, progress=True)
    best = summary["best_val"] or {}
    print(
        f"trained {summary['epochs']} epochs ({summary['seconds_this_call']:.1f} s"
        f"{', stopped early' if summary['stopped_early'] else ''}); best epoch {summary['best_epoch']}"
    )
    if best:
        print(
            f"validation ({summary['dataset']['val_rows']} rows of held-out variants "
            f"{', '.join(summary['dataset']['val_groups'])}): γ MAE {best['gamma_mae']:.3f} "
            f"(decided {best['decision_gamma_mae']:.3f}), mode accuracy {best['mode_accuracy']:.3f}, "
            f"decision accuracy {best['decision_accuracy']:.3f}, regret {best['regret']:.4f} tokens/decision "
            f"(fixed:4 {best.get('regret_fixed4', float('nan')):.4f}; "
            f"≈ {best['regret_tok_s_approx']:.2f} tok/s)"
        )
    floor = summary["dataset"]["floor"]
    if floor:
        below = [f"{v['group']} ({v['ratio']:.3f}× {v['best']})" for v in floor if v["relabelled"]]
        print(
            f"floor: {len(below)} of {len(floor)} variants had a learner below train.floor × their best "
            f"fixed decision; relabelled to it: {', '.join(below) or 'none'}"
        )
    print(f"checkpoint {summary['best_checkpoint']}")


def _tune(args: argparse.Namespace) -> int:
    backend = Backend(args.backend, args.jobs, args.address)
    common = {
        "trials": args.trials, "seed": args.seed, "storage": args.storage, "study": args.study,
        "out": args.out, "backend": backend,
    }  # fmt: skip
    if args.model == "rl":
        from agents.tune import tune

        s = tune(args.algo, env_id=args.env, config=args.config, timesteps=args.timesteps, **common)
    else:
        from wc_dnn.config import load_config
        from wc_dnn.tune import tune

        config = load_config(args.config)
        s = tune(config, args.data or [str(config.data_dir())], **common)
    print(
        f"study {s['study']} ({s['storage']}): {s['finished']} finished trials "
        f"({s['finished_before']} before, {s['ran']} run now)"
    )
    if s["best"] is not None:
        params = ", ".join(f"{k}={v}" for k, v in s["best"]["params"].items())
        print(f"best trial {s['best']['number']}: {s['best']['value']:.4f} ({params})")
    if s["failures"]:
        print(
            f"error: {len(s['failures'])} trials failed; the same command runs them again:", file=sys.stderr
        )
        for slot, error in s["failures"].items():
            print(f"  trial slot {slot}: {error}", file=sys.stderr)
        return 1
    return 0


def _is_rl_run(path: str) -> bool:
    from dsd_gym.controllers.rl_run import find_run

    try:
        find_run(path)
    except UserError:
        return False
    return True


def _export(args: argparse.Namespace) -> None:
    _output_path("--out", args.out)
    checkpoints = args.checkpoint or []
    rl = [c for c in checkpoints if _is_rl_run(c)]
    if rl and len(checkpoints) > 1:
        raise UserError(f"export: {rl[0]} is an RL run; only WC-DNN checkpoints can be averaged")
    if args.run is not None or rl:
        from agents.export import export_run

        path = export_run(args.run or rl[0], args.out)
    else:
        from wc_dnn.export import export_checkpoints

        path = export_checkpoints(checkpoints, args.out)
    print(f"exported {path} (run it with --policy torchscript:{path})")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        commands = {
            "simulate": _simulate, "scenarios": _scenarios, "bench": _bench, "evaluate": _evaluate,
            "pick": _pick, "collect": _collect, "train": _train, "export": _export, "curves": _curves,
            "tune": _tune,
        }  # fmt: skip
        status = commands[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
