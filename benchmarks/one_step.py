"""The "one compiled step" lever: our training step as a single jax.jit call.

dcgan.train_step makes three Keras calls per step (the generator's predict for the
discriminator's fakes, D's ``train_on_batch``, the stacked model's
``train_on_batch``), and on a GPU each costs milliseconds of work on the host
whatever the model's size (benchmarks/NOTES.md, "GPU"). This does the same step - the
same fakes and batches, each model's own stateless ``train_step`` with its losses,
optimizer and metrics, D frozen in the stacked model - in one compiled function over
the models' variables, kept on the device between steps. Only the losses come back
each step, as the trainer reads them.

It bends the ``train_on_batch`` design, so it is a lever measured by bench.py
(``--only levers``), not what dcgan.py runs. JAX backend only.
"""

from __future__ import annotations

import bench
import numpy as np

import dataGens
import dcgan
from quiet_keras import keras


class OneStep:
    """A step callable like bench's other lever steps, with ``parts`` from
    ``DiscriminatorBatches.parts`` for D's batch. The first call is dcgan.train_step
    itself, which builds the optimizers' variables; the later ones run compiled."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model) -> None:
        if keras.backend.backend() != "jax":
            raise bench.UnsupportedError("the one compiled step is written with jax.jit")
        self.generator, self.discriminator = generator, discriminator
        self.compiled = None

    def __call__(self, discriminator, d_trainer, gan, parts, g_batch) -> dict:
        """One step; its losses, read back as the trainer reads them every step (the
        first step's as train_step returns them, the others per model)."""
        noise, fake_attrs, half = parts
        if self.compiled is None:
            fakes = np.asarray(self.generator.predict_on_batch(noise))
            d_batch = dataGens.discriminator_batch(half, fakes, fake_attrs)
            logs = dcgan.train_step(discriminator, d_trainer, gan, d_batch, g_batch)
            self._compile(d_trainer, gan)
            return logs
        # The fakes are made on the device; their rows are filled in there.
        slot = np.zeros((len(noise), *self.generator.output_shape[1:]), np.float32)
        d_batch = dataGens.discriminator_batch(half, slot, fake_attrs)
        self.values, logs = self.compiled(self.values, noise, d_batch, g_batch)
        return {
            name: {k: float(v) for k, v in model_logs.items()} for name, model_logs in logs.items()
        }

    def _compile(self, d_trainer: keras.Model, gan: keras.Model) -> None:
        import jax
        import jax.numpy as jnp

        # (model, D's trainable flag while it trains): the flag is read when the
        # compiled step is traced, so each model sees its own variables' split.
        self.trainers = ((d_trainer, True), (gan, False))
        unique = {}
        for model, d_trainable in self.trainers:
            for group in self._groups(model, d_trainable):
                unique.update((id(v), v) for v in group)
        dcgan.set_trainable(self.discriminator, True)
        self.variables = list(unique.values())
        self.slot = {key: i for i, key in enumerate(unique)}
        self.values = [jnp.array(v.value) for v in self.variables]  # copies: donated below
        self.compiled = jax.jit(self._step, donate_argnums=0)

    def _groups(self, model: keras.Model, d_trainable: bool) -> tuple[list, ...]:
        """The variable lists of a Keras JAX train_step's state, in its order."""
        dcgan.set_trainable(self.discriminator, d_trainable)
        return (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )

    def _step(self, values: list, noise, d_batch: tuple, g_batch: tuple):
        import jax.numpy as jnp

        values = list(values)

        def pick(variables: list) -> list:
            return [values[self.slot[id(v)]] for v in variables]

        (d_trainer, _), (gan, _) = self.trainers
        g = self.generator
        fakes, _ = g.stateless_call(
            pick(g.trainable_variables), pick(g.non_trainable_variables), noise, training=False
        )
        (images, attrs, wrong), targets, weights = d_batch
        images = jnp.asarray(images).at[len(images) - len(fakes) :].set(fakes)
        data = {
            d_trainer.name: ((images, attrs, wrong), targets, weights),
            gan.name: (*g_batch, None),
        }
        logs = {}
        for model, d_trainable in self.trainers:
            groups = self._groups(model, d_trainable)
            trainable, non_trainable, optimizer, metrics = (pick(group) for group in groups)
            # train_on_batch resets the metrics before every call: theirs start at zero.
            metrics = [jnp.zeros_like(v) for v in metrics]
            state = (trainable, non_trainable, optimizer, metrics)
            logs[model.name], state = model.train_step(state, data[model.name])
            for group, new in zip(groups, state):
                for variable, value in zip(group, new):
                    values[self.slot[id(variable)]] = value
        dcgan.set_trainable(self.discriminator, True)
        return values, logs

    def sync(self) -> None:
        """Writes the device values back into the Keras variables."""
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)
