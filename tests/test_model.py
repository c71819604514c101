"""The builder: counts, shapes, plain vs residual, shortcut options, versions, padding, arguments."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from support.assertions import layer_names, layers_of_type
from support.programs import load_models_in_fresh_processes, run_python

# Trainable parameters from the issue (torchvision's and the paper's counts).
IMAGENET_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet200": 64_673_832,
}
CIFAR_COUNTS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}
# Multiply-accumulates per 224x224 image as torchvision publishes them (its "GFLOPS"), v1.5.
TORCHVISION_GMACS = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}


def trainable(model):
    return keras_resnet.count_parameters(model)[1]


@pytest.fixture(scope="module")
def deepest():
    """The two largest networks, built once for the whole module."""
    return {
        "resnet200": keras_resnet.build("resnet200", input_shape=(32, 32, 3)),
        "resnet1202": keras_resnet.build("resnet1202"),
    }


# -- counts and shapes ----------------------------------------------------------------------------


DEEPEST = ("resnet200", "resnet1202")  # built once (the `deepest` fixture), in the integration tier


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.integration) if name in DEEPEST else name for name in {**IMAGENET_COUNTS, **CIFAR_COUNTS}]
)
def test_exact_parameter_counts_and_output_shape(name, request, rng):
    expected = {**IMAGENET_COUNTS, **CIFAR_COUNTS}[name]
    size = 32  # small inputs: counts do not depend on the size
    model = request.getfixturevalue("deepest")[name] if name in DEEPEST else keras_resnet.build(name, input_shape=(size, size, 3))
    assert trainable(model) == expected
    classes = 10 if name in CIFAR_COUNTS else 1000
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    # Training mode: batch statistics. In inference mode an untrained net's batch norms are the
    # identity (moving mean 0, variance 1), and 600 residual additions overflow ResNet-1202.
    probabilities = model(images, training=True).numpy()
    assert probabilities.shape == (2, classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet110"])
def test_plain_net_with_option_a_has_exactly_the_count_of_its_residual_twin(name):
    plain = keras_resnet.build(name.replace("resnet", "plain"))
    assert trainable(plain) == CIFAR_COUNTS[name]


@pytest.mark.parametrize("name, gmacs", TORCHVISION_GMACS.items())
def test_multiply_accumulates_match_published_figures(name, gmacs):
    macs = keras_resnet.count_macs(keras_resnet.build(name, include_top=True))
    assert macs / 1e9 == pytest.approx(gmacs, abs=0.006)


def test_v1_stride_placement_costs_less_than_v1_5():
    v1 = keras_resnet.count_macs(keras_resnet.build("resnet50", version="v1"))
    v1_5 = keras_resnet.count_macs(keras_resnet.build("resnet50"))
    assert round(v1 / 1e9, 2) == 3.86 and round(v1_5 / 1e9, 2) == 4.09


def test_count_macs_needs_a_fixed_input_size():
    model = keras_resnet.build("resnet20", input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"fixed input size.*\(None, None, None, 3\)"):
        keras_resnet.count_macs(model)


@pytest.mark.parametrize(
    "name, size, feature_shape",
    [("resnet18", 64, (2, 2, 512)), ("resnet50", 64, (2, 2, 2048)), ("resnet20", 32, (8, 8, 64))],
)
def test_feature_map_and_pooling_shapes(name, size, feature_shape, rng):
    images = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
    features = keras_resnet.build(name, include_top=False, input_shape=(size, size, 3))
    assert features(images).shape == (1, *feature_shape)
    for pooling in ("avg", "max"):
        pooled = keras_resnet.build(name, include_top=False, pooling=pooling, input_shape=(size, size, 3))
        assert pooled(images).shape == (1, feature_shape[-1])


# -- plain vs residual ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, version", [("resnet56", "v1.5"), ("resnet34", "v2"), ("resnet50", "v1")])
def test_plain_twin_has_the_same_layers_and_names_without_shortcuts(name, version):
    residual = keras_resnet.build(name, version=version, input_shape=(32, 32, 3))
    plain = keras_resnet.build(name.replace("resnet", "plain"), version=version, input_shape=(32, 32, 3))
    shortcut_layers = [n for n in layer_names(residual) if "_shortcut" in n or n.endswith("_add")]
    assert shortcut_layers and not layers_of_type(plain, "Add")
    assert layer_names(plain) == [n for n in layer_names(residual) if n not in shortcut_layers]
    for plain_layer in plain.layers:
        residual_layer = residual.get_layer(plain_layer.name)
        assert [w.shape for w in plain_layer.weights] == [w.shape for w in residual_layer.weights]


def test_shortcuts_carry_the_signal_a_plain_net_loses(rng):
    """With every residual branch zeroed at initialisation (v2, zero_init_residual), a stride-1
    block of the residual net is exactly the identity; the plain net's same block outputs zeros."""
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    residual = keras_resnet.build("resnet20", version="v2", zero_init_residual=True)
    probe = keras.Model(residual.input, [residual.get_layer("stem_conv").output, residual.get_layer("stage1_block3_add").output])
    stem, after_three_blocks = (t.numpy() for t in probe(images))
    np.testing.assert_array_equal(after_three_blocks, stem)

    plain = keras_resnet.build("plain20", version="v2")
    last_conv = plain.get_layer("stage1_block1_conv2")
    last_conv.set_weights([np.zeros_like(w) for w in last_conv.get_weights()])
    probe = keras.Model(plain.input, last_conv.output)
    assert not np.any(probe(images).numpy())


# -- shortcut options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shortcut, projections, extra_parameters",
    [
        ("resnet20", "A", 0, 0),
        # B: 16->32 and 32->64 projections, each 1x1 conv + BN (gamma, beta).
        ("resnet20", "B", 2, (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)),
        ("resnet20", "C", 9, None),
        ("resnet50", "A", 0, None),
        ("resnet50", "B", 4, 0),
        ("resnet50", "C", 16, None),
        ("resnet18", "B", 3, 0),
        ("resnet18", "C", 8, None),
    ],
)
def test_projection_shortcuts_per_option(name, shortcut, projections, extra_parameters):
    model = keras_resnet.build(name, shortcut=shortcut, input_shape=(32, 32, 3))
    convs = [layer.name for layer in layers_of_type(model, "Conv2D") if layer.name.endswith("_shortcut_conv")]
    assert len(convs) == projections
    if extra_parameters is not None:
        reference = {**IMAGENET_COUNTS, **CIFAR_COUNTS}[name]
        assert trainable(model) == reference + extra_parameters
    if shortcut == "C":
        assert trainable(model) > trainable(keras_resnet.build(name, shortcut="B", input_shape=(32, 32, 3)))


def test_option_a_subsamples_and_zero_pads_the_identity(rng):
    model = keras_resnet.build("resnet20")  # CIFAR-style: option A by default
    block_input = model.get_layer("stage1_block3_out").output
    probe = keras.Model(model.input, [block_input, model.get_layer("stage2_block1_shortcut_pad").output])
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    identity, shortcut = (t.numpy() for t in probe(images))
    assert identity.shape == (2, 32, 32, 16) and shortcut.shape == (2, 16, 16, 32)
    np.testing.assert_array_equal(shortcut[..., :16], identity[:, ::2, ::2, :])
    np.testing.assert_array_equal(shortcut[..., 16:], 0.0)


# -- versions ------------------------------------------------------------------------------------


def test_v1_strides_the_first_1x1_and_v1_5_the_3x3():
    for version, strided, unstrided in (("v1", "conv1", "conv2"), ("v1.5", "conv2", "conv1")):
        model = keras_resnet.build("resnet50", version=version, input_shape=(64, 64, 3))
        for stage in (2, 3, 4):
            assert model.get_layer(f"stage{stage}_block1_{strided}").strides == (2, 2)
            assert model.get_layer(f"stage{stage}_block1_{unstrided}").strides == (1, 1)
        assert trainable(model) == IMAGENET_COUNTS["resnet50"]


def test_v2_is_pre_activation():
    model = keras_resnet.build("resnet50v2", input_shape=(64, 64, 3))
    names = layer_names(model)
    assert "stem_bn" not in names and "post_bn" in names and "post_relu" in names
    assert names.index("stage1_block1_preact_bn") < names.index("stage1_block1_conv1")
    # A branch ends on its convolution: no BN after conv3, no ReLU after the addition.
    assert "stage1_block1_bn3" not in names and "stage1_block1_out" not in names
    assert all(f"stage{s}_block1_preact_bn" in names for s in (1, 2, 3, 4))
    v1 = layer_names(keras_resnet.build("resnet50", input_shape=(64, 64, 3)))
    assert "stage1_block1_preact_bn" not in v1 and "stage1_block1_out" in v1


def test_versions_compute_different_functions_of_the_same_size(rng):
    images = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    outputs = {}
    for version in ("v1", "v1.5", "v2"):
        keras.utils.set_random_seed(1)
        model = keras_resnet.build("resnet50", version=version, include_top=False, input_shape=(64, 64, 3))
        outputs[version] = model(images).numpy()
        assert outputs[version].shape == (1, 2, 2, 2048)
    assert not np.allclose(outputs["v1"], outputs["v1.5"]) and not np.allclose(outputs["v1.5"], outputs["v2"])


# -- symmetric padding ---------------------------------------------------------------------------


def test_strided_layers_pad_symmetrically_and_never_use_same():
    model = keras_resnet.build("resnet50", version="v1.5", input_shape=(64, 64, 3))
    checked = 0
    for index, layer in enumerate(model.layers):
        if type(layer).__name__ not in ("Conv2D", "MaxPooling2D"):
            continue
        kernel = layer.kernel_size if hasattr(layer, "kernel_size") else layer.pool_size
        if max(layer.strides) > 1 and max(kernel) > 1:
            assert layer.padding == "valid", layer.name
            padding_layer = model.layers[index - 1]
            assert type(padding_layer).__name__ == "ZeroPadding2D", layer.name
            (top, bottom), (left, right) = padding_layer.padding
            assert top == bottom == left == right == kernel[0] // 2
            checked += 1
    assert checked == 5  # stem conv, stem pool, the 3x3 of each of stages 2-4


@pytest.mark.parametrize("size", [32, 33])
def test_strided_convolution_matches_explicit_symmetric_padding(size, rng):
    """What PyTorch and the Model Garden compute: pad k//2 on every side, then convolve."""
    model = keras_resnet.build("resnet18", include_top=False, input_shape=(size * 4, size * 4, 3))
    conv = model.get_layer("stage2_block1_conv1")
    probe = keras.Model(model.input, [model.get_layer("stage1_block2_out").output, conv.output])
    images = rng.uniform(0, 255, (1, size * 4, size * 4, 3)).astype("float32")
    block_input, ours = probe(images)
    reference = tf.nn.conv2d(block_input, conv.kernel, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-4)


@pytest.mark.parametrize("version, shortcut", [("v1", "B"), ("v1.5", "A"), ("v2", "C"), ("v1.5", "B")])
def test_branches_stay_aligned_for_odd_input_sizes(version, shortcut, rng):
    model = keras_resnet.build("resnet50", version=version, shortcut=shortcut, input_shape=(None, None, 3))
    for height, width in ((33, 47), (65, 31)):
        images = rng.uniform(0, 255, (1, height, width, 3)).astype("float32")
        assert model(images).shape == (1, 1000)


# -- arguments -----------------------------------------------------------------------------------


def test_include_preprocessing_false_takes_normalized_input(rng):
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    keras.utils.set_random_seed(3)
    raw = keras_resnet.build("resnet20")
    keras.utils.set_random_seed(3)
    normalized = keras_resnet.build("resnet20", include_preprocessing=False)
    assert "normalize" in layer_names(raw) and "normalize" not in layer_names(normalized)
    normalized.set_weights(raw.get_weights())
    np.testing.assert_allclose(
        normalized(keras_resnet.normalize(images, "torch")).numpy(), raw(images).numpy(), atol=1e-6
    )


def test_classifier_activation_none_gives_logits(rng):
    model = keras_resnet.build("resnet20", classes=7, classifier_activation=None)
    logits = model(rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")).numpy()
    assert logits.shape == (3, 7) and not np.allclose(logits.sum(axis=1), 1.0)


def test_zero_init_residual_zeroes_the_last_norm_of_each_branch():
    model = keras_resnet.build("resnet50", zero_init_residual=True, input_shape=(32, 32, 3))
    last_norms = [layer for layer in layers_of_type(model, "BatchNormalization") if layer.name.endswith("_bn3")]
    assert len(last_norms) == 16 and all(not np.any(layer.gamma.numpy()) for layer in last_norms)
    assert np.all(model.get_layer("stage1_block1_bn2").gamma.numpy() == 1.0)
    v2 = keras_resnet.build("resnet18v2", zero_init_residual=True, input_shape=(32, 32, 3))
    assert not np.any(v2.get_layer("stage3_block2_conv2").kernel.numpy())


def test_weight_decay_regularizes_every_kernel_as_sgd_weight_decay():
    model = keras_resnet.build("resnet20", weight_decay=1e-4)
    kernels = [layer.kernel for layer in layers_of_type(model, "Conv2D") + layers_of_type(model, "Dense")]
    assert len(model.losses) == len(kernels) == 19 + 1
    expected = sum(1e-4 / 2 * float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not keras_resnet.build("resnet20").losses


def test_mixed_precision_keeps_the_classifier_in_float32(rng):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras_resnet.build("resnet20")
        assert model.get_layer("stage1_block1_conv1").compute_dtype == "bfloat16"
        output = model(rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
        assert output.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shortcut": "D"}, r"Invalid shortcut. Received: 'D'. Valid: 'A', 'B', 'C'"),
        ({"version": "v3"}, r"Invalid version. Received: 'v3'. Valid: 'v1', 'v1.5', 'v2'"),
        ({"pooling": "sum", "include_top": False}, r"Invalid pooling. Received: 'sum'"),
        ({"pooling": "max"}, r"include_top=True ends with average pooling. Received: pooling='max'"),
        ({"classes": 0}, r"classes must be an int from 1 to 1000000. Received: classes=0"),
        ({"classes": 10**12}, r"classes must be an int from 1 to 1000000. Received: classes=1000000000000"),
        ({"bn_momentum": -1}, r"bn_momentum must be a number from 0 to 1. Received: bn_momentum=-1"),
        ({"bn_epsilon": 0.0}, r"bn_epsilon must be a number above 0 and at most 1. Received: bn_epsilon=0.0"),
        ({"weight_decay": float("nan")}, r"weight_decay must be a number from 0 to 1. Received: weight_decay=nan"),
        ({"input_shape": (32, 32)}, r"input_shape must be \(height, width, channels\).*Received: input_shape=\(32, 32\)"),
        ({"input_shape": (32, 32, 1)}, r"needs 3 channels. Received: input_shape=\(32, 32, 1\)"),
        ({"classifier_activation": "sofmax"}, r"sofmax"),
        ({"weight_decay": -1}, r"weight_decay must be a number from 0 to 1. Received: weight_decay=-1"),
        ({"input_normalization": "bgr"}, r"Unknown input_normalization. Received: 'bgr'. Valid: 'torch', 'caffe', 'tf'"),
        ({"downsample_block": "middle"}, r"Invalid downsample_block. Received: 'middle'"),
        ({"plain": True}, r"The name 'resnet20' implies plain=False. Received: plain=True"),
        ({"version": "v1"}, None),
        ({"classes": np.int64(10), "input_shape": tuple(np.array([32, 32, 3]))}, None),  # NumPy integers are integers
    ],
)
def test_invalid_arguments_say_what_was_received(kwargs, message):
    if message is None:
        keras_resnet.build("resnet20", **kwargs)  # valid: no error
        return
    with pytest.raises(ValueError, match=message):
        keras_resnet.build("resnet20", **kwargs)


def test_plain_net_refuses_zero_init_residual():
    with pytest.raises(ValueError, match=r"zero_init_residual=True would zero every block of a plain network"):
        keras_resnet.build("plain20", zero_init_residual=True)


def test_no_lambda_layers_and_only_registered_custom_layers():
    for name, kwargs in (("resnet20", {}), ("resnet50", {"version": "v2", "shortcut": "A"})):
        model = keras_resnet.build(name, input_shape=(32, 32, 3), **kwargs)
        custom = {type(layer).__module__ for layer in model.layers if not type(layer).__module__.startswith("keras.")}
        assert custom <= {"keras_resnet.nets.layers"}
        assert not layers_of_type(model, "Lambda")
        assert keras.saving.get_registered_object("keras_resnet>ChannelZeroPad") is keras_resnet.ChannelZeroPad


# -- save, load, config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [("resnet20", {}), ("plain20", {"weight_decay": 1e-4}), ("resnet18", {"version": "v2", "input_shape": (48, 48, 3)})],
)
def test_save_and_load_in_safe_mode_without_custom_objects(name, kwargs, tmp_path, rng):
    model = keras_resnet.build(name, **kwargs)
    size = model.input_shape[1]
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert layer_names(loaded) == layer_names(model)
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)
    assert len(loaded.losses) == len(model.losses)


def test_config_round_trips_through_json(rng):
    model = keras_resnet.build("resnet32", shortcut="A", weight_decay=5e-4)
    config = keras.saving.serialize_keras_object(model)
    assert config["registered_name"] == "keras_resnet>ResNetModel"
    rebuilt = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(rebuilt) is keras_resnet.ResNetModel and rebuilt.build_arguments == model.build_arguments
    assert json.loads(json.dumps(rebuilt.get_config())) == json.loads(json.dumps(model.get_config()))
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(rebuilt(images).numpy(), model(images).numpy(), atol=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize(
    "name, arguments",
    [
        ("resnet20", {}),
        ("plain20", {"classes": 7}),
        ("resnet18", {"shortcut": "C", "input_shape": (64, 64, 3), "classifier_activation": None}),
        ("resnet50v2", {"include_top": False, "pooling": "avg", "input_shape": (32, 32, 3), "downsample_block": "last"}),
        ("resnet50", {"version": "v1", "bn_epsilon": 1e-5, "input_normalization": "caffe", "conv_bias": True, "input_shape": (32, 32, 3)}),
    ],
)
def test_a_saved_model_is_rebuilt_from_its_own_build_arguments(name, arguments, tmp_path, rng):
    model = keras_resnet.build(name, **arguments)
    # Every argument that shapes the layers is recorded, resolved (defaults included).
    assert model.build_arguments["depth"] == keras_resnet.parse_name(name)[0]
    assert {"version", "shortcut", "bn_epsilon", "input_normalization", "downsample_block", "plain"} <= set(model.build_arguments)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)  # no custom_objects
    assert type(loaded) is keras_resnet.ResNetModel and loaded.build_arguments == model.build_arguments
    rebuilt = keras_resnet.ResNet(**loaded.build_arguments)  # the same class from the arguments alone
    assert type(rebuilt) is keras_resnet.ResNetModel and rebuilt.build_arguments == model.build_arguments
    assert [(layer.name, type(layer)) for layer in rebuilt.layers] == [(layer.name, type(layer)) for layer in model.layers]
    images = rng.uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)


@pytest.mark.integration
def test_saved_models_load_after_import_keras_resnet_in_either_order(tmp_path):
    model = keras_resnet.build("resnet8", classes=3, input_shape=(16, 16, 3))
    model.save(tmp_path / "model.keras")
    report = "type(model).__name__, model.build_arguments['classes']"
    for lines in load_models_in_fresh_processes([tmp_path / "model.keras"], report):
        assert lines == ["ResNetModel 3"]


def test_import_keras_resnet_loads_no_tensorflow_until_a_model_is_built():
    code = (
        "import sys, keras_resnet, keras_resnet.run.config, keras_resnet.run.directory, keras_resnet.runtime.classifier\n"
        "print(sorted(name for name in ('tensorflow', 'keras', 'tf_keras') if name in sys.modules))\n"
        "keras_resnet.parse_name('resnet50')\n"
        "print(sorted(name for name in ('tensorflow', 'keras', 'tf_keras') if name in sys.modules))\n"
        "keras_resnet.build('resnet8')\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    result = run_python(code)
    assert result.stdout.splitlines() == ["[]", "[]", "['keras', 'tensorflow']"]
    # TensorFlow's start-up notices stay quiet when it is loaded (the first device search's cuInit
    # error is another matter: quiet.list_devices_quietly, which the programs call).
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr, result.stderr


def test_a_host_program_that_forbids_keras_can_still_import_keras_resnet():
    # sys.modules["keras"] = None is the standard way to forbid an import. Before: `import
    # keras_resnet` saw "keras" in sys.modules and tried to register its classes with it.
    code = (
        "import sys\n"
        "sys.modules['keras'] = None\n"
        "import keras_resnet, keras_resnet.runtime.classifier\n"
        "print(keras_resnet.parse_name('resnet50'), 'tensorflow' in sys.modules)\n"
    )
    assert run_python(code).stdout.split() == ["(50,", "False,", "None)", "False"]


@pytest.mark.integration
def test_deepest_network_saves_and_loads(deepest, tmp_path, rng):
    model = deepest["resnet1202"]
    path = tmp_path / "resnet1202.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images, training=True).numpy(), model(images, training=True).numpy(), atol=1e-5)


# -- the tf_keras twin (quantization-aware training builds it) -----------------------------------


@pytest.mark.parametrize("name, kwargs", [("resnet20", {}), ("resnet18", {"version": "v2", "input_shape": (40, 40, 3)})])
def test_tf_keras_twin_takes_the_same_weights_and_computes_the_same(name, kwargs, rng):
    import tf_keras

    model = keras_resnet.build(name, **kwargs)
    twin = keras_resnet.build(name, keras_module=tf_keras, **kwargs)
    assert isinstance(twin, tf_keras.Model)
    assert [layer.name for layer in twin.layers] == layer_names(model)
    twin.set_weights(model.get_weights())
    size = model.input_shape[1]
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    np.testing.assert_allclose(twin(images, training=False).numpy(), model(images).numpy(), atol=1e-5)
