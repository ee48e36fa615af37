"""The shape of an experiment, and what the report renders: typed results, figures, tables, claims, sections.

An experiment module (``circuits.experiments.<name>``) asks one question::

    NAME = "two_layer"                      # the report section key and the cache key
    TITLE = "Two-layer attention-only model: induction heads"

    @dataclass(frozen=True, kw_only=True)
    class Config:                           # documented defaults; Config.quick() gives the tiny settings
        ...

    @dataclass(frozen=True, kw_only=True)
    class Result(base.Result):              # numbers only: floats, ints, strings, numpy arrays, nested Results
        ...

    SEEDED = True                           # optional: claims tested on several seeds (see "Seeds" below)
    COMPUTE_S = 95                          # optional: about compute's seconds on one core (orders the report's workers)

    def compute(cfg: Config, zoo: Zoo) -> Result     # the only step that reads models (and trains them on first use)
    def figures(result: Result) -> list[Figure]      # drawn with the shared builders of circuits.experiments.plots
    def claims(result: Result) -> list[Claim]        # each verdict a small pure function of the result
    def tables(result: Result) -> list[Table]        # optional
    def intro(result: Result) -> str                 # what the section asks and what it measured
    def notes(result: Result) -> list[str]           # optional caveats
    def views(result: Result) -> list[View]          # optional interactive views (circuits.views), built from the result

``compute`` is separate from the rest so that the runner (:mod:`circuits.runner`) can cache the
result as JSON (:meth:`Result.to_json` / :meth:`Result.from_json`, exact round trip) and rebuild
figures and claims without recomputing. The dataclasses below (:class:`Figure`, :class:`Claim`,
:class:`Table`, :class:`Section`) are the contract between this layer, which builds them, and
the report layer, which only renders them.

Seeds. A module with ``SEEDED = True`` is computed once per seed offset k = 0 .. n-1 (``circuits
report --seeds n``): with the zoo of offset k (every preset's model and training seed + k,
:meth:`~circuits.training.zoo.Zoo.with_seed_offset`) and the config of offset k (its ``seed``
field + k, if it has one, then the config's own ``for_seed(k)`` if it defines one, e.g. to leave
out a model that only seed 0's figures show: :func:`config_for_seed`; models an experiment trains
itself take their seed from there). Each seed's result is cached on its own; the section's figures, tables, intro
and notes are seed 0's, and its claims are :func:`aggregate_claims` of every seed's claims: a
claim holds only if it holds on every seed on which it could be tested.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from circuits.training.zoo import digest

__all__ = [
    "Result", "Figure", "View", "Claim", "Table", "Section", "build_section", "result_to_json", "result_from_json", "digest", "config_key",
    "is_seeded", "config_for_seed", "aggregate_claims", "seeds_verdict",
]


# ---- what an experiment returns ---------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Figure:
    """One plotly figure with a stable ``key`` (file name of its static export) and a caption."""

    key: str
    title: str
    caption: str  # what the figure shows, one or two sentences, measured numbers included
    fig: Any  # plotly.graph_objects.Figure


@dataclass(frozen=True, kw_only=True)
class View:
    """One interactive view (:mod:`circuits.views`: attention, values over tokens, ...) with a stable ``key`` and a caption.

    The report writes ``view.fragment(id)`` (its ``<div>`` and its data, once) and embeds the views'
    shared script once per page; views have no static PNG export.
    """

    key: str
    title: str
    caption: str
    view: Any  # circuits.views.View


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A checkable claim of the papers, the paper's value and this run's measurement.

    ``holds`` is ``None`` when the run could not test it (say why in ``measured``); a claim that
    does not hold is reported as such, never dropped. ``value`` is the one number the verdict
    turns on most (for the spread over seeds), ``models`` the zoo models the claim read and
    ``data`` what those models were trained on, in words. ``seeds_held``/``seeds_tested``/
    ``seeds_run`` and ``value_range`` are filled in when the runner aggregates the claim over
    several seeds (:func:`aggregate_claims`); ``None`` for a section computed once.
    """

    key: str
    statement: str  # the claim, in the paper's terms
    source: str  # e.g. "Framework paper, one-layer section"
    paper_value: str
    measured: str
    holds: bool | None
    value: float | None = None
    models: tuple[str, ...] = ()
    data: str = ""
    seeds_held: int | None = None
    seeds_tested: int | None = None
    value_range: tuple[float, float] | None = None
    seeds_run: int | None = None


@dataclass(frozen=True, kw_only=True)
class Table:
    """A small table shown as HTML (e.g. skip-trigram examples)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass(kw_only=True)
class Section:
    """One report section: an experiment's figures, tables, claims and short text."""

    key: str
    title: str
    intro: str  # what the experiment asks and how (a paragraph, plain text or simple HTML)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats (scaled indices, quick mode, ...)
    views: list[View] = field(default_factory=list)  # interactive views, after the figures


def config_key(cfg: Any) -> str:
    """A short hash of an experiment config dataclass (for result caches)."""
    return digest(dataclasses.asdict(cfg))


# ---- typed results and their JSON form --------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """Arrays and tuples to lists, dataclasses to dicts, non-finite floats to ``None``, floats to 6 significant digits.

    The rounding keeps cached results small and stable; every number the report shows has at most
    3 or 4 significant digits.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def _nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return float("nan") if value is None else value


def from_jsonable(hint: Any, value: Any) -> Any:
    """Rebuild a value of type ``hint`` from its JSON form (the inverse of :func:`to_jsonable` for the types results use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return from_jsonable(next(a for a in args if a is not type(None)), value)
    if hint is np.ndarray:
        return np.array(_nan(value), dtype=float)
    if hint is float:
        return float("nan") if value is None else float(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint.from_json(value) if issubclass(hint, Result) else hint(**value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in value)
        return tuple(from_jsonable(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if origin is list:
        return [from_jsonable(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        return {k: from_jsonable(args[1], v) for k, v in value.items()} if args else dict(value)
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """Base of every experiment's typed result: a frozen dataclass of numbers with an exact JSON round trip.

    Fields may be ``float``, ``int``, ``str``, ``bool``, ``numpy.ndarray`` (float; ``NaN`` is
    stored as ``null``), ``tuple``/``list``/``dict`` of those, ``X | None``, or nested ``Result``
    dataclasses. Floats are stored to 6 significant digits (:func:`to_jsonable`), so
    ``Result.from_json(r.to_json())`` equals ``r`` to that precision and is then stable.
    """

    def to_json(self) -> dict:
        return to_jsonable(self)

    @classmethod
    def from_json(cls, data: dict) -> "Result":
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__qualname__}.from_json: unknown fields {unknown}; expected {sorted(names)}")
        return cls(**{k: from_jsonable(hints[k], v) for k, v in data.items()})


def result_to_json(module: Any, result: Any) -> Any:
    """An experiment's result in its cached JSON form."""
    return result.to_json() if isinstance(result, Result) else to_jsonable(result)


def result_from_json(module: Any, data: Any) -> Any:
    """An experiment's result from its cached JSON form (modules without a ``Result`` class keep plain JSON)."""
    result_cls = getattr(module, "Result", None)
    return result_cls.from_json(data) if result_cls is not None else data


def build_section(module: Any, result: Any, cfg: Any = None, zoo: Any = None) -> "Section":
    """The report section of an experiment's result: its intro, figures, tables, claims and notes."""
    if not hasattr(module, "Result"):  # an experiment still in the older build(results, cfg, zoo) shape
        return module.build(result, cfg, zoo)
    return Section(
        key=module.NAME,
        title=module.TITLE,
        intro=module.intro(result),
        figures=list(module.figures(result)),
        tables=list(module.tables(result)) if hasattr(module, "tables") else [],
        claims=list(module.claims(result)),
        notes=list(module.notes(result)) if hasattr(module, "notes") else [],
        views=list(module.views(result)) if hasattr(module, "views") else [],
    )


# ---- several seeds ----------------------------------------------------------------------------
def is_seeded(module: Any) -> bool:
    """Whether an experiment module asks for its claims to be tested on several seeds (``SEEDED = True``)."""
    return getattr(module, "SEEDED", False) is True


def config_for_seed(cfg: Any, offset: int) -> Any:
    """``cfg`` for seed offset ``offset``: its int ``seed`` field (random probes, models it trains itself) + offset; unchanged without one.

    A config class may define ``for_seed(offset)``, applied after the shift for offsets > 0: only
    seed 0's figures are drawn, so a model that no claim reads can be left out of the other seeds
    (their training is the report's largest cost).
    """
    if offset == 0:
        return cfg
    if "seed" in {f.name for f in dataclasses.fields(cfg)} and isinstance(cfg.seed, int):
        cfg = dataclasses.replace(cfg, seed=cfg.seed + offset)
    return cfg.for_seed(offset) if callable(getattr(cfg, "for_seed", None)) else cfg


def seeds_verdict(held: int, tested: int) -> bool | None:
    """A claim over seeds: ``None`` when no seed could test it, else ``True`` only if it held on every tested seed."""
    if not 0 <= held <= tested:
        raise ValueError(f"seeds_verdict: held={held} must be between 0 and tested={tested}")
    return None if tested == 0 else held == tested


def aggregate_claims(per_seed: Sequence[Sequence[Claim]]) -> list[Claim]:
    """One claim per claim key over the seeds' claim lists (seed 0 first): seed 0's text, the verdict over seeds.

    Claims are matched by ``key`` (and order among equal keys); a claim missing from a seed counts
    as untested there; a claim only some later seeds made is appended after seed 0's. Each claim
    gets ``seeds_held`` (seeds where it holds), ``seeds_tested`` (where ``holds`` is not ``None``),
    ``seeds_run`` (``len(per_seed)``), ``value_range`` (min and max of the finite values,
    ``None`` if none) and ``holds`` = :func:`seeds_verdict`. ``measured`` stays seed 0's.
    """
    keyed = [_keyed(claims) for claims in per_seed]
    order: list[tuple[str, int]] = []
    for claims in keyed:
        order += [key for key in claims if key not in order]
    out = []
    for key in order:
        versions = [claims.get(key) for claims in keyed]
        present = [c for c in versions if c is not None]
        tested = [c for c in present if c.holds is not None]
        values = [float(c.value) for c in present if c.value is not None and math.isfinite(c.value)]
        held = sum(c.holds is True for c in tested)
        out.append(dataclasses.replace(
            present[0], holds=seeds_verdict(held, len(tested)), seeds_held=held, seeds_tested=len(tested), seeds_run=len(per_seed),
            value_range=(min(values), max(values)) if values else None,
        ))
    return out


def _keyed(claims: Sequence[Claim]) -> dict[tuple[str, int], Claim]:
    seen: dict[str, int] = {}
    out = {}
    for claim in claims:
        n = seen.get(claim.key, 0)
        seen[claim.key] = n + 1
        out[(claim.key, n)] = claim
    return out
