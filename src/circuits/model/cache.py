"""What ``run_with_cache`` stores, and what it derives on first access instead.

Some cached activations are pure functions of tensors the forward pass keeps anyway, and the
largest of them cost the forward pass real work to materialise:

====================================  ==========================================  ===========================================
hook point                            derived from                                what the forward pass saves
====================================  ==========================================  ===========================================
``blocks.{l}.attn.hook_result``       ``hook_z`` and ``W_O`` (a per-head matmul)  the ``[batch, pos, head, d_model]`` tensor
``blocks.{l}.attn.hook_attn_scores``  ``q``, ``k`` (rotated / smeared) and mask   the explicit attention: the fused kernel runs
``blocks.{l}.attn.hook_pattern``      the scores (softmax)                        (same)
``*.hook_scale`` (LayerNorm, RMSNorm) the norm's input                            the explicit norm: the fused kernel runs
``blocks.{l}.mlp.hook_post``          ``hook_pre`` (and ``hook_pre_linear``)      keeping ``[batch, pos, d_mlp]`` alive
====================================  ==========================================  ===========================================

Every hook point of the model is a :class:`CacheableHookPoint`: when ``run_with_cache`` selects
a point that no hook observes, it attaches no caching hook there (hooks make PyTorch take its slow
call path) but hands the point a :class:`Sink`, and the point stores what passes through it. A
derivable point that no hook observes is not even computed: the module runs its hook-free fast
path and hands the point a recipe (:meth:`DerivableHookPoint.defer`), which the cache runs on
first access (:class:`LazyActivations`). The recipe is the very function the module runs when a
hook *is* attached, on the same inputs, so the derived value is bitwise the value the hook would
have seen; tests check it key by key. A hook attached to any point still fires in the forward
pass and may edit the tensor; the cache then stores what the hook left, as in TransformerLens.

The modules make this exact by keeping their numbers independent of observers: when hooks are
attached but leave the tensor unchanged (the hook returns the same tensor and its version
counter did not move), the module still returns its fast path's output. So a cache, an
identity hook and no hook at all give bitwise the same logits. Edits that bypass PyTorch's
version counter (writing through ``tensor.data`` or a NumPy view) are not seen as edits: edit
the tensor itself, in place or by returning a new one.

Derived inputs are detached references to tensors the cache holds anyway (or, for weights,
copies taken at run time, so training the model afterwards does not change the cache). If one
of those activations is edited in place before a derived entry is read, reading it raises
``RuntimeError`` rather than return a value the forward pass never computed.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Callable

import torch
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

Save = Callable[..., None]  # TransformerLens's save_hook(tensor, hook): stores the (sliced, moved) tensor in a dict
Keep = Callable[[HookPoint, Tensor], Tensor]  # what a cache stores for a point's tensor (detached; moved and sliced as asked)


class Derived:
    """A deferred cache entry: ``compute(*inputs)``, kept as the cache keeps any tensor, on first access.

    It refers to no cache (the cache refers to it), so a dropped cache is freed at once, not by the cycle collector.
    """

    __slots__ = ("point", "compute", "inputs", "versions", "keep", "__weakref__")

    def __init__(self, point: HookPoint, compute: Callable[..., Tensor], inputs: tuple[Any, ...], keep: Keep):
        self.point, self.compute, self.keep = point, compute, keep
        self.inputs = tuple(_freeze(value) for value in inputs)
        self.versions = [version_of(value) for value in self.inputs if isinstance(value, Tensor)]

    def materialise(self) -> Tensor:
        """Run the recipe; its result as the cache keeps it (raises if an input was edited in place since the run)."""
        now = [version_of(value) for value in self.inputs if isinstance(value, Tensor)]
        if now != self.versions:
            raise RuntimeError(
                f"cannot derive {self.point.name}: an activation it is computed from was edited in place after "
                "run_with_cache; read the entry before editing the cache, or edit a clone"
            )
        with torch.no_grad():
            return self.keep(self.point, self.compute(*self.inputs))


def _freeze(value: Any) -> Any:
    if isinstance(value, nn.Parameter):
        return value.detach().clone()  # weights may be trained or edited after the run
    if isinstance(value, Tensor):
        return value.detach()
    return value


class LazyActivations(MutableMapping):
    """The ``cache_dict`` of a lazy ``ActivationCache``: an ordered mapping whose derived entries are computed on first read.

    Keys, their order and ``len`` are those of an eager cache; ``in`` does not compute anything.
    Reading an entry (``[]``, ``get``, ``values``, ``items``) computes it once and keeps it.
    """

    def __init__(self) -> None:
        self._store: dict[str, Tensor | Derived] = {}

    def __getitem__(self, key: str) -> Tensor:
        value = self._store[key]
        if isinstance(value, Derived):
            value = self._store[key] = value.materialise()  # same key, same position
        return value

    def __setitem__(self, key: str, value: Tensor) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return f"LazyActivations({len(self)} entries, {len(self.pending())} not computed yet)"

    def defer(self, name: str, entry: Derived) -> None:
        self._store[name] = entry

    def pending(self) -> list[str]:
        """Names of the entries not computed yet."""
        return [name for name, value in self._store.items() if isinstance(value, Derived)]

    def copy(self) -> dict[str, Tensor]:
        """A plain dict of every entry (computing the derived ones)."""
        return dict(self.items())


def detached(point: HookPoint, tensor: Tensor) -> Tensor:
    """What a cache with no device, batch or position options keeps: the tensor, detached."""
    return tensor.detach()


class SavedLikeTransformerLens:
    """What TransformerLens's ``save_hook`` would keep (moved, batch axis dropped, positions sliced), computed without storing it."""

    __slots__ = ("save", "scratch")

    def __init__(self, save: Save, scratch: dict[str, Tensor]):
        self.save, self.scratch = save, scratch  # ``save`` writes into ``scratch``, never into the cache

    def __call__(self, point: HookPoint, tensor: Tensor) -> Tensor:
        self.save(tensor, hook=point)
        return self.scratch.pop(point.name)


class Sink:
    """Where the hook points send their tensors (or recipes) during one ``run_with_cache``."""

    __slots__ = ("cache", "keep")

    def __init__(self, cache: LazyActivations, keep: Keep):
        self.cache, self.keep = cache, keep

    def store(self, point: HookPoint, tensor: Tensor) -> None:
        self.cache[point.name] = self.keep(point, tensor)


class CacheableHookPoint(HookPoint):
    """A TransformerLens ``HookPoint`` that ``run_with_cache`` fills without a hook.

    Hooks attached to it work as on any ``HookPoint``. While ``sink`` is set (only during a
    ``run_with_cache``, and only on points no hook observes), the point stores what passes
    through it: the same tensor a caching hook would store, without the cost of a hook.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sink: Sink | None = None

    def attach(self, sink: Sink | None) -> None:
        """Set (or, with ``None``, clear) the sink; a plain attribute write, not ``nn.Module.__setattr__``'s checks."""
        object.__setattr__(self, "sink", sink)

    def forward(self, x: Tensor) -> Tensor:
        sink = self.sink
        if sink is not None:
            sink.store(self, x)
        return x


class DerivableHookPoint(CacheableHookPoint):
    """A hook point whose value the module may skip computing; the cache then derives it on first access."""

    @property
    def deferring(self) -> bool:
        """Whether a ``run_with_cache`` is waiting for this point's value (so a recipe is worth building)."""
        return self.sink is not None

    def defer(self, compute: Callable[..., Tensor], *inputs: Any) -> None:
        """Hand ``compute(*inputs)`` to the running ``run_with_cache`` (a no-op outside one).

        Under autocast the value is computed now, under the same autocast, so it stays exact.
        """
        sink = self.sink
        if sink is None:
            return
        if torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled("cpu"):
            with torch.no_grad():
                sink.store(self, compute(*(_freeze(value) for value in inputs)))
            return
        sink.cache.defer(self.name, Derived(self, compute, inputs, sink.keep))


@contextmanager
def filling(cache: LazyActivations, points: list[CacheableHookPoint], keep: Keep) -> Iterator[None]:
    """While the block runs, ``points`` store into ``cache`` what passes through them (kept as ``keep`` says)."""
    sink = Sink(cache, keep)
    for point in points:
        point.attach(sink)
    try:
        yield
    finally:
        for point in points:
            point.attach(None)


def version_of(tensor: Tensor) -> int | None:
    """The tensor's in-place edit counter (``None`` for inference-mode tensors, which have none)."""
    return None if tensor.is_inference() else tensor._version


def unchanged(seen: Tensor, original: Tensor, version: int | None, point: HookPoint) -> bool:
    """Whether the hooks of ``point`` left ``original`` as it was (same tensor, no in-place edit, no backward hook).

    A backward hook needs the tensor on the autograd path, and an inference-mode tensor cannot
    show an in-place edit, so both count as a change (the explicit path runs).
    """
    return seen is original and version is not None and original._version == version and not point._backward_hooks
