"""Train the report's models and save each run to the artifact store.

    python -m core.train --model all                 # the report's protocol, seed 0
    python -m core.train --model baseline --epochs 1 --train-limit 2000   # a quick demo run

The trainer streams a JSON-lines live log into the run as it goes (step records every
``--log-every`` batches, one record per epoch), which both the progress bar here and the
dashboard's Training page follow. The test set is evaluated after every epoch as held-out
monitoring only: nothing is selected on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core import artifacts, live, onnxexport
from core.compute import compute_settings, configure_compute, library_versions
from core.data import Dataset, DatasetError, load_dataset, normalise, one_hot
from core.manifest import (
    Compute,
    DatasetRecord,
    Machine,
    Manifest,
    Protocol,
    TestMetrics,
    TrainMetrics,
)
from core.metrics import headline
from core.models import MODEL_NAMES, REGISTRY_ERROR, get_spec

REPORT_EPOCHS = 10
REPORT_BATCH_SIZE = 32
MAX_EPOCHS = 1000
EVAL_BATCH_SIZE = 1000  # evaluation batch size changes speed, not results
LR = 0.001  # Adam's default, the report's optimizer


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; defaults are the report's protocol."""

    model: str
    epochs: int = REPORT_EPOCHS
    batch_size: int = REPORT_BATCH_SIZE
    seed: int = 0
    train_limit: int | None = None
    log_every: int = 50

    @property
    def follows_report(self) -> bool:
        return (
            self.epochs == REPORT_EPOCHS
            and self.batch_size == REPORT_BATCH_SIZE
            and self.train_limit is None
        )

    def validate(self, n_train: int = 60_000) -> None:
        """Raise ValueError with a clear message for settings that make no sense."""
        get_spec(self.model)
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise ValueError(f"epochs must be between 1 and {MAX_EPOCHS}, not {self.epochs}")
        if self.train_limit is not None and not 1 <= self.train_limit <= n_train:
            raise ValueError(f"train limit must be between 1 and {n_train}, not {self.train_limit}")
        images = self.train_limit or n_train
        if not 1 <= self.batch_size <= images:
            raise ValueError(
                f"batch size must be between 1 and the number of training images ({images}), "
                f"not {self.batch_size}"
            )
        if self.seed < 0 or self.seed >= 2**31:
            raise ValueError(f"seed must be between 0 and 2**31 - 1, not {self.seed}")
        if self.log_every < 1:
            raise ValueError(f"log interval must be at least 1 batch, not {self.log_every}")


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived: the run is abandoned cleanly and nothing is published."""


class _StopFlag:
    def __init__(self) -> None:
        self.set = False

    def __call__(self, signum, frame) -> None:
        self.set = True


def _make_callback(log: live.LiveLog, config: TrainConfig, steps_per_epoch: int, stop: _StopFlag):
    import keras

    class LiveLogCallback(keras.callbacks.Callback):
        """Writes step and epoch records; turns a stop request into a clean end of training.

        Keras calls it once per execution of ``steps_per_execution`` batches, with ``batch`` the
        execution's last batch (past the epoch's end for a short last execution); the log
        interval is a multiple of the execution, so records fall on the same steps as before.
        """

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_start = self.window_start = time.perf_counter()
            self.window_end = 0  # batches of this epoch done at the window's start

        def on_train_batch_end(self, batch, logs=None):
            if stop.set:
                self.model.stop_training = True
            done = min(batch + 1, steps_per_epoch)
            if done % config.log_every and done != steps_per_epoch:
                return
            now = time.perf_counter()
            images = (done - self.window_end) * config.batch_size
            log.step(
                epoch=self.epoch + 1,
                step=self.epoch * steps_per_epoch + done,
                total_steps=config.epochs * steps_per_epoch,
                loss=logs["loss"],  # running mean over the epoch so far
                accuracy=logs["accuracy"],
                images_per_s=images / max(now - self.window_start, 1e-9),
            )
            self.window_start, self.window_end = now, done

        def on_epoch_end(self, epoch, logs=None):
            log.epoch(
                epoch=epoch + 1,
                loss=logs["loss"],
                accuracy=logs["accuracy"],
                test_loss=logs["val_loss"],  # held-out monitoring only
                test_accuracy=logs["val_accuracy"],
                seconds=time.perf_counter() - self.epoch_start,
            )

    return LiveLogCallback()


# ----------------------------------------------------------------------------------------------
# Compute settings: how TensorFlow runs the same protocol faster on a small CPU (bench/results.md).
def train(
    config: TrainConfig,
    data: Dataset | None = None,
    root: Path | str | None = None,
    make_default: bool | None = None,
    listener: Callable[[dict], None] | None = None,
) -> Path:
    """Train one model, publish the run, and return its folder.

    ``make_default``: True/False forces the choice; None (auto) makes the new run the model's
    default if it follows the report's protocol or if the model has no usable default yet.
    Raises TrainingBusy if the model is already being trained, StopRequested on SIGTERM/SIGINT.
    """
    data = data or load_dataset()
    config.validate(len(data.x_train))
    spec = get_spec(config.model)
    stop = _StopFlag()
    old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with artifacts.training_lock(config.model, root):
            artifacts.remove_stale_tmp(config.model, root)
            return _train_locked(config, spec, data, root, make_default, listener, stop)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _train_locked(config, spec, data, root, make_default, listener, stop) -> Path:
    import keras

    compute = compute_settings(config.log_every)
    run_id = artifacts.new_run_id(config.seed)
    status = {"pid": os.getpid(), "run_id": run_id, "config": asdict(config)}
    artifacts.write_training_status(config.model, {**status, "state": "training"}, root)
    started = datetime.now(UTC)
    with artifacts.RunWriter(config.model, run_id, root) as writer:
        log = live.LiveLog(writer.file(artifacts.LIVE_LOG), listener)
        try:
            x_train = normalise(data.x_train[: config.train_limit])  # (n, 28, 28, 1)
            y_train = one_hot(data.y_train[: config.train_limit])  # (n, 10)
            x_test, y_test = normalise(data.x_test), one_hot(data.y_test)
            steps = -(-len(x_train) // config.batch_size)
            log.start(model=config.model, run_id=run_id, config=asdict(config),
                      train_images=len(x_train), test_images=len(x_test),
                      steps_per_epoch=steps, follows_report=config.follows_report)  # fmt: skip
            keras.utils.set_random_seed(config.seed)
            model = spec.build()
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=LR),
                loss="categorical_crossentropy",
                metrics=["accuracy"],
                steps_per_execution=compute["steps_per_execution"],  # same steps, fewer calls
            )
            if stop.set:
                raise StopRequested
            fit = model.fit(
                x_train,
                y_train,
                epochs=config.epochs,
                batch_size=config.batch_size,
                shuffle=True,
                validation_data=(x_test, y_test),
                validation_batch_size=EVAL_BATCH_SIZE,
                callbacks=[_make_callback(log, config, steps, stop)],
                verbose=0,
            )
            if stop.set:
                raise StopRequested
            y_prob = model.predict(x_test, batch_size=EVAL_BATCH_SIZE, verbose=0)  # (n, 10)
            test = headline(data.y_test, y_prob)
            epochs = [
                {
                    "epoch": i + 1,
                    "loss": fit.history["loss"][i],
                    "accuracy": fit.history["accuracy"][i],
                    "test_loss": fit.history["val_loss"][i],
                    "test_accuracy": fit.history["val_accuracy"][i],
                }
                for i in range(len(fit.history["loss"]))
            ]
            seconds = [r["seconds"] for r in live.epoch_records(writer.file(artifacts.LIVE_LOG))]
            for record, sec in zip(epochs, seconds, strict=True):
                record["seconds"] = sec
            writer.save_model(model)
            # model.onnx for the dashboard's forward passes; a failed export keeps the training
            exported, onnx_missing = onnxexport.export_for_training(
                writer.file(artifacts.MODEL_FILE), x_test[: onnxexport.CHECK_IMAGES]
            )
            if exported is not None:
                writer.save_onnx(exported.data)
            writer.save_predictions(data.y_test, y_prob)
            writer.save_history(epochs)
            log.end("done", test=test)
        except BaseException as exc:
            _record_end(config.model, status, exc, root, log)
            raise
        log.close()
        finished = datetime.now(UTC)
        manifest = Manifest(
            model=config.model,
            run_id=run_id,
            display_name=spec.display_name,
            params=int(model.count_params()),
            protocol=Protocol(
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=config.seed,
                optimizer="Adam",
                learning_rate=LR,
                loss="categorical_crossentropy",
                preprocessing="pixels / 255, one-hot labels",
                train_images=len(x_train),
                train_limit=config.train_limit,
                follows_report=config.follows_report,
                test_evaluation="after every epoch, held-out monitoring only",
            ),
            versions=library_versions(),
            compute=Compute(**compute),  # speed only: the protocol above is unchanged
            machine=Machine(platform=platform.platform(), cpus=os.cpu_count()),
            dataset=DatasetRecord(source=data.source, sha256=data.sha256),
            started=started.isoformat(timespec="seconds"),
            finished=finished.isoformat(timespec="seconds"),
            seconds_per_epoch=seconds,
            train_metrics=TrainMetrics(loss=epochs[-1]["loss"], accuracy=epochs[-1]["accuracy"]),
            test_metrics=TestMetrics(**test),
            onnx=exported.record if exported is not None else None,
            onnx_missing=onnx_missing,
        )
        try:
            path = writer.commit(manifest)
        except BaseException as exc:  # disk full, read-only: nothing is published
            _record_end(config.model, status, exc, root)
            raise
    # The run is published: a full disk from here on may only keep the old default.
    try:
        artifacts.write_training_status(config.model, {**status, "state": "done"}, root)
        if make_default is None:
            make_default = config.follows_report or artifacts.default_run_id(
                config.model, root
            ) in (None, run_id)
        if make_default:
            artifacts.set_default(config.model, run_id, root)
    except OSError as exc:
        print(
            f"warning: the {config.model} run was saved in {path}, but it could not be made "
            f"the default ({exc}); the previous default stays. Choose it on the Training page "
            "once the disk has room.",
            file=sys.stderr,
        )
    return path


def _record_end(model: str, status: dict, exc: BaseException, root, log=None) -> None:
    """Note in the live log and the training status how a run ended early, if the disk still
    lets us: a failure to note it must not hide the error that ended the run."""
    state = "stopped" if isinstance(exc, (StopRequested, KeyboardInterrupt)) else "failed"
    error = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else repr(exc)
    if log is not None:
        with contextlib.suppress(OSError, ValueError):
            log.end(state, error=error[:500])
        with contextlib.suppress(OSError):
            log.close()
    with contextlib.suppress(OSError):
        artifacts.write_training_status(
            model, {**status, "state": state, "error": error[:500]}, root
        )


# ----------------------------------------------------------------------------------------------
# Command line


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**31 - 1, got {value}")
    return value


MAX_SEEDS = 100


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` and mixtures like ``"0-2,9"`` work too."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not part or (dash and not high):
            raise argparse.ArgumentTypeError(f"expected seeds like 0-4 or 0,3,7, got {text!r}")
        first, last = _seed(low), _seed(high) if dash else None
        if last is not None and last < first:
            raise argparse.ArgumentTypeError(f"seed range {part!r} runs backwards")
        seeds += range(first, (first if last is None else last) + 1)
        if len(seeds) > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds at once, got more")
    return sorted(set(seeds))


def existing_run(config: TrainConfig, root: Path | str | None = None) -> str | None:
    """The id of a finished, intact run of ``config`` (same model, seed, epochs, batch size and
    training subset), if there is one: ``--seeds`` skips it."""
    want = (config.seed, config.epochs, config.batch_size, config.train_limit)
    for info in artifacts.list_runs(config.model, root):
        p = info.manifest.protocol if info.ok else None
        if p and (p.seed, p.epochs, p.batch_size, p.train_limit) == want:
            return info.run_id
    return None


def _sweep_default(asked: bool | None, config: TrainConfig, first_seed: int, root) -> bool | None:
    """Whether a run of a seed sweep becomes the default: --make-default gives it to the first
    seed's run, --no-default to none; otherwise only a model without a default gets one."""
    if asked is not None:
        return asked and config.seed == first_seed
    return None if artifacts.default_run_id(config.model, root) is None else False


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train the report's CNNs on Fashion-MNIST and save each run under --out.",
    )
    p.add_argument(
        "--model",
        default="all",
        choices=[*MODEL_NAMES, "all"],
        help="which model to train (default: all)",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=REPORT_EPOCHS,
        help=f"epochs (report: {REPORT_EPOCHS}; at most {MAX_EPOCHS})",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=REPORT_BATCH_SIZE,
        help=f"batch size (report: {REPORT_BATCH_SIZE})",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, default=None, help="random seed (default: 0)")
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        metavar="LIST",
        help="train one run per seed, e.g. 0-4 or 0,3,7; a seed that already has a finished "
        "run with the same settings is skipped; the defaults are changed only by "
        "--make-default (to the lowest seed's run) or when a model has none",
    )
    p.add_argument(
        "--train-limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on the first N images only (quick runs; not the report's protocol)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="artifacts folder (default: $FMNIST_ARTIFACTS or ./artifacts)",
    )
    p.add_argument(
        "--log-every",
        type=_positive_int,
        default=50,
        metavar="BATCHES",
        help="write a live-log step record every this many batches (default: 50)",
    )
    default = p.add_mutually_exclusive_group()
    default.add_argument(
        "--make-default",
        dest="make_default",
        action="store_true",
        default=None,
        help="make the new run the dashboard's default",
    )
    default.add_argument(
        "--no-default",
        dest="make_default",
        action="store_false",
        help="never change the default (by default, a run that follows the "
        "report's protocol becomes the default)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p  # fmt: skip


class _ProgressBar:
    """A tqdm bar fed by live-log records, so it shows exactly what the log says."""

    def __init__(self, label: str):
        from tqdm import tqdm

        self.tqdm, self.bar, self.label = tqdm, None, label

    def __call__(self, record: dict) -> None:
        kind = record["type"]
        if kind == "start":
            total = record["steps_per_epoch"] * record["config"]["epochs"]
            self.bar = self.tqdm(total=total, desc=self.label, unit="step", dynamic_ncols=True)
        elif kind == "step" and self.bar is not None:
            self.bar.update(record["step"] - self.bar.n)
            self.bar.set_postfix(
                epoch=record["epoch"], loss=f"{record['loss']:.4f}",
                acc=f"{record['accuracy']:.4f}", img_s=f"{record['images_per_s']:.0f}",
            )  # fmt: skip
        elif kind == "epoch" and self.bar is not None:
            self.bar.write(
                f"{self.label} epoch {record['epoch']}: loss {record['loss']:.4f} "
                f"acc {record['accuracy']:.4f} | held-out test loss {record['test_loss']:.4f} "
                f"acc {record['test_accuracy']:.4f} | {record['seconds']:.1f} s"
            )
        elif kind == "end" and self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if REGISTRY_ERROR:  # a broken $FMNIST_EXTRA_MODELS: say why rather than drop its models
        parser.error(REGISTRY_ERROR)
    args = parser.parse_args(argv)
    root = artifacts.artifacts_root(args.out)
    problem = artifacts.check_free_space(root)  # before check_writable, which makes the folder
    if problem:
        parser.error(f"{problem}, or train into a folder on another disk with --out")
    problem = artifacts.check_writable(root)
    if problem:
        parser.error(problem)
    names = MODEL_NAMES if args.model == "all" else (args.model,)
    seeds = args.seeds or [0 if args.seed is None else args.seed]
    configs = [
        TrainConfig(name, args.epochs, args.batch_size, seed, args.train_limit, args.log_every)
        for seed in seeds
        for name in names
    ]  # seed by seed, so an interrupted sweep leaves whole pairs to compare
    for config in configs:
        try:
            config.validate()
        except ValueError as exc:
            parser.error(str(exc))
    try:
        data = load_dataset()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Fashion-MNIST from {data.source}", file=sys.stderr)
    if not configs[0].follows_report:
        print("note: these settings do not follow the report's protocol", file=sys.stderr)
    for config in configs:
        make_default = args.make_default
        if args.seeds:
            done = existing_run(config, root)
            if done:
                print(f"{config.model} seed {config.seed}: already trained ({done}), skipped",
                      file=sys.stderr)  # fmt: skip
                continue
            make_default = _sweep_default(args.make_default, config, seeds[0], root)
        listener = None if args.quiet else _ProgressBar(f"{config.model} seed {config.seed}")
        try:
            path = train(config, data, root, make_default, listener)
        except artifacts.TrainingBusy as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        except (StopRequested, KeyboardInterrupt):
            print(f"{config.model}: stopped; nothing was saved, earlier runs are untouched",
                  file=sys.stderr)  # fmt: skip
            return 130
        except OSError as exc:
            print(f"error: could not save the {config.model} run ({exc}). Nothing of it was "
                  "published; earlier runs and the default are untouched. Free some disk space "
                  "or make the artifacts folder writable, then train again.",
                  file=sys.stderr)  # fmt: skip
            return 4
        manifest = artifacts.read_manifest(path)
        test = manifest.test_metrics
        print(
            f"{config.model}: test accuracy {test.accuracy:.4f}, loss {test.loss:.4f}, "
            f"{np.mean(manifest.seconds_per_epoch):.1f} s/epoch -> {path}"
        )
    return 0


if __name__ == "__main__":
    configure_compute()  # the trainer's own process: before anything imports TensorFlow
    sys.exit(main())
