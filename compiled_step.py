"""The JAX step engine: many training steps per compiled call, the images kept on the
device (``dcgan.py --engine compiled``, the default on JAX).

``models.train_step`` makes three Keras calls per step (the generator's predict for the
discriminator's fakes, D's ``train_on_batch``, the stacked model's ``train_on_batch``),
and on a GPU each costs milliseconds of work on the host whatever the model's size
(benchmarks/NOTES.md, "GPU"). ``CompiledStep`` runs the same step - the same fakes and
batches, each model's own stateless ``train_step`` with its losses, optimizer and
metrics, D frozen in the stacked model, the generator average's update - inside one
``jax.jit`` call that scans over ``steps_per_call`` steps:

* the weights, optimizer states and metrics stay on the device between calls;
* the data's images are copied to the device once (when they fit in a quarter of its
  memory; else each call's images travel with it) and each step gathers and mirrors
  its batch there;
* the host draws the rest of each step from the run's seeded generators (the rows,
  flips, noise and attributes, about 100 KB a step at batch 64), exactly as the Keras
  engine does, and sends a call's worth in one transfer; the losses come back as one
  block for the progress bar, losses.csv and the divergence guard.

With a ``parallel.data_parallel`` distribution the batch axis is split over its devices
and the weights replicated; the program is the one-device program. The weights it
trains are the Keras engine's (tests/test_engines.py); ``sync`` writes them back into
the Keras variables, which the trainer does before it saves, draws a sample grid or
evaluates. JAX backend only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

import averaging
import dataGens
import models
import pixels
from keras_engine import KerasEngine
from quiet_keras import keras

STEPS_PER_CALL = 16
DEVICE_SHARE = 4  # the images stay on the device when they take at most 1/4 of its memory


class CompiledStep(KerasEngine):
    """``train(steps, keeps)`` -> the losses ``models.train_step`` returns for each step,
    ``steps_per_call`` at a time, compiled."""

    def __init__(
        self,
        *models_and_batches,
        average: averaging.GeneratorAverage | None = None,
        distribution: keras.distribution.Distribution | None = None,
        steps_per_call: int = STEPS_PER_CALL,
    ) -> None:
        super().__init__(*models_and_batches, average)
        self.distribution, self.steps_per_call = distribution, steps_per_call
        # (model, D's trainable flag while it trains): the flag is read when the step
        # is traced, so each model sees its own split of the variables.
        self.trainers = ((self.d_trainer, True), (self.gan, False))
        self.compiled = None

    def train(self, steps: Sequence[int], keeps: Sequence[float | None]) -> list[dict]:
        import jax

        losses = []
        if self.compiled is None:
            self._compile(steps[0])
        for start in range(0, len(steps), self.steps_per_call):
            block = slice(start, start + self.steps_per_call)
            pool, draws = self._inputs(steps[block], keeps[block])
            self.values, out = self.compiled(self.values, pool, draws)
            d_logs, g_logs, weights = jax.device_get(out)  # one copy back per call
            for k in range(len(steps[block])):
                pick = (jax.tree.map(lambda a, k=k: a[k], tree) for tree in (d_logs, g_logs))
                losses.append(models.step_losses(*pick, {n: w[k] for n, w in weights.items()}))
        return losses

    def sync(self) -> None:
        """Writes the device values back into the Keras variables, as host copies: the
        compiled call donates its buffers, and Keras' own compiled functions (predict's
        too) donate theirs, so the two must never share one."""
        if self.compiled is not None:
            for variable, value in zip(self.variables, self.values):
                variable.assign(np.array(value))

    # -- set-up

    def _compile(self, step: int) -> None:
        import jax

        batches = (self.d_batches[step], (*self.g_batches[step], None))
        for (model, d_trainable), batch in zip(self.trainers, batches):
            models.set_trainable(self.discriminator, d_trainable)
            # What a model's first train_on_batch builds (its optimizer's variables for
            # the variables it trains, its metrics'), without the step: the first step
            # of a run, and of a resumed one, is then compiled like every other.
            model._symbolic_build(data_batch=batch)
        unique = {}
        for model, d_trainable in self.trainers:
            for group in self._groups(model, d_trainable):
                unique.update((id(v), v) for v in group)
        models.set_trainable(self.discriminator, True)
        if self.average is not None:
            unique.update((id(v), v) for v in self.average.model.trainable_variables)
        self.variables = list(unique.values())
        self.slot = {key: i for i, key in enumerate(unique)}
        if self.distribution is None:
            self.distribution = keras.distribution.DataParallel(devices=jax.devices()[:1])
        self.replicated = self._layout(0)
        self.values = [self._place(np.array(v.value), self.replicated) for v in self.variables]
        images = self.d_batches.real.cache.images
        self.pool = self._place(np.asarray(images), self.replicated) if _fits(images) else None
        self.compiled = jax.jit(
            self._block, donate_argnums=0, out_shardings=(self.replicated, self.replicated)
        )

    def _groups(self, model: keras.Model, d_trainable: bool) -> tuple[list, ...]:
        """The variable lists of a Keras JAX train_step's state, in its order."""
        models.set_trainable(self.discriminator, d_trainable)
        return (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )

    def _layout(self, ndim: int):
        """Arrays of steps x batch x ...: split along the batch axis; the rest replicated."""
        axes = [None] * ndim
        if ndim >= 2:
            axes[1] = self.distribution.batch_dim_name
        layout = keras.distribution.TensorLayout(axes, self.distribution.device_mesh)
        return layout.backend_layout

    @staticmethod
    def _place(array: np.ndarray, sharding):
        """A global array from a host array every process holds whole."""
        import jax

        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    def _inputs(self, steps: Sequence[int], keeps: Sequence[float | None]) -> tuple:
        """One call's image pool and its steps' draws, stacked along a first axis and
        placed on the devices."""
        import jax

        real = self.d_batches.real
        draws = []
        for step, keep in zip(steps, keeps, strict=True):
            noise, fake_attrs, (_, attrs, wrong, mismatch), params = self.d_batches.parts(
                step, images=False
            )
            g_inputs, g_targets = self.g_batches[step]
            draws.append(
                {
                    "rows": real.batch_rows(step).astype(np.int32),
                    "flips": real.batch_flips(step),
                    "noise": noise,
                    "real": (attrs, wrong, mismatch),
                    "fakes": (fake_attrs, params),
                    "g": (g_inputs, g_targets),
                    "keep": np.float32(0 if keep is None else keep),
                }
            )
        draws = jax.tree.map(lambda *leaves: np.stack(leaves), *draws)
        pool = self.pool
        if pool is None:  # this call's images only, in the order its steps read them
            rows = draws["rows"]
            pool = self._place(real.cache.images[np.sort(rows.ravel())], self.replicated)
            draws["rows"] = np.searchsorted(np.sort(rows.ravel()), rows).astype(np.int32)
        draws = jax.tree.map(lambda a: self._place(a, self._layout(a.ndim)), draws)
        return pool, draws

    # -- the compiled call

    def _block(self, values: list, pool, draws: dict):
        import jax

        def step(values, draw):
            return self._step(values, pool, draw)

        values, (d_logs, g_logs, weights) = jax.lax.scan(step, values, draws)
        return values, (d_logs, g_logs, weights)

    def _step(self, values: list, pool, draw: dict):
        import jax.numpy as jnp

        values = list(values)

        def pick(variables: list) -> list:
            return [values[self.slot[id(v)]] for v in variables]

        images = pool[draw["rows"]]
        images = jnp.where(draw["flips"][:, None, None, None], images[:, :, ::-1], images)
        g = self.generator
        fakes, _ = g.stateless_call(
            pick(g.trainable_variables),
            pick(g.non_trainable_variables),
            draw["noise"],
            training=False,
        )
        half = (pixels.to_float(images), *draw["real"])
        d_batch = dataGens.discriminator_batch(half, fakes, *draw["fakes"], xp=jnp)
        data = (d_batch, (*draw["g"], None))
        logs = []
        for (model, d_trainable), batch in zip(self.trainers, data):
            groups = self._groups(model, d_trainable)
            trainable, non_trainable, optimizer, metrics = (pick(group) for group in groups)
            # train_on_batch resets the metrics before every call: theirs start at zero.
            metrics = [jnp.zeros_like(v) for v in metrics]
            model_logs, state = model.train_step(
                (trainable, non_trainable, optimizer, metrics), batch
            )
            logs.append(model_logs)
            for group, new in zip(groups, state):
                for variable, value in zip(group, new):
                    values[self.slot[id(variable)]] = value
        models.set_trainable(self.discriminator, True)
        if self.average is not None:
            averages = self.average.model.trainable_variables
            new = averaging.averaged(pick(averages), pick(g.trainable_variables), draw["keep"])
            for variable, value in zip(averages, new):
                values[self.slot[id(variable)]] = value
        weights = {name: d_batch[2][name] for name in ("mismatch", "attributes")}
        return values, (*logs, weights)


def _fits(images: np.ndarray) -> bool:
    """Whether the data's images take at most 1/DEVICE_SHARE of every process's first
    device's memory (the machine's, on the CPU)."""
    import jax
    from jax.experimental import multihost_utils

    stats = jax.local_devices()[0].memory_stats() or {}
    limit = stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fits = np.array(images.nbytes * DEVICE_SHARE <= limit)
    if jax.process_count() == 1:
        return bool(fits)
    # Every process must compile the same program, so one host short of memory decides.
    return bool(multihost_utils.process_allgather(fits).all())
