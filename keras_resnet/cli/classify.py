"""Classify pictures, a folder or a camera with a .tflite model from convert/to_tflite.py, on a board.

    python edge_demo/classify.py --model runs/…/tflite/resnet20_int8-qat.tflite photo.jpg other.png
    python edge_demo/classify.py --model runs/…/tflite/resnet20_int8-qat.tflite edge_demo/samples/
    python edge_demo/classify.py --model M photos/val --csv answers.csv --confusion confusion.png   # class folders
    python edge_demo/classify.py --model resnet20_int8-qat_edgetpu.tflite --delegate edgetpu --camera 0
    python edge_demo/classify.py --model runs/…/tflite/resnet20_gpu.tflite --benchmark 200

Needs only `pip install 'keras-resnet-edge[demo]'` (ai-edge-litert, numpy, Pillow; OpenCV for
--camera); never TensorFlow.
Class names come from the model file (convert/to_tflite.py packs them in) or --labels. A picture in
a folder named like a class (photos/val/Bag/001.png) has that class as its true one: then the top-1
accuracy is printed at the end, --csv holds it per picture and --confusion draws which classes mix.
"""

import csv
import io
import os
import sys

import numpy as np
from PIL import Image

from keras_resnet.cli import COUNT, NON_NEGATIVE_COUNT, THREADS, USAGE_ERROR, ArgumentParser, HelpFormatter, Number, usage_error
from keras_resnet.quiet import native_output_silenced_at_exit, native_stderr_silenced
from keras_resnet import files
from keras_resnet.runtime import LiteRTError, confusion
from keras_resnet.runtime.classifier import DEFAULT_TOP_K, Classifier, load_image
from keras_resnet.runtime.delegates import DELEGATES
from keras_resnet.runtime.pictures import PILLOW_EXTENSIONS



def parser():
    p = ArgumentParser(
        description="Classify images, a directory of images or a camera's frames with a LiteRT (.tflite) classifier.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("images", nargs="*", help="image files or directories (every image inside and in their subfolders, sorted)")
    p.add_argument("--model", required=True, help="the .tflite file (from convert/to_tflite.py, or compiled by edgetpu_compiler)")
    p.add_argument("--labels", help="class names, one per line (default: the labels packed in the model file)")
    p.add_argument("--top-k", type=COUNT, default=DEFAULT_TOP_K, help="how many classes to show per image")
    p.add_argument(
        "--delegate",
        choices=list(DELEGATES),
        default="cpu",
        help="where the model runs: cpu (XNNPACK), gpu (LiteRT's GPU accelerator, over the GPU's Vulkan driver), "
        "edgetpu (Coral, libedgetpu)",
    )
    p.add_argument(
        "--delegate-library",
        metavar="PATH",
        help="a delegate's shared library: libedgetpu when not on the loader's path, or with --delegate gpu "
        "a GPU delegate library built by hand instead of the GPU accelerator",
    )
    p.add_argument("--threads", type=THREADS, help="CPU threads (default: every core)")
    p.add_argument("--camera", metavar="N", help="classify frames from camera N (or a device path / stream URL) with OpenCV")
    p.add_argument("--frames", type=NON_NEGATIVE_COUNT, default=0, help="with --camera: stop after this many frames (0: until Ctrl-C)")
    p.add_argument("--benchmark", type=Number(int, minimum=1, maximum=1_000_000), metavar="N", help="time N runs at batch 1 (on the first image, else a grey one)")
    p.add_argument("--csv", metavar="FILE", help="write one row per picture: path, true class (from its folder's name, when it names a class), top-k classes and scores")
    p.add_argument("--confusion", metavar="FILE.png", help="draw the confusion matrix of the pictures whose true class is known (needs Matplotlib)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if args.camera is not None and args.images:
        return usage_error("give images or --camera, not both")
    if args.camera is None and not args.images and args.benchmark is None:
        return usage_error("nothing to classify: give image files or directories, --camera N, or --benchmark N")
    if (args.csv or args.confusion) and not args.images:
        return usage_error("--csv and --confusion describe classified pictures: give image files or directories")
    for flag, path in (("--csv", args.csv), ("--confusion", args.confusion)):
        if path and (os.path.isdir(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path)))):
            return usage_error(f"{flag} {path}: {'is a directory' if os.path.isdir(path) else 'its folder does not exist'}: name a file in an existing folder")
    if args.confusion:
        try:
            import matplotlib  # noqa: F401  (drawn at the end: known missing before any picture is classified)
        except ImportError:
            return usage_error("--confusion needs Matplotlib: pip install matplotlib")
    if args.delegate == "gpu" and args.delegate_library is None:
        native_output_silenced_at_exit()  # LiteRT logs its GPU environment's teardown as the process ends
    try:
        pictures, unreadable = _image_paths(args.images)
        classifier = Classifier(
            args.model, delegate=args.delegate, delegate_library=args.delegate_library, threads=args.threads, labels=args.labels
        )
    except LiteRTError as error:
        return usage_error(str(error))

    try:
        return _classify(classifier, args, pictures, unreadable)
    finally:
        classifier.model.close()


def _classify(classifier, args, pictures, unreadable):
    print(classifier.describe())
    for note in classifier.notes:
        print(f"note: {note}")
    if classifier.gpu_fallback:
        print(f"warning: {classifier.gpu_fallback}")
    if args.camera is not None:
        try:
            return _classify_camera(classifier, args.camera, top_k=args.top_k, frames=args.frames)
        except LiteRTError as error:
            return usage_error(str(error))

    failures = list(unreadable)
    for message in unreadable:
        print(f"error: {message}", file=sys.stderr)
    first_image = None
    answers = []  # (path, true class index or None, predicted class index, results)
    true_class = _true_classes(classifier.labels)
    for path, folders in pictures:
        try:
            image = load_image(path)
        except LiteRTError as error:
            failures.append(str(error))
            print(f"error: {error}", file=sys.stderr)
            continue
        if first_image is None:
            first_image = image
        scores, milliseconds = classifier.scores(image)
        results = classifier.top(scores, top_k=args.top_k)
        _print_results(path, results, milliseconds)
        answers.append((path, true_class(folders), int(np.argmax(scores)), results))

    if answers:
        try:
            _summarize(classifier, answers, args)
        except (LiteRTError, confusion.ConfusionError) as error:
            return usage_error(str(error))
    if args.benchmark:
        timing = classifier.benchmark(first_image, runs=args.benchmark)
        on = "the first image" if first_image is not None else "a grey image"
        print(
            f"benchmark: {timing['runs']} runs after 10 warm-up, batch 1, on {on}: "
            f"median {timing['median_ms']:.2f} ms, p90 {timing['p90_ms']:.2f} ms, "
            f"{timing['frames_per_second']:.1f} frames/s (inference only)"
        )
    return USAGE_ERROR if failures else 0


def _true_classes(labels):
    """The folders a picture sits in (top-down) → the index of the first one named like a label (None
    when none is). Top-down, as Keras labels a folder dataset: photos/val/Bag/sub/x.png is a Bag.
    Folder names that cannot hold a label as it is written ("T-shirt/top", "Ankle boot") are matched
    loosely: case, spaces, '_', '-' and '/' aside."""

    def key(name):
        return "".join(character for character in name.casefold() if character not in " _-/")

    exact = {name: index for index, name in enumerate(labels)}
    loose = {}
    for index, name in enumerate(labels):
        loose.setdefault(key(name), index)

    def true_class(folders):
        for folder in folders:
            index = exact.get(folder, loose.get(key(folder)))
            if index is not None:
                return index
        return None

    return true_class


def _summarize(classifier, answers, args):
    """The accuracy line (when true classes are known), the CSV and the confusion picture."""
    known = [(truth, predicted) for _, truth, predicted, _ in answers if truth is not None]
    if known:
        right = sum(truth == predicted for truth, predicted in known)
        others = len(answers) - len(known)
        print(
            f"top-1 {100 * right / len(known):.2f} % on {len(known)} pictures whose folder names their class "
            f"({right} right, {classifier.describe_briefly()})"
            + (f"; {others} other picture{'s' if others != 1 else ''} not counted" if others else "")
        )
    if args.csv:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        shown = min(args.top_k, len(classifier.labels))  # a model of 4 classes has 4 answers to rank
        writer.writerow(["path", "true_class", *(f"{column}_{rank}" for rank in range(1, shown + 1) for column in ("class", "score"))])
        for path, truth, _, results in answers:
            cells = [value for name, score in results for value in (name, f"{score:.6f}")]
            writer.writerow([path, "" if truth is None else classifier.labels[truth], *cells])
        _written(args.csv, lambda: files.write_text(args.csv, text.getvalue()))
        print(f"wrote {args.csv} ({len(answers)} rows)")
    if args.confusion:
        if not known:
            raise confusion.ConfusionError(
                "--confusion needs pictures whose true class is known: put them in folders named like the model's classes"
            )
        truth, predicted = zip(*known)
        counts = confusion.matrix(truth, predicted, len(classifier.labels))
        title = f"{os.path.basename(classifier.model_path)} on {len(known)} pictures"
        _written(args.confusion, lambda: confusion.draw(counts, classifier.labels, args.confusion, title=title))
        print(f"wrote {args.confusion}")


def _written(path, write):
    """Runs `write`; a failed write is one line naming `path` (not the temporary file beside it)."""
    try:
        write()
    except OSError as error:
        raise LiteRTError(f"cannot write {path} ({files.describe_os_error(error)}): free some space or choose another file") from None


def _image_paths(arguments):
    """(picture path, the folders it sits in below and including the directory named, top-down) for
    the files named and the images inside the directories named and their subfolders (sorted).
    Directories with no image are reported with the unreadable files rather than stopping the others."""
    pictures, problems = [], []
    for argument in arguments:
        if os.path.isdir(argument):
            found = 0
            top = os.path.basename(os.path.abspath(argument))
            for folder, subfolders, names in os.walk(argument):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                below = os.path.relpath(folder, argument)
                folders = [top] + ([] if below == os.curdir else below.split(os.sep))
                for name in sorted(names):
                    path = os.path.join(folder, name)
                    if name.lower().endswith(PILLOW_EXTENSIONS) and not name.startswith(".") and os.path.isfile(path):
                        # Top-down from the first folder below the one named: photos/val → val/Bag/x.png is a Bag.
                        pictures.append((path, folders[1:] + folders[:1]))
                        found += 1
            if not found:
                problems.append(f"{argument}: no image files ({', '.join(PILLOW_EXTENSIONS)}) in this directory")
        else:
            # A missing or broken file is reported when it is read; its folder may name its class.
            pictures.append((argument, [os.path.basename(os.path.dirname(os.path.abspath(argument)))]))
    return pictures, problems


def _print_results(path, results, milliseconds):
    print(f"{path}  ({milliseconds:.2f} ms)")
    width = max(len(name) for name, _ in results)
    for rank, (name, score) in enumerate(results, start=1):
        print(f"  {rank}. {name:<{width}}  {score:.3f}")


def _classify_camera(classifier, camera, *, top_k, frames):
    try:
        import cv2
    except ImportError:
        raise LiteRTError(
            "--camera needs OpenCV: pip install opencv-python-headless (on Raspberry Pi OS: sudo apt install python3-opencv)"
        ) from None

    source = int(camera) if camera.isdigit() else camera
    with native_stderr_silenced():  # OpenCV's back ends log every one they try
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise LiteRTError(f"camera {camera} could not be opened: check `ls /dev/video*` and that no other program uses it")
    interactive = sys.stdout.isatty()
    count = 0
    try:
        while frames == 0 or count < frames:
            ok, frame = capture.read()
            if not ok:
                if count == 0:
                    raise LiteRTError(f"camera {camera} opened but gave no frame")
                break
            image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))  # OpenCV's frames are BGR
            results, milliseconds = classifier.classify(image, top_k=top_k)
            count += 1
            shown = " · ".join(f"{name} {score:.2f}" for name, score in results[:3])
            line = f"frame {count}: {shown}  ({milliseconds:.1f} ms)"
            # On a terminal the line is rewritten in place; piped output keeps one line per frame.
            print(f"\r\x1b[2K{line}" if interactive else line, end="" if interactive else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
        if interactive:
            print()
    print(f"{count} frame{'' if count == 1 else 's'} classified")
    return 0



if __name__ == "__main__":
    sys.exit(main())
