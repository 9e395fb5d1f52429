"""The dashboard's pusher sends only what changed, and nothing while nothing does."""

from __future__ import annotations

from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.instance import ProviderInstance
from gleitzeit.methods import MethodDescription
from gleitzeit.observe.dashboard import Dashboard
from gleitzeit.observe.metrics import Metrics
from gleitzeit.plugins import Plugins
from gleitzeit.socketio.guard import Guard
from gleitzeit.socketio.origins import OriginPolicy
from gleitzeit.tokens import Credentials


def _instance(name: str) -> ProviderInstance:
    return ProviderInstance(name=name, kind="tool", methods={"x/do": MethodDescription()})


async def test_deltas_carry_changes_only_and_idle_sends_nothing():
    config = parse_config("{}")
    host = Host(config, plugins=Plugins.load(config, installed=False, builtins=False))
    dashboard = Dashboard(
        host,
        sio=None,
        guard=Guard(Credentials(), OriginPolicy([], open_server=True)),
        metrics=Metrics(host.registry),
        store=lambda: None,
    )
    a, b = _instance("a"), _instance("b")
    host.registry.add(a)
    host.registry.add(b)
    first = dashboard.delta()
    assert first is not None and {r["id"] for r in first["upsert"]} == {a.id, b.id}
    assert dashboard.delta() is None  # idle: nothing to push

    a.in_flight = 2
    change = dashboard.delta()
    assert change == {"upsert": [dashboard.sent[a.id]], "remove": []}
    assert change["upsert"][0]["in_flight"] == 2

    host.registry.remove(b.id)
    assert dashboard.delta() == {"upsert": [], "remove": [b.id]}
    assert dashboard.delta() is None
