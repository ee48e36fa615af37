"""circuits: a mechanistic interpretability workbench (see README.md for the tour)."""

from circuits.config import TransformerConfig
from circuits.model import Transformer

__all__ = ["TransformerConfig", "Transformer"]
