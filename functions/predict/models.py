"""The models one predict container serves: every configured model, each loaded on its first
request into a cache bounded by `[serving] model_cache_mb`, least recently used unloaded first.

Each configured model has its own `ModelStore` (its alias TTL, checksum check, integrity metric
and canary rollout, all from the model's own view of the config); a version asked for by number
(`/v2/models/{name}/versions/{v}`) is kept beside them. The cache charges each entry the size of
its ONNX files: known exactly as soon as the bytes are read, the same on every machine, and
what the session's memory grows with (the measured ratio is in docs/benchmarks.md); the
process's resident memory could not say which model a byte belongs to.

A name that is not configured is refused before anything is read (`ModelNotFoundError`, listing
the configured models): the function's role may read configured models only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from functions.common.config.serving_view import ServingSettings
from functions.common.observability import logger
from functions.common.sensitive import SensitiveColumns
from functions.predict.model_store import PINNED, ModelStore, model_metric
from functions.serving.model import ServingModel

UNLOADED = "ModelsUnloaded"


class ModelNotFoundError(LookupError):
    """A route names a model this endpoint does not serve."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        super().__init__(
            f"model {name!r} is not served here; available models: {', '.join(available)}"
        )


@dataclass(kw_only=True)
class Served:
    """One configured model in this container: its store and its own settings."""

    name: str
    store: ModelStore
    serving: ServingSettings
    """The model's view of `[serving]` (its overrides merged)."""
    sensitive: SensitiveColumns
    """Its dataset's sensitive columns, as capture stores them."""
    feedback_lookback_hours: int


class ModelCache:
    """Configured models by name, loaded lazily, bounded by `cap_bytes` of ONNX files.

    `served(name)` answers a request's model (created on first use); after the request picked
    its version, `fit(name)` unloads the least recently used others while the total is over
    the cap (never the one in use).
    """

    def __init__(
        self,
        *,
        names: Sequence[str],
        default: str,
        make: Callable[[str], Served],
        cap_bytes: int,
    ) -> None:
        self.names = tuple(names)
        self.default = default
        self.cap_bytes = cap_bytes
        self._make = make
        self._served: dict[str, Served] = {}
        self._pinned: dict[tuple[str, int], ServingModel] = {}
        self._recent: OrderedDict[str | tuple[str, int], None] = OrderedDict()
        self._sizes: dict[str | tuple[str, int], int] = {}
        self._total = 0
        self._lock = threading.Lock()
        self.clock: Callable[[], float] | None = None
        """When set, the alias clock of every store created from now on (tests drive TTLs)."""

    def served(self, name: str | None = None) -> Served:
        """The configured model `name` (the default model when None), most recently used now.

        Raises:
            ModelNotFoundError: `name` is not a configured model.
        """
        name = self.default if name is None else name
        served = self._served.get(name)
        if served is None:
            if name not in self.names:
                raise ModelNotFoundError(name, self.names)
            with self._lock:
                served = self._served.get(name)
                if served is None:
                    served = self._served[name] = self._make(name)
                    if self.clock is not None:
                        served.store.clock = self.clock
        self._touch(name)
        return served

    def pinned(self, name: str, version: int) -> ServingModel:
        """Version `version` of model `name`, kept in the cache like any entry.

        Raises:
            ModelNotFoundError, VersionNotFoundError, VersionRefusedError.
        """
        served = self.served(name)
        key = (name, version)
        model = self._pinned.get(key)
        if model is None:
            model = served.store.pinned(version)
            if model.alias == PINNED:  # loaded for this request, not production's
                with self._lock:
                    self._pinned[key] = model
        self._touch(key)
        return model

    def after_restore(self) -> None:
        """After a SnapStart restore: every store re-resolves its aliases at once."""
        for served in list(self._served.values()):
            served.store.after_restore()

    @property
    def loaded(self) -> dict[str, int]:
        """Entries holding a model now and their ONNX bytes (`name`, or `name@version`)."""
        sizes = {name: s.store.loaded_bytes for name, s in self._served.items()}
        sizes.update({f"{n}@{v}": m.size for (n, v), m in self._pinned.items()})
        return {name: size for name, size in sizes.items() if size}

    def _touch(self, key: str | tuple[str, int]) -> None:
        recent = self._recent
        if key in recent:
            recent.move_to_end(key)
        else:
            with self._lock:
                recent[key] = None

    def fit(self, keep: str | tuple[str, int]) -> None:
        """After a request picked its model `keep`: record what `keep` holds now, then unload
        the least recently used entries (never `keep`) while the loaded total is over the
        cap. Only a request changes what its own entry holds, so the total is kept as a sum
        updated here."""
        size = self._size(keep)
        self._total += size - self._sizes.get(keep, 0)
        self._sizes[keep] = size
        if self._total <= self.cap_bytes:
            return
        with self._lock:
            for key in list(self._recent):
                if self._total <= self.cap_bytes:
                    break
                if key != keep:
                    self._drop(key)
        if self._total > self.cap_bytes:
            logger.warning(
                "The model in use alone is over serving.model_cache_mb",
                extra={"model": keep, "bytes": self._total, "cap_bytes": self.cap_bytes},
            )

    def _size(self, key: str | tuple[str, int]) -> int:
        if isinstance(key, tuple):
            pinned = self._pinned.get(key)
            return pinned.size if pinned is not None else 0
        served = self._served.get(key)
        return served.store.loaded_bytes if served is not None else 0

    def _drop(self, key: str | tuple[str, int]) -> None:
        self._recent.pop(key, None)
        self._total -= self._sizes.pop(key, 0)
        if isinstance(key, tuple):
            self._pinned.pop(key, None)
            dropped = f"{key[0]}@{key[1]}"
        else:
            self._served.pop(key, None)
            dropped = key
        model_metric(UNLOADED, key[0] if isinstance(key, tuple) else key)
        logger.info("Model unloaded (least recently used)", extra={"model": dropped})
