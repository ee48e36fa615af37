"""circuits: a mechanistic interpretability workbench (see README.md for the tour).

The package is layered, one way, bottom to top (a module imports only from its own layer or below)::

    config, atomic            the one model config; atomic file writes
    model/                    the hookable transformer (computes; owns parameters and hook points)
    training/                 corpus, tokenizer, training loop, checkpoints, presets, the zoo of trained presets
    hf/                       Hugging Face import/export
    analysis/weights/         weight circuits: QK/OV, eigenvalues, composition, skip-trigrams
    analysis/activations/     activation circuits: head scores, paths, attribution, ablation, patching, ICL
    experiments/              one question each: compute -> typed Result -> figures / claims
    runner                    plan, train, compute or read cached results, collect failures
    report/                   render only: sections, claims table, run record, HTML, PNG
    cli                       the ``circuits`` command

Importing ``circuits`` has no side effects and imports nothing heavy: each public name below is
loaded from its module on first access (``circuits.Transformer``, ``from circuits import train``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS: dict[str, tuple[str, ...]] = {
    # the model
    "circuits.config": ("TransformerConfig", "vit_config",),
    "circuits.model": ("Transformer",),
    "circuits.model.finite": ("check_finite",),
    # corpus, tokenizer, training, checkpoints, presets
    "circuits.training.checkpoint": ("load",),
    "circuits.training.presets": ("PRESETS", "Preset", "get_preset",),
    "circuits.training.tokenizer": ("Tokenizer",),
    "circuits.training.config": ("TrainConfig",),
    "circuits.training.loop": ("TrainResult", "train", "TrainingDivergedError",),
    "circuits.training.finetune": ("finetune",),
    "circuits.training.task": ("Task", "LanguageModelTask",),
    "circuits.training.lock": ("FolderLockedError",),
    # Hugging Face checkpoints: import (GPT-2, LLaMA, BERT) and export (GPT-2, LLaMA)
    "circuits.hf": ("HFTokenizer", "export_hf", "load_hf", "load_hf_tokenizer",),
    # weight circuits: processing (norm folding, centring), QK/OV circuits, eigenvalue scores, composition, skip-trigrams
    "circuits.analysis.weights.composition": ("composition_baseline", "composition_score", "composition_scores",),
    "circuits.analysis.weights.processing": ("FoldedWeights", "folded_weights", "process_weights",),
    "circuits.analysis.weights.trigrams": ("SingularDirection", "SkipTrigram", "SkipTrigramTable", "skip_trigrams", "top_singular_directions",),
    "circuits.analysis.weights.eigen": ("copying_scores", "diagonal_accuracy", "induction_qk_positivity", "prefix_matching_qk_trace", "qk_positivity",),
    "circuits.analysis.weights.qkov": ("direct_path", "full_ov_circuit", "full_qk_circuit", "head_label_grid", "ov_circuit", "positional_qk_circuit", "qk_circuit", "rotary_qk_circuit",),
    # activation circuits: head scores, path expansion, attribution, interventions, in-context learning
    "circuits.analysis.common": ("DecompositionError",),
    "circuits.analysis.activations.attribution": ("DirectLogitAttribution", "LogitLens", "direct_logit_attribution", "logit_lens",),
    "circuits.analysis.activations.icl": ("CheckpointMetrics", "ICLIndices", "checkpoint_metrics", "icl_indices", "icl_score", "per_token_losses", "sample_token_indices",),
    "circuits.analysis.activations.interventions": ("Ablation", "AblationEffects", "ablated_loss", "ablation_effects", "head_means",),
    "circuits.analysis.activations.patching": ("PatchResult", "patch_heads", "patch_residual", "path_patch", "path_patch_senders",),
    "circuits.analysis.activations.paths": ("BigramComparison", "PathExpansion", "TermImportance", "bigram_counts", "path_expansion", "term_importance", "zero_layer_bigram_comparison",),
    "circuits.analysis.activations.scores": ("RepeatedTokensLoss", "attention_scores", "copying_eval_scores", "current_token_scores", "duplicate_token_scores", "first_token_scores", "induction_scores", "per_position_loss", "prefix_matching_scores", "previous_token_scores", "repeated_tokens_loss",),
    "circuits.analysis.tasks": ("random_tokens", "repeated_tokens",),
    "circuits.analysis.model_diff": ("ModelDiff", "model_diff",),
    # sparse autoencoders: the module, streamed training, SAELens-format checkpoints, metrics, feature pages
    "circuits.model.sae": ("SAEConfig", "SparseAutoencoder",),
    "circuits.training.sae": ("SAETrainConfig", "SAETrainLog", "hook_activations", "train_sae", "train_sae_on_model",),
    "circuits.training.sae_checkpoint": ("load_sae", "save_sae",),
    "circuits.analysis.sae_metrics": ("SAEEvaluation", "evaluate_sae",),
    "circuits.analysis.sae_features": ("FeaturePage", "feature_pages",),
    # toy models of superposition: the batched model, its training, the geometry of W
    "circuits.model.toy": ("ToyModel", "ToyModelConfig",),
    "circuits.training.toy": ("ToyRun", "ToyTrainConfig", "train_toy",),
    "circuits.analysis.superposition": ("feature_dimensionality",),
    # vision transformers: the digits set and task, the ViT preset, a classification head on any model, circuits over patches
    "circuits.training.images": ("ImageClassificationTask", "ImageData", "VIT_PRESET", "load_digits_split", "train_vit",),
    "circuits.model.classifier": ("with_classifier_head",),
    "circuits.analysis.vision": ("ClassLogitAttribution", "class_logit_attribution", "embedding_pixel_components", "patch_patching", "positional_scores", "readout_attention",),
}

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'circuits' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
