"""Discriminator-side training tricks that ``GANModule`` switches on from its config (all off by default).

* **One-sided label smoothing** (Salimans et al. 2016, "Improved Techniques for Training GANs", §3.4;
  GANs in Action ch. 5): D's target for real samples becomes 1 − s (s = 0.1 → 0.9); fake targets stay 0
  (smoothing them too moves D's optimum towards the fakes, which Salimans et al. warn against).
* **Noisy (soft) labels** (the anime DCGAN seed of GAN Projects ch. 4): per-sample targets
  real ~ U(1 − w, 1], fake ~ U[0, w) with w = 0.2, drawn fresh every D step.
* **Instance noise** (Sønderby et al. 2017, arXiv:1610.04490; Arjovsky & Bottou 2017): N(0, σ²) added to every
  sample D sees (real and fake, in D and G steps), σ optionally annealed linearly to 0 over a number of GAN
  steps, so the two distributions overlap early in training.
* **Feature matching** (Salimans et al. 2016, §3.1): G minimises ‖E f(x) − E f(G(z))‖₂² over the features f of
  an intermediate discriminator layer (``FeatureTap`` captures them with a forward hook); it replaces the
  adversarial G loss or is added to it.
* **Packing** (Lin et al. 2018, "PacGAN", arXiv:1712.04086): D judges m samples at once — m consecutive
  samples concatenated along the feature/channel axis — so a generator that covers few modes is caught by
  the lack of diversity inside a pack. The discriminator's input width/channels must be m times the sample's.

Minibatch discrimination (Salimans et al. 2016, §3.2) is a layer, not a loop switch: see
``lightning_gans.networks.minibatch``. Discriminator pre-training steps live in ``GANModule`` (``d_pretrain_steps``).
"""

from __future__ import annotations

from types import TracebackType

import torch
from torch import nn


def label_targets(
    kind: str, n: int, like: torch.Tensor, label_smoothing: float | None = None, noisy_labels: float | None = None
) -> float | torch.Tensor | None:
    """The D target for ``n`` real (``kind="real"``) or fake samples, or None for the plain 1/0 labels.

    ``label_smoothing`` s: real → 1 − s (one-sided: fakes keep 0). ``noisy_labels`` w: real ~ U(1 − w, 1],
    fake ~ U[0, w), one value per sample, shaped like ``like`` (the D outputs).
    """
    if noisy_labels is not None:
        u = torch.rand(like.shape, device=like.device, dtype=like.dtype)  # U[0, 1)
        return 1.0 - u * noisy_labels if kind == "real" else u * noisy_labels
    if label_smoothing is not None and kind == "real":
        return 1.0 - label_smoothing
    return None


def instance_noise_std(sigma: float | None, step: int, anneal_steps: int | None = None) -> float:
    """σ of the instance noise at GAN step ``step``: ``sigma`` decayed linearly to 0 over ``anneal_steps``."""
    if not sigma:
        return 0.0
    if not anneal_steps:
        return float(sigma)
    return float(sigma) * max(0.0, 1.0 - step / anneal_steps)


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, …) → (B/m, m·C, …): m consecutive samples concatenated along dim 1 (PacGAN, Lin et al. 2018)."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ValueError(
            f"pack={pack} needs a batch size divisible by {pack}, got a batch of {x.shape[0]}: set the datamodule's "
            "batch_size to a multiple of pack (and drop the last incomplete batch)"
        )
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def feature_layer(discriminator: nn.Module, name: str | None) -> tuple[nn.Module, bool]:
    """The module whose features feature matching uses, and whether its *input* (True) or output is taken.

    ``name`` is a dotted submodule path (``"net.5"``) whose output is used; None takes the input of the last
    module that has parameters of its own — the penultimate features (Salimans et al. 2016 use the last
    hidden layer).
    """
    if name is not None:
        try:
            return discriminator.get_submodule(name), False
        except AttributeError:
            names = [n for n, _ in discriminator.named_modules() if n]
            message = f"feature_layer {name!r} is not a submodule of the discriminator; choose one of {names}"
            raise ValueError(message) from None
    leaves = [m for m in discriminator.modules() if any(True for _ in m.parameters(recurse=False))]
    if not leaves:
        raise ValueError("feature matching needs a discriminator with parameters; set feature_layer explicitly")
    return leaves[-1], True


class FeatureTap:
    """Context manager collecting, for every forward of a discriminator, the features of one layer.

    >>> with FeatureTap(discriminator, None) as tap:
    ...     discriminator(real); discriminator(fake)
    >>> real_features, fake_features = tap.features
    """

    def __init__(self, discriminator: nn.Module, name: str | None = None) -> None:
        self.module, self.use_input = feature_layer(discriminator, name)
        self.features: list[torch.Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.features.append(args[0])

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.features.append(output)

    def __enter__(self) -> FeatureTap:
        if self.use_input:
            self._handle = self.module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


class ActivationTap:
    """Context manager collecting, for every forward of a discriminator, the outputs of its hidden activation
    layers (every ``nn.LeakyReLU``/``nn.ReLU`` module but the first, i.e. the normalised middle layers of a
    DCGAN-style D) — the layers DiscoGAN's authors match (Kim et al. 2017, official code: ``relu2``…``relu4``).

    >>> with ActivationTap(discriminator) as tap:
    ...     discriminator(real); discriminator(fake)
    >>> real_layers, fake_layers = tap.features  # one list of tensors per forward
    """

    def __init__(self, discriminator: nn.Module) -> None:
        acts = [m for m in discriminator.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU))]
        if not acts:
            raise ValueError("feature matching needs a discriminator with LeakyReLU/ReLU layers")
        self.modules = acts[1:] or acts
        self.features: list[list[torch.Tensor]] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module is self.modules[0]:
            self.features.append([])
        self.features[-1].append(output)

    def __enter__(self) -> ActivationTap:
        self._handles = [m.register_forward_hook(self._hook) for m in self.modules]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def layerwise_feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Σ_layers mean_elements (E_batch f(x) − E_batch f(G(·)))²: DiscoGAN's feature-matching term (official code:
    per layer, the mean over elements of the squared difference of the batch means; real features detached)."""
    terms = [(r.detach().mean(0) - f.mean(0)).pow(2).mean() for r, f in zip(real, fake, strict=True)]
    return torch.stack(terms).sum()
