"""The calculator provider: one method per operation, and a safe ``calc/evaluate``."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from gleitzeit import Provider, ToolError, method, tool_result
from gleitzeit_calculator import __version__
from gleitzeit_calculator.expression import (
    MAX_LENGTH,
    ExpressionError,
    Number,
    _log,
    _pow,
    evaluate,
)


def _number(value: Any) -> Number:
    # Strict: "5" and true are rejected, so a wrong type never computes silently.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Num = Annotated[Any, PlainValidator(_number), WithJsonSchema({"type": "number"})]


class CalculatorSettings(BaseModel):
    """Settings under ``plugins: calculator:`` in gleitzeit.yaml."""

    model_config = ConfigDict(extra="forbid")

    precision: int | None = Field(
        None, ge=0, le=15, description="round results to this many decimal places"
    )
    max_expression_length: int = Field(
        MAX_LENGTH, ge=1, le=MAX_LENGTH, description="longest expression calc/evaluate accepts"
    )


class _Params(BaseModel):
    # defer_build: built on first call, so listing plugins does not pay for it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


class Binary(_Params):
    a: Num = Field(description="first operand")
    b: Num = Field(description="second operand")


class Unary(_Params):
    x: Num = Field(description="the operand")


class Angle(_Params):
    x: Num = Field(description="the angle, in radians unless degrees is true")
    degrees: bool = Field(False, description="x is in degrees")


class Log(_Params):
    x: Num = Field(description="a positive number")
    base: Num | None = Field(None, description="the base; natural log when omitted")


class Expression(_Params):
    expression: str = Field(description="an arithmetic expression, e.g. '2 * (3 + 4) ** 2'")


def _fmt(value: Number) -> str:
    return repr(value) if not isinstance(value, float) or not value.is_integer() else f"{value:g}"


class CalculatorProvider(Provider):
    """Arithmetic, powers, roots, trigonometry, logarithms and safe expressions."""

    name = "calculator"
    kind = "tool"
    description = "Arithmetic, trigonometry, logarithms and safe expression evaluation"
    version = __version__
    capabilities = ("math", "expressions")
    Settings = CalculatorSettings
    settings: CalculatorSettings

    def _done(self, op: str, inputs: dict[str, Any], value: Number, expression: str) -> dict:
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise ToolError(f"calc/{op}: the result of {expression} is not a finite number")
            if self.settings.precision is not None:
                value = round(value, self.settings.precision)
        return tool_result(op, inputs, value, expression=expression)

    def _binary(self, op: str, symbol: str, p: Binary, fn: Any) -> dict:
        expr = f"{_fmt(p.a)} {symbol} {_fmt(p.b)}"
        try:
            value = fn(p.a, p.b)
        except ExpressionError as exc:
            raise ToolError(f"calc/{op}: {exc} in {expr}") from None
        except OverflowError:
            raise ToolError(f"calc/{op}: result of {expr} is too large") from None
        return self._done(op, {"a": p.a, "b": p.b}, value, expr)

    @method("calc/add", params=Binary)
    async def add(self, p: Binary) -> dict:
        """a + b"""
        return self._binary("add", "+", p, lambda a, b: a + b)

    @method("calc/subtract", params=Binary)
    async def subtract(self, p: Binary) -> dict:
        """a - b"""
        return self._binary("subtract", "-", p, lambda a, b: a - b)

    @method("calc/multiply", params=Binary)
    async def multiply(self, p: Binary) -> dict:
        """a * b"""
        return self._binary("multiply", "*", p, lambda a, b: a * b)

    @method("calc/divide", params=Binary)
    async def divide(self, p: Binary) -> dict:
        """a / b; dividing by zero is an error"""
        if p.b == 0:
            raise ToolError(
                f"calc/divide: division by zero ({_fmt(p.a)} / 0)", hint="b must not be 0"
            )
        return self._binary("divide", "/", p, lambda a, b: a / b)

    @method("calc/power", params=Binary)
    async def power(self, p: Binary) -> dict:
        """a ** b, bounded in size"""
        return self._binary("power", "**", p, _pow)

    def _unary(self, op: str, p: Unary | Angle, fn: Any, label: str) -> dict:
        x = p.x
        inputs: dict[str, Any] = {"x": x}
        if isinstance(p, Angle):
            inputs["degrees"] = p.degrees
            if p.degrees:
                x = math.radians(x)
        try:
            value = fn(x)
        except ExpressionError as exc:
            raise ToolError(f"calc/{op}: {exc}") from None
        except (ValueError, OverflowError) as exc:
            raise ToolError(f"calc/{op}: cannot compute {label}: {exc}") from None
        return self._done(op, inputs, value, label)

    @method("calc/sqrt", params=Unary)
    async def sqrt(self, p: Unary) -> dict:
        """Square root of x (x >= 0)"""
        if p.x < 0:
            raise ToolError(f"calc/sqrt: square root of a negative number ({_fmt(p.x)})")
        return self._unary("sqrt", p, math.sqrt, f"sqrt({_fmt(p.x)})")

    @method("calc/sin", params=Angle)
    async def sin(self, p: Angle) -> dict:
        """Sine of x"""
        return self._unary("sin", p, math.sin, f"sin({_fmt(p.x)}{'°' if p.degrees else ''})")

    @method("calc/cos", params=Angle)
    async def cos(self, p: Angle) -> dict:
        """Cosine of x"""
        return self._unary("cos", p, math.cos, f"cos({_fmt(p.x)}{'°' if p.degrees else ''})")

    @method("calc/tan", params=Angle)
    async def tan(self, p: Angle) -> dict:
        """Tangent of x"""
        return self._unary("tan", p, math.tan, f"tan({_fmt(p.x)}{'°' if p.degrees else ''})")

    @method("calc/log", params=Log)
    async def log(self, p: Log) -> dict:
        """Logarithm of x, natural or to the given base"""
        label = f"log({_fmt(p.x)})" if p.base is None else f"log({_fmt(p.x)}, {_fmt(p.base)})"
        try:
            value = _log(p.x, p.base)
        except ExpressionError as exc:
            raise ToolError(f"calc/log: {exc}") from None
        return self._done("log", {"x": p.x, "base": p.base}, value, label)

    @method("calc/evaluate", params=Expression)
    async def evaluate(self, p: Expression) -> dict:
        """Evaluate an arithmetic expression safely (+ - * / // % **, sqrt, sin, log, ...)"""
        try:
            value = evaluate(p.expression, max_length=self.settings.max_expression_length)
        except ExpressionError as exc:
            raise ToolError(f"calc/evaluate: {exc}") from None
        return self._done("evaluate", {"expression": p.expression}, value, p.expression.strip())

    async def health(self) -> dict[str, Any]:
        try:
            ok = evaluate("2 + 2 * 3") == 8
        except Exception as exc:  # a broken evaluator is exactly what health should report
            return {"status": "unhealthy", "detail": f"self-test raised {exc}"}
        if not ok:
            return {"status": "unhealthy", "detail": "self-test 2 + 2 * 3 gave a wrong result"}
        return {"status": "healthy", "detail": "self-test passed"}
