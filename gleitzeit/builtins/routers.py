"""Built-in routers: least-in-flight (the default), round-robin and latency."""

from gleitzeit.hookspecs import hookimpl
from gleitzeit.routing import LatencyRouter, LeastInFlightRouter, RoundRobinRouter


@hookimpl
def gleitzeit_register_routers(register):
    register(LeastInFlightRouter)
    register(RoundRobinRouter)
    register(LatencyRouter)
