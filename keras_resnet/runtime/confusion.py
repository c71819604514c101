"""Which classes a model confuses: the confusion matrix of its answers and its picture (PNG).

No TensorFlow: classify.py draws it on a board (Matplotlib, imported only when a picture is asked
for), and Keras' evaluation can draw the same one.
"""

import numpy as np

# Above this many classes the picture shows the classes with the most mistakes (rows and columns),
# so that the names stay readable; the matrix itself keeps every class.
MAX_CLASSES_DRAWN = 30


class ConfusionError(Exception):
    """The picture cannot be drawn here: one line saying what to install."""


def matrix(truth, predicted, classes):
    """The confusion matrix: counts[i, j] is the number of pictures of class i answered as class j.

    Args:
        truth: The true class index of each picture (a sequence of ints).
        predicted: The class index answered for each picture, in the same order.
        classes: The number of classes (the matrix is classes × classes).

    Returns:
        An int64 array of shape (classes, classes).
    """
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def per_class(counts):
    """{"precision", "recall"} per class (None where a class has no pictures or no answers)."""
    right = np.diag(counts).astype(np.float64)
    answered, present = counts.sum(axis=0), counts.sum(axis=1)
    return {
        "precision": [None if a == 0 else float(r / a) for r, a in zip(right, answered)],
        "recall": [None if p == 0 else float(r / p) for r, p in zip(right, present)],
    }


def draw(counts, class_names, path, *, title):
    """Writes a PNG of a confusion matrix: counts beside the row-normalized matrix, class names on the axes.

    Each row of the normalized matrix says where that class's pictures went. Above MAX_CLASSES_DRAWN
    classes only those with the most mistakes are drawn. The file is replaced whole or not at all.

    Args:
        counts: The confusion matrix, as `matrix` returns it.
        class_names: The name of each class, in class index order.
        path: The PNG file to write.
        title: The figure's title.

    Raises:
        ConfusionError: Matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfusionError("drawing a confusion matrix needs Matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_resnet.files import replacing

    shown = _classes_shown(counts)
    counts_shown = counts[np.ix_(shown, shown)]
    names = [class_names[index] for index in shown]
    rows = counts[shown].sum(axis=1, keepdims=True)  # every picture of the class, shown columns or not
    normalized = np.divide(counts_shown, rows, out=np.zeros(counts_shown.shape), where=rows > 0)
    size = len(shown)
    inches = max(4.0, 0.35 * size + 2.5)
    figure, axes = plt.subplots(1, 2, figsize=(2 * inches + 1, inches + 0.6), constrained_layout=True)
    for axis, values, caption, text in (
        (axes[0], counts_shown, "pictures", lambda v: f"{int(v)}"),
        (axes[1], normalized, "share of the true class's pictures", lambda v: f"{v:.2f}"),
    ):
        image = axis.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=axis, shrink=0.8, label=caption)
        axis.set_xticks(range(size), names, rotation=90 if size > 6 else 45, ha="center" if size > 6 else "right")
        axis.set_yticks(range(size), names)
        axis.set_xlabel("answered")
        axis.set_ylabel("true class")
        if size <= 15:  # values written in the cells while they fit
            top = values.max() or 1
            for i in range(size):
                for j in range(size):
                    colour = "white" if values[i, j] > 0.6 * top else "black"
                    axis.text(j, i, text(values[i, j]), ha="center", va="center", fontsize=8, color=colour)
    if size < len(counts):
        title += f" — the {size} classes with the most mistakes, of {len(counts)}"
    figure.suptitle(title)
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def _classes_shown(counts):
    if len(counts) <= MAX_CLASSES_DRAWN:
        return list(range(len(counts)))
    mistakes = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diag(counts)
    return sorted(np.argsort(-mistakes, kind="stable")[:MAX_CLASSES_DRAWN].tolist())
