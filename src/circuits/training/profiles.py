"""Report profiles: how the zoo turns each preset into the configs it trains, chosen once (``circuits report --profile``).

- ``default``: the presets as defined (:mod:`circuits.training.presets`): sized so that the
  whole report fits a laptop, with half of each batch's windows given a copied span.
- ``full``: every preset on the corpus alone (``repeat_fraction=0``), trained on
  :data:`FULL_TOKEN_MULTIPLIER` times as many tokens (more steps, the same batch, warmup scaled
  with them). This is the setting the papers' claims are about (natural text only); it needs
  hours on 2 CPU cores, so it is meant for a GPU (the zoo trains on CUDA when one is available).
  Its token count is the calibration's (docs/training.md, "Natural text alone"): there the corpus-only
  2L model reached an induction score of 0.15 at 41M tokens, a plateau since 20M, so this profile is an
  ablation of the augmentation at more tokens, not a setting known to form the induction circuit.

Quick mode (``--quick``) shrinks the presets for a smoke test and is not a profile of this kind:
combining it with ``full`` is refused.
"""

from __future__ import annotations

import dataclasses
import difflib

from circuits.config import TransformerConfig
from circuits.training.config import TrainConfig

__all__ = ["Profile", "DefaultProfile", "CorpusScaleProfile", "PROFILES", "get_profile", "FULL_TOKEN_MULTIPLIER"]

#: Tokens of a ``full`` model per token of the preset: 8 x 5.1M = 41M per model at the preset shape.
FULL_TOKEN_MULTIPLIER = 8


class Profile:
    """A way to train the presets; :meth:`configure` maps a preset's configs to the ones trained."""

    name = "profile"
    description = ""

    def configure(self, model_cfg: TransformerConfig, train_cfg: TrainConfig) -> tuple[TransformerConfig, TrainConfig]:
        return model_cfg, train_cfg

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description}


class DefaultProfile(Profile):
    name = "default"
    description = "the presets as defined (the copied-span augmentation where a preset has it)"


@dataclasses.dataclass(frozen=True)
class CorpusScaleProfile(Profile):
    """The corpus alone (``repeat_fraction=0``), ``multiplier`` times the preset's steps and warmup."""

    multiplier: int = FULL_TOKEN_MULTIPLIER
    name = "full"

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"every preset on the corpus alone, {self.multiplier}x the preset's training tokens"

    def configure(self, model_cfg: TransformerConfig, train_cfg: TrainConfig) -> tuple[TransformerConfig, TrainConfig]:
        warmup = None if train_cfg.warmup_steps is None else train_cfg.warmup_steps * self.multiplier
        scaled = dataclasses.replace(train_cfg, repeat_fraction=0.0, steps=train_cfg.steps * self.multiplier, warmup_steps=warmup)
        return model_cfg, scaled

    def describe(self) -> dict:
        return {**super().describe(), "token_multiplier": self.multiplier}


#: name -> profile
PROFILES: dict[str, Profile] = {profile.name: profile for profile in (DefaultProfile(), CorpusScaleProfile())}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    if name not in PROFILES:
        close = difflib.get_close_matches(str(name), PROFILES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown profile {name!r}{hint}; profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
