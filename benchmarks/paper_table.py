"""The paper's comparison (Hu et al., AAAI 2019, Table 1 style) at a scale these machines run.

One AnytimeResNet (an exit every unit) is trained with the same schedule under each static
scheme (CONST, LINEAR, HALF-END, SIEVE), AdaLoss at the package's defaults and AdaLoss with
the authors' CIFAR settings (momentum 0.99, final_extra 1.0); the OPT baselines are the
same network trained with `--weighting opt --opt-at k` (only the path to exit k learns: a
single-exit network) at about 1/4, 1/2, 3/4 and 1 of the depth. CONST, AdaLoss and OPT run
under every seed of `--seeds`, the others under the first. With `--large-depth D`, a
D-deep network with CONST (first seed) is the "large CONST" network of the paper's
small-against-large claim. Each run is a resumable `keras-anytime train`; rerunning this
script skips finished runs and resumes a killed one. The table is the relative increase in
`val` error over OPT (its mean over seeds) at each fraction of the depth, in %.

    python3 benchmarks/paper_table.py --depth 20 --epochs 60 --recipe fast --seeds 0,1 \
        --large-depth 32 --data-dir ../shared/data/cifar10 --out runs/paper-r20-e60
    python3 benchmarks/paper_table.py ... --dry-run      # print the commands only
    python3 benchmarks/paper_table.py --table-only --depth 20 --epochs 300 --recipe paper \
        --seeds 0,1 --out benchmarks/paper_runs/r20-e300 \
        --json benchmarks/paper_table_300.json --figure-prefix benchmarks/paper_300

`--table-only` trains nothing: the table holds the runs in `--out` that are finished
(eval.json), trained as their command says (run.json) and for every epoch (history.csv);
the others are listed, with why, under `missing.runs`, the schemes without a run under
`missing.schemes` and the fractions of the depth without OPT under `missing.opt_at` (their
increase over OPT is null).

Writes `--json` (benchmarks/paper_table.json) with the commands, the epochs each run
completed and the precisions it trained in (`--precision auto` picks mixed_bfloat16 only
where the CPU has it natively; `precision_changed` lists the runs resumed in another one),
PREFIX_anytime.png, with --large-depth PREFIX_small_vs_large.png, and for each AdaLoss run
PREFIX_adaloss_weights_<run>.png, its weights over training (PREFIX: `--figure-prefix`,
benchmarks/paper). The JSON also states the paper's two claims from the numbers:
`adaloss_vs_const` (AdaLoss against CONST at 3/4 and all of the depth, against the seed
spread) and, in `small_vs_large`, the large CONST network's lead over the small AdaLoss one
at equal MACs; `adaloss_final` holds each AdaLoss run's final weights and the exits' training
losses over its last epoch.
"""

import argparse
import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
from paper_finished import (  # benchmarks/paper_finished.py
    adaloss_final,
    command,
    history,
    plot_adaloss_weights,
    precisions,
    why_left_out,
)

from keras_anytime.evaluation import plot_anytime_curves, relative_error_increase

FRACTIONS = {"1/4": 0.25, "1/2": 0.5, "3/4": 0.75, "1": 1.0}
SCHEMES = {
    "const": ["--weighting", "const"],
    "linear": ["--weighting", "linear"],
    "half_end": ["--weighting", "half_end"],
    "sieve": ["--weighting", "sieve"],
    "adaloss": ["--weighting", "adaloss"],
    # the authors' CIFAR scripts' settings
    "adaloss_cifar": [
        "--weighting", "adaloss", "--adaloss-momentum", "0.99", "--final-extra", "1.0"
    ],
}  # fmt: skip
SEEDED = ("const", "adaloss", "opt")  # these run under every seed


def exit_at(fraction: float, num_exits: int) -> int:
    """The 1-based exit nearest `fraction` of the depth (at least exit 1)."""
    return max(1, round(fraction * num_exits))


def train_command(
    args, flags: list[str], out: Path, seed: int, depth: int | None = None
) -> list[str]:
    cmd = [
        "keras-anytime", "train", "--family", "resnet", "--depth", str(depth or args.depth),
        "--exit-every", "1", *flags, "--epochs", str(args.epochs), "--recipe", args.recipe,
        "--seed", str(seed), "--out", str(out), "--verbose", "2",
    ]  # fmt: skip
    cmd += shlex.split(args.train_args)
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    return cmd


def runs(args, num_exits: int) -> dict[tuple[str, int], tuple[list[str], Path]]:
    """{(name, seed): (command, out folder)}: the schemes, OPT at each fraction of the depth
    ("opt@1/4", ...) and, with --large-depth, "large_const"."""
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    planned = {}
    for name, flags in SCHEMES.items():
        for seed in seeds if name in SEEDED else seeds[:1]:
            folder = out / f"{name}-s{seed}"
            planned[name, seed] = (train_command(args, flags, folder, seed), folder)
    for fraction_name, fraction in FRACTIONS.items():
        k = exit_at(fraction, num_exits)
        for seed in seeds:
            folder = out / f"opt{k}-s{seed}"
            flags = ["--weighting", "opt", "--opt-at", str(k)]
            planned[f"opt@{fraction_name}", seed] = (
                train_command(args, flags, folder, seed),
                folder,
            )
    if args.large_depth:
        folder = out / f"large{args.large_depth}-const-s{seeds[0]}"
        flags = SCHEMES["const"]
        planned["large_const", seeds[0]] = (
            train_command(args, flags, folder, seeds[0], args.large_depth),
            folder,
        )
    return planned


def table(
    errors: dict[str, list[float]], opt_errors: dict[str, float | None], num_exits: int
) -> dict:
    """`relative_error_increase_vs_opt` and `errors` from per-exit val errors (0..1) of each
    weighting and the OPT error at each fraction of the depth (None where OPT did not run:
    no increase there either)."""
    picks = {name: exit_at(f, num_exits) for name, f in FRACTIONS.items()}
    result = {"relative_error_increase_vs_opt": {}, "errors": {"opt": dict(opt_errors)}}
    for weighting, per_exit in errors.items():
        # 4 places, as `accuracy` holds them (OPT's too); further digits are float noise.
        at = {name: round(float(per_exit[k - 1]), 4) for name, k in picks.items()}
        result["relative_error_increase_vs_opt"][weighting] = {
            name: None
            if opt_errors[name] is None
            else round(relative_error_increase([at[name]], [opt_errors[name]])[0], 2)
            for name in FRACTIONS
        }
        result["errors"][weighting] = at
    result["exits"] = picks
    return result


def assemble(accuracy: dict[tuple[str, int], list[float]], num_exits: int) -> dict:
    """The JSON report from per-exit val accuracies {(name, seed): [acc exit 1..K]} (OPT
    runs named "opt@1/4" ..., with the accuracies of their truncated network): `table` of
    the means over seeds, each scheme's seeds apart under `per_seed`, the seeds (OPT's at
    each fraction under `opt_seeds`) and, under `missing`, the schemes and the fractions of
    OPT without a run."""
    seeds = {}
    for name, seed in accuracy:
        seeds.setdefault("opt" if name.startswith("opt@") else name, set()).add(seed)
    seeds = {name: sorted(v) for name, v in seeds.items()}
    opt_seeds = {f: sorted(s for n, s in accuracy if n == f"opt@{f}") for f in FRACTIONS}
    opt_errors = {}
    for f, x in FRACTIONS.items():
        at = [accuracy[f"opt@{f}", s][exit_at(x, num_exits) - 1] for s in opt_seeds[f]]
        opt_errors[f] = round(1 - float(np.mean(at)), 4) if at else None
    names = [n for n in SCHEMES if n in seeds]

    def errors(name: str, seed_list: list[int]) -> list[float]:
        return list(1 - np.mean([accuracy[name, s] for s in seed_list], axis=0))

    result = table({n: errors(n, seeds[n]) for n in names}, opt_errors, num_exits)
    result["per_seed"] = {
        n: {
            str(s): table({n: errors(n, [s])}, opt_errors, num_exits)[
                "relative_error_increase_vs_opt"
            ][n]
            for s in seeds[n]
        }
        for n in names
    }
    result["seeds"] = seeds
    result["opt_seeds"] = opt_seeds
    if {"adaloss", "const"} <= set(seeds):
        result["adaloss_vs_const"] = adaloss_vs_const(accuracy, num_exits)
    result["accuracy"] = {f"{n}-s{s}": [round(a, 4) for a in v] for (n, s), v in accuracy.items()}
    result["missing"] = {
        "schemes": [n for n in SCHEMES if n not in seeds],
        "opt_at": [f for f, at in opt_seeds.items() if not at],
    }
    return result


def adaloss_vs_const(accuracy: dict[tuple[str, int], list[float]], num_exits: int) -> dict:
    """The claim that AdaLoss beats CONST, at 3/4 and all of the depth, in val accuracy
    points: each scheme's mean over its seeds, AdaLoss minus CONST, and the seed spread
    (the larger of the two schemes' max - min over seeds; None with one seed each). The
    verdict is "ahead" or "behind" when the difference exceeds the spread, else "within
    the seed spread" ("one seed" when there is no spread to compare with)."""
    result = {}
    for name in ("3/4", "1"):
        k = exit_at(FRACTIONS[name], num_exits)
        at = {
            scheme: [100 * v[k - 1] for (n, _), v in sorted(accuracy.items()) if n == scheme]
            for scheme in ("adaloss", "const")
        }
        mean = {scheme: float(np.mean(v)) for scheme, v in at.items()}
        diff = mean["adaloss"] - mean["const"]
        spreads = [max(v) - min(v) for v in at.values() if len(v) > 1]
        spread = max(spreads) if spreads else None
        if spread is None:
            verdict = "one seed"
        elif abs(diff) > spread:
            verdict = "ahead" if diff > 0 else "behind"
        else:
            verdict = "within the seed spread"
        result[name] = {
            "exit": k,
            "adaloss": round(mean["adaloss"], 2),
            "const": round(mean["const"], 2),
            "difference_points": round(diff, 2),
            "seed_spread_points": None if spread is None else round(spread, 2),
            "verdict": verdict,
        }
    return result


def gaps_at_equal_macs(small: list[list[float]], large: list[list[float]]) -> list:
    """At each exit of the small network ([[macs, accuracy], ...], shallow to deep), the
    large network's accuracy at the same MACs (linear between its exits) minus the small
    one's, in points; None where the small exit costs less than the large one's first."""
    macs, acc = np.array(large).T
    return [
        None if m < macs[0] else round(100 * (float(np.interp(m, macs, acc)) - a), 2)
        for m, a in small
    ]


def report(args, planned: dict, num_exits: int) -> None:
    """Write the JSON and the figures from the runs of `planned` that are finished and were
    trained as planned, and print the table; the others are listed, with why, under
    `missing`."""
    included, left_out = {}, {}
    for (name, seed), (cmd, folder) in planned.items():
        reason = why_left_out(folder, cmd)
        if reason is None:
            included[name, seed] = folder
        else:
            left_out[f"{name}-s{seed}"] = f"{folder}: {reason}"
            print(f"left out {name}-s{seed}: {folder}: {reason}")
    others = {p for p in Path(args.out).glob("*") if p.is_dir()} - {f for _, f in planned.values()}
    if others:
        print("not runs of this table:", ", ".join(sorted(p.name for p in others)))
    rows = {key: json.loads((f / "eval.json").read_text())["exits"] for key, f in included.items()}
    accuracy = {
        key: [r["accuracy"] for r in v] for key, v in rows.items() if key[0] != "large_const"
    }
    if not accuracy:
        raise SystemExit(f"No finished run of the table in {args.out}.")
    result = assemble(accuracy, num_exits)
    result["missing"]["runs"] = left_out
    result.update(epochs=args.epochs, recipe=args.recipe)
    if not args.table_only:
        result["train_args"] = args.train_args
    runs_in = {f"{n}-s{s}": f for (n, s), f in included.items()}
    result["commands"] = [command(f) for f in runs_in.values()]
    # every run entered the table only with history.csv holding `epochs` rows
    result["epochs_completed"] = {run: len(history(f)) for run, f in runs_in.items()}
    # `--precision auto` resolves per machine, and a run resumed elsewhere may mix two
    result["precision"] = {run: precisions(f) for run, f in runs_in.items()}
    result["precision_changed"] = [run for run, p in result["precision"].items() if len(p) > 1]
    for run in result["precision_changed"]:
        print(f"{run} trained in {' and '.join(result['precision'][run])}")
    prefix = args.figure_prefix
    result["adaloss_final"] = {}
    for (name, seed), f in included.items():
        if name in ("adaloss", "adaloss_cifar"):
            run, epochs = f"{name}-s{seed}", history(f)
            result["adaloss_final"][run] = adaloss_final(epochs, num_exits)
            path = f"{prefix}_adaloss_weights_{run}.png"
            plot_adaloss_weights(epochs, num_exits, path, f"AdaLoss weights over training, {run}")
    first = int(args.seeds.split(",")[0])
    curves = {n: rows[n, first] for n in SCHEMES if (n, first) in rows}
    if curves:
        plot_anytime_curves(curves, f"{prefix}_anytime.png")
    if {("large_const", first), ("adaloss", first)} <= set(rows):
        large = rows["large_const", first]
        result["small_vs_large"] = {
            f"resnet{args.depth}_adaloss": [
                [r["macs"], r["accuracy"]] for r in rows["adaloss", first]
            ],
            f"resnet{args.large_depth}_const": [[r["macs"], r["accuracy"]] for r in large],
        }
        gaps = gaps_at_equal_macs(*result["small_vs_large"].values())
        # > 0: the large CONST network is ahead of the small AdaLoss one at the same MACs
        result["small_vs_large"]["large_minus_small_points_at_equal_macs"] = gaps
        plot_anytime_curves(
            {f"ResNet-{args.depth}, AdaLoss": rows["adaloss", first],
             f"ResNet-{args.large_depth}, CONST": large},
            f"{prefix}_small_vs_large.png",
        )  # fmt: skip
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["relative_error_increase_vs_opt"], indent=2))


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seeds", default="0,1", help="CONST, AdaLoss and OPT run under each")
    parser.add_argument("--large-depth", type=int, default=0, help="the large CONST network")
    parser.add_argument("--train-args", default="", help="more train flags, e.g. '--lr 0.2'")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="runs/paper")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument(
        "--table-only", action="store_true", help="train nothing: tabulate the finished runs"
    )
    parser.add_argument("--json", default=str(here / "paper_table.json"))
    parser.add_argument(
        "--figure-prefix", default=str(here / "paper"), help="writes PREFIX_anytime.png, ..."
    )
    args = parser.parse_args()
    num_exits = 3 * (args.depth - 2) // 6
    planned = runs(args, num_exits)
    if not args.table_only:
        for cmd, folder in planned.values():
            print(" ".join(cmd))
            if not args.dry_run and not (folder / "eval.json").is_file():
                subprocess.run(cmd, check=True)
    if not args.dry_run:
        report(args, planned, num_exits)


if __name__ == "__main__":
    main()
