"""Fashion-MNIST, the real photographs that install offline (Debian's dataset-fashion-mnist), through
the project's own command-line programs, as a user runs them:

  a. ResNet-20 trained from scratch with train.py on the 60,000 training images; top-1 on the 10,000
     official test images, beside the references in the dataset's README.
  b. Transfer: ResNet-20 pretrained on five classes (T-shirt/top, Trouser, Pullover, Dress, Coat),
     then fine-tuned (train.py --weights RUN --freeze-epochs) on 1,000 labelled images of the other
     five (Sandal, Shirt, Sneaker, Bag, Ankle boot), against the same network trained from scratch on
     those 1,000 images with the same number of steps. Both scored on those classes' 5,000 test images.
  c. convert/to_tflite.py on the model of (a): every LiteRT target's top-1 on the 10,000 test images.

    python bench/fashion_mnist.py                     # all three, ~60 minutes on 2 CPU cores
    python bench/fashion_mnist.py --parts a,c
    python bench/fashion_mnist.py --quick             # a few hundred steps of each path (CI)

Each step's command and output are shown as they run; the figures go to OUTPUT/results.json and a
Markdown table to OUTPUT/results.md. A finished step is not run again (delete its folder to redo it).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

from keras_resnet import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The dataset README's test accuracies (github.com/zalandoresearch/fashion-mnist, "Benchmark").
REFERENCES = {"ResNet18": 0.949, "WRN-28-10": 0.959, "WRN40-4": 0.967, "human": 0.835}
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
TRANSFER_CLASSES = (5, 6, 7, 8, 9)

# (full, quick) settings. The full ones fit the 30-minute goal for (a) on 2 CPU cores.
SCRATCH = {"full": ["--epochs", "20", "--schedule", "cosine", "--warmup-epochs", "1", "--weight-decay", "5e-4"],
           "quick": ["--steps", "200", "--train-examples", "6400", "--validation-examples", "1000"]}
PRETRAIN = {"full": ["--epochs", "10", "--schedule", "cosine", "--warmup-epochs", "1", "--weight-decay", "5e-4"],
            "quick": ["--steps", "100"]}
TRANSFER_EXAMPLES = {"full": 1000, "quick": 250}
TRANSFER_EPOCHS = {"full": 40, "quick": 4}
TEST_PER_CLASS = {"full": None, "quick": 100}
CONVERT = {"full": [], "quick": ["--qat-steps-per-epoch", "50", "--latency-runs", "5", "--gpu-eval-images", "20"]}


def run(command, *, log):
    """Runs one of the project's programs, its output shown as it comes; returns the seconds it took."""
    command = [sys.executable, *command]
    log(f"$ {shlex.join(os.path.relpath(part, ROOT) if part.startswith(ROOT) else part for part in command)}")
    started = time.time()
    completed = subprocess.run(command, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"error: {command[1]} exited with {completed.returncode}; see its output above.")
    return time.time() - started


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as file:
        return json.load(file)


def part_a(mode, output, log):
    run_dir = os.path.join(output, "a-resnet20-scratch")
    if not os.path.exists(os.path.join(run_dir, "metrics.json")):
        run(["train.py", "--depth", "20", "--dataset", "fashion_mnist", "--image-size", "28", *SCRATCH[mode],
             "--output", run_dir], log=log)
    metrics = read_metrics(run_dir)
    return {
        "run": os.path.relpath(run_dir, ROOT),
        "test_top1": metrics["top1"],
        "test_images": 10_000 if mode == "full" else None,
        "training_minutes": round(metrics["training_seconds"] / 60, 1),
        "epochs": metrics["epochs"],
        "steps": metrics["steps"],
        "images_per_second": metrics["images_per_second"],
        "references": REFERENCES,
    }


def export_folders(root, *, classes, train_per_class, test_per_class=None, seed=0):
    """Fashion-MNIST images of `classes` as PNG files in root/train/<class>/ and root/test/<class>/:
    `train_per_class` training and `test_per_class` official test images each (None: all)."""
    from PIL import Image

    from keras_resnet.data import sources

    copy = sources.LOCAL_COPIES["fashion_mnist"]
    folder = sources._local_copy_folder("fashion_mnist")
    if folder is None:
        raise SystemExit(f"error: Fashion-MNIST's files are not installed: {copy.install_hint}.")
    if os.path.exists(os.path.join(root, "complete")):
        return
    rng = np.random.default_rng(seed)
    for split, (images_file, labels_file) in copy.files.items():
        images = sources.read_idx(os.path.join(folder, images_file))
        labels = sources.read_idx(os.path.join(folder, labels_file))
        for label in classes:
            indices = np.flatnonzero(labels == label)
            keep = train_per_class if split == "train" else test_per_class
            if keep is not None:
                indices = np.sort(rng.choice(indices, keep, replace=False))
            target = os.path.join(root, split, copy.class_names[label].replace("/", "-"))
            os.makedirs(target, exist_ok=True)
            for index in indices:
                Image.fromarray(images[index], mode="L").save(os.path.join(target, f"{index:05d}.png"))
    open(os.path.join(root, "complete"), "w").close()


def part_b(mode, output, log):
    data = os.path.join(output, "data")
    pretrain_data, transfer_data = os.path.join(data, "five-classes"), os.path.join(data, "other-five-small")
    per_class = TRANSFER_EXAMPLES[mode] // len(TRANSFER_CLASSES)
    log(f"Writing Fashion-MNIST as image folders into {os.path.relpath(data, ROOT)} …")
    export_folders(pretrain_data, classes=PRETRAIN_CLASSES, train_per_class=None if mode == "full" else 1000,
                   test_per_class=TEST_PER_CLASS[mode])
    export_folders(transfer_data, classes=TRANSFER_CLASSES, train_per_class=per_class, test_per_class=TEST_PER_CLASS[mode])

    common = ["--depth", "20", "--image-size", "28"]
    pretrained = os.path.join(output, "b-resnet20-pretrain-five")
    if not os.path.exists(os.path.join(pretrained, "metrics.json")):
        run(["train.py", *common, "--dataset", f"folder:{pretrain_data}", *PRETRAIN[mode], "--output", pretrained], log=log)

    # Same photos, same number of steps, each arm with its own recipe: the fine-tuning defaults
    # (train.py --weights: a lower rate, the frozen classifier-only phase) against the from-scratch
    # recipe (the paper's rate for the batch, one warm-up epoch), both on a cosine schedule.
    epochs = str(TRANSFER_EPOCHS[mode])
    small = ["--dataset", f"folder:{transfer_data}", "--batch-size", "50", "--epochs", epochs, "--schedule", "cosine"]
    runs = {
        "fine_tuned": (os.path.join(output, "b-resnet20-fine-tuned"), ["--weights", pretrained, "--freeze-epochs", "2"]),
        "from_scratch": (os.path.join(output, "b-resnet20-scratch"), ["--warmup-epochs", "1"]),
    }
    results = {"pretrained_on": "5 classes, full training split", "pretrain_top1": read_metrics(pretrained)["top1"],
               "labelled_images": TRANSFER_EXAMPLES[mode], "test_images": 5_000 if mode == "full" else None}
    for key, (run_dir, flags) in runs.items():
        if not os.path.exists(os.path.join(run_dir, "metrics.json")):
            run(["train.py", *common, *small, *flags, "--output", run_dir], log=log)
        metrics = read_metrics(run_dir)
        results[key] = {"run": os.path.relpath(run_dir, ROOT), "test_top1": metrics["top1"], "steps": metrics["steps"]}
        # train.py writes the best model's per-class results and confusion picture when it finishes.
        confusion = [name for name in sorted(os.listdir(run_dir)) if name.startswith("confusion-") and name.endswith(".png")]
        if confusion:
            results[key]["confusion"] = os.path.relpath(os.path.join(run_dir, confusion[0]), ROOT)
    return results


def part_c(mode, output, log):
    run_dir = os.path.join(output, "a-resnet20-scratch")
    report_path = os.path.join(run_dir, "tflite", "report.json")
    if not os.path.exists(report_path):
        run(["convert/to_tflite.py", "--run", run_dir, *CONVERT[mode]], log=log)
    with open(report_path, encoding="utf-8") as file:
        report = json.load(file)
    targets = report["targets"]
    return {
        "report": os.path.relpath(report_path, ROOT),
        "images": report["images"],
        "keras_top1": report["keras"]["top1"],
        "targets": {name: row.get("top1") for name, row in targets.items()},
        "acceptance": {name: row.get("acceptance") for name, row in targets.items()},
        "gpu_adapter": report["gpu"].get("adapter"),
    }


PARTS = {"a": part_a, "b": part_b, "c": part_c}


def markdown(results):
    lines = ["| measurement | top-1 |", "|---|---|"]
    if "a" in results:
        a = results["a"]
        lines.append(f"| (a) ResNet-20 from scratch, {a['epochs']} epochs, {a['training_minutes']} min | {100 * a['test_top1']:.2f} % |")
        lines += [f"| reference: {name} (dataset README) | {100 * value:.1f} % |" for name, value in a["references"].items()]
    if "b" in results:
        b = results["b"]
        lines.append(f"| (b) fine-tuned from the five-class model, {b['labelled_images']} images | {100 * b['fine_tuned']['test_top1']:.2f} % |")
        lines.append(f"| (b) from scratch, same {b['labelled_images']} images and steps | {100 * b['from_scratch']['test_top1']:.2f} % |")
        if b["fine_tuned"].get("confusion"):
            lines.append(f"| (b) fine-tuned, per class: {b['fine_tuned']['confusion']} | |")
    if "c" in results:
        c = results["c"]
        lines.append(f"| (c) the Keras model of (a), float32, {c['images']} test images | {100 * c['keras_top1']:.2f} % |")
        lines += [f"| (c) {target} .tflite | {'n/a' if top1 is None else f'{100 * top1:.2f} %'} |" for target, top1 in c["targets"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c", help="which measurements, comma-separated (default a,b,c)")
    parser.add_argument("--quick", action="store_true", help="a few hundred steps of each path on subsets (CI)")
    parser.add_argument("--output", help="where runs and results go (default runs/bench-fashion-mnist, or …-quick)")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}. Valid: {', '.join(PARTS)}.", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else "full"
    output = os.path.abspath(args.output or os.path.join(ROOT, "runs", "bench-fashion-mnist" + ("-quick" if args.quick else "")))
    os.makedirs(output, exist_ok=True)
    results_path = os.path.join(output, "results.json")
    results = {}
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as file:
            results = json.load(file)
    if results.get("mode", mode) != mode:
        # Finished steps are reused: never a quick run's in a full measurement, or the reverse.
        print(f"error: {output} holds a {results['mode']} run: choose another --output.", file=sys.stderr)
        return 2
    log = lambda message: print(message, flush=True)  # noqa: E731
    for part in parts:
        log(f"== ({part}) ==")
        results[part] = PARTS[part](mode, output, log)
        results["mode"] = mode
        files.write_text(results_path, json.dumps(results, indent=2))
    files.write_text(os.path.join(output, "results.md"), markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
