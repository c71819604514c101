"""Training: the one code path of train.py and of the experiments.

`train(config, ...)` runs a `keras_resnet.run.config.RunConfig` (from `keras_resnet.run.resolve`) into a run
directory and survives crashes: the directory and the step it continues from are resume.py's, the
callbacks that save and watch are callbacks.py's; --evaluate is evaluate.py's.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import sys
import time

import keras
import tensorflow as tf

import keras_resnet
from keras_resnet import files
from keras_resnet.data import pictures, pipeline, records, service, sources
from keras_resnet.errors import TrainingError, UsageError
from keras_resnet.run import config as config_lib
from keras_resnet.run.directory import RunDirectory
from keras_resnet.run.recipes import HEAD_RATE_FACTOR
from keras_resnet.training import distribute, evaluation, pretrained, schedules
from keras_resnet.training import resume as resume_lib
from keras_resnet.training.callbacks import (
    AtomicModelCheckpoint,
    Curves,
    Diverged,
    DivergenceStop,
    EpochHistory,
    FirstStepWatch,
    InterruptAtStepEnd,
    StepBackup,
    StepCounter,
    Throughput,
)


class Interrupted(Exception):
    """Ctrl-C: the state was backed up. Exit code 130."""


def _check(condition, message):
    if not condition:
        raise UsageError(message)


# -- training -----------------------------------------------------------------------------------


def train(config, *, output=None, resume=False, log=print):
    """Trains as a RunConfig says into a run directory.

    It continues a run that a crash, a NaN stop or a failure at start-up left behind.

    Args:
        config: The RunConfig, from resolve(), which resolved its weights (pass it the same
            `output`: a started run keeps the weights' layout it recorded).
        output: The run directory (train.py's --output); None: the interrupted run of the same
            configuration under runs/, else a new one there.
        resume: Train the run in `output` for longer than it was set to (train.py's --resume).
        log: Called with each line to report.

    Returns:
        The RunDirectory trained in.

    Raises:
        UsageError: Bad input: a flag, the output directory, the data or weights that cannot work.
        DatasetError: The dataset cannot be opened.
        TrainingError: Training started and could not go on (a NaN loss, a divergence, a full disk).
        Interrupted: Ctrl-C; the state was backed up.
        ValueError: `config` has weights that resolve() did not resolve.
    """
    _check(
        output is None or not os.path.exists(output) or os.path.isdir(output),
        f"--output {output} is a file, not a directory: choose another --output. Nothing was changed.",
    )
    if config.training.weights and config.weights_source is None:
        raise ValueError("train() takes the RunConfig of keras_resnet.run.resolve.resolve(): it resolves the weights' layout.")
    stored_here = resume_lib.stored_config(output)
    weights_source = config.weights_source
    runtime = config.runtime
    try:
        strategy, strategy_name = distribute.make_strategy(runtime.strategy, tpu=runtime.tpu, cpu_replicas=runtime.cpu_replicas)
        precision = distribute.resolve_precision(runtime.precision, strategy_name=strategy_name)
    except (distribute.DistributeError, ValueError) as error:
        raise UsageError(str(error)) from None
    if runtime.data_service:
        try:  # before anything is written: the service's client would wait for it for ever
            service.check_reachable(service.Address.parse(runtime.data_service))
        except service.ServiceError as error:
            raise UsageError(str(error)) from None
    replicas = strategy.num_replicas_in_sync
    multi_worker = distribute.is_multi_worker(strategy)
    _check(not (multi_worker and output is None), "Multi-worker training needs --output: the same path on every worker.")

    # The defaults left to the data (batch, image size, warm-up, frozen phase), before the run's
    # configuration is compared with a stored one or written: a run that already started keeps
    # those it started with; a new one gets them fitted to its data.
    data_source = sources.open_configured(config.data, seed=config.training.seed)
    stored = stored_here if output is not None else resume_lib.interrupted_config(config)
    if stored is not None:
        config, defaults_chosen = config.with_stored_defaults(stored), []
    else:
        config, defaults_chosen = config.fit_to_data(
            train_examples=data_source.train_examples,
            picture_side=data_source.picture_side,
            weights_image_size=weights_source.image_size if weights_source else None,
            weights_origin=config.training.weights,
            replicas=replicas,
        )
    if config.data.dataset == "synthetic" and config.data.image_size != data_source.stored_image_size[0]:
        data_source = sources.open_configured(config.data, seed=config.training.seed)  # generated at that size
    batch_size = config.training.batch_size
    _check(
        batch_size % replicas == 0,
        f"--batch-size {batch_size} (the global batch) does not split evenly over {replicas} replicas: "
        f"use a multiple of {replicas}.",
    )
    if distribute.is_chief(strategy):
        run = resume_lib.run_directory(config, output=output, resume=resume, log=log)
    else:
        # Every worker saves its copy (identical to the chief's), but only the chief into the run itself.
        run = RunDirectory(os.path.join(output, f"worker-{distribute.worker_index(strategy)}"))

    # Held while this process trains here: a second process gets one line naming this one. A
    # directory created here and left empty (bad input found below) is removed again.
    with run.lock():
        files.remove_partials(run.path)
        files.remove_partials(run.backup)
        if run.is_finished() and not resume:
            _report_finished(run, log=log)
            return run
        config = config.with_class_names(data_source.class_names)
        plan = config.plan(data_source.train_examples)
        if resume:
            resume_lib.check_not_shorter(run, plan, data_source.train_examples)
        if weights_source is not None and not run.has_state():
            pretrained.fetch(weights_source, config)  # a failed download leaves nothing behind
        # A new run refused at start-up (weights that do not fit after all) takes back what it
        # wrote, so that the corrected command finds the directory as it was.
        new_run = run.is_empty()
        resume_lib.prepare_directory(run, config)

        previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(precision)
        try:
            session = _Session(config, run, strategy, strategy_name, precision, data_source, plan, log)
            return _train(session, defaults_chosen=defaults_chosen)
        except UsageError:
            if new_run and not run.has_state():
                run.remove_started()
            raise
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)


@dataclasses.dataclass(frozen=True)
class _Session:
    """One process training one run: what each part of the training needs, fixed before it starts."""

    config: config_lib.RunConfig  # complete: classes and data-fitted defaults included
    run: RunDirectory  # locked by this process
    strategy: tf.distribute.Strategy
    strategy_name: str  # as the log names it: "default", "mirrored", …
    precision: str  # the Keras dtype policy
    source: sources.DataSource  # the opened data
    plan: config_lib.StepPlan
    log: object  # print, or what the caller gave

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync


def _train(session, *, defaults_chosen):
    """The training itself, in the locked run directory, under the run's precision policy."""
    config, run, plan, log = session.config, session.run, session.plan, session.log
    keras.utils.set_random_seed(config.training.seed)
    with session.strategy.scope():
        model = build_and_compile(config, plan, replicas=session.replicas)
    counter = StepCounter()
    backup = StepBackup(run.backup, save_every_steps=config.runtime.save_every_steps, counter=counter)
    backup.set_model(model)
    done = counter.step = _start_or_continue(model, session, backup)
    if done >= plan.total_steps and run.is_finished():
        _report_finished(run, log=log)
        return run
    callbacks, epoch_end, interrupt, watch = _callbacks(session, counter, backup)
    validation = pipeline.evaluation_dataset(
        session.source, image_size=config.data.image_size, preprocessing=config.data.preprocessing(), batch_size=config.training.batch_size
    )
    started = time.time()
    with _stopped_in_words(session, counter, backup):
        ended = resume_lib.epoch_ending_at(done, plan)
        if ended is not None and not any(int(row["epoch"]) == ended + 1 for row in run.read_history()):
            # Stopped between an epoch's last step (backed up) and that epoch's end: finish it first.
            log(f"{run} trained epoch {ended + 1} to its last step but stopped before the epoch ended: evaluating it now.")
            with distribute.keras_mended(model, session.strategy):
                _end_epoch_by_hand(model, ended, validation, epoch_end)
        if done < plan.total_steps:
            _announce(session, defaults_chosen)
            try:
                _fit(model, session, done=done, validation=validation, callbacks=callbacks, interrupt=interrupt)
            finally:
                if watch is not None:
                    watch.stop()  # fit() that raises skips on_train_end
        return _finish(session, steps=counter.step, validation=validation, started=started)


def _start_or_continue(model, session, backup):
    """The step training continues from (resume_lib.restore), the run's files made to agree with
    it; at step 0, the pretrained weights loaded."""
    config, run, plan, log = session.config, session.run, session.plan, session.log
    done = resume_lib.restore(model, run, backup, log=log)
    if done == 0:
        if not run.is_empty() and (os.path.exists(run.history) or os.path.exists(run.tensorboard)):
            log(f"{run} holds no saved state to continue from (stopped before its first backup): starting it afresh.")
        run.clear_derived()
        if config.weights_source is not None:
            try:
                log(f"Starting from {config.weights_source.weights} ({pretrained.load(model, config.weights_source, config)}).")
            except ValueError as error:  # weights.WeightsError: a file that does not fit after all
                raise UsageError(f"--weights {config.training.weights}: {error}") from None
    elif done >= plan.total_steps and run.is_finished():
        return done  # nothing to continue: _train reports it
    elif done < plan.total_steps:
        log(f"Resuming {run} at step {done} of {plan.total_steps}.")
    if done < plan.total_steps and os.path.exists(run.metrics):
        os.remove(run.metrics)  # trained longer (--resume): finished again only at the new end
    # The rows of the steps trained again (the rest of an interrupted epoch, and any later) go.
    run.keep_history_through(done, steps_per_epoch=plan.steps_per_epoch)
    return done


def _callbacks(session, counter, backup):
    """fit()'s callbacks in their order, those that end an epoch (for an epoch ended by hand), the
    Ctrl-C catcher, and the first-step watch of a tf.data service (None without one)."""
    config, run = session.config, session.run
    best_so_far = max((row.get("val_accuracy", -1.0) for row in run.read_history()), default=None)
    interrupt = InterruptAtStepEnd()
    epoch_end = [  # in this order: an epoch's row in history.csv means its models are saved
        AtomicModelCheckpoint(
            run.best_model, counter=counter, monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        AtomicModelCheckpoint(run.last_model, counter=counter),
        EpochHistory(run, counter=counter),
        Curves(run.history, run.curves, title=f"{config.model.name} on {config.data.dataset}", freeze_epochs=config.training.freeze_epochs),
        DivergenceStop(run, classes=len(session.source.class_names)),  # after the epoch's files: they stay resumable
    ]
    callbacks = [
        counter,  # first: a step is counted before anything can stop training after it
        interrupt,
        keras.callbacks.TerminateOnNaN(raise_error=True),  # before anything that saves
        backup,
        Throughput(config.training.batch_size),
        *epoch_end,
        keras.callbacks.TensorBoard(run.tensorboard, write_graph=False, profile_batch=0),
    ]
    watch = None
    if config.runtime.data_service:
        address = service.Address.parse(config.runtime.data_service)
        watch = FirstStepWatch(
            f"The first step has not ended after {service.FIRST_STEP_PATIENCE_S} s: it waits for batches from the tf.data "
            f"service at {address}. If no worker serves it, start one: `keras-resnet data-service --dispatcher "
            f"{address.host}:{address.port}` (on a machine that sees the dataset at the same path).",
            after_seconds=service.FIRST_STEP_PATIENCE_S, log=session.log,
        )
        callbacks.append(watch)
    return callbacks, epoch_end, interrupt, watch


def _announce(session, defaults_chosen):
    """The lines that say what is about to train, before the first step."""
    config, source, plan, log = session.config, session.source, session.plan, session.log
    training, data = config.training, config.data
    if defaults_chosen:
        log(f"Defaults chosen for this data: {'; '.join(defaults_chosen)}.")
    if source.unreadable_train_files:
        unreadable = source.unreadable_train_files
        log(
            f"warning: {config_lib.counted(len(unreadable), 'training file')} cannot be opened as a picture and "
            f"{'is' if len(unreadable) == 1 else 'are'} left out: {', '.join(unreadable[:3])}{', …' if len(unreadable) > 3 else ''}. "
            f"Repair or remove {'it' if len(unreadable) == 1 else 'them'}."
        )
    log(
        f"Training {config.model.name} on {data.dataset} ({source.train_examples} training, "
        f"{source.validation_examples} validation images, {len(source.class_names)} classes) at {data.image_size} px: "
        f"{config_lib.counted(plan.total_steps, 'step')} ({config_lib.counted(plan.epochs, 'epoch')} of {config_lib.counted(plan.steps_per_epoch, 'step')}), "
        f"global batch {training.batch_size} over {config_lib.counted(session.replicas, 'replica')} [{session.strategy_name}], {session.precision}. Run directory: {session.run}"
    )
    prepared_by = f"; prepared by the tf.data service at {config.runtime.data_service}" if config.runtime.data_service else ""
    log(f"Training input: {pipeline.describe_training_input(source, data.augmentation, workers=distribute.worker_count(session.strategy))}{prepared_by}.")
    log(f"Evaluation transform: {data.preprocessing().describe()}, at {data.image_size} px (--eval-crop); the converted models carry it to classify.py and the page.")
    if plan.freeze_steps:
        log(
            f"Fine-tuning: {config_lib.counted(plan.freeze_steps // plan.steps_per_epoch, 'epoch')} of the classifier alone at learning "
            f"rate {training.learning_rate * HEAD_RATE_FACTOR:g}, then the whole network from {training.learning_rate:g} ({training.schedule})."
        )


@contextlib.contextmanager
def _stopped_in_words(session, counter, backup):
    """Training that stops early, as the user reads it: Ctrl-C backs the state up (Interrupted), and
    a NaN loss, a divergence, a full disk or unusable data become one TrainingError line that says
    what the same command would continue from."""
    config, run, plan, source = session.config, session.run, session.plan, session.source
    data = config.data
    try:
        yield
    except KeyboardInterrupt:
        counter.catch_up()
        try:
            backup.save_now()
        except OSError as error:
            raise _storage_error(error, run, resume_lib.continuation(run, backup)) from None
        raise Interrupted(
            f"Interrupted at step {counter.step} of {plan.total_steps}; the state is backed up "
            f"in {run.backup}. Run the same command again to resume."
        ) from None
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        raise TrainingError(
            f"The loss became NaN or infinite at step {counter.step}: training stopped. {_kept_in_words(run, backup)} "
            f"Try a lower --lr, a warm-up (--warmup-epochs) or --precision float32, with a new --output."
        ) from None
    except Diverged as divergence:
        raise TrainingError(
            f"Training stopped: {divergence}. Likely cause: {_divergence_cause(config, source, plan)} "
            f"{run} keeps its state (the same command would continue it); start again with that change and a new --output."
        ) from None
    except OSError as error:
        raise _storage_error(error, run, resume_lib.continuation(run, backup)) from None
    except pipeline.EmptyShare as error:
        raise TrainingError(str(error)) from None
    except tf.errors.DataLossError as error:  # a record file damaged after it was opened
        line = source.damaged_records_line(error, then=f". {_kept_in_words(run, backup)}")
        if line is None:
            raise
        raise TrainingError(line) from None
    except tf.errors.InvalidArgumentError as error:
        if records.SHARD_MISSING in str(error):
            missing = re.search(re.escape(records.SHARD_MISSING) + r":\] \[(.*?)\]", str(error))
            raise TrainingError(
                f"{records.SHARD_MISSING} where training reads it: {missing.group(1) if missing else '(see above)'}. "
                f"Every machine that reads the shards (each worker of a tf.data service too) needs them at the same path."
            ) from None
        if pipeline.LABEL_OUT_OF_RANGE in str(error):
            where = (
                f"check that {records.LABELS_FILE} beside the shards names every class, in label order (a first line "
                f"'background' when the shards number their classes from 1)" if data.dataset.startswith(records.PREFIX)
                else "check the dataset's labels"
            )
            raise TrainingError(f"{pipeline.LABEL_OUT_OF_RANGE} (0 to {len(source.class_names) - 1}): {where}.") from None
        if pictures.NOTHING_DECODED not in str(error):
            raise
        if not pipeline.reads_encoded(source, data.augmentation):
            where = f"in a whole pass over {data.dataset}'s {source.train_examples} training files (each named above)"
        elif source.train_records is not None:  # checked in runs: pictures.decoded_batches' segments
            where = f"in {data.dataset}'s {source.train_examples} training records, read one after another (a run of up to {pipeline.RECORDS_PER_SEGMENT:,})"
        else:
            where = (
                f"in {data.dataset}'s {source.train_examples} training files, read one after another (a run of up to "
                f"{pictures.ROWS_PER_SEGMENT:,}; those of the first pass named above)"
            )
        raise TrainingError(f"{pictures.NOTHING_DECODED} {where}: repair or replace them.") from None


def _kept_in_words(run, backup):
    """What the same command does after training stopped: continue from the state saved, or start afresh."""
    continuation = resume_lib.continuation(run, backup)
    if continuation:
        return f"The same command continues from {continuation}, saved before."
    return "Nothing was saved yet: the same command starts the run afresh."


def _divergence_cause(config, source, plan):
    """The likeliest reason a run diverged, and the flag that changes it, in words."""
    training, data = config.training, config.data
    if plan.steps_per_epoch < config_lib.MIN_STEPS_PER_EPOCH and training.batch_size > config_lib.MIN_FITTED_BATCH:
        fitted, _ = dataclasses.replace(config, defaulted=frozenset({"batch_size"})).fit_to_data(train_examples=source.train_examples)
        return (
            f"batch {training.batch_size} leaves {config_lib.counted(plan.steps_per_epoch, 'step')} per epoch on {source.train_examples} pictures; "
            f"pass --batch-size {fitted.training.batch_size} (the learning rate follows it unless --lr is given)."
        )
    if source.picture_side and data.image_size >= 2 * source.picture_side:
        return f"image size {data.image_size} for pictures of {source.picture_side} px; pass --image-size {source.picture_side}."
    return f"the learning rate {training.learning_rate:g} is too high for this data; pass a lower --lr (e.g. {training.learning_rate / 10:g})."


def _fit(model, session, *, done, validation, callbacks, interrupt):
    config, plan, log = session.config, session.plan, session.log
    with interrupt.catching(), distribute.keras_mended(model, session.strategy):
        for initial_epoch, final_epoch, steps in plan_fits(done, plan.total_steps, plan.steps_per_epoch, breaks=(plan.freeze_steps,)):
            start_step = max(done, initial_epoch * plan.steps_per_epoch)
            if plan.freeze_steps:
                frozen = start_step < plan.freeze_steps
                pretrained.set_backbone_frozen(model, frozen)
                model.make_train_function(force=True)  # the trained variables changed
                epochs = f"Epoch {final_epoch}" if final_epoch == initial_epoch + 1 else f"Epochs {initial_epoch + 1}-{final_epoch}"
                log(f"{epochs}: " + ("the classifier only, backbone frozen." if frozen else "the whole network."))
            train_data = _training_input(config, session.source, strategy=session.strategy, seed=config.training.seed + start_step)
            model.fit(
                train_data,
                validation_data=validation,
                initial_epoch=initial_epoch,
                epochs=final_epoch,
                steps_per_epoch=steps,
                callbacks=callbacks,
                shuffle=False,  # the pipeline shuffles
                verbose=1 if sys.stdout.isatty() else 2,
            )


def _training_input(config, source, *, strategy, seed):
    """The training batches as fit() takes them: under a strategy of several replicas, each input
    pipeline (one per worker) builds its own share (keras_resnet.data.pipeline: by file where the
    source has files) in per-replica batches; else one pipeline of global batches."""
    training, data = config.training, config.data

    def batches(input_context=None):
        dataset = pipeline.training_dataset(
            source,
            image_size=data.image_size,
            augmentation=data.augmentation,
            batch_size=training.batch_size,
            seed=seed,  # a resumed run continues with fresh, reproducible shuffles
            min_crop_area=data.min_crop_area,
            input_context=input_context,
        )
        if not config.runtime.data_service:
            return dataset
        # One job per input pipeline and fit(): a job serves one pipeline, from its first epoch.
        job = f"keras-resnet-{os.getpid()}-{seed}-{input_context.input_pipeline_id if input_context else 0}"
        return service.distributed(dataset, service.Address.parse(config.runtime.data_service), job_name=job)

    if strategy.num_replicas_in_sync == 1:
        return batches()
    return strategy.distribute_datasets_from_function(batches)


def _end_epoch_by_hand(model, epoch, validation, callbacks):
    """What fit() does at an epoch's end, for an epoch whose steps are all done: validation, then the
    checkpoints, history and curves (the epoch's training metrics are gone with the process that
    trained it: its row has validation metrics only)."""
    results = model.evaluate(validation, return_dict=True, verbose=0)
    logs = {f"val_{name}": float(value) for name, value in results.items()}
    for callback in callbacks:
        callback.set_model(model)
        callback.on_epoch_end(epoch, logs)


def _finish(session, *, steps, validation, started):
    """The finished run's figures: metrics.json (written last: a run with it is finished), and the
    best model's per-class results and confusion matrix on the validation split."""
    config, run, plan, source, log = session.config, session.run, session.plan, session.source, session.log
    history = run.read_history()
    final = history[-1]
    best = max(history, key=lambda row: row.get("val_accuracy", -1.0))
    rates = [row["images_per_second"] for row in history if "images_per_second" in row]
    metrics = {
        "top1": final.get("val_accuracy"),
        "top5": final.get("val_top5"),
        "loss": final.get("val_loss"),
        "best_top1": best.get("val_accuracy"),
        "best_epoch": int(best["epoch"]),
        "images_per_second": statistics.median(rates) if rates else None,
        "epochs": plan.epochs,
        "steps": steps,
        "training_seconds": round(time.time() - started, 1),
        "precision": session.precision,
        "replicas": session.replicas,
    }
    # The per-class figures and confusion of the best model (the one --evaluate, the conversion and
    # the demo take) on the validation split, before metrics.json (written last: a run with
    # metrics.json is finished, its files complete).
    best_model = run.best_model if os.path.exists(run.best_model) else run.last_model
    best = evaluation.in_float32(keras.saving.load_model(best_model, compile=False))
    probabilities, truth, losses = evaluation.predict(best, validation, verbose=0)
    figures = evaluation.results(probabilities, truth, list(source.class_names), losses=losses, penalty=evaluation.weight_penalty(best))
    written = evaluation.write_for_model(run.path, figures, model_path=best_model, data=config.data, class_names=source.class_names, split=source.validation_split_name)
    # The epoch figures above are measured in the training precision (bfloat16 on CPUs); this is the
    # saved model in float32, as --evaluate, the conversion report and the devices see it.
    metrics["best_model_top1"] = figures["top1"]
    run.write_json(run.metrics, metrics)
    shutil.rmtree(run.backup, ignore_errors=True)  # finished: last.keras holds the final state
    files.remove_partials(run.path)
    log(f"Finished {config_lib.counted(metrics['steps'], 'step')}. {_summary(metrics)} Run directory: {run}")
    log(
        f"{os.path.basename(best_model)} in float32 (what --evaluate and the conversion measure): top-1 {evaluation.percent(figures['top1'])}; "
        f"least often right {evaluation.weakest_classes(figures)}; see {', '.join(map(os.path.basename, written))}."
    )
    return run


def _report_finished(run, *, log):
    shutil.rmtree(run.backup, ignore_errors=True)  # left if the finishing process was killed after metrics.json
    try:
        with open(run.metrics) as file:
            metrics = json.load(file)
        summary = _summary(metrics)
    except (OSError, ValueError, KeyError, TypeError):
        summary = f"(its {os.path.basename(run.metrics)} cannot be read)"
    log(f"{run} has already finished: nothing to do. {summary} Pass --resume with more --epochs or --steps to train it longer.")


def _summary(metrics):
    rate = metrics.get("images_per_second")
    return (
        f"Validation: top-1 {evaluation.percent(metrics['top1'])}, "
        + (f"top-5 {evaluation.percent(metrics['top5'])}, " if metrics.get("top5") is not None else "")
        + f"loss {_number(metrics['loss'])} "
        f"(best top-1 {evaluation.percent(metrics['best_top1'])} at epoch {metrics['best_epoch']}); "
        + (f"{rate:.1f} training images/s." if rate else "training images/s not measured (no epoch of 2 or more steps).")
    )


def _storage_error(error, run, continuation):
    """An OSError while training (a full disk, a directory made read-only): one line that says what
    to free or change; the files already saved are whole (keras_resnet.files)."""
    kept = f"the same command continues from {continuation}" if continuation else "the same command starts the run again (nothing was saved yet)"
    if files.is_out_of_space(error):
        return TrainingError(f"No space left on the disk holding {run} while writing: free some space; {kept}. Every file already saved is complete.")
    where = error.filename if isinstance(error, OSError) and error.filename else str(run)
    return TrainingError(f"Training stopped at {where} ({files.describe_os_error(error)}): fix that; {kept}. Every file already saved is complete.")


def build_and_compile(config, plan, *, replicas=1):
    """The model of a RunConfig, compiled with its recipe and the plan's schedule.

    Call it under the strategy's scope. The optimizer is built for every variable.

    Args:
        config: The RunConfig, with its classes.
        plan: Its StepPlan (config.plan), whose steps the learning-rate schedule counts.
        replicas: The number of replicas in sync: above 1, batch norms are synchronized over them.

    Returns:
        The compiled Keras model (SGD with momentum, cross-entropy with the recipe's label smoothing,
        top-1 and, with more than 5 classes, top-5).
    """
    training = config.training
    model = keras_resnet.build(**config.model.build_arguments(), sync_batch_norm=replicas > 1)
    # Built for every variable, also those a frozen phase leaves alone: one optimizer state for the run.
    model.compile(
        optimizer=keras.optimizers.SGD(schedules.learning_rate_schedule(training, plan), momentum=training.momentum),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=training.label_smoothing),
        metrics=compiled_metrics(config.model.classes),
        jit_compile=config.runtime.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def compiled_metrics(classes):
    """Top-1, and top-5 where there are more than 5 classes (with fewer it is always 100 %)."""
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if evaluation.top_k_reported(classes):
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=evaluation.TOP_K, name="top5"))
    return metrics


def plan_fits(done, total, steps_per_epoch, *, breaks=()):
    """The fit() calls that take training from step `done` to `total`.

    A partial epoch (the rest of an interrupted one, or a last one cut short by --steps) gets a call
    of its own; whole epochs share one, except across a step in `breaks`, where a new call starts.
    Arithmetic, not a loop over epochs: any length (--epochs 1e15) is planned at once.

    Args:
        done: The steps already trained.
        total: The steps the run trains in all.
        steps_per_epoch: The steps of a whole epoch.
        breaks: Steps at which a new call starts (the end of a frozen phase); only those at an
            epoch's end and between `done` and `total` count.

    Returns:
        A list of (initial_epoch, epochs, steps_per_epoch) tuples, fit()'s arguments of the same
        names: epochs numbered from 0, `epochs` the epoch the call ends before.
    """
    calls = []
    ends = sorted({step for step in breaks if done < step < total and step % steps_per_epoch == 0} | {total})
    step = done
    for end in ends:
        epoch, offset = divmod(step, steps_per_epoch)
        if offset and step < end:  # the rest of an interrupted epoch
            steps = min(steps_per_epoch - offset, end - step)
            calls.append((epoch, epoch + 1, steps))
            step += steps
        whole = (end - step) // steps_per_epoch
        if whole:
            epoch = step // steps_per_epoch
            calls.append((epoch, epoch + whole, steps_per_epoch))
            step += whole * steps_per_epoch
        if step < end:  # a last epoch cut short
            calls.append((step // steps_per_epoch, step // steps_per_epoch + 1, end - step))
            step = end
    return calls


def _number(value):
    return "n/a" if value is None else f"{value:.4f}"


