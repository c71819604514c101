"""Stand-ins for timm / torchvision checkpoints: timm's exact keys and shapes with random values,
written as safetensors files and as a hub model folder."""

import json
import os

import numpy as np
from safetensors.numpy import save_file

from keras_resnet.nets import specs

IMAGE_SIZE = 96  # any size: small keeps ResNet-152 quick


def timm_state_dict(depth, *, classes=1000, seed=0, prefix=""):
    """A stand-in for timm's resnet{depth} checkpoint: timm's exact keys and shapes, random values,
    randomized batch-norm statistics (PyTorch layout: conv OIHW, linear (out, in))."""
    rng = np.random.default_rng(seed)
    block, blocks_per_stage = specs.IMAGENET_BLOCKS_PER_STAGE[depth]
    tensors = {}

    def conv(key, out_channels, in_channels, size):
        scale = np.sqrt(2.0 / (in_channels * size * size))
        tensors[f"{key}.weight"] = (rng.standard_normal((out_channels, in_channels, size, size)) * scale).astype(np.float32)

    def bn(key, channels, gamma=(0.5, 1.5)):
        tensors[f"{key}.weight"] = rng.uniform(*gamma, channels).astype(np.float32)
        tensors[f"{key}.bias"] = rng.normal(0, 0.1, channels).astype(np.float32)
        tensors[f"{key}.running_mean"] = rng.normal(0, 0.2, channels).astype(np.float32)
        tensors[f"{key}.running_var"] = rng.uniform(0.3, 3.0, channels).astype(np.float32)
        tensors[f"{key}.num_batches_tracked"] = np.array(1000, np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_channels, expansion = 64, specs.BLOCK_EXPANSION[block]
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage), start=1):
        out_channels = width * expansion
        for index in range(count):
            key = f"layer{stage}.{index}"
            if block == "basic":
                conv(f"{key}.conv1", width, in_channels, 3)
                bn(f"{key}.bn1", width)
                conv(f"{key}.conv2", width, width, 3)
                bn(f"{key}.bn2", width, gamma=(0.1, 0.5))  # residual branches smaller than the identity
            else:
                conv(f"{key}.conv1", width, in_channels, 1)
                bn(f"{key}.bn1", width)
                conv(f"{key}.conv2", width, width, 3)
                bn(f"{key}.bn2", width)
                conv(f"{key}.conv3", out_channels, width, 1)
                bn(f"{key}.bn3", out_channels, gamma=(0.1, 0.5))
            if index == 0 and in_channels != out_channels:
                conv(f"{key}.downsample.0", out_channels, in_channels, 1)
                bn(f"{key}.downsample.1", out_channels)
            in_channels = out_channels
    tensors["fc.weight"] = (rng.standard_normal((classes, in_channels)) / np.sqrt(in_channels)).astype(np.float32)
    tensors["fc.bias"] = rng.normal(0, 0.1, classes).astype(np.float32)
    return {prefix + key: value for key, value in tensors.items()}


def write_preset(folder, depth, **kwargs):
    """A timm model folder as the hub has it: model.safetensors and timm's config.json."""
    os.makedirs(folder, exist_ok=True)
    tensors = timm_state_dict(depth, **kwargs)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    classifier = tensors[kwargs.get("prefix", "") + "fc.weight"]
    config = {
        "architecture": f"resnet{depth}",
        "num_classes": classifier.shape[0],
        "num_features": classifier.shape[1],
        "pretrained_cfg": {
            "input_size": [3, IMAGE_SIZE, IMAGE_SIZE],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        },
    }
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(config, file)
    return os.path.join(folder, "model.safetensors")
