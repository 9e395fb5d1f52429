"""Entry module of the calculator plugin: hook implementations only, kept small.

Its settings are declared once, as ``CalculatorProvider.Settings``.
"""

from __future__ import annotations

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_register_providers(register):
    # By reference: the provider module (pydantic models, the SDK) is imported only
    # when the host builds the provider, not when plugins are listed.
    register("gleitzeit_calculator.provider:CalculatorProvider", name="calculator")
