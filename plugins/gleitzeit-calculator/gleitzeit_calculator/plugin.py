"""Entry module of the calculator plugin: hook implementations only, kept small."""

from __future__ import annotations

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_config_schema():
    from gleitzeit_calculator.provider import CalculatorSettings

    return CalculatorSettings


@hookimpl
def gleitzeit_register_providers(register):
    from gleitzeit_calculator.provider import CalculatorProvider

    register(CalculatorProvider)
