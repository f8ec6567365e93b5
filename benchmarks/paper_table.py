"""The paper's comparison (Hu et al., AAAI 2019, Table 1 style) at a scale these machines run.

One AnytimeResNet (exits every unit) is trained with the same schedule and seed under
CONST, HALF-END and AdaLoss; the OPT baselines are the same network trained with
`--weighting opt --opt-at k` (only the path to exit k learns: a single-exit network) at
about 1/4, 1/2, 3/4 and 1 of the depth. Each run is a resumable `keras-anytime train`;
rerunning this script skips finished runs and resumes a killed one. The table is the
relative increase in `val` error over OPT at each fraction of the depth, in %.

    python3 benchmarks/paper_table.py --depth 20 --epochs 5 --lr 0.2 --mixed-precision \
        --data-dir ../shared/data/cifar10 --out runs/paper-r20-e5-lr0.2   # about 1 h, 2 cores
    python3 benchmarks/paper_table.py ... --dry-run      # print the commands only

Writes benchmarks/paper_table.json and benchmarks/paper_anytime.png.
"""

import argparse
import json
import subprocess
from pathlib import Path

from keras_anytime.evaluation import plot_anytime_curves, relative_error_increase

FRACTIONS = {"1/4": 0.25, "1/2": 0.5, "3/4": 0.75, "1": 1.0}
WEIGHTINGS = ("const", "half_end", "adaloss")


def exit_at(fraction: float, num_exits: int) -> int:
    """The 1-based exit nearest `fraction` of the depth (at least exit 1)."""
    return max(1, round(fraction * num_exits))


def train_command(args, weighting: str, out: Path, opt_at: int | None = None) -> list[str]:
    cmd = [
        "keras-anytime", "train", "--family", "resnet", "--depth", str(args.depth),
        "--exit-every", "1", "--weighting", weighting, "--epochs", str(args.epochs),
        "--recipe", args.recipe, "--seed", str(args.seed), "--out", str(out), "--verbose", "2",
    ]  # fmt: skip
    if opt_at is not None:
        cmd += ["--opt-at", str(opt_at)]
    if args.lr is not None:
        cmd += ["--lr", str(args.lr)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.mixed_precision:
        cmd.append("--mixed-precision")
    return cmd


def table(errors: dict[str, list[float]], opt_errors: dict[str, float], num_exits: int) -> dict:
    """`relative_error_increase_vs_opt` and `errors` from per-exit val errors (0..1) of each
    weighting and the OPT error at each fraction of the depth."""
    picks = {name: exit_at(f, num_exits) for name, f in FRACTIONS.items()}
    opt = [opt_errors[name] for name in FRACTIONS]
    result = {"relative_error_increase_vs_opt": {}, "errors": {"opt": dict(opt_errors)}}
    for weighting, per_exit in errors.items():
        at = [per_exit[picks[name] - 1] for name in FRACTIONS]
        increase = relative_error_increase(at, opt)
        result["relative_error_increase_vs_opt"][weighting] = dict(
            zip(FRACTIONS, [round(v, 2) for v in increase], strict=True)
        )
        result["errors"][weighting] = dict(zip(FRACTIONS, at, strict=True))
    result["exits"] = picks
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--recipe", default="short")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--out", default="runs/paper")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    num_exits = 3 * (args.depth - 2) // 6
    out = Path(args.out)
    runs = {w: (train_command(args, w, out / w), out / w) for w in WEIGHTINGS}
    for name, fraction in FRACTIONS.items():
        k = exit_at(fraction, num_exits)
        runs[f"opt@{name}"] = (train_command(args, "opt", out / f"opt{k}", k), out / f"opt{k}")
    for cmd, folder in runs.values():
        print(" ".join(cmd))
        if not args.dry_run and not (folder / "eval.json").is_file():
            subprocess.run(cmd, check=True)
    if args.dry_run:
        return
    rows = {n: json.loads((f / "eval.json").read_text())["exits"] for n, (_, f) in runs.items()}
    errors = {w: [1 - r["accuracy"] for r in rows[w]] for w in WEIGHTINGS}
    opt_errors = {
        name: 1 - rows[f"opt@{name}"][exit_at(f, num_exits) - 1]["accuracy"]
        for name, f in FRACTIONS.items()
    }
    result = table(errors, opt_errors, num_exits)
    result["commands"] = [" ".join(cmd) for cmd, _ in runs.values()]
    here = Path(__file__).resolve().parent
    (here / "paper_table.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_anytime_curves({w: rows[w] for w in WEIGHTINGS}, str(here / "paper_anytime.png"))
    print(json.dumps(result["relative_error_increase_vs_opt"], indent=2))


if __name__ == "__main__":
    main()
