"""Where a run trains and where it continues: the run directory chosen and checked before anything
is written (a new one, or a run of the same configuration to continue), its configuration and
labels written, and the step to continue from (a backup, else last.keras, else the start), with
what the same command would continue from if the process stopped now.
"""

import os

import keras

from keras_resnet import files
from keras_resnet.errors import TrainingError, UsageError
from keras_resnet.runtime import reason
from keras_resnet.run import config as config_lib
from keras_resnet.run.directory import RunDirectory, default_path, find_interrupted
from keras_resnet.training.callbacks import saved_model_step


def run_directory(config, *, output, resume, log):
    """The run directory to train in, checked before anything is read or written.

    It is a new one, or a run of the same configuration to continue (from a backup, last.keras, or
    afresh when it holds nothing to continue from).

    Args:
        config: The run's RunConfig.
        output: The directory asked for (--output); None: the newest interrupted run of this
            configuration under runs/, else a new path there.
        resume: Whether --resume was given: a run of another length in `output` is then trained to this one's.
        log: Called with each line to report.

    Returns:
        The RunDirectory (not yet created when it is new).

    Raises:
        UsageError: `output` is not empty and holds no run, or a run of another configuration or,
            without `resume`, of another length (ConfigFileError for a damaged config.json).
    """
    if output is None:
        interrupted = find_interrupted(config)
        if interrupted is not None:
            log(f"Found an interrupted run with this configuration: {interrupted}")
            return interrupted
        return RunDirectory(default_path(config.model.name, config.data.dataset))
    run = RunDirectory(output)
    if run.is_empty():
        return run
    if not os.path.exists(run.config):
        raise UsageError(f"{output} is not empty and holds no run (no config.json): choose another --output. Nothing was changed.")
    stored = run.read_config()
    if not stored.same_training(config, ignore_length=resume):
        if stored.same_training(config, ignore_length=True):
            raise UsageError(
                f"{output} holds a run of another length ({_length(stored)}): pass --resume to train it to "
                f"{_length(config)}, or choose another --output. Nothing was changed."
            )
        raise UsageError(
            f"{output} holds a run with another configuration (see its config.json): "
            f"continue it with its own flags, or choose another --output. Nothing was changed."
        )
    if resume and not run.has_state() and not run.is_finished():
        log(f"--resume: {run} has neither a backup nor last.keras; starting it afresh.")
    return run


def _length(config):
    training = config.training
    return config_lib.counted(training.steps, "step") if training.steps else config_lib.counted(training.epochs, "epoch")


def interrupted_config(config):
    """The configuration of the interrupted run that the default --output continues, if any."""
    interrupted = find_interrupted(config)
    return interrupted.read_config() if interrupted is not None else None


def stored_config(output):
    """The configuration of the run in `output`, if there is one."""
    if output is None or not os.path.exists(RunDirectory(output).config):
        return None
    return RunDirectory(output).read_config()


def prepare_directory(run, config):
    try:  # the directory exists: run.lock() made it
        if not os.path.exists(run.config) or run.read_config().training != config.training:
            # New, or resumed for longer: config.json records the run as it now goes.
            run.write_config(config)
        if not os.path.exists(run.labels):
            run.write_labels(config.class_names)
    except OSError as error:
        if files.is_out_of_space(error):
            raise TrainingError(f"No space left on the disk holding {run}: free some space and run the same command again.") from None
        raise UsageError(f"Cannot write to the run directory {run} ({files.describe_os_error(error)}): choose another --output.") from None


def check_not_shorter(run, plan, train_examples):
    """--resume trains a run longer, never shorter: refused before anything is written.

    Args:
        run: The RunDirectory to continue.
        plan: The StepPlan this command asks for.
        train_examples: The training split's size, to plan the stored configuration's steps with.

    Raises:
        UsageError: `plan` has fewer steps than the run is set to. A run without a readable
            configuration, or whose plan no longer works, is not compared.
    """
    try:
        configured = run.read_config().plan(train_examples).total_steps
    except UsageError:
        return  # no run yet, or one whose own plan no longer works: nothing to compare
    if plan.total_steps < configured:
        raise UsageError(
            f"--resume trains a run longer: {run} is set to {configured} steps and this command asks for "
            f"{plan.total_steps}. Ask for {configured} or more, or choose another --output. Nothing was changed."
        )


def restore(model, run, backup, *, log):
    """Loads the state to continue from into the model and returns its step.

    The backup's, else last.keras', else 0. Each is loaded before it is trusted; one that cannot be
    read is reported and passed over.

    Args:
        model: The compiled model, which gets the weights and optimizer state.
        run: The RunDirectory.
        backup: The run's StepBackup callback (set to `model`), which restores the backup.
        log: Called with each line to report.

    Returns:
        The step training continues from (0: from the start).
    """
    if run.has_backup():
        try:
            return backup.restore()
        except Exception as error:  # h5py and Keras raise many kinds for a damaged file
            log(f"The backup in {run.backup} cannot be read ({type(error).__name__}); looking for last.keras.")
    if os.path.exists(run.last_model):
        try:
            return _restore_from_last(model, run)
        except Exception as error:
            log(f"{run.last_model} cannot be read ({type(error).__name__}: {reason(error, limit=120)}).")
    return 0


def _restore_from_last(model, run):
    """A finished (or stopped) run's last model, with the optimizer's state; the step it was saved at."""
    previous = keras.saving.load_model(run.last_model)
    model.set_weights(previous.get_weights())
    for variable, saved in zip(model.optimizer.variables, previous.optimizer.variables):
        variable.assign(saved)
    step = saved_model_step(run.last_model)
    return int(model.optimizer.iterations.numpy()) if step is None else step


def continuation(run, backup):
    """What the same command would continue from if this process stopped now, in words (None:
    nothing), in restore's order. A backup restored at the start counts as saved."""
    if backup.saved_step:
        return f"the backup in {run.backup} (step {backup.saved_step})"
    if os.path.exists(run.last_model):
        return run.last_model
    return None


def epoch_ending_at(step, plan):
    """The epoch whose last step is `step` (the last epoch may be cut short by --steps), or None."""
    if step == 0:
        return None
    if step >= plan.total_steps:
        return plan.epochs - 1
    return step // plan.steps_per_epoch - 1 if step % plan.steps_per_epoch == 0 else None
