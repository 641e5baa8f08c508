"""Our training step as one compiled JAX call: ``dcgan.py --compiled-step`` (training.py).

``models.train_step`` makes three Keras calls per step (the generator's predict for the
discriminator's fakes, D's ``train_on_batch``, the stacked model's ``train_on_batch``),
and on a GPU each costs milliseconds of work on the host whatever the model's size
(benchmarks/NOTES.md, "GPU"). ``CompiledStep`` runs the same step - the same fakes
and batches, each model's own stateless ``train_step`` with its losses, optimizer and
metrics, D frozen in the stacked model - as one ``jax.jit`` call over the models'
variables, kept on the device between steps. The weights it trains are the
``train_on_batch`` step's (tests/test_bench.py compares them); ``sync`` writes them
back into the Keras variables, which the trainer does before it saves, draws a sample
grid or evaluates.

JAX backend only; the stacked ``train_on_batch`` design stays what every backend runs.
"""

from __future__ import annotations

import numpy as np

import averaging
import dataGens
import models
from quiet_keras import keras


class CompiledStep:
    """``step(parts, g_batch, keep)`` -> the losses ``models.train_step`` returns, with
    ``parts`` from ``DiscriminatorBatches.parts`` for D's batch and, with a generator
    ``average``, ``keep`` its update's beta (averaging.py). The first call is
    ``models.train_step`` itself, which builds the optimizers' variables; the later ones
    run compiled."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        d_trainer: keras.Model,
        gan: keras.Model,
        average: averaging.GeneratorAverage | None = None,
    ) -> None:
        self.generator, self.discriminator, self.average = generator, discriminator, average
        # (model, D's trainable flag while it trains): the flag is read when the
        # compiled step is traced, so each model sees its own split of the variables.
        self.trainers = ((d_trainer, True), (gan, False))
        self.compiled = None

    def __call__(self, parts: tuple, g_batch: tuple, keep: float | None = None) -> dict:
        noise, fake_attrs, half, params = parts
        if self.compiled is None:
            d_batch = dataGens.with_fakes(parts, self.generator)
            (d_trainer, _), (gan, _) = self.trainers
            losses = models.train_step(self.discriminator, d_trainer, gan, d_batch, g_batch)
            if self.average is not None:
                self.average.update(self.generator, keep)
            self._compile()
            return losses
        import jax

        # The fakes are made on the device; their rows are filled in there.
        slot = np.zeros((len(noise), *self.generator.output_shape[1:]), np.float32)
        d_batch = dataGens.discriminator_batch(half, slot, fake_attrs, params)
        keep = np.float32(0 if keep is None else keep)  # an array: no retrace per value
        self.values, logs = self.compiled(self.values, noise, d_batch, g_batch, keep)
        d_logs, g_logs = jax.device_get(logs)  # one copy back per step, as the trainer reads
        return models.step_losses(d_logs, g_logs, d_batch[2])

    def sync(self) -> None:
        """Writes the device values back into the Keras variables, as copies: Keras'
        own compiled functions (predict's too) donate the buffers they are given, and
        this step donates its own, so the two must never share one."""
        if self.compiled is not None:
            import jax.numpy as jnp

            for variable, value in zip(self.variables, self.values):
                variable.assign(jnp.array(value, copy=True))

    def _compile(self) -> None:
        import jax
        import jax.numpy as jnp

        unique = {}
        for model, d_trainable in self.trainers:
            for group in self._groups(model, d_trainable):
                unique.update((id(v), v) for v in group)
        models.set_trainable(self.discriminator, True)
        if self.average is not None:
            unique.update((id(v), v) for v in self.average.model.trainable_variables)
        self.variables = list(unique.values())
        self.slot = {key: i for i, key in enumerate(unique)}
        self.values = [jnp.array(v.value) for v in self.variables]  # copies: donated below
        self.compiled = jax.jit(self._step, donate_argnums=0)

    def _groups(self, model: keras.Model, d_trainable: bool) -> tuple[list, ...]:
        """The variable lists of a Keras JAX train_step's state, in its order."""
        models.set_trainable(self.discriminator, d_trainable)
        return (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )

    def _step(self, values: list, noise, d_batch: tuple, g_batch: tuple, keep):
        import jax.numpy as jnp

        values = list(values)

        def pick(variables: list) -> list:
            return [values[self.slot[id(v)]] for v in variables]

        g = self.generator
        fakes, _ = g.stateless_call(
            pick(g.trainable_variables), pick(g.non_trainable_variables), noise, training=False
        )
        (images, *others), targets, weights = d_batch
        images = jnp.asarray(images).at[len(images) - len(fakes) :].set(fakes)
        data = (((images, *others), targets, weights), (*g_batch, None))
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
            new = averaging.averaged(pick(averages), pick(g.trainable_variables), keep)
            for variable, value in zip(averages, new):
                values[self.slot[id(variable)]] = value
        return values, logs
