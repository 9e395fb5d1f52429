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
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gleitzeit.dispatch import Call, CallListener
from gleitzeit.instance import ProviderInstance
from gleitzeit.logs import outcome_of

if TYPE_CHECKING:
    from gleitzeit.registry import Registry

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


class _Series:
    """The children of one (provider, method, model, instance): looked up once."""

    __slots__ = (
        "key",
        "outcomes",
        "duration",
        "ttft",
        "in_flight",
        "retries",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self, m: Metrics, labels: tuple[str, str, str, str]) -> None:
        self.key = labels
        self.outcomes: dict[str, Any] = {}
        self.duration = m.duration.labels(*labels)
        self.ttft = m.ttft.labels(*labels)
        self.in_flight = m.in_flight.labels(*labels)
        self.retries = m.retries.labels(*labels)
        self.tokens_in = m.tokens.labels(*labels, "in")
        self.tokens_out = m.tokens.labels(*labels, "out")


def _model_label(model: str | None, inst: ProviderInstance | None) -> str:
    if model is None:
        return ""
    if inst is not None and model in inst.models:
        return model
    return "other"


class Metrics(CallListener):
    """Every metric of ``/metrics``, fed by the dispatcher and read when scraped.

    ``connections`` (namespace -> connected count) and ``runs`` (a callable giving
    ``{"runs": {status: n}, "tasks": {status: n}}``) are read at scrape time.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        connections: Callable[[], dict[str, int]] | None = None,
        runs: Callable[[], dict[str, dict[str, int]]] | None = None,
    ) -> None:
        self.registry = registry
        self.prometheus = CollectorRegistry(auto_describe=True)
        r = self.prometheus
        self.requests = Counter(
            "gleitzeit_requests",
            "Requests dispatched, by outcome (ok, or the error code)",
            [*CALL_LABELS, "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "gleitzeit_request_duration_seconds",
            "Time from dispatch to the result (invoke) or the last chunk (stream)",
            CALL_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gleitzeit_time_to_first_token_seconds",
            "Time from dispatch to a stream's first chunk",
            CALL_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "gleitzeit_tokens",
            "Tokens in (prompt) and out (completion), where the provider reports usage",
            [*CALL_LABELS, "direction"],
            registry=r,
        )
        self.in_flight = Gauge(
            "gleitzeit_requests_in_flight",
            "Attempts running now",
            CALL_LABELS,
            registry=r,
        )
        self.retries = Counter(
            "gleitzeit_retries",
            "Attempts that failed retryably and moved to another instance",
            CALL_LABELS,
            registry=r,
        )
        self.fallbacks = Counter(
            "gleitzeit_fallbacks",
            "Requests moved to the next model of a fallback chain",
            ["method", "from_model", "to_model"],
            registry=r,
        )
        self.cooldowns = Counter(
            "gleitzeit_cooldowns",
            "Times an instance was taken out of routing after failing in a row",
            ["provider", "instance"],
            registry=r,
        )
        self.events = Counter(
            "gleitzeit_socketio_events",
            "Socket.IO events received (in) and sent (out)",
            ["namespace", "event", "direction"],
            registry=r,
        )
        self.refused = Counter(
            "gleitzeit_payloads_refused",
            "Socket.IO payloads refused (too large, invalid)",
            ["namespace", "event", "reason"],
            registry=r,
        )
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self._cooldown_labels: set[tuple[str, str]] = set()
        self.windows: dict[str, InstanceWindow] = {}
        r.register(_StateCollector(self, connections, runs))

    # -- the dispatcher's side --------------------------------------------------------

    def _for(self, call: Call, inst: ProviderInstance | None) -> _Series:
        request = call.request
        if inst is not None:
            key = (inst.name, request.method, _model_label(request.model, inst), inst.id)
        else:  # nothing could be picked: the method is kept only if something serves it
            method = request.method if self.registry.serves(request.method) else ""
            key = ("", method, "", "")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, key)
        return series

    def attempt_started(self, call: Call) -> None:
        self._for(call, call.instance).in_flight.inc()

    def attempt_ended(self, call: Call, error: BaseException | None, retrying: bool) -> None:
        series = self._for(call, call.instance)
        series.in_flight.dec()
        if retrying:
            series.retries.inc()

    def first_chunk(self, call: Call, seconds: float) -> None:
        self._for(call, call.instance).ttft.observe(seconds)

    def cooldown_entered(self, instance: ProviderInstance, error: BaseException) -> None:
        self._cooldown_labels.add((instance.name, instance.id))
        self.cooldowns.labels(instance.name, instance.id).inc()

    def fell_back(self, call: Call, from_model: str | None, to_model: str | None) -> None:
        self.fallbacks.labels(
            call.request.method,
            _model_label(from_model, call.instance),
            _model_label(to_model, call.instance),
        ).inc()

    def call_ended(
        self,
        call: Call,
        instance: ProviderInstance | None,
        error: BaseException | None,
        result: dict[str, Any] | None,
    ) -> None:
        series = self._for(call, instance)
        outcome = "ok" if error is None else outcome_of(error)
        counter = series.outcomes.get(outcome)
        if counter is None:
            counter = series.outcomes[outcome] = self.requests.labels(*series.key, outcome)
        counter.inc()
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
                    series.tokens_in.inc(prompt)
                if isinstance(completion, int) and completion > 0:
                    series.tokens_out.inc(completion)

    # -- the server's side --------------------------------------------------------------

    def forget_gone_instances(self) -> None:
        """Drop the series of instances no longer in the registry (at scrape time),
        so reconnecting providers do not grow the label sets without bound."""
        alive = {i.id for i in self.registry}
        for key in [k for k in self._series if k[3] and k[3] not in alive]:
            series = self._series.pop(key)
            for metric in (self.duration, self.ttft, self.in_flight, self.retries):
                _remove(metric, key)
            for direction in ("in", "out"):
                _remove(self.tokens, (*key, direction))
            for outcome in series.outcomes:
                _remove(self.requests, (*key, outcome))
        for labels in [c for c in self._cooldown_labels if c[1] not in alive]:
            self._cooldown_labels.discard(labels)
            _remove(self.cooldowns, labels)
        for instance_id in [i for i in self.windows if i not in alive]:
            del self.windows[instance_id]


def _remove(metric: Any, labels: tuple[str, ...]) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


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

    def describe(self) -> list[Any]:
        return []  # collected fresh at each scrape; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        m = self.metrics
        m.forget_gone_instances()
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
