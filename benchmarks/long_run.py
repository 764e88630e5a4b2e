"""Long runs toward the papers' numbers, advanced a time budget at a time and resumable anywhere.

Each run's whole state lives in `benchmarks/long_runs/<name>/`, a `tfaae train` run directory whose
compact part is committed: `config.json`, `backup/` (the weights and optimizer state of the last
epoch), `history.json` (the learning curve), `clock.json` (wall and CPU seconds by epoch) and
`evaluations.json` (every full evaluation: k = 5000 over the 10,000 test images, or the test error).
TensorBoard logs and the `.keras` checkpoint stay local (`.gitignore`). A fresh clone continues
where the last commit left off:

    python benchmarks/long_run.py advance iwae1_k50 --time-limit 2h --cpu 1   # one core
    python benchmarks/long_run.py evaluate iwae1_k50      # k = 5000 now, into evaluations.json
    python benchmarks/long_run.py report                  # results/long_runs.json and the curves
    python benchmarks/long_run.py list                    # the presets and how far each has come

`advance` trains with `tfaae.training.train(..., time_limit=...)` (the limit minus the expected
evaluation time), one thread per op, then evaluates and writes the report. The presets are the
papers' settings and schedules (`PRESETS`); on a machine with a GPU the same command runs there.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

LONG_RUNS = common.ROOT / "benchmarks" / "long_runs"

# name -> (tfaae.training.train settings, the paper's number, what it is).
PRESETS = {
    "iwae1_k50": ({"model": "iwae", "num_samples": 50, "layers": 1}, 84.78,
                  "IWAE, 1 stochastic layer, k = 50: test NLL (nats)"),
    "vae1_k1": ({"model": "vae", "num_samples": 1, "layers": 1}, 86.76,
                "VAE, 1 stochastic layer: test NLL (nats)"),
    "semi1000": ({"model": "semi-supervised", "labels": 1000, "epochs": 1500}, 1.60,
                 "AAE semi-supervised, 1000 labels: test error (%)"),
    "semi100": ({"model": "semi-supervised", "labels": 100, "epochs": 1500}, 1.90,
                "AAE semi-supervised, 100 labels: test error (%)"),
    "cluster16": ({"model": "clustering", "clusters": 16, "epochs": 1500}, 9.55,
                  "AAE unsupervised clustering, 16 clusters: test error (%)"),
    "iwae2_k50": ({"model": "iwae", "num_samples": 50, "layers": 2}, 82.90,
                  "IWAE, 2 stochastic layers, k = 50: test NLL (nats)"),
}
# Shared by every preset: bfloat16 compute (no measurable effect on the NLL: precision.py) and the
# periodic k = 1000 estimate on 1,000 test images every 50 epochs (VAE/IWAE).
COMMON = {"precision": "mixed_bfloat16", "image_every": None, "projector": False}
EVAL_EVERY = 50


def settings(name):
    """The `tfaae.training.train` settings of a preset."""
    own, _, _ = PRESETS[name]
    extra = {"eval_every": EVAL_EVERY} if own["model"] in ("vae", "iwae") else {}
    return {**COMMON, **extra, **own, "data_dir": common.MNIST_DIR}


def run_dir(name):
    return str(LONG_RUNS / name)


def _read(name, file, default):
    path = os.path.join(run_dir(name), file)
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _eval_seconds(name):
    """The longest full evaluation so far (a guess of 600 s before the first)."""
    return max([e["seconds"] for e in _read(name, "evaluations.json", [])], default=600.0)


def evaluate(name):
    """Evaluates a run's last epoch on the full test set and appends it to evaluations.json."""
    from tfaae import io, training
    clock = _read(name, "clock.json", [])
    if not clock:
        raise SystemExit(f"{name}: no epoch trained yet; run `advance` first.")
    start = time.perf_counter()
    result = training.evaluate_run(run_dir(name), num_samples=5000, data_dir=common.MNIST_DIR)
    record = {"epoch": clock[-1]["epoch"], "cpu_hours": round(clock[-1]["cpu_seconds"] / 3600, 4),
              "wall_hours": round(clock[-1]["wall_seconds"] / 3600, 4),
              "seconds": round(time.perf_counter() - start, 1), "date": time.strftime("%Y-%m-%d")}
    if "nll" in result:
        record.update(nll=round(result["nll"], 3), nll_stderr=round(result["nll_stderr"], 3),
                      active_units=result["active_units"])
    elif "error" in result:
        record.update(error=round(result["error"], 3))
    else:
        record.update(error=round(result["cluster_error"]["highest"], 3),
                      majority_error=round(result["cluster_error"]["majority"], 3))
    evaluations = [e for e in _read(name, "evaluations.json", []) if e["epoch"] != record["epoch"]]
    io.write_json(os.path.join(run_dir(name), "evaluations.json"), evaluations + [record])
    print(json.dumps({name: record}))
    return record


def advance(name, time_limit):
    """Trains a preset for at most `time_limit` seconds, evaluation included, then evaluates."""
    from tfaae import training
    budget = time_limit - 1.2 * _eval_seconds(name)
    if budget <= 0:
        raise SystemExit(f"{name}: --time-limit leaves no time to train before the evaluation "
                         f"(~{_eval_seconds(name):.0f} s).")
    result = training.train(run_dir(name), verbose=2, time_limit=budget, **settings(name))
    print(json.dumps({name: {k: result[k] for k in ("status", "epochs") if k in result}}))
    if result["status"] == "stopped_non_finite":
        raise SystemExit(f"{name}: training stopped on a non-finite number: {result['stopped_at']}")
    evaluate(name)


def summary(name):
    """A preset's state for the table: curve, latest evaluation, budget, paper's number."""
    own, paper, what = PRESETS[name]
    config = _read(name, "config.json", None)
    epochs_total = own.get("epochs") or (3280 if own["model"] in ("vae", "iwae") else None)
    clock = {c["epoch"]: c for c in _read(name, "clock.json", [])}
    periodic = [{"epoch": h["epoch"], "value": h["nll_k1000"],
                 "cpu_hours": clock.get(h["epoch"], {}).get("cpu_seconds", 0) / 3600}
                for h in _read(name, "history.json", []) if "nll_k1000" in h]
    evaluations = _read(name, "evaluations.json", [])
    last_clock = clock[max(clock)] if clock else None
    return {"name": name, "what": what, "paper": paper, "settings": settings(name),
            "started": config is not None, "epochs": last_clock["epoch"] if last_clock else 0,
            "of_epochs": epochs_total,
            "cpu_hours": round(last_clock["cpu_seconds"] / 3600, 2) if last_clock else 0.0,
            "latest": evaluations[-1] if evaluations else None, "evaluations": evaluations,
            "periodic_k1000": periodic,
            "command": f"python benchmarks/long_run.py advance {name} --time-limit 2h --cpu 1"}


def plot(run, path):
    """A run's learning curve against epochs and against CPU-hours: the full evaluations (dots),
    the periodic k = 1000 estimate on 1,000 test images (line) and the paper's number (dashed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tfaae import figures
    key = "nll" if run["settings"]["model"] in ("vae", "iwae") else "error"
    figure = Figure(figsize=(6.4, 2.4), dpi=100)
    FigureCanvasAgg(figure)
    for i, axis in enumerate(("epoch", "cpu_hours")):
        panel = figure.add_subplot(1, 2, i + 1)
        if run["periodic_k1000"]:
            panel.plot([p[axis] for p in run["periodic_k1000"]],
                       [p["value"] for p in run["periodic_k1000"]], lw=1,
                       label="k=1000, 1,000 test images")
        points = [e for e in run["evaluations"] if key in e]
        panel.plot([e[axis] for e in points], [e[key] for e in points], "o", ms=3,
                   label="k=5000, 10,000 test images" if key == "nll" else "test error")
        panel.axhline(run["paper"], ls="--", c="k", lw=0.8, label="paper")
        panel.set_xlabel("epochs" if axis == "epoch" else "CPU-hours", fontsize=7)
        panel.set_ylabel("test NLL (nats)" if key == "nll" else "test error (%)", fontsize=7)
        panel.tick_params(labelsize=6)
        if i == 0:
            panel.legend(fontsize=5)
    figure.suptitle(run["what"], fontsize=8)
    figure.tight_layout()
    figures.save_png(figure, path)
    return path


def report():
    from tfaae import io
    summaries = [summary(name) for name in PRESETS]
    for run in summaries:
        if run["evaluations"] or run["periodic_k1000"]:
            path = common.RESULTS / f"long_{run['name']}.png"
            run["figure"] = os.path.relpath(plot(run, str(path)), common.ROOT)
    payload = {"benchmark": "long_runs", "date": time.strftime("%Y-%m-%d"), "runs": summaries}
    io.write_json(common.RESULTS / "long_runs.json", payload)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    adv = commands.add_parser("advance", help="train a preset for a time budget, then evaluate")
    adv.add_argument("name", choices=sorted(PRESETS))
    adv.add_argument("--time-limit", required=True, help="e.g. 2h, 150m, 1:30:00")
    adv.add_argument("--cpu", type=int, default=None,
                     help="pin the process to this CPU (one core; default: all)")
    ev = commands.add_parser("evaluate", help="evaluate a preset's last epoch now")
    ev.add_argument("name", choices=sorted(PRESETS))
    commands.add_parser("report", help="write results/long_runs.json and long_runs.png")
    commands.add_parser("list", help="the presets and how far each has come")
    args = parser.parse_args(argv)
    if getattr(args, "cpu", None) is not None:
        os.sched_setaffinity(0, {args.cpu})  # threads started later inherit it.
    if args.command in ("advance", "evaluate"):
        from tfaae import cli
        cli.configure_threads(1, 1)  # one thread per op, one op at a time: one core's worth.
    if args.command == "advance":
        from tfaae.callbacks import parse_duration
        advance(args.name, parse_duration(args.time_limit))
    elif args.command == "evaluate":
        evaluate(args.name)
    if args.command != "list":
        report()
    for s in (summary(name) for name in PRESETS):
        latest = s["latest"] or {}
        value = latest.get("nll", latest.get("error"))
        print(f"{s['name']:10s} epoch {s['epochs']:5d} of {s['of_epochs']}, {s['cpu_hours']:7.2f} "
              f"CPU-h, latest {value if value is not None else '-'} (paper {s['paper']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
