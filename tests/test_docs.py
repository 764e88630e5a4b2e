"""The README's results block is what benchmarks/make_table.py generates from the committed JSON,
.ci/run runs exactly the README's test command, and the precision verdict follows from its data."""

import json
import pathlib
import re
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_results_match_the_benchmark_json():
    proc = subprocess.run([sys.executable, "benchmarks/make_table.py", "--check"], cwd=ROOT)
    assert proc.returncode == 0, "README.md is stale: run `python benchmarks/make_table.py`"


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert ci_lines[-1] == command


def test_the_precision_verdict_follows_from_its_per_seed_results():
    r = json.loads((ROOT / "benchmarks" / "results" / "precision.json").read_text())
    by = r["nll_by_training_precision"]
    for precision, values in by.items():
        assert values == [round(r["test_nll"][f"train_{precision}_seed{s}/eval_float32"]["nll"], 3)
                          for s in range(r["seeds"])]
    f32, bf16 = by["float32"], by["mixed_bfloat16"]
    pooled = ((statistics.variance(f32) * (len(f32) - 1) + statistics.variance(bf16) * (len(bf16) - 1))
              / (len(f32) + len(bf16) - 2)) ** 0.5
    stderr = pooled * (1 / len(f32) + 1 / len(bf16)) ** 0.5
    effect = statistics.mean(bf16) - statistics.mean(f32)
    assert abs(effect - r["bf16_training_effect_nats"]) < 2e-3
    assert abs(stderr - r["bf16_training_effect_stderr_nats"]) < 2e-3
    assert r["bf16_training_kept"] == (abs(effect) <= max(r["tolerance_nats"], 2 * stderr))
