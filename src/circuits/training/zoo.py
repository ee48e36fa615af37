"""The zoo: trained preset models by name, trained on first use and reused afterwards (keyed by their configs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, no_type_check

from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.training.checkpoint import list_checkpoints, load
from circuits.training.config import TrainConfig
from circuits.training.presets import get_preset, training_data_label
from circuits.training.profiles import Profile, get_profile
from circuits.training.tokenizer import Tokenizer

__all__ = ["CODE_VERSION", "Zoo", "ZooSettings", "run_complete", "digest"]

#: Bump when a change to the training code should invalidate cached runs.
CODE_VERSION = "3"  # 2: copied spans at random offsets (sample_windows); 3: fused AdamW (last-bit changes)


# ---- the models an experiment reads ------------------------------------------------------------
@no_type_check  # validated by __post_init__ with our own messages, not by runtime type checkers
@dataclass(frozen=True, kw_only=True)
class ZooSettings:
    """How the zoo trains its models.

    Full mode trains the presets as defined in :mod:`circuits.training.presets` on the standard library.
    Quick mode shrinks every preset (``quick_*``) and trains on one stdlib package, so the
    whole report pipeline runs in about a minute. ``seed_offset`` k trains every preset with model
    and training seeds ``preset seed + k`` (another initialisation and another batch order), in
    its own run folder ``<preset>-s<k>-<key>``; k = 0 is the presets as defined (folders
    ``<preset>-<key>``). ``profile`` names a :mod:`~circuits.training.profiles` profile (``"default"``: the
    presets as defined; ``"full"``: the corpus alone at several times the tokens; not with quick mode).
    """

    quick: bool = False
    profile: str = "default"
    corpus: str | None = None  # None: the stdlib (full) or its ``quick_corpus`` package (quick)
    seed_offset: int = 0  # added to every preset's model and training seed (0: the presets' own seeds)
    quick_corpus: str = "json"
    quick_steps: int = 40
    quick_d_model: int = 32
    quick_n_heads: int = 4
    quick_vocab: int = 300
    quick_n_ctx: int = 48
    quick_batch: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.seed_offset, bool) or not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise ValueError(f"ZooSettings.seed_offset={self.seed_offset!r} must be an int >= 0 (0: the presets' own seeds)")
        get_profile(self.profile)  # an unknown name raises, listing the profiles
        if self.quick and self.profile != "default":
            raise ValueError(f"profile={self.profile!r} cannot be combined with quick mode (quick shrinks the presets for a smoke test); drop one of them")

    def key_fields(self) -> dict[str, Any]:
        """The settings as a dict for cache keys (the default profile is left out, so keys from before profiles still match)."""
        fields = dataclasses.asdict(self)
        if fields["profile"] == "default":
            del fields["profile"]
        return fields


class Zoo:
    """Trained models by preset name, trained on first use and reused afterwards.

    Each run lives in ``root/<preset>-<key>`` where ``key`` hashes the model and training
    configs, the corpus fingerprint and :data:`CODE_VERSION`: a changed config never reuses
    a run, and an interrupted run resumes from its last checkpoint. Each run folder is locked
    while it trains, so two zoos on one ``root`` never train the same model at once (the second
    gets :class:`~circuits.training.lock.FolderLockedError`); a program that owns the whole
    ``root`` (the report) locks it with :func:`~circuits.training.lock.lock_folder`.
    """

    def __init__(self, root: str | os.PathLike, settings: ZooSettings | None = None, *, cache_dir: str | os.PathLike | None = None, progress: bool = True):
        self.root = Path(root)
        self.settings = settings or ZooSettings()
        self.profile: Profile = get_profile(self.settings.profile)
        self.cache_dir = cache_dir
        self.progress = progress
        self._corpus = None
        self.timings: dict[str, float] = {}  # preset -> seconds spent training (in this process or its workers)
        self._family: dict[int, Zoo] = {self.seed_offset: self}  # the zoos of other seed offsets (with_seed_offset)

    @property
    def quick(self) -> bool:
        return self.settings.quick

    @property
    def seed_offset(self) -> int:
        return self.settings.seed_offset

    def with_seed_offset(self, offset: int) -> "Zoo":
        """The zoo of seed offset ``offset``: same class, root, settings, cache and corpus; one object per offset (timings accumulate there)."""
        if offset not in self._family:
            other = type(self)(self.root, dataclasses.replace(self.settings, seed_offset=offset), cache_dir=self.cache_dir, progress=self.progress)
            other._corpus = self._corpus
            other._family = self._family
            self._family[offset] = other
        return self._family[offset]

    @property
    def corpus_label(self) -> str:
        """The corpus in a few words: ``"stdlib"``, ``"stdlib json package"`` (quick mode) or the path given."""
        if self.settings.corpus is not None:
            return str(self.settings.corpus)
        return f"stdlib {self.settings.quick_corpus} package" if self.quick else "stdlib"

    def data_label(self, name: str) -> str:
        """What preset ``name`` trains on in this zoo, in words (:func:`~circuits.training.presets.training_data_label`)."""
        return training_data_label(self.configs(name)[1], self.corpus_label)

    def seed_zoos(self) -> list["Zoo"]:
        """The zoos of every seed offset made so far from this one (:meth:`with_seed_offset`), by offset."""
        return [self._family[k] for k in sorted(self._family)]

    def label(self, name: str) -> str:
        """``name``, with `` seed +k`` when this zoo trains seed offset k > 0 (for logs, timings and the run record)."""
        return name if self.seed_offset == 0 else f"{name} seed +{self.seed_offset}"

    @property
    def corpus(self):
        from circuits.training.data import find_corpus

        if self._corpus is None:
            spec = self.settings.corpus
            if spec is None and self.quick:
                spec = str(Path(sysconfig.get_paths()["stdlib"]) / self.settings.quick_corpus)
            self._corpus = find_corpus(spec)
            for zoo in self._family.values():  # the zoos of other seed offsets read the same text
                zoo._corpus = zoo._corpus or self._corpus
        return self._corpus

    def configs(self, name: str) -> tuple[TransformerConfig, TrainConfig]:
        """The (model, training) configs the zoo uses for preset ``name`` (shrunk in quick mode)."""
        preset = get_preset(name)
        model_cfg, train_cfg = preset.model, preset.train
        if self.quick:
            s = self.settings
            n_kv = None if model_cfg.n_kv_heads is None else max(1, s.quick_n_heads * model_cfg.n_kv_heads // model_cfg.n_heads)
            model_cfg = model_cfg.replace(
                d_model=s.quick_d_model,
                n_heads=s.quick_n_heads,
                d_head=s.quick_d_model // s.quick_n_heads,
                n_kv_heads=n_kv,
                d_vocab=s.quick_vocab,
                n_ctx=s.quick_n_ctx,
                d_mlp=None if model_cfg.attn_only else 4 * s.quick_d_model,
                rotary_dim=None,
            )
            train_cfg = dataclasses.replace(
                train_cfg, steps=s.quick_steps, batch_size=s.quick_batch, warmup_steps=min(train_cfg.warmup_steps, s.quick_steps // 4),
                eval_windows=8, n_log_checkpoints=6, n_linear_checkpoints=4,
            )
        model_cfg, train_cfg = self.profile.configure(model_cfg, train_cfg)
        if self.seed_offset:
            model_cfg = model_cfg.replace(seed=model_cfg.seed + self.seed_offset)
            train_cfg = dataclasses.replace(train_cfg, seed=train_cfg.seed + self.seed_offset)
        return model_cfg, train_cfg

    def run_dir(self, name: str) -> Path:
        model_cfg, train_cfg = self.configs(name)
        key = digest({"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "corpus": self.corpus.fingerprint, "code": CODE_VERSION})
        return self.root / (f"{name}-{key}" if self.seed_offset == 0 else f"{name}-s{self.seed_offset}-{key}")

    def ensure(self, name: str) -> Path:
        """Train preset ``name`` unless a complete run exists (resuming an interrupted one); return its folder."""
        import time

        from circuits.training.loop import train

        folder = self.run_dir(name)
        if not run_complete(folder):
            model_cfg, train_cfg = self.configs(name)
            start = time.perf_counter()
            train(model_cfg, train_cfg, out_dir=folder, corpus=self.corpus, resume=True, cache_dir=self.cache_dir, progress=self.progress)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        return folder

    def ensure_many(self, names, *, workers: int | None = None, log=print, seed_offsets=None, then=()) -> dict[str, float]:
        """Train every model of ``names`` that is not complete, ``workers`` processes at a time (default: one per CPU core).

        ``names`` holds preset names or ``(seed_offset, name)`` pairs; ``seed_offsets`` (default: this
        zoo's own) trains each plain name once per seed offset, in the zoo of that offset
        (:meth:`with_seed_offset`). Returns ``{label: seconds}`` for the models
        trained now (:meth:`label`; also added to the :attr:`timings` of the zoo that owns each).
        ``then``: more :class:`~circuits.training.parallel.Job` s for the same processes, each started once the
        models it names are trained (the report's experiment computes). See
        :mod:`circuits.training.parallel` for why processes, not threads.
        """
        from circuits.training.parallel import train_parallel

        return train_parallel(self, names, workers=workers, log=log, seed_offsets=seed_offsets, then=then)

    def model(self, name: str, step: int | None = None) -> tuple[Transformer, Tokenizer]:
        """The trained model (final checkpoint, or the checkpoint at ``step``) and its tokenizer, in eval mode."""
        folder = self.ensure(name)
        if step is None:
            return load(folder)
        for s, path in list_checkpoints(folder):
            if s == step:
                return load(path)
        raise ValueError(f"run {folder} has no checkpoint at step {step}; steps: {[s for s, _ in list_checkpoints(folder)]}")

    def checkpoints(self, name: str) -> list[tuple[int, Path]]:
        """``(step, folder)`` of every checkpoint of preset ``name``, in step order (step 0 = initialisation)."""
        return list_checkpoints(self.ensure(name))

    def metrics(self, name: str) -> list[dict]:
        """The run's ``metrics.jsonl`` records (``kind`` "train" or "eval")."""
        path = self.ensure(name) / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def describe(self) -> dict:
        return {
            "root": str(self.root), "quick": self.quick, "profile": self.profile.describe(), "seed_offset": self.seed_offset,
            "corpus": self.corpus.describe(), "code_version": CODE_VERSION,
        }


def run_complete(folder: Path) -> bool:
    """Whether the run folder holds a finished training run (``run.json`` says ``complete``)."""
    try:
        return bool(json.loads((Path(folder) / "run.json").read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError):
        return False


def digest(obj: Any) -> str:
    """A short, stable hash of a JSON-able object (12 hex digits of SHA-256 over sorted-key JSON)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]
