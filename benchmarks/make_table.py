"""Regenerates the README's results block from benchmarks/results/*.json.

    python benchmarks/make_table.py          # rewrites README.md between the markers
    python benchmarks/make_table.py --check  # exits 1 if the README is out of date
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _command(result):
    return f"`{result['command']}`"


def nll_section():
    rows = []
    for path in sorted(RESULTS.glob("nll_*.json")):
        r = json.loads(path.read_text())
        budget = r["budget"]
        name = f"{r['model'].upper()} {r['layers']}L k={r['num_samples']}"
        if r.get("gradient_estimator") == "dreg":
            name += " (DReG)"
        rows.append(f"| {name} | {_fmt(r['paper_test_nll'])} | {_fmt(r['test_nll'])} ± "
                    f"{_fmt(r['test_nll_stderr'])} | {', '.join(map(str, r['active_units']))} | "
                    f"{budget['epochs']} of {budget['paper_epochs']} epochs, "
                    f"{budget['train_seconds'] / 3600:.2f} h | {r['precision']} | {_command(r)} |")
    if not rows:
        return []
    return ["### Test NLL on MNIST (nats, k = 5000, 10,000 test images)", "",
            "| model | paper | ours | active units | training budget | precision | command |",
            "| --- | --- | --- | --- | --- | --- | --- |", *rows, "",
            "The paper trains for 3,280 epochs; on 2 CPU cores we stop far earlier, so our numbers "
            "are the budget's, not the paper's end point. The commands reproduce them; drop "
            "`--epochs` for the full schedule (on a GPU).", ""]


def table2_section():
    r = _load("table2")
    if not r:
        return []
    labels = {"vae": "VAE", "vae_then_iwae": "VAE, then IWAE k=50", "iwae": "IWAE k=50",
              "iwae_then_vae": "IWAE k=50, then VAE"}
    rows = [f"| {label} | {_fmt(row['paper']['nll'])} / {row['paper']['active_units']} | "
            f"{_fmt(row['nll'])} ± {_fmt(row['nll_stderr'])} / {row['active_units']} |"
            for label, row in ((labels[k], r["rows"][k]) for k in labels)]
    epochs = r['budget']['epochs_per_stage']
    return [f"### Burda et al. table 2 (one layer; {epochs} epochs per stage, the paper 3,280)", "",
            "| training | paper NLL / active units | ours: NLL / active units |", "| --- | --- | --- |",
            *rows, "", f"Each stage trains {epochs} epochs; a continued run has trained twice as long "
            "as a single-stage one, so only rows of equal length compare (VAE with IWAE; VAE then "
            "IWAE with IWAE then VAE). The paper's stages ran to convergence.", "",
            f"Command: {_command(r)}", ""]


def throughput_section():
    r = _load("throughput")
    if not r:
        return []
    peak = r["matmul_peak_gflops"]
    rows = []
    for c in r["cases"]:
        rows.append(f"| {c['model'].upper()} | {c['num_samples']} | {c['layers']} | {c['batch_size']} | "
                    f"{c['examples_per_second']:.0f} | {c['gflops']:.0f} | {c['fraction_of_peak']:.0%} | "
                    f"{c['best_config']} |")
    targets = [f"IWAE k={k.split('k')[-1]}: {t['fraction']:.0%} (target {t['target_fraction']:.0%}, "
               f"{'met' if t['met'] else 'not met'}; {t['at']['layers']} layer(s), batch "
               f"{t['at']['batch_size']}, {t['at']['best_config']})" for k, t in r["targets"].items()]
    return ["### Training throughput (2 CPU cores)", "",
            f"Matmul peak measured in the same run: {peak['float32']:.0f} GFLOP/s float32, "
            f"{peak['bfloat16']:.0f} GFLOP/s bfloat16 ({r['machine']['cpu']}, "
            f"{r['machine']['cores']} cores, {r['date']})"
            + (f"; measured again after the cases: {after['float32']:.0f} and {after['bfloat16']:.0f}"
               if (after := r.get("matmul_peak_gflops_after_cases")) else "")
            + ". GFLOP/s counts the matrix products of a training step exactly; "
            + (f"the run went {rounds} rounds (the peak measured before each), each configuration "
               "keeps its best round and the fraction is of the best float32 peak."
               if (rounds := r.get("rounds", 1)) > 1 else "the fraction is of the float32 peak measured first.")
            + (" Each case and configuration runs in a fresh process, as one training job would;"
               if r.get("process_per_configuration") else "")
            + (f" each configuration: the best of {r['windows']} windows of about "
               f"{r['seconds_per_window']:g} s"
               + (f", {spe} steps per execution" if (spe := r.get("steps_per_execution")) else "")
               + ", threads spread over the cores." if r.get("windows") else "")
            + (" Configurations: float32 graph, float32 with XLA (`-xla`), bfloat16 matmuls, and "
               "`-1thread`: each op on one thread (`--intra-op-threads 1`), the cores running "
               "independent ops side by side." if "float32-1thread" in r["cases"][0]["configs"] else "")
            + (" `-2blocks`: each batch as two row blocks (`--batch-splits 2`)."
               if "bfloat16-1thread-2blocks" in r["cases"][0]["configs"] else ""), "",
            "| model | k | layers | batch | examples/s | GFLOP/s | of peak | best configuration |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |", *rows, "",
            "Targets: " + "; ".join(targets) + "." + _float32_targets(r), "",
            f"Command: {_command(r)}", ""]


def _float32_targets(r):
    """A sentence on the targets in float32 alone, when a target's best configuration is bfloat16,
    with the precision benchmark's verdict on bfloat16 training."""
    precision = _load("precision")
    parts = []
    for key, target in r["targets"].items():
        if not target["at"]["best_config"].startswith("bfloat16"):
            continue
        k = int(key.split("k")[-1])
        best = max((run["fraction_of_peak"], c["layers"], c["batch_size"], name)
                   for c in r["cases"] if c["model"] == "iwae" and c["num_samples"] == k
                   for name, run in c["configs"].items() if not name.startswith("bfloat16"))
        parts.append(f"IWAE k={k} {best[0]:.0%} ({best[1]} layer(s), batch {best[2]}, {best[3]})")
    if not parts:
        return ""
    verdict = ("" if not precision else " bfloat16 training is "
               f"{'' if precision['bf16_training_kept'] else 'not '}kept by the precision "
               "benchmark below;")
    return verdict + " in float32 alone: " + "; ".join(parts) + "."


def eval_time_section():
    r = _load("eval_time")
    if not r:
        return []
    rows = [f"| {c['layers']} | {c['precision']} | {c['seconds']:.0f} | {c['peak_rss_mib']} | "
            f"{c['rss_increase_mib']} |" for c in r["cases"]]
    return [f"### k = 5000 evaluation of the {r['examples']:,} test images (target "
            f"<= {r['target_seconds']} s)", "",
            f"Measured on {r['machine']['cpu']} ({r['machine']['cores']} cores), {r['date']}.", "",
            "| layers | precision | seconds | peak RSS (MiB) | RSS increase (MiB) |",
            "| --- | --- | --- | --- | --- |", *rows, "", f"Command: {_command(r)}", ""]


def pipeline_section():
    r = _load("pipeline")
    if not r:
        return []
    rows = [f"| `{name}` | {v['cpu_ms_per_batch']:.2f} | {v['wall_ms_per_batch']:.2f} |"
            for name, v in r["pipelines"].items()]
    return [f"### Input pipeline: CPU time per batch of {r['batch_size']} MNIST images", "",
            f"Measured on {r['machine']['cpu']} ({r['machine']['cores']} cores), {r['date']}; "
            "each pipeline read inside a `tf.function` loop, best of "
            f"{r['repeats']} rounds of {r['batches_per_round']} batches. On 2 cores the "
            "pipeline's CPU time is taken from training. `textbook`: per-example shuffle and "
            "batch, then TensorFlow's Philox uniforms per batch (tfaae's pipeline before). "
            "`epoch_batches` (what `tfaae train` reads): whole epochs, a new pass each, its "
            "start counted.", "",
            "| pipeline | CPU ms | wall ms |", "| --- | --- | --- |", *rows, "",
            f"Command: {_command(r)}", ""]


def precision_section():
    r = _load("precision")
    if not r:
        return []
    by = r["nll_by_training_precision"]
    return ["### bfloat16 matrix products and the NLL", "",
            f"IWAE (1 layer, k = {r['num_samples']}, {r['budget']['epochs']} epochs of batch "
            f"{r['budget']['batch_size']}) trained in float32 and with bfloat16 matmuls, seeds "
            f"0-{r['seeds'] - 1} each, test NLL (k = 5000, 10,000 images, evaluated in float32): "
            f"float32 {', '.join(f'{v:.3f}' for v in by['float32'])}; bfloat16 "
            f"{', '.join(f'{v:.3f}' for v in by['mixed_bfloat16'])}. Training in bfloat16 moves the "
            f"mean NLL by {r['bf16_training_effect_nats']:+.3f} ± "
            f"{r['bf16_training_effect_stderr_nats']:.3f} nats (standard error; seed-to-seed "
            f"standard deviation {r['seed_std_nats']:.3f}); evaluating the float32 model in "
            f"bfloat16 moves it by {r['bf16_evaluation_effect_nats']:+.3f} nats. Rule: "
            f"{r['rule']} (tolerance {r['tolerance_nats']} nats): bfloat16 "
            f"{'kept' if r['bf16_training_kept'] else 'not kept'} for training, "
            f"{'kept' if r['bf16_evaluation_kept'] else 'not kept'} for evaluation."
            + _training_margin(r), "", f"Command: {_command(r)}", ""]


def _training_margin(r):
    """A warning when the training verdict rests on less than 0.05 nats."""
    threshold = max(r["tolerance_nats"], 2 * r["bf16_training_effect_stderr_nats"])
    margin = threshold - abs(r["bf16_training_effect_nats"])
    if abs(margin) >= 0.05:
        return ""
    return (f" The training verdict rests on a margin of {abs(margin):.3f} nats: more seeds would "
            "be needed to settle it.")


def aae_section():
    lines = []
    parzen = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("aae_parzen*.json"))]
    if parzen:
        lines += ["### Adversarial autoencoder: MNIST test log-likelihood (nats; paper, Parzen: "
                  "340 ± 2)", "",
                  "| posterior | Parzen (width on validation) | importance-sampled | training "
                  "budget | command |", "| --- | --- | --- | --- | --- |"]
        for r in parzen:
            e, b = r["evaluation"], r["budget"]
            sampled = e.get("importance_sampled")
            lines.append(f"| {r['settings'].get('posterior', 'deterministic')} | "
                         f"{e['parzen']['log_likelihood']:.1f} ± {e['parzen']['stderr']:.1f} "
                         f"(σ = {e['parzen']['sigma']:.3f}) | "
                         + (f"{sampled['log_likelihood']:.1f} ± {sampled['stderr']:.1f}" if sampled else "-")
                         + f" | {b['epochs']} epochs × {b['steps_per_epoch']} steps, "
                         f"{b['train_seconds'] / 60:.0f} min | {_command(r)} |")
        lines.append("")
    r = _load("aae_throughput")
    if r:
        lines += ["### Adversarial autoencoder: training throughput (all three phases)", "",
                  f"Float32 matmul peak measured in the same run: {r['matmul_peak_gflops']['float32']:.0f} "
                  f"GFLOP/s ({r['machine']['cpu']}, {r['machine']['cores']} cores, {r['date']}).", "", "| posterior | preset | batch | examples/s | GFLOP/s | of peak | "
                  "best configuration |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in r["cases"]:
            lines.append(f"| {c['posterior']} | {c['preset']} | {c['batch_size']} | "
                         f"{c['examples_per_second']:.0f} | {c['gflops']:.0f} | "
                         f"{c['fraction_of_peak'] if 'fraction_of_peak' in c else c['fraction_of_float32_peak']:.0%} | "
                         f"{c['best_config']} |")
        lines += ["", f"Command: {_command(r)}", ""]
    r = _load("aae_figures")
    if r:
        f = r["figures"]
        lines += ["### Adversarial autoencoder: figures", "",
                  f"* `benchmarks/results/{f['vae_vs_aae']['png']}`: aggregated posterior of the "
                  f"test set over a 2-D Gaussian prior, VAE against AAE ({f['vae_vs_aae']['epochs']} "
                  "epochs each).",
                  f"* `benchmarks/results/{f['supervised_mixture']['png']}`: label to the "
                  f"discriminator, {f['supervised_mixture']['labeled']:,} labeled and "
                  f"{f['supervised_mixture']['unlabeled']:,} unlabeled images, 10-component "
                  f"mixture prior; test codes on their class's component: "
                  f"{f['supervised_mixture']['test_component_accuracy']:.1%} "
                  f"({f['supervised_mixture']['epochs']} epochs).",
                  f"* `benchmarks/results/{f['style_grid']['png']}`: label to the decoder, rows a "
                  f"style, columns a class ({f['style_grid']['epochs']} epochs).", "",
                  f"Command: {_command(r)}", ""]
    return lines


def _curve(points, most=8):
    """A learning curve as "epoch: error%" pairs, at most `most` of them (the last always kept)."""
    step = max(1, -(-len(points) // most))
    shown = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
    return ", ".join(f"{p['epoch']}: {p['test_error']:.1f}" for p in shown)


def categorical_section():
    results = [json.loads(p.read_text()) for pattern in ("aae_semi_supervised_*.json",
                                                         "aae_clustering_*.json",
                                                         "aae_dim_reduction_*.json")
               for p in sorted(RESULTS.glob(pattern))]
    if not results:
        return []
    lines = ["### Categorical AAE: MNIST test error (%) against training budget", "",
             "Semi-supervised: argmax q(y|x). Clustering: each cluster takes the label of the "
             "training image with the highest q(y|x) (the paper's rule; the majority vote of the "
             "training images in brackets). Learning curve: test error after each epoch. Examples/s: "
             "(unlabeled) training images per second of training time, on the 2-core machine "
             "shared with other jobs (a noisy lower bound).", "",
             "| task | labels / clusters | paper | ours | budget | examples/s | learning curve "
             "(epoch: error) | command |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        e, b = r["evaluation"], r["budget"]
        ours = (f"{e['error']:.2f}" if "error" in e else
                f"{e['cluster_error']['highest']:.2f} ({e['cluster_error']['majority']:.2f})")
        what = f"{r['labels']} labels" if r["labels"] is not None else f"{r['clusters']} clusters"
        lines.append(f"| {r['task']} | {what} | {_fmt(r['paper_error'])} | {ours} | {b['epochs']} "
                     f"epochs, {b['train_seconds'] / 60:.1f} min ({r['settings']['schedule']}"
                     + (f" {r['settings']['learning_rate']:g}" if r['settings']['learning_rate'] else "")
                     + ", "
                     f"{r['settings']['hidden_units']} units) | {r['examples_per_second']:.0f} | "
                     f"{_curve(r['curve'])} | {_command(r)} |")
    figures = [r["figure"] for r in results if r.get("figure")]
    lines += [""] + [f"* `benchmarks/results/{f}`: the 2-D representation W_c y + z of the test "
                     "set, coloured by label, cluster heads in grey." for f in figures]
    lines += ["", "On 2 CPU cores these budgets are minutes, far from the paper's schedule; the full "
              "schedule (the paper's SGD, rates / 10 after epochs 50 and 1000) is, e.g., "
              f"`{results[0]['full_schedule_command']}`.", ""]
    return lines


def serving_section():
    r = _load("serving_latency")
    if r is None:
        return []
    m = r["machine"]
    lines = ["### Serving: load time and latency through `tf.saved_model.load`", "",
             f"{m.get('cpu', '?')}, {m.get('cpus_usable', '?')} usable cores; latency is the median "
             "(p90) of repeated calls after a warm-up call; `sample` takes the batch as num_samples; "
             "`log_likelihood` with k = "
             + ", ".join(sorted({str(l["log_likelihood_samples"]) for l in r["loads"]
                                 if l["log_likelihood_samples"]})) + ".", "",
             "| model | load (s) | size (MB) | signature | batch | latency ms (p90) | per second |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    loads = {l["model"]: l for l in r["loads"]}
    for row in r["results"]:
        load = loads[row["model"]]
        lines.append(f"| {row['model']} | {load['load_seconds']:.2f} | {load['saved_model_mb']} | "
                     f"`{row['signature']}` | {row['batch']} | {row['latency_ms_median']:.2f} "
                     f"({row['latency_ms_p90']:.2f}) | {row['throughput_per_s']:,.0f} |")
    return lines + ["", f"Command: {_command(r)}", ""]


def render():
    sections = (nll_section() + table2_section() + throughput_section() + pipeline_section()
                + eval_time_section()
                + precision_section() + aae_section() + serving_section() + categorical_section())
    if not sections:
        return "No benchmark results are committed yet."
    return "\n".join(["Generated by `python benchmarks/make_table.py` from `benchmarks/results/*.json`.",
                      "", *sections]).rstrip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render()}\n{END}{tail}"
    if args.check:
        sys.exit(0 if new == text else 1)
    readme.write_text(new)


if __name__ == "__main__":
    main()
