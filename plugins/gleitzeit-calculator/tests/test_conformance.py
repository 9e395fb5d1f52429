"""The calculator passes the provider conformance suite."""

from gleitzeit_calculator.provider import CalculatorProvider

from gleitzeit.testing import ProviderConformance


class TestCalculatorConformance(ProviderConformance):
    provider_class = CalculatorProvider
    sample_params = {
        "calc/add": {"a": 5, "b": 3},
        "calc/subtract": {"a": 5, "b": 3},
        "calc/multiply": {"a": 5, "b": 3},
        "calc/divide": {"a": 6, "b": 3},
        "calc/power": {"a": 2, "b": 8},
        "calc/sqrt": {"x": 9},
        "calc/sin": {"x": 0},
        "calc/cos": {"x": 0},
        "calc/tan": {"x": 0},
        "calc/log": {"x": 8, "base": 2},
        "calc/evaluate": {"expression": "2 * (3 + 4)"},
    }
    invalid_params = {
        "calc/add": {"a": "five", "b": 3},
        "calc/divide": {"a": 1, "b": 0},
        "calc/evaluate": {"expression": "__import__('os')"},
    }
