"""The paper's training recipes as data (Sec. 3.4 for ImageNet, 4.2 for CIFAR-10).

Plain data, no TensorFlow: `keras_resnet.run.config` resolves a run's defaults from it, and the
command-line help states them. The learning-rate schedules they name live in schedules.py.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    batch_size: int
    learning_rate: float  # at `reference_batch`; scaled linearly with the global batch (Goyal et al.)
    reference_batch: int
    weight_decay: float
    momentum: float
    step_boundaries: tuple  # fractions of training where the step schedule divides the rate by 10
    epochs: int = None
    steps: int = None
    augmentation: str = "cifar"
    min_crop_area: float = 0.08
    schedule: str = "step"

    def scaled_learning_rate(self, batch_size):
        """The recipe's rate for a global batch of `batch_size` (linear scaling, Goyal et al. 2017)."""
        return self.learning_rate * batch_size / self.reference_batch


RECIPES = {
    # SGD, batch 128, lr 0.1, weight decay 1e-4, momentum 0.9; lr / 10 at 32k and 48k of 64k iterations;
    # 4-pixel padding, 32x32 random crops, horizontal flips.
    "cifar": Recipe(128, 0.1, 128, 1e-4, 0.9, (0.5, 0.75), steps=64_000, augmentation="cifar"),
    # SGD, batch 256, lr 0.1, weight decay 1e-4, momentum 0.9; lr / 10 at epochs 30 and 60 of 90;
    # random-resized crops (the scale augmentation of Szegedy et al.) and flips.
    "imagenet": Recipe(256, 0.1, 256, 1e-4, 0.9, (1 / 3, 2 / 3), epochs=90, augmentation="imagenet"),
}

# The embedded dataset is small and simple: 15 epochs learn it. It holds one object per image, so
# random-resized crops keep at least a third of the image (ImageNet's 8 % could lose the object).
SYNTHETIC_EPOCHS = 15
SYNTHETIC_MIN_CROP_AREA = 0.35
# Cosine schedules start with a linear warm-up by default; step schedules (the paper's) do not.
COSINE_WARMUP_EPOCHS = 5
SCHEDULES = ("step", "cosine")

# Fine-tuning pretrained weights (train.py --weights): SGD with momentum at a tenth of the paper's
# rate per image (0.01 per 64 images, scaled linearly), cosine decay, 20 epochs. The first
# FREEZE_EPOCHS train only the new classifier, the backbone frozen (its batch norms in inference
# mode), at HEAD_RATE_FACTOR times that rate; then the whole network. Augmentation is the family's
# (random-resized crops for ImageNet-style networks, keeping at least a quarter of the image, which
# suits small datasets better than ImageNet's 8 %), at the run's image size.
FINE_TUNING_EPOCHS = 20
FREEZE_EPOCHS = 2
HEAD_RATE_FACTOR = 10
FINE_TUNING_MIN_CROP_AREA = 0.25


def fine_tuning(family_recipe):
    """The fine-tuning recipe for a network whose from-scratch recipe is `family_recipe`."""
    return dataclasses.replace(
        family_recipe,
        batch_size=64,
        learning_rate=0.01,
        reference_batch=64,
        epochs=FINE_TUNING_EPOCHS,
        steps=None,
        min_crop_area=FINE_TUNING_MIN_CROP_AREA,
        schedule="cosine",
    )
