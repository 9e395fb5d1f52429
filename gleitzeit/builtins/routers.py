"""Built-in routers: least-in-flight (the default) and round-robin."""

from gleitzeit.hookspecs import hookimpl
from gleitzeit.routing import LeastInFlightRouter, RoundRobinRouter


@hookimpl
def gleitzeit_register_routers(register):
    register(LeastInFlightRouter)
    register(RoundRobinRouter)
