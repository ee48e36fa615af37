"""Guards against non-finite weights.

One NaN or inf in a parameter makes every statistic computed from it NaN, and LAPACK's
eigenvalue routine (oneMKL's ``DGEBAL`` behind ``torch.linalg.eigvals``) does worse: on a
non-finite matrix it aborts or segfaults the whole Python process instead of raising. So:

- :func:`check_finite` raises ``ValueError`` naming the first parameter that holds NaN or inf
  (loaders call it, so a checkpoint of a diverged run fails when it is opened);
- :func:`nonfinite_parameters` lists the names of all such parameters;
- :func:`checked_eigvals` is ``torch.linalg.eigvals`` in float64 that first checks its input is
  finite and raises ``ValueError`` naming the offending matrix (e.g. a head) otherwise. Every
  eigenvalue computation in ``circuits`` goes through it.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from jaxtyping import Complex, Float
from torch import Tensor, nn

__all__ = ["check_finite", "nonfinite_parameters", "checked_eigvals", "DIVERGED_HINT"]

#: What to do about non-finite weights, appended to every error message of this module.
DIVERGED_HINT = (
    "such weights come from a diverged training run (learning rate too high): load an earlier checkpoint "
    "(`circuits info RUN` lists them) or retrain with a lower --lr"
)


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters of ``model`` holding at least one NaN or inf (in ``named_parameters`` order)."""
    with torch.no_grad():
        return [name for name, param in model.named_parameters() if not bool(torch.isfinite(param).all())]


def check_finite(model: nn.Module, source: str | os.PathLike | None = None) -> None:
    """Raise ``ValueError`` if any parameter of ``model`` holds NaN or inf, naming it, its bad entries and the fix.

    ``source`` (a checkpoint path) is named in the message when given.
    """
    bad = nonfinite_parameters(model)
    if not bad:
        return
    params = dict(model.named_parameters())
    param = params[bad[0]].detach()
    n_nan, n_inf = int(torch.isnan(param).sum()), int(torch.isinf(param).sum())
    first = tuple(int(i) for i in (~torch.isfinite(param)).nonzero()[0])
    others = f"; {len(bad) - 1} more parameter(s) too: {bad[1:4]}" if len(bad) > 1 else ""
    where = f"{source}: " if source is not None else ""
    raise ValueError(
        f"{where}parameter {bad[0]!r} {tuple(param.shape)} holds {n_nan} NaN and {n_inf} inf value(s) (first at index "
        f"{list(first)}){others}; every score computed from it would be NaN. {DIVERGED_HINT[0].upper()}{DIVERGED_HINT[1:]}"
    )


def checked_eigvals(
    matrices: Float[Tensor, "*batch n n"],
    describe: Callable[[tuple[int, ...]], str],
    what: str,
    model: nn.Module | None = None,
) -> Complex[Tensor, "*batch n"]:
    """``torch.linalg.eigvals`` of ``matrices`` in float64, refusing non-finite input with a ``ValueError``.

    ``describe(index)`` names the matrix at batch index ``index`` (e.g. ``"head L0H1"``); ``what``
    is the caller (named first in the message). With ``model`` the message also names the
    non-finite parameters, or says the weights are finite but their product overflows.
    """
    matrices = matrices.to(torch.float64)
    finite = torch.isfinite(matrices).all(-1).all(-1)
    if bool(finite.all()):
        return torch.linalg.eigvals(matrices)
    index = tuple(int(i) for i in (~finite).nonzero()[0])
    n_bad = int((~finite).sum())
    more = f" (and {n_bad - 1} other matri{'x' if n_bad == 2 else 'ces'})" if n_bad > 1 else ""
    if model is None:
        cause = DIVERGED_HINT
    else:
        names = nonfinite_parameters(model)
        cause = (
            f"the model's parameter(s) {names[:4]} hold NaN or inf: {DIVERGED_HINT}"
            if names
            else "the weights are finite but their product overflows (entries beyond the float range): "
            "the model's weights are far too large, a sign of a diverged run; use an earlier checkpoint"
        )
    raise ValueError(f"{what}: the matrix of {describe(index)}{more} has NaN or inf entries, so it has no eigenvalues; {cause}")
