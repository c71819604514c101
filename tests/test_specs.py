import pytest

from keras_resnet.nets import specs


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet50", (50, False, None)),
        ("plain56", (56, True, None)),
        ("resnet101v2", (101, False, "v2")),
        ("ResNet50v1.5", (50, False, "v1.5")),
        ("resnet152v1", (152, False, "v1")),
    ],
)
def test_parse_name(name, expected):
    assert specs.parse_name(name) == expected


@pytest.mark.parametrize("name", ["resnet", "resnext50", "resnet50v3", "vgg16", "", None, 50])
def test_unknown_name_says_what_was_received_and_what_is_valid(name):
    with pytest.raises(ValueError) as error:
        specs.parse_name(name)
    assert f"Received: {name!r}" in str(error.value)
    assert "'resnet50'" in str(error.value) and "6n+2" in str(error.value)


@pytest.mark.parametrize(
    "depth, family, block, blocks",
    [
        (18, "imagenet", "basic", (2, 2, 2, 2)),
        (34, "imagenet", "basic", (3, 4, 6, 3)),
        (50, "imagenet", "bottleneck", (3, 4, 6, 3)),
        (101, "imagenet", "bottleneck", (3, 4, 23, 3)),
        (152, "imagenet", "bottleneck", (3, 8, 36, 3)),
        (200, "imagenet", "bottleneck", (3, 24, 36, 3)),
        (20, "cifar", "basic", (3, 3, 3)),
        (110, "cifar", "basic", (18, 18, 18)),
        (1202, "cifar", "basic", (200, 200, 200)),
        (8, "cifar", "basic", (1, 1, 1)),
    ],
)
def test_depth_resolves_to_the_papers_table(depth, family, block, blocks):
    spec = specs.spec_for_depth(depth)
    assert (spec.family.name, spec.block, spec.blocks_per_stage) == (family, block, blocks)
    # The depth counts weighted layers: stem conv, 2 or 3 convs per block, the classifier.
    convs_per_block = 2 if block == "basic" else 3
    assert 1 + convs_per_block * sum(blocks) + 1 == depth


def test_imagenet_depths_win_where_both_families_have_them_and_family_picks_the_other():
    assert specs.spec_for_depth(50).family.name == "imagenet"
    cifar50 = specs.spec_for_depth(50, family="cifar")
    assert cifar50.family.name == "cifar" and cifar50.blocks_per_stage == (8, 8, 8)


@pytest.mark.parametrize("depth, family", [(21, None), (2, None), (0, None), (18, "cifar"), (20, "imagenet"), (True, None)])
def test_invalid_depth_is_refused_with_the_valid_ones(depth, family):
    with pytest.raises(ValueError, match=r"Invalid depth.*Received: depth=.*Valid: ImageNet-style 18, 34, 50"):
        specs.spec_for_depth(depth, family=family)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match=r"Unknown family 'mnist'. Valid: 'imagenet', 'cifar'"):
        specs.spec_for_depth(20, family="mnist")
