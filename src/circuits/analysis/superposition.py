"""Reading superposition off a toy model's ``W`` (Elhage et al. 2022, "Toy Models of Superposition").

Every function takes ``W`` of shape ``[d_hidden, feature]`` or ``[..., d_hidden, feature]`` (e.g.
``[instance, d_hidden, feature]``; a torch tensor or a numpy array; feature ``i``'s direction is the
column ``W_i``) and returns float64 numpy arrays over the leading axes. Definitions, with
``Ŵ_i = W_i / ||W_i||`` (and ``Ŵ_i = 0`` when ``W_i = 0``):

- norm ``||W_i||``: about 1 when feature ``i`` is represented, about 0 when it is not;
- superposition ``sum_{j != i} (Ŵ_i · W_j)^2``: how much the other features interfere with ``i``
  (0 when ``i`` has a dimension to itself);
- dimensionality ``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2``: the share of a dimension feature ``i``
  gets (1 dedicated, 1/2 antipodal pair, 2/5 pentagon, 0 not represented);
- dimensions per feature ``m / ||W||_F^2`` over a whole model;
- in 2-D, each feature's angle and the gaps between consecutive represented features (a regular
  pentagon has five gaps of 72 degrees).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "PHASES", "STICKY_FRACTIONS", "feature_norms", "superposition", "feature_dimensionality", "dimensions_per_feature",
    "represented", "feature_angles", "angle_gaps", "max_abs_cosine", "feature_phase", "sticky_fraction", "even_spread_fraction",
]

#: phase codes of :func:`feature_phase`, in order 0, 1, 2
PHASES: tuple[str, ...] = ("not represented", "dedicated dimension", "superposition")
#: the dimensionalities the paper finds features "stick" at: dedicated, tetrahedron, triangle, antipodal pair, pentagon, square antiprism
STICKY_FRACTIONS: tuple[float, ...] = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)


def _as_W(W: object) -> torch.Tensor:
    t = W.detach().cpu() if isinstance(W, torch.Tensor) else torch.as_tensor(np.asarray(W, dtype=float))
    if t.ndim < 2:
        raise ValueError(f"W must have shape [d_hidden, feature] or [..., d_hidden, feature], got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def _unit_columns(W: torch.Tensor) -> torch.Tensor:
    norms = W.norm(dim=-2, keepdim=True)
    return torch.where(norms > 0, W / norms.clamp_min(1e-300), torch.zeros(()))


def _overlaps(W: torch.Tensor) -> torch.Tensor:
    """``[..., i, j] = (Ŵ_i · W_j)^2``."""
    return (_unit_columns(W).transpose(-1, -2) @ W) ** 2


def feature_norms(W: object) -> np.ndarray:
    """``||W_i||`` per feature ``[..., feature]``."""
    return _as_W(W).norm(dim=-2).numpy()


def superposition(W: object) -> np.ndarray:
    """``sum_{j != i} (Ŵ_i · W_j)^2`` per feature ``[..., feature]`` (0 for a feature with ``W_i = 0``)."""
    t = _as_W(W)
    over = _overlaps(t)
    return (over.sum(-1) - over.diagonal(dim1=-2, dim2=-1)).numpy()


def feature_dimensionality(W: object) -> np.ndarray:
    """``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2`` per feature ``[..., feature]`` (0 for a feature with ``W_i = 0``)."""
    t = _as_W(W)
    denom = _overlaps(t).sum(-1)
    norms2 = t.norm(dim=-2) ** 2
    return torch.where(denom > 0, norms2 / denom.clamp_min(1e-300), torch.zeros(())).numpy()


def dimensions_per_feature(W: object) -> np.ndarray:
    """The paper's "dimensions per feature" ``m / ||W||_F^2`` over the leading axes (``inf`` for ``W = 0``)."""
    t = _as_W(W)
    frob2 = (t**2).sum((-1, -2))
    return (t.shape[-2] / frob2).numpy()


def represented(W: object, threshold: float = 0.5) -> np.ndarray:
    """Whether each feature is represented: ``||W_i|| >= threshold`` (bool ``[..., feature]``)."""
    return feature_norms(W) >= threshold


def feature_angles(W: object) -> np.ndarray:
    """Angle of each feature's direction in a 2-D hidden space, degrees in ``(-180, 180]`` ``[..., feature]``."""
    t = _as_W(W)
    if t.shape[-2] != 2:
        raise ValueError(f"feature_angles needs a 2-D hidden space (W of shape [..., 2, feature]), got d_hidden={t.shape[-2]}")
    return torch.rad2deg(torch.atan2(t[..., 1, :], t[..., 0, :])).numpy()


def angle_gaps(W: object, threshold: float = 0.5) -> np.ndarray:
    """Gaps (degrees) between angularly consecutive represented features of one 2-D ``W [2, feature]``; they sum to 360.

    Empty when fewer than two features are represented (``||W_i|| >= threshold``).
    """
    t = _as_W(W)
    if t.ndim != 2:
        raise ValueError(f"angle_gaps takes one model's W [2, feature], got shape {tuple(t.shape)}; index the instance first")
    angles = np.sort(feature_angles(t)[represented(t, threshold)])
    if angles.size < 2:
        return np.zeros(0)
    return np.diff(np.concatenate([angles, [angles[0] + 360.0]]))


def max_abs_cosine(W: object, features: Sequence[int]) -> float:
    """The largest ``|cos|`` between the directions of two distinct ``features`` of one ``W [d_hidden, feature]`` (0 for fewer than two)."""
    t = _as_W(W)
    if t.ndim != 2:
        raise ValueError(f"max_abs_cosine takes one model's W [d_hidden, feature], got shape {tuple(t.shape)}")
    idx = list(features)
    if len(idx) < 2:
        return 0.0
    hat = _unit_columns(t[:, idx])
    cos = (hat.T @ hat).abs()
    cos.fill_diagonal_(0.0)
    return float(cos.max())


def feature_phase(W: object, feature: int, norm_threshold: float = 0.5, superposition_threshold: float = 0.5) -> np.ndarray:
    """Phase of one feature (index into :data:`PHASES`) over the leading axes: the paper's phase-diagram colours.

    0 "not represented" (``||W_i|| < norm_threshold``), else 1 "dedicated dimension" (superposition
    ``< superposition_threshold``) or 2 "superposition".
    """
    t = _as_W(W)
    if not -t.shape[-1] <= feature < t.shape[-1]:
        raise IndexError(f"feature {feature} out of range for {t.shape[-1]} features")
    norm = feature_norms(t)[..., feature]
    sup = superposition(t)[..., feature]
    return np.where(norm < norm_threshold, 0, np.where(sup < superposition_threshold, 1, 2))


def sticky_fraction(dims: object, fractions: Sequence[float] = STICKY_FRACTIONS, tolerance: float = 0.025) -> float:
    """Share of the dimensionalities ``dims`` within ``tolerance`` of one of ``fractions`` (NaN for none)."""
    d = np.asarray(dims, dtype=float).ravel()
    if d.size == 0:
        return float("nan")
    near = np.abs(d[:, None] - np.asarray(fractions, dtype=float)[None, :]) <= tolerance
    return float(near.any(1).mean())


def even_spread_fraction(
    fractions: Sequence[float] = STICKY_FRACTIONS, tolerance: float = 0.025, low: float = 0.0, high: float = 1.0,
) -> float:
    """:func:`sticky_fraction` expected if dimensionalities spread evenly over ``[low, high]``: the windows' covered share."""
    if not high > low:
        raise ValueError(f"even_spread_fraction needs high > low, got low={low}, high={high}")
    windows = sorted((max(low, f - tolerance), min(high, f + tolerance)) for f in fractions)
    covered, end = 0.0, low
    for a, b in windows:
        a = max(a, end)
        if b > a:
            covered += b - a
            end = b
    return covered / (high - low)
