"""The library behind the subcommands: checkpoint-driven jobs usable from Python and notebooks.

Load a checkpoint and draw samples (:mod:`.sampling`), evaluate it (:mod:`.evaluate`), compare runs
(:mod:`.compare`), latent interpolation (:mod:`.interpolation`), super-resolve (:mod:`.upscale`), age faces
(:mod:`.age`), translate images (:mod:`.translate`), prepare image folders (:mod:`.prepare`) and train the
``lenet-mnist`` extractor (:mod:`.extractor`). These take paths and options and return results; the argparse
front ends are in :mod:`lightning_gans.commands`. This layer sits above ``callbacks/`` and may read datamodules.
"""
