#!/usr/bin/env python
"""Evaluate the same checkpoints with two versions of vertspine and compare every metric.

A refactor that must not change results is checked this way: for each config, a short run is
trained with the OLD checkout (``--old-root``, e.g. a ``git worktree`` of the last commit before
the change), and its ``model_final.pth`` is evaluated with ``train_net.py --eval-only`` by the old
and by the new checkout (``--new-root``, default this repository), each writing ``inference/evaluation_results.json``. The
script prints one line per metric (old, new, |difference|) and exits 1 when any metric differs by
more than ``--tolerance`` or exists on one side only. The evaluators' prediction files (every
file under ``inference/`` and the ``.json`` files beside it, e.g. ``coco_instances_results.json``,
``classification_predictions.csv``, ``classification_threshold.json``) are compared byte for byte
and reported as identical or DIFFERENT (a difference counts as a mismatch).

Runs are single-threaded (``OMP_NUM_THREADS=1``) so that both evaluations use the same kernels; the
phantom datasets are shared through ``$VERTSPINE_DATASETS`` (default: this repository's
``datasets``). Configs and their overrides are given as a JSON list of rows::

    [{"name": "faster_rcnn_R_18", "config": "configs/phantom/faster_rcnn_R_18_FPN_phantom_lesions.yaml",
      "train": ["SOLVER.MAX_ITER", "60"], "old_eval": [], "new_eval": []}]

``train`` overrides apply to the old training run and to both evaluations; ``old_eval`` /
``new_eval`` hold keys renamed between the versions; ``{output}`` in a value is the ``--output``
folder (e.g. a row initialised from another row's checkpoint). Usage::

    git worktree add /tmp/old <commit>
    python scripts/eval_parity.py --old-root /tmp/old --rows rows.json --output output/parity
"""

import argparse
import json
import math
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train_net(root, config, opts, output_dir, log_path, eval_only_weights=None):
    """Run ``<root>/train_net.py`` with ``root`` first on the path; raise with the log on failure."""
    command = [sys.executable, os.path.join(root, "train_net.py"),
               "--config-file", os.path.join(root, config)]
    if eval_only_weights is not None:
        command.append("--eval-only")
    command += list(opts) + ["OUTPUT_DIR", output_dir]
    if eval_only_weights is not None:
        command += ["MODEL.WEIGHTS", eval_only_weights]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=root,
               VERTSPINE_DATASETS=os.environ.get("VERTSPINE_DATASETS",
                                                 os.path.join(REPO_ROOT, "datasets")))
    os.makedirs(output_dir, exist_ok=True)
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {completed.returncode}); see {log_path}")


def flatten_metrics(results, prefix=""):
    """Nested evaluator results -> {"dataset/task/metric": float}."""
    flat = {}
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name))
        elif isinstance(value, (int, float)):
            flat[name] = float(value)
    return flat


def read_metrics(output_dir):
    path = os.path.join(output_dir, "inference", "evaluation_results.json")
    with open(path) as f:
        return flatten_metrics(json.load(f)["results"])


def prediction_files(output_dir):
    """Relative paths of an evaluation's prediction files (not its logs, config or metrics)."""
    skipped = {"evaluation_results.json", "metrics.json", "config.yaml", "last_checkpoint"}
    found = []
    for folder, _, names in os.walk(output_dir):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), output_dir)
            inside = relative.startswith("inference" + os.sep)
            if name not in skipped and (inside or name.endswith(".json")):
                found.append(relative)
    return sorted(found)


def same_bytes(path_a, path_b):
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        return a.read() == b.read()


def same(a, b, tolerance):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tolerance


def compare_row(row, old_root, new_root, output, tolerance):
    """Train with the old code, evaluate with both; return (lines, number of mismatches)."""
    folder = os.path.join(os.path.abspath(output), row["name"])
    train_dir = os.path.join(folder, "train_old")
    weights = os.path.join(train_dir, "model_final.pth")
    if not os.path.isfile(weights):
        run_train_net(old_root, row["config"], row["train"] + row.get("old_eval", []), train_dir,
                      os.path.join(folder, "train_old.log"))
    metrics = {}
    for side, root, extra in (("old", old_root, row.get("old_eval", [])),
                              ("new", new_root, row.get("new_eval", []))):
        eval_dir = os.path.join(folder, f"eval_{side}")
        run_train_net(root, row["config"], row["train"] + extra, eval_dir,
                      os.path.join(folder, f"eval_{side}.log"), eval_only_weights=weights)
        metrics[side] = read_metrics(eval_dir)
    lines, mismatches = [], 0
    for name in sorted(set(metrics["old"]) | set(metrics["new"])):
        old, new = metrics["old"].get(name), metrics["new"].get(name)
        if old is None or new is None or not same(old, new, tolerance):
            mismatches += 1
            flag = "DIFFERENT"
        else:
            flag = "same"
        difference = abs(old - new) if old is not None and new is not None else float("nan")
        lines.append(f"{row['name']:<28} {name:<60} old {old!r:<22} new {new!r:<22} "
                     f"|d| {difference:.3g} {flag}")
    if not lines:
        raise RuntimeError(f"{row['name']}: no metrics in {folder}/eval_*/inference")
    old_dir, new_dir = (os.path.join(folder, f"eval_{side}") for side in ("old", "new"))
    for relative in sorted(set(prediction_files(old_dir)) | set(prediction_files(new_dir))):
        old_file, new_file = os.path.join(old_dir, relative), os.path.join(new_dir, relative)
        identical = (os.path.isfile(old_file) and os.path.isfile(new_file)
                     and same_bytes(old_file, new_file))
        mismatches += not identical
        lines.append(f"{row['name']:<28} {relative:<60} {'identical' if identical else 'DIFFERENT'}")
    return lines, mismatches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-root", required=True, help="checkout of the older version")
    parser.add_argument("--new-root", default=REPO_ROOT,
                        help="checkout of the newer version (default: this repository)")
    parser.add_argument("--rows", required=True, help="JSON list of {name, config, train, ...}")
    parser.add_argument("--output", required=True)
    parser.add_argument("--only", nargs="*", default=None, help="row names to run")
    parser.add_argument("--tolerance", type=float, default=0.0)
    args = parser.parse_args()
    with open(args.rows) as f:
        rows = json.loads(f.read().replace("{output}", os.path.abspath(args.output)))
    total = 0
    for row in rows:
        if args.only and row["name"] not in args.only:
            continue
        try:
            lines, mismatches = compare_row(row, os.path.abspath(args.old_root),
                                            os.path.abspath(args.new_root), args.output,
                                            args.tolerance)
        except RuntimeError as e:  # one failed run: report it, go on with the other rows
            lines, mismatches = [f"{row['name']:<28} FAILED: {e}"], 1
        print("\n".join(lines), flush=True)
        total += mismatches
    print(f"{total} metric(s) differ by more than {args.tolerance} or failed")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
