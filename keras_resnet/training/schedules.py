"""The learning-rate schedules of recipe.py as Keras schedules."""

import keras


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


def learning_rate_schedule(training, plan):
    """The schedule of a run: `training` a config.TrainingConfig, `plan` its config.StepPlan."""
    if training.schedule == "step":
        return StepDecay(training.learning_rate, plan.boundaries, warmup_steps=plan.warmup_steps)
    if plan.warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(1, plan.total_steps - plan.warmup_steps),
            warmup_target=training.learning_rate,
            warmup_steps=plan.warmup_steps,
        )
    return keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=plan.total_steps)
