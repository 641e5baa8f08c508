"""The training loop: ``train(config)`` runs one ``config.TrainConfig`` to the end.

A run trains epoch by epoch through a step engine - keras_engine.py's
``models.train_step`` per step, or on JAX compiled_step.py's many steps per compiled
call, on one device or many (parallel.py) - and after every epoch logs the losses,
measures (``--eval-every``), draws the probe grid and saves a checkpoint. Of several
processes, only process 0 writes the run folder.
Around the loop:

* ``StopSignal``: Ctrl-C or SIGTERM finishes the current step and saves the exact
  position; a second one stops at once.
* ``DivergenceGuard``: a non-finite loss, or a discriminator that has won outright,
  stops the run (exit status 3) with LATEST pointing at the last good checkpoint, or
  rolls back to it with half the learning rate (``on_divergence="rollback"``).
* Exact resume: weights, optimizer states, position, probes and history come back from
  the checkpoint, and every random draw after initialisation is keyed by (seed, epoch,
  step), so a resumed run ends where an uninterrupted one would.

The networks are models.py's, the batches dataGens.py's, the run folder's files
runs.py's, the pictures figures.py's and the metrics evaluate.py's.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import NoReturn

import numpy as np
from tqdm import tqdm

import averaging
import checkpoints
import compiled_step
import dataset
import evaluate
import figures
import models
import parallel
import runs
import synth_faces
from augment import asks_auto
from cli import CommandError, UsageError, writable_folder
from config import MAX_ROLLBACKS, TrainConfig
from dataGens import AttributeSampler, DiscriminatorBatches, GeneratorBatches, sample_noise
from keras_engine import KerasEngine
from quiet_keras import keras

# Rows of the per-epoch sample grid: male/female x smiling x eyeglasses, with hair colours.
PROBE_SPECS = (
    "-Male, -Smiling, -Eyeglasses, Blond_Hair",
    "-Male, Smiling, -Eyeglasses, Black_Hair",
    "-Male, -Smiling, Eyeglasses, Brown_Hair",
    "-Male, Smiling, Eyeglasses, Blond_Hair",
    "Male, -Smiling, -Eyeglasses, Black_Hair",
    "Male, Smiling, -Eyeglasses, Brown_Hair",
    "Male, -Smiling, Eyeglasses, Gray_Hair",
    "Male, Smiling, Eyeglasses, Black_Hair",
)
PROBE_COLUMNS = 8
UNTIL_TIME_RUNS_OUT = sys.maxsize  # the last epoch of a run bounded by minutes only


def make_probes(
    sampler_data: np.ndarray, noise_dim: int, seed: int, conditional: bool = True
) -> np.ndarray:
    """Fixed grid inputs: one attribute row per probe spec, one noise per column; not
    ``conditional``, where the rows would be the same faces, a noise per face."""
    rng = np.random.default_rng([seed, 99])
    rows = [AttributeSampler("spec", sampler_data, spec).sample(1, rng)[0] for spec in PROBE_SPECS]
    attrs = np.repeat(np.stack(rows), PROBE_COLUMNS, axis=0)
    if conditional:
        noise = np.tile(sample_noise(PROBE_COLUMNS, noise_dim, rng), (len(PROBE_SPECS), 1))
    else:
        noise = sample_noise(len(attrs), noise_dim, rng)
    return np.concatenate([attrs, noise], axis=1)


class StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step and save;
    a second one stops at once (the last complete checkpoint is kept)."""

    def __init__(self) -> None:
        self.received: str | None = None

    def __enter__(self) -> StopSignal:
        self._previous = {
            s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(
            f"\n{self.received}: finishing this step and saving (again to stop at once)",
            file=sys.stderr,
        )


class DivergenceError(CommandError):
    """Training went wrong in a way more steps will not mend."""

    exit_code = 3


class DivergenceGuard:
    """Spots a run gone wrong: a non-finite loss at once, or the discriminator winning
    outright, its loss's running mean under ``floor`` for ``patience`` steps while the
    generator's climbs. ``healthy`` is False from the first step of such a stretch, so
    a checkpoint saved then is not marked GOOD."""

    def __init__(self, floor: float = 0.05, patience: int = 200, smoothing: int = 50) -> None:
        self.floor, self.patience = floor, patience
        self.d_losses: deque[float] = deque(maxlen=smoothing)
        self.g_losses: deque[float] = deque(maxlen=smoothing)
        self.won_since: int | None = None
        self.g_when_won = 0.0

    @property
    def healthy(self) -> bool:
        return self.won_since is None

    def check(self, losses: dict[str, float], step: int) -> None:
        """Raise DivergenceError; ``step`` counts steps over the whole run."""
        if not all(np.isfinite(v) for v in losses.values()):
            raise DivergenceError(f"a loss is not finite ({losses})")
        self.d_losses.append(losses["d_loss"])
        self.g_losses.append(losses["g_loss"])
        if len(self.d_losses) < self.d_losses.maxlen or np.mean(self.d_losses) >= self.floor:
            self.won_since = None
            return
        if self.won_since is None:
            self.won_since, self.g_when_won = step, float(np.mean(self.g_losses))
        g_now = float(np.mean(self.g_losses))
        if step - self.won_since >= self.patience and g_now > self.g_when_won:
            raise DivergenceError(
                f"the discriminator has won outright for {step - self.won_since} steps "
                f"(its loss under {self.floor}, the generator's from {self.g_when_won:.2f} "
                f"to {g_now:.2f})"
            )


def data_root(asked: str | None, saved: dict | None, checkpoint: Path | None) -> Path:
    """The data a run trains on: a new run's as asked (dataset.resolve_data_dir); a
    resumed run's as its checkpoint recorded it, pinned by its fingerprint. Another
    ``--data-dir`` on resume is taken only when it holds the same data (moved)."""
    recorded = saved["data"] if saved else None
    if recorded is None:  # a new run, or a checkpoint from before the data was recorded
        return dataset.resolve_data_dir(asked)
    keep = f"pass --data-dir {recorded} (or leave it out), or a new --out to train on"
    if asked is None and not Path(recorded).is_dir():
        raise UsageError(
            f"{checkpoint} was trained on {recorded}, which is gone; put the data back "
            "there, or pass --data-dir where it is now"
        )
    root = dataset.resolve_data_dir(recorded if asked is None else asked)
    moved = str(root.resolve()) != recorded
    if saved["data_fingerprint"] is None:  # recorded before fingerprints: the path decides
        if moved and Path(recorded).is_dir():
            raise UsageError(f"{checkpoint} was trained on {recorded}, not {root}; {keep} it")
        if moved:
            print(
                f"{checkpoint} was trained on {recorded}, which is gone, and predates data "
                f"fingerprints: training on {root} as asked, unchecked",
                file=sys.stderr,
            )
        return root
    if dataset.data_fingerprint(dataset.scan(root)) != saved["data_fingerprint"]:
        if moved:
            raise UsageError(
                f"--data-dir {root} holds other data than {checkpoint} was trained on "
                f"({recorded}); {keep} {root}"
            )
        raise UsageError(
            f"{recorded} changed since {checkpoint} was trained on it (other images, labels "
            "or partition); restore it, or train on it from scratch with a new --out"
        )
    if moved:
        print(f"{root}: the data {checkpoint} was trained on at {recorded}", file=sys.stderr)
    return root


class Trainer:
    """One training run: its settings, data, models, position and history on disk."""

    def __init__(self, config: TrainConfig) -> None:
        self.config, self.run_dir, self.began = config, Path(config.out), time.monotonic()
        self.checkpoint = checkpoints.find(self.run_dir) if config.resume else None
        if config.resume and self.checkpoint is None:
            print(f"--resume: no checkpoint in {self.run_dir} yet; starting fresh", file=sys.stderr)
        if self.checkpoint is None:
            runs.refuse_foreign_run(self.run_dir)
        saved = runs.read_state(self.checkpoint)["settings"] if self.checkpoint else None
        root = data_root(config.data_dir, saved, self.checkpoint)
        synthetic = synth_faces.is_synthetic(root)
        settings = config.settings(synthetic, saved, self.checkpoint)
        self.cache = dataset.build_cache(root, settings.image_size)
        self.settings = dataclasses.replace(
            settings,
            data=str(root.resolve()),
            data_fingerprint=self.cache.manifest["data_fingerprint"],
        )
        print(dataset.summary_line(self.cache), file=sys.stderr)
        if saved is None and asks_auto(config.augment):
            kind = "synthetic faces" if synthetic else "photos"
            print(f"--augment auto: {settings.augment or 'none'} on {kind}", file=sys.stderr)
        self.real = dataset.CelebaBatches(
            self.cache, "train", self.settings.batch_size, seed=self.seed, flip=True
        )
        self.attribute_rows = self.cache.attributes[self.real.rows]
        self.chief = parallel.is_chief()
        self.distribution = None
        if config.engine == "compiled":
            self.distribution = parallel.data_parallel(config.devices, self.settings.batch_size)
        if self.chief:  # after the checks of the data, so they leave no folder
            writable_folder(self.run_dir)
        # Before the models: training a missing classifier reseeds Keras.
        self.monitor = None
        if config.eval_every and self.chief:
            self.monitor = evaluate.TrainingMonitor(self.cache, seed=self.seed)
        self.steps = min(len(self.real), config.steps_per_epoch or len(self.real))
        self.guard = DivergenceGuard()
        self.best = -np.inf

    @property
    def seed(self) -> int:
        return self.settings.seed

    # -- set-up

    def start_fresh(self) -> None:
        s = self.settings
        if self.chief:
            runs.clear_history(self.run_dir)
        keras.utils.set_random_seed(self.seed)
        with models.precision(s.precision):
            self.generator = models.build_generator(
                s.image_size, s.noise_dim, s.width, s.cond_bn, s.conditional
            )
            self.discriminator = models.build_discriminator(
                s.image_size, s.width, s.spectral_norm, s.conditional
            )
            self.d_trainer = models.build_d_trainer(self.discriminator, s.augment)
            self.gan = models.build_gan(
                self.generator, self.discriminator, s.augment, s.mode_seeking
            )
        self.average = averaging.GeneratorAverage(self.generator) if s.ema_kimg else None
        models.compile_models(
            self.generator,
            self.discriminator,
            self.d_trainer,
            self.gan,
            s.lr_d,
            s.lr_g,
            s.beta1,
            s.loss,
            s.conditional,
            s.attr_weight,
        )
        self.probe_inputs = make_probes(self.attribute_rows, s.noise_dim, self.seed, s.conditional)
        self.position = (0, 0)
        self._wire()

    def restore(self, folder: Path) -> None:
        """Continue exactly where ``folder`` left off: weights, optimizer states, position,
        probes and loss history."""
        saved = runs.load_checkpoint(folder)
        self.generator, self.discriminator = saved.generator, saved.discriminator
        self.probe_inputs, state = saved.probes, saved.state
        self.average = None
        if self.settings.ema_kimg:
            self.average = averaging.GeneratorAverage(self.generator, saved.average)
        policy = self.settings.augment
        with models.precision(self.settings.precision):  # the layers the two steps add
            try:
                self.d_trainer = models.build_d_trainer(self.discriminator, policy)
            except ValueError:
                raise UsageError(
                    f"{folder}: written by an older dcgan.py whose discriminator layers are "
                    "not named; start a new run (another --out)"
                ) from None
            self.gan = models.build_gan(
                self.generator, self.discriminator, policy, self.settings.mode_seeking
            )
        loss, conditional = self.settings.loss, self.settings.conditional
        weight = self.settings.attr_weight
        models.compile_d_trainer(
            self.d_trainer, self.discriminator.optimizer, loss, conditional, weight
        )
        models.compile_gan(
            self.gan, self.generator.optimizer, self.discriminator, loss, conditional, weight
        )
        self.set_learning_rates(self.settings.lr_d, self.settings.lr_g)
        self.position = (state["epoch"], state.get("step", 0))
        self.best = -np.inf if state.get("best") is None else state["best"]
        if self.chief:
            runs.restore_history(folder, self.run_dir)
            _note_backend(folder, state["backend"])
            epoch, step = self.position
            print(
                f"resuming from {folder}: epoch {epoch + 1}, step {step + 1} is next",
                file=sys.stderr,
            )
        self._wire()

    def _wire(self) -> None:
        s = self.settings
        sampler, augmented = AttributeSampler("dataset", self.attribute_rows), bool(s.augment)
        self.d_batches = DiscriminatorBatches(
            self.real, self.generator, sampler, s.noise_dim, self.seed, augmented, s.augment_p
        )
        self.g_batches = GeneratorBatches(
            sampler,
            s.batch_size,
            self.steps,
            s.noise_dim,
            self.seed,
            augmented,
            s.augment_p,
            mode_seeking=bool(s.mode_seeking),
        )
        parts = (self.generator, self.discriminator, self.d_trainer, self.gan)
        parts += (self.d_batches, self.g_batches)
        if self.config.engine == "compiled":
            self.engine = compiled_step.CompiledStep(
                *parts,
                average=self.average,
                distribution=self.distribution,
                steps_per_call=self.config.steps_per_call,
            )
        else:
            self.engine = KerasEngine(*parts, self.average)

    @property
    def faces(self) -> keras.Model:
        """The generator that shows faces: the average, where the run keeps one."""
        return self.generator if self.average is None else self.average.model

    def _settle_average(self) -> None:
        """The average's own BatchNorm statistics, before it draws faces or is saved."""
        if self.average is not None:
            s = self.settings
            self.average.recalibrate(self.attribute_rows, s.batch_size, s.noise_dim)

    def set_learning_rates(self, lr_d: float, lr_g: float) -> None:
        self.settings = dataclasses.replace(self.settings, lr_d=lr_d, lr_g=lr_g)
        self.discriminator.optimizer.learning_rate = lr_d
        self.generator.optimizer.learning_rate = lr_g

    # -- the loop

    def run(self, last_epoch: int) -> None:
        """Train to ``last_epoch``, or until the time budget, or a stop signal."""
        slowest = 0.0  # seconds of the slowest epoch so far, saving included
        minutes = self.config.minutes
        with StopSignal() as stop:
            while self.position[0] < last_epoch:
                epoch, first_step = self.position
                budget = minutes and minutes * 60
                if budget and slowest and self._elapsed() + slowest > budget:
                    print(
                        f"--minutes {minutes:g}: stopping after epoch {epoch}; "
                        "another would end past the limit",
                        file=sys.stderr,
                    )
                    break
                started = time.perf_counter()
                rows = self._steps(epoch, first_step, last_epoch, stop)
                self.engine.sync()  # saving, grids and evaluation read Keras' copy
                if self.position[1] and self.chief:  # stopped inside the epoch
                    runs.append_rows(self.run_dir / "losses.csv", rows)
                    self._settle_average()
                    self._stopped(stop.received, self._save())
                if self.position[1]:
                    return
                self._end_epoch(epoch, rows, time.perf_counter() - started)
                slowest = max(slowest, time.perf_counter() - started)
                if stop.received:
                    if self.chief:
                        self._stopped(stop.received, checkpoints.pointed(self.run_dir, "LATEST"))
                    return
        if not self.chief:
            return
        print(
            f"done: {self.position[0]} epochs in {self.run_dir} ({self._elapsed() / 60:.1f} min). "
            "Generate with:\n"
            f'  python dcgan.py generate --checkpoint {self.run_dir} --attrs "Smiling,-Male"'
        )

    def _steps(self, epoch: int, first_step: int, last_epoch: int, stop: StopSignal) -> list:
        """Train the steps of one epoch from ``first_step``, the engine's
        ``steps_per_call`` at a time; on a stop request, leave the position inside the
        epoch."""
        self.real.set_epoch(epoch)
        self.g_batches.epoch = epoch
        rows = []
        of_last = f"/{last_epoch}" if last_epoch < UNTIL_TIME_RUNS_OUT else ""
        bar = tqdm(
            initial=first_step,
            total=self.steps,
            desc=f"epoch {epoch + 1}{of_last}",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not self.chief,
        )
        step = first_step
        while step < self.steps:
            block = range(step, min(step + self.engine.steps_per_call, self.steps))
            for done, losses in zip(block, self.engine.train(block, self._keeps(epoch, block))):
                self.guard.check(losses, epoch * self.steps + done)
                rows.append({"epoch": epoch + 1, "step": done + 1, **losses})
            step = block.stop
            bar.update(len(block))
            bar.set_postfix(
                d=f"{losses['d_loss']:.3f}",
                g=f"{losses['g_loss']:.3f}",
                acc=f"{losses['d_acc']:.2f}",
                g_attr=f"{losses['g_attr']:.3f}",
            )
            if stop.received and step < self.steps:
                bar.close()
                self.position = (epoch, step)
                return rows
        bar.close()
        self.position = (epoch + 1, 0)
        return rows

    def _keeps(self, epoch: int, steps: range) -> list[float | None]:
        """The generator average's beta at each of ``steps`` (averaging.beta)."""
        if self.average is None:
            return [None] * len(steps)
        s = self.settings
        seen = ((epoch * self.steps + step + 1) * s.batch_size for step in steps)
        return [averaging.beta(s.batch_size, images, s.ema_kimg) for images in seen]

    # -- the end of an epoch: history, metrics, samples, checkpoint, log line

    def _end_epoch(self, epoch: int, rows: list, seconds: float) -> None:
        if not self.chief:
            return
        runs.append_rows(self.run_dir / "losses.csv", rows)
        self._settle_average()
        metrics = self._measure(epoch)
        figures.plot_history(self.run_dir)
        grid = self._draw_samples(epoch)
        better = metrics is not None and metrics["attr_balanced"] > self.best
        if better:
            self.best = metrics["attr_balanced"]  # before saving: state.json records it
        folder = self._save(seconds)
        if better:
            checkpoints.point(self.run_dir, "BEST", folder)
        self._log_epoch(epoch, rows, seconds, metrics, f"{grid}, {folder}")

    def _measure(self, epoch: int) -> dict[str, float] | None:
        """The --eval-every metrics, appended to metrics.csv, in the epochs they are due."""
        if self.monitor is None or (epoch + 1) % self.config.eval_every:
            return None
        metrics = self.monitor(self.faces, self.attribute_rows, self.settings.noise_dim)
        runs.append_rows(self.run_dir / "metrics.csv", [{"epoch": epoch + 1, **metrics}])
        return metrics

    def _draw_samples(self, epoch: int) -> Path:
        grid = self.run_dir / "samples" / f"epoch-{epoch + 1:04d}.png"
        images = self.faces.predict_on_batch(self.probe_inputs)
        labels = list(PROBE_SPECS) if self.settings.conditional else [""] * len(PROBE_SPECS)
        figures.save_grid(images, labels, grid, f"epoch {epoch + 1}")
        return grid

    def _log_epoch(
        self, epoch: int, rows: list, seconds: float, metrics: dict | None, wrote: str
    ) -> None:
        mean = {k: np.mean([r[k] for r in rows]) for k in ("d_loss", "g_loss", "d_acc", "g_attr")}
        rate = len(rows) * self.settings.batch_size / seconds
        measured = ""
        if metrics is not None:
            measured = (
                f"attribute accuracy {metrics['attr_accuracy']:.1%} "
                f"(balanced {metrics['attr_balanced']:.1%})  Fréchet {metrics['frechet']:.2f} "
                f"(real {metrics['frechet_real']:.2f})  diversity {metrics['diversity']:.3f}"
            )
            if np.isfinite(metrics["fid"]):
                measured += f"  FID {metrics['fid']:.1f} (real {metrics['fid_real']:.1f})"
            measured += "\n  "
        print(
            f"epoch {epoch + 1}: d_loss {mean['d_loss']:.3f}  g_loss {mean['g_loss']:.3f}  "
            f"d_acc {mean['d_acc']:.2f}  g_attr {mean['g_attr']:.3f}  {rate:.0f} images/s\n"
            f"  {measured}-> {wrote}",
            file=sys.stderr,
        )

    def _save(self, seconds: float | None = None) -> Path:
        state = runs.checkpoint_state(self.position, self.settings, seconds, self.best)
        arrays = {"attributes": self.attribute_rows, "probes": self.probe_inputs}
        folder = runs.save_checkpoint(
            self.run_dir,
            self.position,
            self.generator,
            self.discriminator,
            arrays,
            state,
            self.config.keep,
            None if self.average is None else self.average.model,
        )
        if self.guard.healthy:
            checkpoints.point(self.run_dir, "GOOD", folder)
        return folder

    def _stopped(self, signal_name: str | None, folder: Path | None) -> None:
        epoch, step = self.position
        where = f"epoch {epoch + 1}, step {step + 1}" if step else f"epoch {epoch + 1}"
        print(
            f"{signal_name}: saved {folder}; continue from {where} with the same command "
            "and --resume",
            file=sys.stderr,
        )

    def _elapsed(self) -> float:
        return time.monotonic() - self.began


def _note_backend(folder: Path, backend: str) -> None:
    if backend != keras.backend.backend():
        print(
            f"note: {folder.name} was written on {backend}; continuing on "
            f"{keras.backend.backend()}, which does not repeat {backend} bitwise",
            file=sys.stderr,
        )


def train(config: TrainConfig) -> Path:
    """Train (or continue) the run ``config`` describes; the run folder. Raises
    DivergenceError when it diverges beyond what ``on_divergence`` mends."""
    parallel.initialize(config.coordinator, config.num_processes, config.process_id)
    config = resolved_engine(config)
    trainer = Trainer(config)
    if trainer.checkpoint is not None:
        trainer.restore(trainer.checkpoint)
    else:
        trainer.start_fresh()
    last_epoch = config.epochs or (UNTIL_TIME_RUNS_OUT if config.minutes else 1)
    if trainer.position[0] >= last_epoch:
        print(
            f"already trained {trainer.position[0]} epochs (--epochs {last_epoch}); nothing to do"
        )
        return trainer.run_dir
    rollbacks = 0
    while True:
        try:
            trainer.run(last_epoch)
            return trainer.run_dir
        except DivergenceError as why:
            good = checkpoints.pointed(trainer.run_dir, "GOOD")
            print(f"\ntraining diverged in epoch {trainer.position[0] + 1}: {why}", file=sys.stderr)
            if config.on_divergence != "rollback" or good is None or rollbacks == MAX_ROLLBACKS:
                _give_up(trainer.run_dir, good)
            rollbacks += 1
            _roll_back(trainer, good)


def resolved_engine(config: TrainConfig) -> TrainConfig:
    """``config`` with its engine and devices chosen: the compiled engine on JAX, the
    Keras one elsewhere, unless asked; one device, or all of a multi-process run's."""
    backend = keras.backend.backend()
    engine = config.engine or ("compiled" if backend == "jax" else "keras")
    if engine == "compiled" and backend != "jax":
        raise UsageError(
            f"--engine compiled runs on the JAX backend only (this is {backend}): "
            "set KERAS_BACKEND=jax, or pass --engine keras"
        )
    several = parallel.process_count() > 1
    devices = config.devices or (parallel.ALL if several else 1)
    if engine == "keras" and (devices != 1 or several):
        raise UsageError(
            "--engine keras trains on one device: several devices or processes need the "
            "compiled engine, on JAX (KERAS_BACKEND=jax)"
        )
    return dataclasses.replace(config, engine=engine, devices=devices)


def _roll_back(trainer: Trainer, good: Path) -> None:
    lr_d, lr_g = trainer.settings.lr_d / 2, trainer.settings.lr_g / 2
    print(
        f"rolling back to {good.name} with the learning rates halved to {lr_d:g} (D) and "
        f"{lr_g:g} (G)",
        file=sys.stderr,
    )
    trainer.guard = DivergenceGuard()
    trainer.restore(good)
    trainer.set_learning_rates(lr_d, lr_g)


def _give_up(run_dir: Path, good: Path | None) -> NoReturn:
    """Point LATEST at the last good checkpoint and raise DivergenceError."""
    if good is None:
        raise DivergenceError(
            "training diverged before the first checkpoint; start again with a lower --lr"
        )
    checkpoints.point(run_dir, "LATEST", good)
    raise DivergenceError(
        f"training stopped; the last good checkpoint, {good}, is now LATEST: continue with "
        "--resume and a lower --lr (or train with --on-divergence rollback)"
    )
