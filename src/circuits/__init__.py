"""circuits: a mechanistic interpretability workbench (see README.md for the tour)."""

from circuits.config import TransformerConfig
from circuits.model import Transformer

__all__ = ["TransformerConfig", "Transformer"]

# activation circuits: head scores, path expansion, attribution, interventions, in-context learning
from circuits._common import DecompositionError
from circuits.attribution import DirectLogitAttribution, LogitLens, direct_logit_attribution, logit_lens
from circuits.icl import CheckpointMetrics, ICLIndices, checkpoint_metrics, icl_indices, icl_score, per_token_losses, sample_token_indices
from circuits.interventions import Ablation, AblationEffects, ablated_loss, ablation_effects, head_means
from circuits.patching import PatchResult, patch_heads, patch_residual, path_patch, path_patch_senders
from circuits.paths import (
    BigramComparison,
    PathExpansion,
    TermImportance,
    bigram_counts,
    path_expansion,
    term_importance,
    zero_layer_bigram_comparison,
)
from circuits.scores import (
    RepeatedTokensLoss,
    attention_scores,
    copying_eval_scores,
    current_token_scores,
    duplicate_token_scores,
    first_token_scores,
    induction_scores,
    per_position_loss,
    prefix_matching_scores,
    previous_token_scores,
    repeated_tokens_loss,
)
from circuits.tasks import random_tokens, repeated_tokens

__all__ += [
    "DecompositionError",
    "DirectLogitAttribution", "LogitLens", "direct_logit_attribution", "logit_lens",
    "CheckpointMetrics", "ICLIndices", "checkpoint_metrics", "icl_indices", "icl_score", "per_token_losses", "sample_token_indices",
    "Ablation", "AblationEffects", "ablated_loss", "ablation_effects", "head_means",
    "PatchResult", "patch_heads", "patch_residual", "path_patch", "path_patch_senders",
    "BigramComparison", "PathExpansion", "TermImportance", "bigram_counts", "path_expansion", "term_importance",
    "zero_layer_bigram_comparison",
    "RepeatedTokensLoss", "attention_scores", "copying_eval_scores", "current_token_scores", "duplicate_token_scores",
    "first_token_scores", "induction_scores", "per_position_loss", "prefix_matching_scores", "previous_token_scores",
    "repeated_tokens_loss",
    "random_tokens", "repeated_tokens",
]

# Hugging Face checkpoints: import (GPT-2, LLaMA, BERT) and export (GPT-2, LLaMA)
from circuits.hf import HFTokenizer, export_hf, load_hf, load_hf_tokenizer

__all__ += ["load_hf", "export_hf", "load_hf_tokenizer", "HFTokenizer"]

# corpus, tokenizer, training, checkpoints, presets
from circuits.checkpoint import load
from circuits.presets import PRESETS, Preset, get_preset
from circuits.tokenizer import Tokenizer
from circuits.train_config import TrainConfig
from circuits.training import TrainResult, train

__all__ += ["Tokenizer", "TrainConfig", "TrainResult", "train", "load", "PRESETS", "Preset", "get_preset"]

# weight circuits: processing (norm folding, centring), QK/OV circuits, eigenvalue scores, composition, skip-trigrams
from circuits.composition import composition_baseline, composition_score, composition_scores
from circuits.eigen import (
    copying_scores,
    diagonal_accuracy,
    induction_qk_positivity,
    prefix_matching_qk_trace,
    qk_positivity,
)
from circuits.processing import FoldedWeights, folded_weights, process_weights
from circuits.qkov import (
    direct_path,
    full_ov_circuit,
    full_qk_circuit,
    head_label_grid,
    ov_circuit,
    positional_qk_circuit,
    qk_circuit,
    rotary_qk_circuit,
)
from circuits.trigrams import SingularDirection, SkipTrigram, SkipTrigramTable, skip_trigrams, top_singular_directions

__all__ += [
    "process_weights", "folded_weights", "FoldedWeights",
    "full_qk_circuit", "full_ov_circuit", "qk_circuit", "ov_circuit", "positional_qk_circuit", "rotary_qk_circuit",
    "direct_path", "head_label_grid",
    "copying_scores", "qk_positivity", "diagonal_accuracy", "induction_qk_positivity", "prefix_matching_qk_trace",
    "composition_scores", "composition_score", "composition_baseline",
    "skip_trigrams", "top_singular_directions", "SkipTrigram", "SkipTrigramTable", "SingularDirection",
]
