"""--dataset tfrecord:PATTERN: shards in the Model Garden's and the TPU reference's layout, written here."""

import io
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resnet.data import pipeline, records, sources


def write_shards(folder, *, shards=4, per_shard=6, split="train", labels=("a", "b", "c", "d"), label_of_shard=None):
    """Shards of JPEG records; shard i holds class label_of_shard(i) (default i % classes), record n of
    shard i one solid grey of 8 × (per_shard × i + n) (mod 256): a record's picture names it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    for index in range(shards):
        label = label_of_shard(index) if label_of_shard else index % len(labels)
        with tf.io.TFRecordWriter(str(folder / f"{split}-{index:05d}-of-{shards:05d}")) as writer:
            for number in range(per_shard):
                buffer = io.BytesIO()
                Image.fromarray(np.full((30, 40, 3), 8 * (number + per_shard * index) % 256, np.uint8)).save(buffer, "JPEG", quality=100)
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return folder


@pytest.fixture
def shards(tmp_path):
    folder = write_shards(tmp_path / "data")
    write_shards(folder, shards=2, per_shard=5, split="validation")
    return folder


def test_shards_open_with_their_counts_class_names_and_validation_split(shards):
    source = sources.open_dataset(f"tfrecord:{shards}/train-*", image_size=32)
    assert source.class_names == ["a", "b", "c", "d"]
    assert (source.train_examples, source.validation_examples) == (24, 10)
    assert records.count_records(str(shards / "train-00000-of-00004")) == 6
    images, labels = zip(*[(image.numpy(), int(label)) for image, label in source.validation])
    assert len(images) == 10 and images[0].shape == (30, 40, 3) and set(labels) == {0, 1}


def test_training_crops_come_from_the_records_and_each_pipeline_reads_its_own_shards(shards):
    source = sources.open_dataset(f"tfrecord:{shards}/train-*", image_size=32)
    batches = pipeline.training_dataset(source, image_size=32, augmentation="imagenet", batch_size=8, seed=0)
    images, labels = next(iter(batches))
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8, 4)
    seen = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
        batches = pipeline.training_dataset(source, image_size=32, augmentation="imagenet", batch_size=8, seed=0, input_context=context)
        seen.append({int(np.argmax(row)) for _, labels in batches.take(6) for row in labels.numpy()})
    assert seen == [{0, 2}, {1, 3}]  # shard i holds class i: pipeline 0 reads shards 0 and 2
    assert "split by shard over 2 workers" in pipeline.describe_training_input(source, "imagenet", workers=2)


@pytest.mark.parametrize("how", ["cut short", "a length beyond any file"])
def test_a_damaged_shard_is_named(shards, how):
    path = shards / "train-00001-of-00004"
    if how == "cut short":
        path.write_bytes(path.read_bytes()[:-20])
    else:
        damage(path, byte=7)  # the top byte of the first record's length
    with pytest.raises(sources.DatasetError, match=r"train-00001-of-00004 ends inside a record"):
        sources.open_dataset(f"tfrecord:{shards}/train-*", image_size=32)


def damage(path, *, byte=None):
    """Changes one byte of the shard at `path` (default: the middle one): the record holding it
    fails its checksum (of its data, or of its length when that byte is one of the length's)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if byte is None else byte] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["a byte of the data", "the first record's length", "cut short"])
def test_the_shard_holding_a_record_that_will_not_read_is_found_from_tensorflows_error(tmp_path, monkeypatch, how):
    folder = write_shards(tmp_path / "data", shards=3, per_shard=5)
    paths = sorted(str(path) for path in folder.glob("train-*"))
    damaged = folder / "train-00002-of-00003"
    twin = folder / "twin-00002"  # the same records intact: a record at the same byte, which reads
    twin.write_bytes(damaged.read_bytes())
    if how == "cut short":
        damaged.write_bytes(damaged.read_bytes()[:-20])
    else:
        damage(damaged, byte=None if how == "a byte of the data" else 0)
    with pytest.raises(tf.errors.DataLossError) as raised:
        for _ in tf.data.TFRecordDataset(paths):
            pass
    assert records.damaged_shard(paths, raised.value) == paths[2]
    assert records.damaged_shard([*paths[:2], str(twin)], raised.value) is None
    assert re.fullmatch(
        rf"A shard of records is damaged: one of the 3 record file\(s\) in {re.escape(str(folder))}, or another machine's copy "
        rf"of one \(TensorFlow: (corrupted|truncated) record at byte \d+\)\. Copy it again or write it anew\.",
        records.damaged_shard_message([*paths[:2], str(twin)], raised.value),
    )
    other = tf.errors.DataLossError(None, None, "an error that names no byte")
    assert records.damaged_shard(paths, other) is None
    # A Ctrl-C during the search (slow over many shards) ends it: the line says what is known.
    def interrupted(path, offset):
        raise KeyboardInterrupt

    monkeypatch.setattr(records, "_record_starting_at", interrupted)
    assert records.damaged_shard_message(paths, raised.value).startswith(
        f"A shard of records is damaged: one of the 3 record file(s) in {folder}, or another machine's copy of one (TensorFlow: "
    )
    assert records.damaged_shard_message([], other, remedy="Do this.") == (
        "A shard of records is damaged: one of the dataset's record files (an error that names no byte). Do this."
    )


def test_a_validation_shard_damaged_before_opening_is_named(shards):
    damage(shards / "validation-00001-of-00002")
    shard = re.escape(str(shards / "validation-00001-of-00002"))
    with pytest.raises(sources.DatasetError, match=rf"^A shard of records is damaged: {shard} \(TensorFlow: corrupted record at byte \d+\)\. Copy it again or write it anew\.$"):
        sources.open_dataset(f"tfrecord:{shards}/train-*", image_size=32)


def test_what_is_missing_is_said(tmp_path):
    with pytest.raises(sources.DatasetError, match=r"No file matches .*takes a glob of the training shards"):
        sources.open_dataset(f"tfrecord:{tmp_path}/train-*", image_size=32)
    folder = write_shards(tmp_path / "only-train")
    with pytest.raises(sources.DatasetError, match=r"No validation shards for .*looked for .*validation-\*"):
        sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=32)
    write_shards(folder, shards=1, split="val")
    (folder / "labels.txt").unlink()
    with pytest.raises(sources.DatasetError, match=r"Cannot read the class names .*labels.txt .*background"):
        sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=32)


@pytest.mark.integration
def test_train_py_trains_evaluates_and_names_the_input_on_shards(shards, tmp_path, capsys):
    import train

    output = tmp_path / "run"
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{shards}/train-*", "--steps", "6", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "on tfrecord:" in out and "(24 training, 10 validation images, 4 classes)" in out
    assert "Training input: 4 TFRecord shard(s), 4 read at once in a new order each epoch" in out
    assert train.main(["--evaluate", str(output)]) == 0
    assert "on 10 pictures of tfrecord:" in capsys.readouterr().out
    assert train.main(["--depth", "18", "--dataset", "tfrecord:", "--output", str(tmp_path / "other")]) == 2
    assert "needs a glob of the training shards" in capsys.readouterr().err


def test_a_record_that_will_not_decode_is_skipped_with_a_warning(tmp_path, capfd):
    folder = write_shards(tmp_path / "data", shards=2, per_shard=4)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    with tf.io.TFRecordWriter(str(folder / "train-00002-of-00003")) as writer:
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xd8\xff not a whole jpeg"])),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        }
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    source = sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=32)
    batches = pipeline.training_dataset(source, image_size=32, augmentation="imagenet", batch_size=3, seed=0)
    labels = [row for _, labels in batches.take(6) for row in labels.numpy()]
    assert len(labels) == 18
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: 1 training record(s) hold a picture that cannot be decoded: skipped (counted in the first pass)."]


@pytest.mark.integration
def test_a_label_beyond_the_class_names_stops_training_in_one_line(tmp_path, capsys):
    import train

    folder = write_shards(tmp_path / "data", shards=2, per_shard=4, label_of_shard=lambda index: 4 + index)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{folder}/train-*", "--steps", "2", "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: A training example has a label outside the classes of the dataset (0 to 3): check that labels.txt")
    assert "cannot be decoded" not in err and "Traceback" not in err


@pytest.mark.integration
def test_records_none_of_which_decodes_stop_training_in_one_line(tmp_path, capsys):
    import train

    folder = tmp_path / "data"
    write_shards(folder, shards=1, per_shard=2, split="validation")
    with tf.io.TFRecordWriter(str(folder / "train-00000-of-00001")) as writer:
        for _ in range(3):
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xd8\xff not a whole jpeg"])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{folder}/train-*", "--steps", "2", "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: None of the training pictures could be decoded in tfrecord:{folder}/train-*'s 3 training records, read one after "
        f"another (a run of up to 512): repair or replace them."
    )


@pytest.fixture(scope="module")
def prepared_tfds(tmp_path_factory):
    """A TFDS dataset prepared here, offline (its builder generates the pictures): TFDS's own
    TFRecord files, as `tfds build` writes them for any image dataset."""
    import tensorflow_datasets as tfds

    class KerasResnetTinyPhotos(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {"image": tfds.features.Image(encoding_format="jpeg"), "label": tfds.features.ClassLabel(names=["a", "b", "c"])}
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(seed=0, count=30), "test": self._generate_examples(seed=1, count=9)}

        def _generate_examples(self, *, seed, count):
            for number in range(count):
                # One solid grey per picture (8 x its number): a crop of it names it.
                grey = 8 * number + (0 if seed == 0 else 4)
                yield number, {"image": np.full((30 + 4 * (number % 3), 40, 3), grey, np.uint8), "label": number % 3}

    data_dir = tmp_path_factory.mktemp("tfds")
    KerasResnetTinyPhotos(data_dir=str(data_dir)).download_and_prepare()
    return "keras_resnet_tiny_photos", data_dir


def test_a_tfds_dataset_is_trained_on_from_its_own_records_without_decoding_them_first(prepared_tfds):
    name, data_dir = prepared_tfds
    source = sources.open_dataset(name, image_size=24, data_dir=str(data_dir))
    assert source.train_records is not None and all(str(data_dir) in path for path in source.train_records.paths)
    # Its training and test files, to name one that a damaged record is found in (a slice: the files it reads).
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    files = {split: [os.fspath(path) for path in builder.info.splits[split].filepaths] for split in ("train", "test")}
    assert source.record_files == files["train"] + files["test"] and all(os.path.isfile(path) for path in source.record_files)
    assert sources._tfds_record_files(builder, ("train[:90%]", "train[90%:]", "nonesuch")) == files["train"]
    assert source.damaged_records_remedy == f"Delete TFDS's prepared copy in {builder.data_dir} and run again: TFDS prepares it anew"
    assert (source.train_records.examples, source.train_examples, source.validation_examples) == (30, 30, 9)
    assert pipeline.reads_encoded(source, "imagenet") and not pipeline.reads_encoded(source, "cifar")
    assert pipeline.describe_training_input(source, "imagenet", workers=1).startswith("1 TFRecord shard(s)")
    # The records' labels and pictures are TFDS's own.
    records_read = list(source.train_records.records().as_numpy_iterator())
    decoded = list(source.train.as_numpy_iterator())
    assert [int(label) for _, label in records_read] == [int(label) for _, label in decoded]
    assert [tf.io.decode_jpeg(encoded).shape for encoded, _ in records_read] == [image.shape for image, _ in decoded]
    batches = pipeline.training_dataset(source, image_size=24, augmentation="imagenet", batch_size=1, seed=0)
    assert sorted(greys(batches, 30)) == list(range(30))  # one pass: every record once


def greys(batches, count):
    """The record (its grey, /8) of each of the first `count` one-picture batches."""
    return [int(round(float(np.mean(images.numpy())) / 8)) for images, _ in batches.take(count)]


def pipeline_of(source, *, pipelines, index, seed=0):
    context = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=index, num_replicas_in_sync=pipelines)
    return pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=pipelines, seed=seed, input_context=context)


def test_split_by_record_gives_each_record_to_one_pipeline_and_epochs_new_orders(tmp_path):
    folder = write_shards(tmp_path / "data", shards=2, per_shard=6)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    source = sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=16)
    # 2 shards, 3 pipelines: split by record, 4 of the 12 each, every record once in an epoch.
    shares = [greys(pipeline_of(source, pipelines=3, index=index), 4) for index in range(3)]
    assert sorted(grey for share in shares for grey in share) == list(range(12))
    assert "split by record over 3 workers" in pipeline.describe_training_input(source, "imagenet", workers=3)
    # One pipeline, one shard's worth: each epoch every record once, in a new order.
    single = write_shards(tmp_path / "single", shards=1, per_shard=8)
    write_shards(single, shards=1, per_shard=2, split="validation")
    source = sources.open_dataset(f"tfrecord:{single}/train-*", image_size=16)
    epochs = greys(pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=1, seed=0), 24)
    first, second, third = epochs[:8], epochs[8:16], epochs[16:]
    assert sorted(first) == sorted(second) == sorted(third) == list(range(8))
    assert len({tuple(first), tuple(second), tuple(third)}) == 3


def test_more_pipelines_than_records_is_one_line(tmp_path):
    folder = write_shards(tmp_path / "data", shards=1, per_shard=2)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    source = sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=16)
    with pytest.raises(pipeline.EmptyShare, match=r"Input pipeline 3 of 3 gets no training records \(the shards hold 2\)"):
        pipeline_of(source, pipelines=3, index=2)


@pytest.mark.timeout(120)
def test_a_shard_that_cannot_be_read_stops_training_instead_of_hanging(tmp_path):
    folder = write_shards(tmp_path / "data", shards=2, per_shard=4)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    source = sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=16)
    (folder / "train-00001-of-00002").unlink()  # e.g. a worker whose copy lacks it
    batches = pipeline.training_dataset(source, image_size=16, augmentation="imagenet", batch_size=2, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"A training shard cannot be found:\] \[[^\]]*/train-00001-of-00002\]"):
        for _ in batches.take(8):
            pass


@pytest.mark.integration
@pytest.mark.parametrize("what", ["missing", "damaged"])
def test_train_py_names_a_shard_lost_or_damaged_after_it_was_opened_in_one_line(tmp_path, capsys, monkeypatch, what):
    import train

    folder = write_shards(tmp_path / "data", shards=2, per_shard=4)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    shard = folder / "train-00001-of-00002"
    opened = sources.open_dataset

    def open_then_change_a_shard(*args, **kwargs):
        source = opened(*args, **kwargs)
        if what == "missing":
            shard.unlink(missing_ok=True)  # e.g. a worker whose copy lacks it
        else:
            damage(shard)  # its records were counted from their framing: still whole
        return source

    monkeypatch.setattr(sources, "open_dataset", open_then_change_a_shard)
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{folder}/train-*", "--steps", "2", "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    expected = (
        re.escape(
            f"error: A training shard cannot be found where training reads it: {shard}. "
            f"Every machine that reads the shards (each worker of a tf.data service too) needs them at the same path."
        )
        if what == "missing"
        else rf"error: A shard of records is damaged: {re.escape(str(shard))} \(TensorFlow: corrupted record at byte \d+\)\. Copy it again or "
        rf"write it anew\. Nothing was saved yet: the same command starts the run afresh\."
    )
    assert re.fullmatch(expected, err.splitlines()[-1]) and "Traceback" not in err


def test_records_of_other_features_are_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "labels.txt").write_text("a\nb\n")
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(str(folder / f"{split}-00000-of-00001")) as writer:
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    with pytest.raises(sources.DatasetError, match=r"validation-00000-of-00001's records are not pictures with labels as expected: each needs the features 'image/encoded' .* and 'image/class/label'"):
        sources.open_dataset(f"tfrecord:{folder}/train-*", image_size=16)


@pytest.mark.integration
def test_a_negative_label_stops_training_in_one_line(tmp_path, capsys):
    import train

    folder = write_shards(tmp_path / "data", shards=2, per_shard=4, label_of_shard=lambda index: -1)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{folder}/train-*", "--steps", "2", "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: A training example has a label outside the classes of the dataset (0 to 3): check that labels.txt")


@pytest.mark.integration
def test_evaluation_and_conversion_name_a_validation_shard_damaged_beyond_what_opening_read(tmp_path, capsys, monkeypatch):
    # Opening reads a validation shard's framing and its first 200 records: damage further on
    # shows only when the split is read (here: damaged just after opening).
    import train
    from keras_resnet.litert.dataset import ConversionData
    from keras_resnet.litert.trained import ConversionError
    from keras_resnet.run.directory import RunDirectory

    folder = write_shards(tmp_path / "data", shards=2, per_shard=4)
    write_shards(folder, shards=1, per_shard=2, split="validation")
    output = tmp_path / "run"
    assert train.main(["--depth", "18", "--image-size", "32", "--dataset", f"tfrecord:{folder}/train-*", "--steps", "2", "--output", str(output)]) == 0
    shard = folder / "validation-00000-of-00001"
    intact, opened = shard.read_bytes(), sources.open_dataset

    def open_then_damage(*args, **kwargs):
        shard.write_bytes(intact)
        source = opened(*args, **kwargs)
        damage(shard)
        return source

    monkeypatch.setattr(sources, "open_dataset", open_then_damage)
    capsys.readouterr()
    assert train.main(["--evaluate", str(output)]) == 2
    err = capsys.readouterr().err
    expected = rf"A shard of records is damaged: {re.escape(str(shard))} \(TensorFlow: corrupted record at byte \d+\)\. Copy it again or write it anew"
    assert re.fullmatch(rf"error: {expected}\.", err.splitlines()[-1]) and "Traceback" not in err
    config = RunDirectory(str(output)).read_config()
    data = ConversionData(config)
    with pytest.raises(ConversionError, match=rf"^{expected}, then convert again\.$"):
        data.validation()
    with pytest.raises(ConversionError, match=rf"^{expected}, then convert again\.$"):
        data.device_pictures()
    # Calibration's training batches (read by the converter, a generator) name a damaged training shard too.
    monkeypatch.setattr(sources, "open_dataset", opened)
    shard.write_bytes(intact)
    training_shard = folder / "train-00001-of-00002"
    damage(training_shard, byte=100)  # in its first record's data: its framing still whole, and opening counts its records
    data = ConversionData(config)
    with pytest.raises(ConversionError, match=rf"^A shard of records is damaged: {re.escape(str(training_shard))} \(TensorFlow: corrupted record at byte \d+\)\. Copy it again or write it anew, then convert again\.$"):
        list(data.calibration_images())
