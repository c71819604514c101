"""The paper's training recipes as data (Sec. 3.4 for ImageNet, 4.2 for CIFAR-10), and their
learning-rate schedules."""

import dataclasses

import keras


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


@keras.saving.register_keras_serializable(package="keras_resnet")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The paper's schedule: the rate divided by 10 at each boundary step, after an optional linear
    warm-up from 0 (Goyal et al., 2017). Keras has piecewise-constant decay, but without warm-up."""

    def __init__(self, initial_learning_rate, boundaries, warmup_steps=0, factor=0.1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.boundaries = [int(boundary) for boundary in boundaries]
        self.warmup_steps = int(warmup_steps)
        self.factor = float(factor)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = keras.ops.convert_to_tensor(self.initial_learning_rate, "float32")
        for boundary in self.boundaries:
            rate = keras.ops.where(step >= boundary, rate * self.factor, rate)
        if self.warmup_steps:
            warming = self.initial_learning_rate * (step + 1.0) / self.warmup_steps
            rate = keras.ops.where(step < self.warmup_steps, warming, rate)
        return rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "boundaries": self.boundaries,
            "warmup_steps": self.warmup_steps,
            "factor": self.factor,
        }


def learning_rate_schedule(*, schedule, learning_rate, total_steps, warmup_steps, step_boundaries):
    if schedule == "step":
        boundaries = [round(fraction * total_steps) for fraction in step_boundaries]
        return StepDecay(learning_rate, boundaries, warmup_steps=warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total_steps - warmup_steps), warmup_target=learning_rate, warmup_steps=warmup_steps
        )
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
