"""The experiment's results: the table of final errors, Fig. 6 of the paper, the gradient figure."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_resnet import files  # noqa: E402
from keras_resnet.run.directory import read_history  # noqa: E402


def error_curves(run):
    """(epochs, training error, test error) from a run's history.csv. The training error is the
    running error over each epoch's augmented batches, as the paper plots it."""
    rows = read_history(run.history)
    epochs = [int(row["epoch"]) for row in rows]
    return epochs, [1 - row["accuracy"] for row in rows], [1 - row["val_accuracy"] for row in rows]


def results(runs):
    """[{depth, net, training_error, test_error, best_test_error, epochs, steps}] in table order."""
    rows = []
    for (depth, plain), run in sorted(runs.items(), key=lambda item: (not item[0][1], item[0][0])):
        epochs, training_error, test_error = error_curves(run)
        with open(run.metrics) as file:
            steps = json.load(file)["steps"]
        rows.append(
            {
                "depth": depth,
                "net": "plain" if plain else "ResNet",
                "training_error": training_error[-1],
                "test_error": test_error[-1],
                "best_test_error": min(test_error),
                "epochs": len(epochs),
                "steps": steps,
                "run": run.path,
            }
        )
    return rows


def markdown_table(rows):
    lines = [
        "| net | depth | training error | test error | best test error | steps |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['net']}-{row['depth']} | {row['depth']} | {100 * row['training_error']:.2f} % | "
            f"{100 * row['test_error']:.2f} % | {100 * row['best_test_error']:.2f} % | {row['steps']} |"
        )
    return "\n".join(lines)


def degradation_figure(runs, path, *, dataset):
    """Fig. 6's layout: plain nets left, ResNets right, training error dashed, test error solid,
    one colour per depth, a shared error axis."""
    depths = sorted({depth for depth, _ in runs})
    colours = dict(zip(depths, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, plain, title in ((axes[0], True, "plain"), (axes[1], False, "ResNet")):
        for depth in depths:
            epochs, training_error, test_error = error_curves(runs[depth, plain])
            name = f"{title}-{depth}"
            axis.plot(epochs, [100 * e for e in training_error], "--", color=colours[depth], label=f"{name} training")
            axis.plot(epochs, [100 * e for e in test_error], "-", color=colours[depth], linewidth=2, label=f"{name} test")
        axis.set_title(f"{title} ({dataset})")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    figure.tight_layout()
    with files.replacing(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def gradient_figure(norms, path):
    """Gradient norm per block, input to output, log scale: plain vs ResNet, at initialisation
    (dashed) and after training (solid)."""
    figure, axis = plt.subplots(figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (name, result) in zip(colours, norms.items()):
        positions = range(len(result["blocks"]))
        axis.semilogy(positions, result["initialisation"], "--", marker="o", markersize=3, color=colour, label=f"{name} at initialisation")
        axis.semilogy(positions, result["trained"], "-", marker="o", markersize=3, color=colour, label=f"{name} after {result['steps']} steps")
    blocks = next(iter(norms.values()))["blocks"]
    axis.set_xticks(range(len(blocks)), [block.replace("_block", ".").replace("stage", "s") for block in blocks], rotation=90, fontsize=7)
    axis.set_xlabel("block (input → output)")
    axis.set_ylabel("‖∂loss/∂kernels‖ (log)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    with files.replacing(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
