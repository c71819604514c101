"""Training input throughput: ours, as train.py builds it for a folder of JPEGs, against a
decode-and-crop reference pipeline written here in the style of the TensorFlow Model Garden and the
TPU reference (extract_jpeg_shape → sample_distorted_bounding_box → decode_and_crop_jpeg), and the
same reference decoding the paper's crops (torchvision's RandomResizedCrop boxes, drawn before it is
timed, decoded at full size: ours without its sampling, on pictures of ImageNet's sizes); then our start-up time and peak memory on a
folder of 100,000 files.

    python bench/input_pipeline.py                        # 4,000 generated JPEGs of ImageNet's sizes
    python bench/input_pipeline.py --folder PATH          # a folder of class folders of JPEGs
    python bench/input_pipeline.py --files 4000 --startup-files 10000 100000 --service-workers 1 2

Each pipeline makes one pass over the training files (224x224 random-resized crops, flipped, batch
64), timed from before it opens the folder (set-up included) to its last batch, in a fresh process;
the files are read once beforehand so that both find them in the page cache. Ours is measured both
ways train.py can read a folder: decoded whole and kept in memory (what it does for a folder whose
decoded pictures take under 2 GiB) and each crop decoded from the bytes (beyond). The start-up
figures time a fresh process from opening the folder to the first batch, and its peak RSS. The
tf.data service figures run our pipeline on 1 and 2 local worker processes, each pinned to a core.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Common ImageNet picture sizes (width, height); its JPEGs average about 110 KB at these sizes.
IMAGENET_SIZES = [(500, 375), (500, 333), (375, 500), (500, 500), (333, 500), (640, 480), (500, 400), (400, 300)]
CLASSES = 10


def generate(folder, count, *, seed=0):
    """`count` JPEGs of ImageNet's typical sizes and file sizes in CLASSES class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for number in range(count):
        width, height = IMAGENET_SIZES[number % len(IMAGENET_SIZES)]
        # Smooth shapes with some texture: compresses as photographs do (~100 KB at quality 90).
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.int16)
        pixels = np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8)
        class_folder = os.path.join(folder, f"class{number % CLASSES}")
        os.makedirs(class_folder, exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(class_folder, f"{number:07d}.jpg"), quality=90)
    return folder


def linked(source_folder, folder, count):
    """A folder of `count` files, hard links to the JPEGs of `source_folder` (cheap to make)."""
    originals = sorted(os.path.join(root, name) for root, _, names in os.walk(source_folder) for name in names if name.lower().endswith((".jpg", ".jpeg")))
    for number in range(count):
        class_folder = os.path.join(folder, f"class{number % CLASSES}")
        os.makedirs(class_folder, exist_ok=True)
        original, link = originals[number % len(originals)], os.path.join(class_folder, f"{number:07d}.jpg")
        try:
            os.link(original, link)
        except OSError:  # another file system
            os.symlink(original, link)
    return folder


def read_once(folder):
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                while file.read(1 << 20):
                    pass


# -- measured in a fresh process ------------------------------------------------------------------


def run_ours(folder, *, from_bytes, image_size, batch_size, first_batch_only=False):
    from keras_resnet.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from keras_resnet.data import pipeline, sources

    started = _clock()
    if from_bytes is not None:
        pipeline.CACHE_LIMIT_BYTES = 64 << 30 if not from_bytes else 0
    source = sources.open_dataset(f"folder:{folder}", image_size=image_size)
    batches = pipeline.training_dataset(source, image_size=image_size, augmentation="imagenet", batch_size=batch_size, seed=0)
    how = pipeline.describe_training_input(source, "imagenet", workers=1)
    return _consume(batches, 1 if first_batch_only else source.train_examples // batch_size, batch_size, started, how)


def run_service(folder, *, workers, image_size, batch_size):
    """Ours (crops from the bytes) prepared by a tf.data service on this machine: a dispatcher here
    and `workers` worker processes (keras-resnet data-service --dispatcher), worker k pinned to CPU
    core k; this process only receives the batches. Timed from building the pipeline, the workers
    already up."""
    from keras_resnet.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    from keras_resnet.data import pipeline, service, sources

    dispatcher = tf.data.experimental.service.DispatchServer(tf.data.experimental.service.DispatcherConfig(port=0))
    port = int(dispatcher.target.rsplit(":", 1)[1])
    cores = sorted(os.sched_getaffinity(0))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "keras_resnet", "data-service", "--dispatcher", f"localhost:{port}", "--quiet"],
            env={**os.environ, "PYTHONPATH": REPOSITORY},
            preexec_fn=lambda core=cores[number % len(cores)]: os.sched_setaffinity(0, {core}),
        )
        for number in range(workers)
    ]
    try:
        time.sleep(5)  # the workers start and register
        exited = sum(process.poll() is not None for process in processes)
        if exited:  # the service would hand out nothing, and its client would wait for ever
            raise SystemExit(f"error: {exited} of {workers} tf.data service worker(s) exited at start-up (their stderr is above).")
        pipeline.CACHE_LIMIT_BYTES = 0
        started = _clock()
        source = sources.open_dataset(f"folder:{folder}", image_size=image_size)
        batches = service.distributed(
            pipeline.training_dataset(source, image_size=image_size, augmentation="imagenet", batch_size=batch_size, seed=0),
            service.Address("localhost", port),
            job_name="bench",
        )
        how = f"tf.data service, {workers} local worker process(es), each on its own core"
        return _consume(batches, source.train_examples // batch_size, batch_size, started, how)
    finally:
        for process in processes:
            process.kill()


def run_reference(folder, *, image_size, batch_size, crops="model-garden"):
    """Model Garden's and the TPU reference's ImageNet training input: the file list shuffled, each
    JPEG's crop window sampled on its header's shape and only that window decoded.

    crops="model-garden": the window from sample_distorted_bounding_box, as they sample it (its
    heights uniform, so its areas lean small: less to decode than the paper's crop).
    crops="torchvision": the window of the paper's crop as torchvision's RandomResizedCrop samples it
    (areas uniform), the boxes drawn before the clock starts by torchvision_crop_box, decoded at
    full size: ours, with the sampling left out, on pictures whose crops are under twice the image
    size (ImageNet's; ours decodes larger crops at 1/2-1/8 scale)."""
    from keras_resnet.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    train_folder = os.path.join(folder, "train") if os.path.isdir(os.path.join(folder, "train")) else folder
    classes = sorted(name for name in os.listdir(train_folder) if os.path.isdir(os.path.join(train_folder, name)))
    boxes = None
    if crops == "torchvision":
        from PIL import Image

        generator = random.Random(0)
        boxes = []
        for name in classes:
            for file in sorted(os.listdir(os.path.join(train_folder, name))):
                with Image.open(os.path.join(train_folder, name, file)) as picture:
                    boxes.append(torchvision_crop_box(picture.height, picture.width, generator))

    started = _clock()
    paths, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(os.path.join(train_folder, name))):
            paths.append(os.path.join(train_folder, name, file))
            labels.append(label)
    # The 90 % that train.py trains on (it holds 10 % out for validation).
    count = len(paths) - len(paths) // 10

    def decode_and_crop(path, label, box):
        encoded = tf.io.read_file(path)
        if boxes is None:
            begin, size, _ = tf.image.sample_distorted_bounding_box(
                tf.io.extract_jpeg_shape(encoded), tf.zeros([0, 0, 4]), min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
                area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True,
            )
            offset_y, offset_x, _ = tf.unstack(begin)
            height, width, _ = tf.unstack(size)
            box = tf.stack([offset_y, offset_x, height, width])
        crop = tf.io.decode_and_crop_jpeg(encoded, box, channels=3)
        image = tf.image.resize(crop, (image_size, image_size))
        return tf.image.random_flip_left_right(image), tf.one_hot(label, len(classes))

    dataset = (
        tf.data.Dataset.from_tensor_slices((paths, labels, boxes if boxes is not None else tf.zeros([len(paths), 4], tf.int32)))
        .shuffle(len(paths), seed=0)
        .take(count)
        .map(decode_and_crop, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    how = "decode_and_crop_jpeg of a shuffled file list" + (", torchvision's crops drawn beforehand" if boxes is not None else "")
    return _consume(dataset, count // batch_size, batch_size, started, how)


def torchvision_crop_box(height, width, generator, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """[top, left, height, width] of a random-resized crop as torchvision's
    RandomResizedCrop.get_params draws it (ten tries, then the centred crop of the nearest allowed
    aspect), with `generator` (random.Random) for its random numbers."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * generator.uniform(*scale)
        aspect = math.exp(generator.uniform(*log_ratio))
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            return [generator.randint(0, height - crop_height), generator.randint(0, width - crop_width), crop_height, crop_width]
    if width / height < ratio[0]:
        crop_width, crop_height = width, int(round(width / ratio[0]))
    elif width / height > ratio[1]:
        crop_height, crop_width = height, int(round(height * ratio[1]))
    else:
        crop_height, crop_width = height, width
    return [(height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width]


def _clock():
    """(wall seconds, this process's CPU seconds: all its threads, user and system)."""
    return time.perf_counter(), time.process_time()


def _consume(batches, count, batch_size, started, how):
    """Takes `count` batches; figures from `started` (_clock()), set-up included. CPU time per image
    is the steadier figure on a shared machine, whose cores come and go: wall-clock rates of the
    same pipeline move by tens of percent there from one minute to the next."""
    import resource

    seen = 0
    first = seconds = cpu_seconds = None
    for images, _ in batches.take(count):
        seen += int(images.shape[0])
        # Up to the last batch, not the iterator's release after it: with tf.data's autotuning
        # model on (the references), its thread can hold that up for seconds (pipeline.with_input_options).
        seconds, cpu_seconds = time.perf_counter() - started[0], time.process_time() - started[1]
        if first is None:
            first = seconds
    if not seen:
        raise SystemExit(f"error: the pipeline gave no batch of {batch_size} ({how}): generate or give more files.")
    after_first = (seen - batch_size) / (seconds - first) if seen > batch_size else None
    return {
        "images": seen,
        "seconds": seconds,
        "images_per_second": seen / seconds,
        "first_batch_seconds": first,
        "after_first_batch_images_per_second": after_first,
        "cpu_ms_per_image": cpu_seconds * 1000 / seen,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "input": how,
    }


def median_run(runs):
    """The run with the median images/s."""
    return sorted(runs, key=lambda run: run["images_per_second"])[len(runs) // 2]


def in_fresh_process(task):
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--task", json.dumps(task)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"error: the measurement {task['kind']} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_task(task):
    kind = task.pop("kind")
    if kind == "reference":
        return run_reference(**task)
    if kind == "service":
        return run_service(**task)
    return run_ours(**task)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", help="a folder of class folders of JPEGs (default: generated)")
    parser.add_argument("--files", type=int, default=4000, help="JPEGs to generate when no --folder is given (default 4000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pipeline, taken in turns; the median is shown (default 3)")
    parser.add_argument("--startup-files", type=int, nargs="*", default=[10_000, 100_000],
                        help="folder sizes for the start-up and memory figures (default 10000 100000; none to skip)")
    parser.add_argument("--service-workers", type=int, nargs="*", default=[1, 2],
                        help="tf.data service worker counts to measure (default 1 2; none to skip)")
    parser.add_argument("--task", help=argparse.SUPPRESS)  # one measurement, in this fresh process
    args = parser.parse_args(argv)
    if args.task:
        print(json.dumps(run_task(json.loads(args.task))))
        return 0

    with tempfile.TemporaryDirectory(prefix="input-bench-") as scratch:
        folder = args.folder
        if folder is None:
            print(f"Generating {args.files} JPEGs of ImageNet's typical sizes …", flush=True)
            folder = generate(os.path.join(scratch, "jpegs"), args.files)
        read_once(folder)
        size = dict(image_size=args.image_size, batch_size=args.batch_size)
        pipelines = [
            ("reference: decode_and_crop_jpeg (Model Garden style)", {"kind": "reference"}),
            ("reference with the paper's crops (torchvision's, drawn beforehand)", {"kind": "reference", "crops": "torchvision"}),
            ("ours, crops decoded from the bytes (folders over 2 GiB decoded)", {"kind": "ours", "from_bytes": True}),
            ("ours, decoded whole and cached (first pass; folders under 2 GiB)", {"kind": "ours", "from_bytes": False}),
        ]
        # Taken in turns, `repeats` times, and the median run of each kept: a shared machine's speed
        # drifts by tens of percent from one minute to the next.
        runs = [[] for _ in pipelines]
        for repeat in range(args.repeats):
            for runs_of_one, (name, task) in zip(runs, pipelines):
                runs_of_one.append(in_fresh_process({**task, "folder": folder, **size}))
                print(f"  run {repeat + 1}/{args.repeats}, {name}: {runs_of_one[-1]['images_per_second']:.0f} images/s", flush=True)
        rows = [(name, median_run(runs_of_one)) for (name, _), runs_of_one in zip(pipelines, runs)]
        files = sum(len(names) for _, _, names in os.walk(folder))
        print(f"\nTraining input, one pass over {files - files // 10} of {files} JPEGs ({folder}), {args.image_size}x{args.image_size} "
              f"crops, batch {args.batch_size}, set-up included, {os.cpu_count()} CPU cores; the median of {args.repeats} runs")
        print("| pipeline | images/s | first batch (s) | images/s after it | CPU ms per image | peak RSS (MB) | input, as its log line says |\n"
              "|---|---|---|---|---|---|---|")
        for name, row in rows:
            print(f"| {name} | {row['images_per_second']:.0f} | {row['first_batch_seconds']:.1f} | "
                  f"{row['after_first_batch_images_per_second']:.0f} | {row['cpu_ms_per_image']:.2f} | {row['peak_rss_mb']:.0f} | {row['input']} |")
        ours = rows[2][1]
        for name, reference in rows[:2]:
            print(f"\nours from the bytes / {name}: {ours['images_per_second'] / reference['images_per_second']:.2f}x with set-up, "
                  f"{ours['after_first_batch_images_per_second'] / reference['after_first_batch_images_per_second']:.2f}x after the first batch, "
                  f"{reference['cpu_ms_per_image'] / ours['cpu_ms_per_image']:.2f}x in CPU time per image (set-up included)", end="")
        print()

        if args.service_workers:
            print("\nOurs (crops from the bytes) prepared by a tf.data service on this machine (set-up included, the workers already up):")
            print("| workers | images/s | first batch (s) | images/s after it |\n|---|---|---|---|")
            for workers in args.service_workers:
                row = median_run([in_fresh_process({"kind": "service", "folder": folder, "workers": workers, **size}) for _ in range(args.repeats)])
                print(f"| {workers} | {row['images_per_second']:.0f} | {row['first_batch_seconds']:.1f} | {row['after_first_batch_images_per_second']:.0f} |", flush=True)

        if args.startup_files:
            print("\nStart-up (opening the folder to the first batch) and peak memory, ours as train.py chooses:")
            print("| files | start-up (s) | peak RSS (MB) | input |\n|---|---|---|---|")
            for count in args.startup_files:
                big = linked(folder, os.path.join(scratch, f"linked-{count}"), count)
                row = in_fresh_process({"kind": "ours", "folder": big, "from_bytes": None, "first_batch_only": True, **size})
                print(f"| {count:,} | {row['first_batch_seconds']:.1f} | {row['peak_rss_mb']:.0f} | {row['input']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
