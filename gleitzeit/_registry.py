"""The registry of provider instances, indexed by name, method, model and capability."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from gleitzeit._candidates import CandidateLists, fits, routable
from gleitzeit._validation import suggest
from gleitzeit.errors import InstancesDownError, MethodNotFoundError, RoutingError
from gleitzeit.instance import ProviderInstance
from gleitzeit.methods import MethodDescription, MethodIndex


class Registry:
    """Every provider instance the host can reach, whatever its transport."""

    def __init__(self) -> None:
        self._instances: dict[str, ProviderInstance] = {}
        self._by_name: dict[str, dict[str, ProviderInstance]] = defaultdict(dict)
        self._by_method: dict[str, dict[str, ProviderInstance]] = defaultdict(dict)
        self._by_model: dict[str, dict[str, ProviderInstance]] = defaultdict(dict)
        self._by_capability: dict[str, dict[str, ProviderInstance]] = defaultdict(dict)
        self._by_name_method: dict[tuple[str, str], dict[str, ProviderInstance]] = defaultdict(dict)
        # Method names, all and per provider name, for resolving unprefixed names.
        self._methods = MethodIndex()
        self._methods_of: dict[str, MethodIndex] = defaultdict(MethodIndex)
        # Candidate lists by request shape, kept up to date by the events below.
        self._lists = CandidateLists()
        # Providers whose last instance left, with the methods it had: a call for one
        # of them may wait for an instance to come back (routing.wait_for_instance).
        self._gone: dict[str, tuple[str, ...]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        #: Told ``(event, instance)`` when an instance is added, removed, turns
        #: (un)routable or starts cooling down (a cluster publishes from it).
        self.watchers: list[Callable[[str, ProviderInstance], None]] = []
        #: Why a provider or method may be missing beyond what the registry holds
        #: (plugins that failed, or are installed but switched off): added to the hint
        #: of a provider or method not found.
        self.missing_hint: str | None = None

    # -- what instances tell the registry --------------------------------------------

    def routability_changed(self, instance: ProviderInstance) -> None:
        """``instance``'s health turned: into or out of the candidate lists."""
        if instance.health.status == "unhealthy":
            self._lists.left(instance)
        else:
            self._lists.joined(instance)
            self._wake()
        for watch in self.watchers:
            watch("health", instance)

    def cooling(self, instance: ProviderInstance) -> None:
        """``instance`` rests until its ``cooldown_until``; it returns by itself."""
        self._lists.cooling(instance)
        for watch in self.watchers:
            watch("cooling", instance)

    # -- waiting for an instance -----------------------------------------------------

    def _wake(self) -> None:
        """An instance came, went or recovered: wake whoever waits for one."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait_for_change(self, timeout: float) -> None:
        """Return when routing changes (an instance comes, goes, recovers), or after
        ``timeout`` seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def departed(self, method: str, provider: str | None = None) -> str | None:
        """The name of a provider whose last instance left and that served ``method``
        (full or unprefixed): a call for it waits for the provider to come back."""
        for name, methods in reversed(self._gone.items()):
            if provider is not None and name != provider:
                continue
            if method in methods or any(m.split("/", 1)[-1] == method for m in methods):
                return name
        return None

    def __len__(self) -> int:
        return len(self._instances)

    def __iter__(self) -> Iterator[ProviderInstance]:
        return iter(list(self._instances.values()))

    def add(self, instance: ProviderInstance) -> None:
        if instance.id in self._instances:
            self.remove(instance.id)
        self._instances[instance.id] = instance
        instance.registry = self
        self._index(instance)
        self._lists.joined(instance)
        self._wake()
        for watch in self.watchers:
            watch("added", instance)

    def _index(self, inst: ProviderInstance) -> None:
        self._gone.pop(inst.name, None)
        self._by_name[inst.name][inst.id] = inst
        own = self._methods_of[inst.name]
        for m in inst.methods:
            self._by_method[m][inst.id] = inst
            self._by_name_method[(inst.name, m)][inst.id] = inst
            self._methods.add(m)
            own.add(m)
        for model in inst.models:
            self._by_model[model][inst.id] = inst
        for cap in inst.capabilities:
            self._by_capability[cap][inst.id] = inst

    def _unindex(self, inst: ProviderInstance) -> None:
        own = self._methods_of[inst.name]
        for m in inst.methods:
            self._methods.remove(m)
            own.remove(m)
        if not own:
            del self._methods_of[inst.name]
        _drop(self._by_name, [inst.name], inst.id)
        _drop(self._by_method, inst.methods, inst.id)
        _drop(self._by_name_method, [(inst.name, m) for m in inst.methods], inst.id)
        _drop(self._by_model, inst.models, inst.id)
        _drop(self._by_capability, inst.capabilities, inst.id)

    def update_models(
        self, instance: ProviderInstance, models: list[str] | tuple[str, ...]
    ) -> None:
        """Re-index an instance whose model list changed (for example after discovery)."""
        self._lists.left(instance)
        _drop(self._by_model, instance.models, instance.id)
        instance.models = tuple(models)
        for model in instance.models:
            self._by_model[model][instance.id] = instance
        self._lists.joined(instance)
        self._wake()

    def serves_model(self, model: str) -> bool:
        """Whether any instance lists ``model`` among its models."""
        return model in self._by_model

    def serves(self, method: str) -> bool:
        """Whether any instance has the full method name ``method``."""
        return method in self._methods

    def update_methods(
        self, instance: ProviderInstance, methods: dict[str, MethodDescription]
    ) -> None:
        """Re-index an instance whose methods changed (a provider that discovers them)."""
        self._lists.left(instance)
        self._unindex(instance)
        instance.methods = methods
        self._index(instance)
        self._lists.joined(instance)
        self._wake()

    def remove(self, instance_id: str) -> ProviderInstance | None:
        inst = self._instances.pop(instance_id, None)
        if inst is not None:
            self._lists.left(inst)
            self._unindex(inst)
            inst.registry = None
            if inst.name not in self._by_name:
                self._gone[inst.name] = tuple(inst.methods)
                if len(self._gone) > 1024:
                    del self._gone[next(iter(self._gone))]
            self._wake()
            for watch in self.watchers:
                watch("removed", inst)
        return inst

    def get(self, instance_id: str) -> ProviderInstance | None:
        return self._instances.get(instance_id)

    def instances(self, name: str | None = None) -> list[ProviderInstance]:
        if name is None:
            return list(self._instances.values())
        return list(self._by_name.get(name, {}).values())

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def methods(self) -> list[str]:
        return sorted(self._by_method)

    def models(self) -> list[str]:
        return sorted(self._by_model)

    # -- lookup ----------------------------------------------------------------------

    def resolve_method(self, method: str, provider: str | None = None) -> str:
        """The full method name; ``chat`` means ``llm/chat`` where that is unambiguous."""
        if provider is None and method in self._by_method:  # the common case (a full name)
            return method
        if provider is not None and provider not in self._by_name:
            self._unknown_provider(provider)
        known = self._methods_of[provider] if provider is not None else self._methods
        full = known.resolve(method)
        if full is not None:
            return full
        near = suggest(method, sorted(known))
        what = (
            f"Provider {provider!r} has no method {method!r}"
            if provider
            else f"No provider offers the method {method!r}"
        )
        hint = f"available methods: {', '.join(sorted(known)) or '(none)'}" + (
            "" if provider else " — enable a plugin that provides it in gleitzeit.yaml"
        )
        if self.missing_hint:
            hint += f"; {self.missing_hint}"
        raise MethodNotFoundError(what + (f"; did you mean {near!r}?" if near else ""), hint=hint)

    def _unknown_provider(self, provider: str) -> None:
        names = self.names()
        near = suggest(provider, names)
        hint = f"available providers: {', '.join(names) or '(none)'} — see `gleitzeit plugins list`"
        if self.missing_hint:
            hint += f"; {self.missing_hint}"
        raise RoutingError(
            f"No provider named {provider!r}" + (f"; did you mean {near!r}?" if near else ""),
            hint=hint,
        )

    def candidates(
        self,
        method: str,
        provider: str | None = None,
        model: str | None = None,
        capability: str | None = None,
    ) -> list[ProviderInstance]:
        """Instances that serve the request and may be picked now.

        The list is cached and shared: do not change it.
        """
        lists = self._lists
        if lists.cooling_heap:  # (inline: this runs for every request)
            lists.wake_due()
        if provider is None and model is None and capability is None:
            found = lists.by_method.get(method)
            if found is not None:
                return found
        shape = (method, provider, model, capability)
        found = lists.items.get(shape)
        if found is not None:
            return found
        # The first request of this shape: build its list once; events keep it current.
        now = time.monotonic()
        pool = (
            self._by_method.get(method, {})
            if provider is None
            else self._by_name_method.get((provider, method), {})
        )
        out = [inst for inst in pool.values() if fits(shape, inst) and routable(inst, now)]
        for inst in pool.values():
            if inst.cooldown_until > now and fits(shape, inst):
                self._lists.cooling(inst)  # it joins this list when its rest ends
        return self._lists.put(shape, out)

    def explain_no_candidate(
        self, method: str, *, provider: str | None, model: str | None, capability: str | None
    ) -> RoutingError:
        """The error for a request nothing can serve: what was asked, what there is."""
        pool = [
            i
            for i in self._by_method.get(method, {}).values()
            if provider is None or i.name == provider
        ]
        asked = f"method {method!r}" + (f" on provider {provider!r}" if provider else "")
        if model is None:
            need = sorted({i.name for i in pool if method in i.model_required})
            if need and len(need) == len({i.name for i in pool}):
                served = sorted({m for i in pool for m in i.models})
                return RoutingError(
                    f"No provider serves {asked} without a model: {', '.join(need)} need one",
                    hint='pass a model (--model or "model" in the parameters)'
                    + (f"; served: {', '.join(served[:20])}" if served else "")
                    + ", or set default_model in the plugin's settings",
                )
            pool = [i for i in pool if method not in i.model_required]
        if model is not None:
            with_model = [i for i in pool if not i.models or model in i.models]
            if not with_model:
                served = sorted({m for i in pool for m in i.models})
                near = suggest(model, served)
                return RoutingError(
                    f"No provider serves model {model!r} for {asked}"
                    + (f"; did you mean {near!r}?" if near else ""),
                    hint=(
                        f"models served: {', '.join(served) or '(none)'} — "
                        "enable a provider for it in gleitzeit.yaml"
                    ),
                )
            pool = with_model
        if capability is not None:
            pool = [i for i in pool if capability in i.capabilities]
            if not pool:
                return RoutingError(f"No provider with capability {capability!r} serves {asked}")
        down = [i for i in pool if not i.routable]
        if down:
            now = time.monotonic()
            reasons = "; ".join(
                f"{i.id}: {i.health.detail or i.last_error or 'cooling down after failures'}"
                + (f" (back in {i.cooldown_until - now:.0f}s)" if i.cooldown_until > now else "")
                for i in down[:5]
            )
            resting = [i.cooldown_until - now for i in down if i.cooldown_until > now]
            # When every one rests (none is unhealthy), the first to come back says
            # when to try again.
            back = min(resting) if len(resting) == len(down) else None
            return InstancesDownError(
                f"Every instance that serves {asked} is down or cooling down ({reasons})",
                hint="see `gleitzeit providers health`"
                + (f"; retry in {back:.0f}s" if back is not None else ""),
                retry_after=back,
            )
        return RoutingError(f"No provider serves {asked}")

    def snapshot(self) -> list[dict[str, Any]]:
        return [i.describe() for i in sorted(self._instances.values(), key=lambda i: i.id)]


K = TypeVar("K")


def _drop(index: dict[K, dict[str, ProviderInstance]], keys: Iterable[K], instance_id: str) -> None:
    """Take an instance out of the buckets ``keys`` of ``index``; empty buckets go."""
    for key in keys:
        bucket = index.get(key)
        if bucket is not None:
            bucket.pop(instance_id, None)
            if not bucket:
                del index[key]
