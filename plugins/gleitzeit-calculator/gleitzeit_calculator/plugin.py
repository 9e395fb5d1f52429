"""Entry module of the calculator plugin: hook implementations only, kept small.

Its settings are declared once, as ``CalculatorProvider.Settings``.
"""

from __future__ import annotations

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_register_providers(register):
    from gleitzeit_calculator.provider import CalculatorProvider

    register(CalculatorProvider)
