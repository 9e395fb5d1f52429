"""The calculator provider: every method, every error, and the bounds of calc/evaluate."""

from __future__ import annotations

import math
import time

import pytest
from gleitzeit_calculator.expression import ExpressionError, evaluate
from gleitzeit_calculator.provider import CalculatorProvider, CalculatorSettings

from gleitzeit import InvalidParamsError, MethodNotFoundError, ToolError


@pytest.fixture
async def calc():
    provider = CalculatorProvider()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.mark.parametrize(
    "method, params, result, expression",
    [
        ("calc/add", {"a": 5, "b": 3}, 8, "5 + 3"),
        ("calc/subtract", {"a": 5, "b": 3}, 2, "5 - 3"),
        ("calc/multiply", {"a": 2.5, "b": 4}, 10.0, "2.5 * 4"),
        ("calc/divide", {"a": 7, "b": 2}, 3.5, "7 / 2"),
        ("calc/power", {"a": 2, "b": 10}, 1024, "2 ** 10"),
        ("calc/sqrt", {"x": 16}, 4.0, "sqrt(16)"),
        ("calc/log", {"x": 8, "base": 2}, 3.0, "log(8, 2)"),
        ("calc/log", {"x": math.e}, 1.0, None),
    ],
)
async def test_methods_return_the_standard_tool_shape(calc, method, params, result, expression):
    out = await calc.invoke(method, params)
    assert set(out) == {"operation", "inputs", "result", "expression"}
    assert out["operation"] == method.split("/")[1]
    assert out["result"] == pytest.approx(result)
    if expression:
        assert out["expression"] == expression


async def test_trigonometry_in_radians_and_degrees(calc):
    assert (await calc.invoke("calc/sin", {"x": math.pi / 2}))["result"] == pytest.approx(1.0)
    assert (await calc.invoke("calc/cos", {"x": 180, "degrees": True}))["result"] == pytest.approx(
        -1
    )
    assert (await calc.invoke("calc/tan", {"x": 45, "degrees": True}))["result"] == pytest.approx(1)


async def test_evaluate_computes_expressions(calc):
    out = await calc.invoke("calc/evaluate", {"expression": "2 * (3 + 4) ** 2 - sqrt(16) / 2"})
    assert out == {
        "operation": "evaluate",
        "inputs": {"expression": "2 * (3 + 4) ** 2 - sqrt(16) / 2"},
        "result": 96.0,
        "expression": "2 * (3 + 4) ** 2 - sqrt(16) / 2",
    }
    assert evaluate("max(1, 2, 3) + round(2.567, 2) + pi") == pytest.approx(5.567 + math.pi, 1e-3)
    assert evaluate("-(-3) // 2 % 5") == 1


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("calc/divide", {"a": 1, "b": 0}, "division by zero"),
        ("calc/log", {"x": 0}, "non-positive"),
        ("calc/log", {"x": -3, "base": 10}, "non-positive"),
        ("calc/log", {"x": 3, "base": 1}, "base"),
        ("calc/sqrt", {"x": -1}, "negative"),
        ("calc/power", {"a": 10, "b": 100000}, "too large"),
        ("calc/power", {"a": 0, "b": -1}, "division by zero"),
    ],
)
async def test_math_errors_are_clear_tool_errors(calc, method, params, message):
    with pytest.raises(ToolError, match=message) as info:
        await calc.invoke(method, params)
    assert method in str(info.value)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"a": "five", "b": 1}, "a: must be a number, got str"),
        ({"a": True, "b": 1}, "a: must be a number, got bool"),
        ({"a": 1}, "b: Field required"),
        ({"a": 1, "b": 2, "c": 3}, "unknown key 'c'"),
    ],
)
async def test_bad_params_are_invalid_params_errors(calc, params, message):
    with pytest.raises(InvalidParamsError, match=message):
        await calc.invoke("calc/add", params)


async def test_unknown_method_names_the_nearest(calc):
    with pytest.raises(MethodNotFoundError, match="did you mean 'calc/add'"):
        await calc.invoke("calc/addd", {"a": 1, "b": 2})
    assert (await calc.invoke("add", {"a": 1, "b": 2}))["result"] == 3  # unprefixed, unambiguous


@pytest.mark.parametrize(
    "expression, message",
    [
        ("9**9**9", "too large"),
        ("1+" * 50_000 + "1", "limit is 10,000"),
        ("(" * 150 + "1" + ")" * 150, None),  # allowed: parentheses add no depth
        ("(" * 500 + "1" + ")" * 500, "not a valid expression"),
        ("-" * 5000 + "1", "nested"),
        ("2**4000 * 2**4000 * 2**4000", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("exp(1000)", "too large"),
        ("__import__('os').system('true')", "not allowed"),
        ("(lambda: 1)()", "not allowed"),
        ("[1, 2][0]", "not allowed"),
        ("'a' * 3", "only numbers"),
        ("x + 1", "unknown name 'x'"),
        ("1 << 2", "'<<' is not allowed"),
        ("2 +", "not a valid expression"),
        ("", "empty"),
        ("1/0", "division by zero"),
        ("log(-1)", "non-positive"),
    ],
)
async def test_evaluate_bounds_fail_fast_and_cleanly(calc, expression, message):
    started = time.perf_counter()
    if message is None:
        assert (await calc.invoke("calc/evaluate", {"expression": expression}))["result"] == 1
        return
    with pytest.raises(ToolError, match=message):
        await calc.invoke("calc/evaluate", {"expression": expression})
    # A generous bound that only a hung computation (like 9**9**9) could break.
    assert time.perf_counter() - started < 5


def test_evaluate_never_uses_eval():
    import inspect

    import gleitzeit_calculator.expression as module

    source = inspect.getsource(module)
    assert "eval(" not in source.replace("_eval(", "").replace("literal_eval", "")
    assert "exec(" not in source


def test_expression_errors_are_value_errors():
    with pytest.raises(ExpressionError):
        evaluate("9**9**9")


async def test_settings_round_and_bound():
    provider = CalculatorProvider(CalculatorSettings(precision=2, max_expression_length=10))
    assert (await provider.invoke("calc/divide", {"a": 1, "b": 3}))["result"] == 0.33
    with pytest.raises(ToolError, match="limit is 10"):
        await provider.invoke("calc/evaluate", {"expression": "1 + 2 + 3 + 4"})


async def test_health_and_schemas(calc):
    assert (await calc.health())["status"] == "healthy"
    specs = calc.method_specs()
    assert sorted(specs) == sorted(
        f"calc/{m}"
        for m in "add subtract multiply divide power sqrt sin cos tan log evaluate".split()
    )
    for spec in specs.values():
        schema = spec.schema()
        assert schema["type"] == "object" and schema["properties"], spec.name
        assert spec.description, spec.name
    assert specs["calc/log"].schema()["required"] == ["x"]


def test_calculator_is_found_through_its_entry_point():
    from gleitzeit.plugins import Plugins

    plugins = Plugins.load()
    record = plugins.records["calculator"]
    assert record.status == "loaded", record.error
    assert record.distribution == "gleitzeit-calculator"
    assert plugins.provider_types["calculator"].cls is CalculatorProvider
