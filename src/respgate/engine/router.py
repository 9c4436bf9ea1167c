"""Model names to deployments: aliases, a wildcard default, weighted round robin, fallbacks, cool-down."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from respgate.config import ModelEntry
from respgate.protocol.errors import NotFound
from respgate.providers.base import Provider

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Deployment:
    entry: ModelEntry
    provider: Provider
    label: str
    failures: int = 0
    cooling_until: float = 0.0

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(slots=True)
class _Pool:
    deployments: list[Deployment]
    cycle: Iterator[Deployment] = field(init=False)

    def __post_init__(self) -> None:
        # Smooth enough weighted round robin: each deployment appears `weight` times, interleaved.
        order: list[Deployment] = []
        weights = {id(dep): dep.entry.weight for dep in self.deployments}
        while any(weights.values()):
            for dep in self.deployments:
                if weights[id(dep)]:
                    order.append(dep)
                    weights[id(dep)] -= 1
        self.cycle = itertools.cycle(order)


class Router:
    """Resolves a requested model to the ordered deployments to try."""

    def __init__(
        self,
        *,
        entries: list[ModelEntry],
        build: Callable[[ModelEntry], Provider],
        aliases: dict[str, str] | None = None,
        fallbacks: dict[str, list[str]] | None = None,
        default_model: str | None = None,
        cooldown_after: int = 3,
        cooldown_seconds: float = 30.0,
        max_retry_after: float = 300.0,
    ) -> None:
        self._pools: dict[str, _Pool] = {}
        grouped: dict[str, list[Deployment]] = {}
        for position, entry in enumerate(entries):
            dep = Deployment(entry=entry, provider=build(entry), label=f"{entry.name}#{position}:{entry.provider}")
            grouped.setdefault(entry.name, []).append(dep)
        self._pools = {name: _Pool(deps) for name, deps in grouped.items()}
        self._aliases = dict(aliases or {})
        # Settings may key a chain by alias; lookups use the model's own name.
        self._fallbacks: dict[str, list[str]] = {}
        for name, chain in (fallbacks or {}).items():
            self._fallbacks.setdefault(self._aliases.get(name, name), []).extend(chain)
        self._default = default_model
        self._cooldown_after = cooldown_after
        self._cooldown_seconds = cooldown_seconds
        # An upstream may ask for hours (a daily quota); past this it is asked again, at a request's cost.
        self._max_retry_after = max_retry_after

    @property
    def model_names(self) -> list[str]:
        return list(self._pools)

    @property
    def default_model(self) -> str | None:
        return self._default

    def providers(self) -> list[Provider]:
        return [dep.provider for pool in self._pools.values() for dep in pool.deployments]

    def deployments(self) -> list[Deployment]:
        return [dep for pool in self._pools.values() for dep in pool.deployments]

    def canonical(self, requested: str) -> str:
        """The configured model that serves `requested`, or 404 `model_not_found`."""
        name = self._aliases.get(requested, requested)
        if name in self._pools:
            return name
        if self._default is not None:
            return self._default
        raise NotFound(
            f"The model '{requested}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def attempts(self, requested: str) -> list[Deployment]:
        """Deployments to try in order: the model's own (round robin first), then each fallback's."""
        primary = self.canonical(requested)
        order: list[Deployment] = []
        for name in [primary, *self._fallbacks.get(primary, [])]:
            pool = self._pools.get(self._aliases.get(name, name))
            if pool is None:
                continue
            first = next(pool.cycle)
            rest = [dep for dep in pool.deployments if dep is not first]
            order += [dep for dep in [first, *rest] if dep not in order]
        now = time.monotonic()
        warm = [dep for dep in order if dep.cooling_until <= now]
        # When every deployment is cooling down, try them anyway rather than refuse.
        return warm + [dep for dep in order if dep not in warm] if warm else order

    def record_failure(self, dep: Deployment, *, retry_after: float | None = None) -> None:
        """Count a failure; `retry_after`: the seconds the upstream asked us to stay away (a 429's)."""
        dep.failures += 1
        now = time.monotonic()
        if retry_after is not None and retry_after > 0:
            wait = min(retry_after, self._max_retry_after)
            dep.cooling_until = max(dep.cooling_until, now + wait)
            log.warning("deployment %s is rate limited; cooling down for %.1f s", dep.label, wait)
        if dep.failures >= self._cooldown_after:
            dep.cooling_until = max(dep.cooling_until, now + self._cooldown_seconds)
            log.warning("deployment %s failed %d times in a row; cooling down", dep.label, dep.failures)

    def record_success(self, dep: Deployment) -> None:
        dep.failures = 0
        dep.cooling_until = 0.0
