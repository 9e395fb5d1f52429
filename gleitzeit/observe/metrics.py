"""Prometheus metrics of a server, in a registry the server owns.

:class:`Metrics` listens to the dispatcher (so in-process, remote and gateway calls
are each counted once, where they are dispatched) and, when scraped, reads what is a
state rather than an event — instance health, connections, workflow runs — from the
host's registry, the server's Socket.IO counters and the run store.

Label values are bounded: provider, method and instance come from what registered;
a model is kept only when an instance lists it (``other`` otherwise, ``""`` when the
request named none); outcomes are error codes; Socket.IO events and namespaces are
those with handlers (``other`` otherwise). Series of an instance that went away are
dropped at the next scrape.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gleitzeit._dispatch import Call, CallListener
from gleitzeit.instance import ProviderInstance
from gleitzeit.logs import outcome_of

if TYPE_CHECKING:
    from gleitzeit._registry import Registry

__all__ = ["Metrics", "InstanceWindow"]

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
CALL_LABELS = ("provider", "method", "model", "instance")
HEALTH_STATES = ("healthy", "degraded", "unhealthy", "unknown")


class InstanceWindow:
    """Recent latencies of one instance, for the dashboard's p50/p95."""

    __slots__ = ("latencies",)

    def __init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=256)

    def percentiles(self) -> tuple[float | None, float | None]:
        if not self.latencies:
            return None, None
        ordered = sorted(self.latencies)
        n = len(ordered)
        return ordered[int(0.5 * (n - 1))], ordered[int(0.95 * (n - 1))]


class _Histogram:
    """Bucket counts of one series (not cumulative; made so when exposed)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip(
            (*map(floatToGoString, LATENCY_BUCKETS), "+Inf"), self.counts, strict=True
        ):
            running += n
            out.append((bound, float(running)))
        return out


class _Series:
    """Everything counted for one (provider, method, model, instance)."""

    __slots__ = (
        "key",
        "instance",
        "outcomes",
        "duration",
        "ttft",
        "in_flight",
        "retries",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self, labels: tuple[str, str, str, str], inst: ProviderInstance | None) -> None:
        self.key = labels
        self.instance = inst
        self.outcomes: dict[str, int] = {}
        self.duration = _Histogram()
        self.ttft = _Histogram()
        self.in_flight = 0
        self.retries = 0
        self.tokens_in = 0
        self.tokens_out = 0


def _model_label(model: str | None, inst: ProviderInstance | None) -> str:
    if model is None:
        return ""
    if inst is not None and model in inst.models:
        return model
    return "other"


class Metrics(CallListener):
    """Every metric of ``/metrics``, fed by the dispatcher and read when scraped.

    Calls are counted in plain integers on the event loop (no locks, a dict lookup
    per event) and turned into Prometheus families by a collector when scraped —
    prometheus-client's own pattern for state kept elsewhere. ``connections``
    (namespace -> connected count) and ``runs`` (``{"runs": {status: n}, "tasks":
    {status: n}}``) are read at scrape time too.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        connections: Callable[[], dict[str, int]] | None = None,
        runs: Callable[[], dict[str, dict[str, int]]] | None = None,
    ) -> None:
        self.registry = registry
        self.prometheus = CollectorRegistry(auto_describe=False)
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self.cooldowns: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[tuple[str, str, str], int] = {}
        #: (namespace, event, direction) -> count; (namespace, event, reason) -> count
        self.events: dict[tuple[str, str, str], int] = {}
        self.refused: dict[tuple[str, str, str], int] = {}
        self.windows: dict[str, InstanceWindow] = {}
        self.prometheus.register(_CallCollector(self))
        self.prometheus.register(_StateCollector(self, connections, runs))

    # -- the dispatcher's side --------------------------------------------------------

    def _for(self, call: Call, inst: ProviderInstance | None) -> _Series:
        series = call.observed
        if series is not None and series.instance is inst:
            return series
        request = call.request
        if inst is not None:
            key = (inst.name, request.method, _model_label(request.model, inst), inst.id)
        else:  # nothing could be picked: the method is kept only if something serves it
            method = request.method if self.registry.serves(request.method) else ""
            key = ("", method, "", "")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(key, inst)
        call.observed = series
        return series

    def attempt_started(self, call: Call) -> None:
        self._for(call, call.instance).in_flight += 1

    def attempt_ended(self, call: Call, error: BaseException | None, retrying: bool) -> None:
        series = self._for(call, call.instance)
        series.in_flight -= 1
        if retrying:
            series.retries += 1

    def first_chunk(self, call: Call, seconds: float) -> None:
        self._for(call, call.instance).ttft.observe(seconds)

    def cooldown_entered(self, instance: ProviderInstance, error: BaseException) -> None:
        key = (instance.name, instance.id)
        self.cooldowns[key] = self.cooldowns.get(key, 0) + 1

    def fell_back(self, call: Call, from_model: str | None, to_model: str | None) -> None:
        # Fallback targets come from models.aliases in the config: a bounded set.
        key = (call.request.method, from_model or "", to_model or "")
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def call_ended(
        self,
        call: Call,
        instance: ProviderInstance | None,
        error: BaseException | None,
        result: dict[str, Any] | None,
    ) -> None:
        series = self._for(call, instance)
        outcome = "ok" if error is None else outcome_of(error)
        outcomes = series.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        seconds = time.perf_counter() - call.begun
        series.duration.observe(seconds)
        if instance is not None:
            window = self.windows.get(instance.id)
            if window is None:
                window = self.windows[instance.id] = InstanceWindow()
            window.latencies.append(seconds)
        if result is not None:
            usage = result.get("usage")
            if type(usage) is dict:
                prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
                if isinstance(prompt, int) and prompt > 0:
                    series.tokens_in += prompt
                if isinstance(completion, int) and completion > 0:
                    series.tokens_out += completion

    # -- the server's side --------------------------------------------------------------

    def forget_gone_instances(self) -> None:
        """Drop the series of instances no longer in the registry (at scrape time),
        so reconnecting providers do not grow the label sets without bound."""
        alive = {i.id for i in self.registry}
        for key in [k for k in self._series if k[3] and k[3] not in alive]:
            del self._series[key]
        for labels in [c for c in self.cooldowns if c[1] not in alive]:
            del self.cooldowns[labels]
        for instance_id in [i for i in self.windows if i not in alive]:
            del self.windows[instance_id]


class _CallCollector(Collector):
    """The dispatcher's counts as Prometheus families."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        m = self.metrics
        m.forget_gone_instances()
        labels = list(CALL_LABELS)
        requests = CounterMetricFamily(
            "gleitzeit_requests",
            "Requests dispatched, by outcome (ok, or the error code)",
            labels=[*labels, "outcome"],
        )
        duration = HistogramMetricFamily(
            "gleitzeit_request_duration_seconds",
            "Time from dispatch to the result (invoke) or the last chunk (stream)",
            labels=labels,
        )
        ttft = HistogramMetricFamily(
            "gleitzeit_time_to_first_token_seconds",
            "Time from dispatch to a stream's first chunk",
            labels=labels,
        )
        tokens = CounterMetricFamily(
            "gleitzeit_tokens",
            "Tokens in (prompt) and out (completion), where the provider reports usage",
            labels=[*labels, "direction"],
        )
        in_flight = GaugeMetricFamily(
            "gleitzeit_requests_in_flight", "Attempts running now", labels=labels
        )
        retries = CounterMetricFamily(
            "gleitzeit_retries",
            "Attempts that failed retryably and moved to another instance",
            labels=labels,
        )
        for key, series in sorted(m._series.items()):
            values = list(key)
            for outcome, n in sorted(series.outcomes.items()):
                requests.add_metric([*values, outcome], n)
            if any(series.duration.counts):
                duration.add_metric(values, series.duration.buckets(), series.duration.total)
            if any(series.ttft.counts):
                ttft.add_metric(values, series.ttft.buckets(), series.ttft.total)
            if series.tokens_in or series.tokens_out:
                tokens.add_metric([*values, "in"], series.tokens_in)
                tokens.add_metric([*values, "out"], series.tokens_out)
            in_flight.add_metric(values, series.in_flight)
            if series.retries:
                retries.add_metric(values, series.retries)
        yield from (requests, duration, ttft, tokens, in_flight, retries)
        yield _counter(
            "gleitzeit_fallbacks",
            "Requests moved to the next model of a fallback chain",
            ["method", "from_model", "to_model"],
            m.fallbacks,
        )
        yield _counter(
            "gleitzeit_cooldowns",
            "Times an instance was taken out of routing after failing in a row",
            ["provider", "instance"],
            m.cooldowns,
        )
        yield _counter(
            "gleitzeit_socketio_events",
            "Socket.IO events received (in) and sent (out)",
            ["namespace", "event", "direction"],
            m.events,
        )
        yield _counter(
            "gleitzeit_payloads_refused",
            "Socket.IO payloads refused (too large, invalid)",
            ["namespace", "event", "reason"],
            m.refused,
        )


class _StateCollector(Collector):
    """What is read at scrape time: health, connections, workflow runs."""

    def __init__(
        self,
        metrics: Metrics,
        connections: Callable[[], dict[str, int]] | None,
        runs: Callable[[], dict[str, dict[str, int]]] | None,
    ) -> None:
        self.metrics = metrics
        self.connections = connections
        self.runs = runs

    def collect(self) -> Iterator[Any]:
        m = self.metrics
        health = GaugeMetricFamily(
            "gleitzeit_instance_health",
            "1 for the instance's current health state (healthy, degraded, unhealthy, "
            "unknown), 0 for the others",
            labels=["provider", "instance", "state"],
        )
        cooling = GaugeMetricFamily(
            "gleitzeit_instance_cooling_down",
            "1 while the instance rests after failing in a row",
            labels=["provider", "instance"],
        )
        now = time.monotonic()
        remote = 0
        for inst in m.registry:
            status = inst.health.status
            for state in HEALTH_STATES:
                health.add_metric([inst.name, inst.id, state], 1.0 if status == state else 0.0)
            cooling.add_metric([inst.name, inst.id], 1.0 if inst.cooldown_until > now else 0.0)
            if inst.transport != "inprocess":
                remote += 1
        yield health
        yield cooling
        providers = GaugeMetricFamily(
            "gleitzeit_connected_providers", "Provider instances connected from other processes"
        )
        providers.add_metric([], float(remote))
        yield providers
        clients = GaugeMetricFamily(
            "gleitzeit_connected_clients",
            "Socket.IO connections of callers and pages, by namespace",
            labels=["namespace"],
        )
        for namespace, n in sorted((self.connections() if self.connections else {}).items()):
            clients.add_metric([namespace], float(n))
        yield clients
        if self.runs is not None:
            counts = self.runs()
            runs = GaugeMetricFamily(
                "gleitzeit_workflow_runs",
                "Workflow runs in the run store, by status",
                labels=["status"],
            )
            for run_status, n in sorted(counts.get("runs", {}).items()):
                runs.add_metric([run_status], float(n))
            yield runs
            tasks = GaugeMetricFamily(
                "gleitzeit_workflow_tasks",
                "Workflow tasks in the run store, by status",
                labels=["status"],
            )
            for task_status, n in sorted(counts.get("tasks", {}).items()):
                tasks.add_metric([task_status], float(n))
            yield tasks


_Labels = TypeVar("_Labels", bound=tuple[str, ...])


def _counter(
    name: str, documentation: str, labels: list[str], counts: Mapping[_Labels, int]
) -> CounterMetricFamily:
    """A counter family with one series per label tuple of ``counts``."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, n in sorted(counts.items()):
        family.add_metric(list(key), n)
    return family
