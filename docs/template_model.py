"""Template for a new GAN family: copy it, rename ``Template*``, delete what you do not change.

Where the pieces go in the project (see ``docs/adding-a-gan.md``):

* the two networks → ``lightning_gans/networks/<name>.py`` (plain ``nn.Module``s, no Lightning imports);
* the ``GANModule`` subclass → ``lightning_gans/models/<name>.py``, exported from ``lightning_gans/models/__init__.py``;
* one experiment → ``experiments/<name>_<dataset>.yaml`` (``docs/template_model.yaml`` is this file's);
* tests → ``tests/test_<name>.py`` (shapes, any new loss); the generic test fits every experiment YAML.

The module docstring of a real model says *what* it is and *why*, and cites its source — the paper, and the book
chapter whose code it ports, with every place where it departs from that code (a bug fixed, an ambiguity
resolved). Architecture and hyperparameter facts belong here; measured numbers belong in ``docs/results.md``.

This template is a runnable model: ``tests/test_docs.py`` imports this file and trains it for two GAN steps on
the 2-D toy data, and fits ``docs/template_model.yaml`` through the CLI, so the template cannot rot.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_gans.models.base import GANModule

Batch = Any


# ------------------------------------------------------------------------------------------------- networks
# In the project these two classes live in ``lightning_gans/networks/<name>.py``. The docstring of each states
# its architecture layer by layer and where it comes from (book listing, paper table).


class TemplateGenerator(nn.Module):
    """z (``latent_dim``) → Dense ``hidden`` → LeakyReLU(0.2) → Dense ``out_features`` (linear: 2-D points).

    A generator exposes ``latent_dim``: ``GANModule`` checks it against its own ``latent_dim`` so the fixed-noise
    buffer and the sampled z have the size the network expects. Image generators end in tanh ([-1, 1]).
    """

    def __init__(self, latent_dim: int = 8, hidden: int = 32, out_features: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class TemplateDiscriminator(nn.Module):
    """x (``in_features``) → Dense ``hidden`` → LeakyReLU(0.2) → Dense 1: one *logit* per sample, shape (N,).

    Discriminators return logits (or raw critic scores); the sigmoid of a BCE loss lives in the loss
    (``lightning_gans.losses``), which is numerically stable on logits.
    """

    def __init__(self, in_features: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


# ------------------------------------------------------------------------------------------------- the model
class TemplateGAN(GANModule):
    """A one-generator / one-discriminator GAN on the base loop (see the module docstring).

    Networks and optimizers are init arguments, so an experiment YAML swaps them without code
    (``--model.generator.init_args.hidden=64``, ``--model.optimizer_d=…``). Everything else — the schedule
    (``n_critic``, ``update``, ``d_steps``), losses by name, critic regularisers, training tricks, EMA, the
    fixed-noise buffer, the NaN guard and the one-step-per-batch counter — comes from ``GANModule`` and is
    configured through ``**kwargs``; a model adds only what its paper adds.
    """

    # Conditional models set ``conditional = True`` and a ``num_classes`` attribute and accept
    # ``sample(n, labels=…)``: the quality callback, the class grid and ``lightning-gans sample --labels`` then
    # pass labels (see ``lightning_gans/models/cgan.py``). Voxel models set ``volumetric = True``.
    conditional = False

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        latent_dim: int = 8,
        **kwargs: Any,
    ) -> None:
        # Defaults build the paper's networks, so ``TemplateGAN()`` works in Python; under LightningCLI the YAML
        # passes them as class_path/init_args dicts and the base saves that config in every checkpoint, which is
        # what lets ``lightning-gans sample --ckpt …`` rebuild the model.
        super().__init__(
            generator=generator or TemplateGenerator(latent_dim=latent_dim),
            discriminator=discriminator or TemplateDiscriminator(),
            latent_dim=latent_dim,
            **kwargs,
        )

    # ------------------------------------------------------------------ hooks (override only what changes)
    # The three hooks below repeat the base behaviour to show their shape. A conditional GAN reads its labels
    # from ``batch`` in ``generate``/``discriminate`` and takes ``labels`` in ``sample``; an unconditional GAN
    # deletes all three.

    def real_samples(self, batch: Batch) -> torch.Tensor:
        """The real samples of a batch: ``(x, y)`` tuples by default (ToyDataModule: ``(points, mode_index)``)."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def generate(self, batch: Batch) -> torch.Tensor:
        """Fakes for a training batch: as many as the batch has reals, from fresh z."""
        return self.generator(self.sample_noise(self.real_samples(batch).shape[0]))

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """D's logits for ``x``. Every D evaluation of the loop goes through ``critic``, which adds instance noise
        and packs samples (when enabled) and then calls this hook — override this one, never ``critic``."""
        return self.discriminator(x)

    # For an unusual loss, override the step hooks instead (both return a dict whose "loss" is minimised; the
    # other entries are logged as d_*/g_* metrics):
    #
    #   def discriminator_step(self, batch, part="both"):  # part: "both" | "real" | "fake" (d_steps)
    #       ...
    #   def generator_step(self, batch):
    #       ...
    #
    # Never write ``training_step``: the base runs the schedule, toggles the optimizers, steps the schedulers and
    # counts one GAN step per batch. Models with extra networks or optimizers (SGAN, CycleGAN, Age-cGAN) show how
    # to extend ``configure_optimizers`` while reusing ``lightning_gans.models.mechanics``.

    @torch.no_grad()
    def sample(self, n: int, noise: torch.Tensor | None = None, **condition: Any) -> torch.Tensor:
        """``n`` samples in the data's format (images in [-1, 1]; here 2-D points), in eval mode.

        ``sampling_generator`` is the EMA copy of G when ``ema_decay`` is set, else G. Sample grids, FID/IS,
        ``lightning-gans sample`` and the toy metrics all draw through this method.
        """
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            z = self.sample_noise(n) if noise is None else noise.to(self.device)
            return net(z)
        finally:
            net.train(was_training)
