"""The learning-rate schedules of keras_resnet.run.recipes as Keras schedules."""

import dataclasses

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


@keras.saving.register_keras_serializable(package="keras_resnet")
class AfterFrozenPhase(keras.optimizers.schedules.LearningRateSchedule):
    """Fine-tuning: a constant rate for the classifier alone over the first `frozen_steps`, then
    `schedule` (the whole network's) from its step 0."""

    def __init__(self, frozen_rate, frozen_steps, schedule):
        self.frozen_rate = float(frozen_rate)
        self.frozen_steps = int(frozen_steps)
        self.schedule = (
            schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
            else keras.optimizers.schedules.deserialize(schedule)
        )

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        tuned = self.schedule(keras.ops.maximum(step - self.frozen_steps, 0.0))
        return keras.ops.where(step < self.frozen_steps, keras.ops.cast(self.frozen_rate, "float32"), tuned)

    def get_config(self):
        return {
            "frozen_rate": self.frozen_rate,
            "frozen_steps": self.frozen_steps,
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
        }


def learning_rate_schedule(training, plan):
    """The schedule of a run: `training` a config.TrainingConfig, `plan` its config.StepPlan. After a
    frozen phase (fine-tuning), the schedule covers the remaining steps."""
    if plan.freeze_steps:
        from keras_resnet.run.recipes import HEAD_RATE_FACTOR

        tuned = learning_rate_schedule(training, dataclasses.replace(plan, total_steps=plan.total_steps - plan.freeze_steps, freeze_steps=0))
        return AfterFrozenPhase(training.learning_rate * HEAD_RATE_FACTOR, plan.freeze_steps, tuned)
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
