"""A safe arithmetic expression evaluator.

The expression is parsed with :mod:`ast` and walked against a whitelist of node
types, names and functions; nothing is ever handed to ``eval`` or ``exec``. Every
dimension of the work is bounded: the text's length, the nesting depth, the number
of nodes, and the size of integers (so ``9**9**9`` fails at once instead of
computing a number with hundreds of millions of digits).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

Number = int | float

MAX_LENGTH = 10_000
MAX_DEPTH = 60
MAX_NODES = 5_000
MAX_INT_BITS = 4_096  # about 1,233 decimal digits


class ExpressionError(ValueError):
    """The expression is not allowed, not valid, or cannot be computed."""


def _check_int(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    return value


def _pow(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        if abs(a) > 1 and b * math.log2(abs(a)) > MAX_INT_BITS:
            raise ExpressionError(f"result too large: {a}**{b} has more than {MAX_INT_BITS} bits")
        return a**b
    if a == 0 and b < 0:
        raise ExpressionError("division by zero: 0 raised to a negative power")
    try:
        result = math.pow(a, b)
    except OverflowError:
        raise ExpressionError(f"result too large: {a}**{b} overflows") from None
    except ValueError:
        raise ExpressionError(f"{a}**{b} is not a real number") from None
    return result


def _mul(a: Number, b: Number) -> Number:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1
    ):
        raise ExpressionError(f"result too large (more than {MAX_INT_BITS} bits)")
    return a * b


def _div(a: Number, b: Number) -> Number:
    if b == 0:
        raise ExpressionError("division by zero")
    return a / b


def _floordiv(a: Number, b: Number) -> Number:
    if b == 0:
        raise ExpressionError("division by zero")
    return a // b


def _mod(a: Number, b: Number) -> Number:
    if b == 0:
        raise ExpressionError("modulo by zero")
    return a % b


def _log(x: Number, base: Number | None = None) -> float:
    if x <= 0:
        raise ExpressionError(f"log of a non-positive number ({x})")
    if base is None:
        return math.log(x)
    if base <= 0 or base == 1:
        raise ExpressionError(f"log base must be positive and not 1, got {base}")
    return math.log(x, base)


def _sqrt(x: Number) -> float:
    if x < 0:
        raise ExpressionError(f"square root of a negative number ({x})")
    return math.sqrt(x)


def _round(x: Number, ndigits: int = 0) -> Number:
    if not isinstance(ndigits, int) or abs(ndigits) > 100:
        raise ExpressionError("round() takes a whole number of digits between -100 and 100")
    return round(x, ndigits) if ndigits else round(x)


BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _mul,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
}
UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": _sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": _log,
    "log10": lambda x: _log(x, 10),
    "log2": lambda x: _log(x, 2),
    "exp": math.exp,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
}

_OP_SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.MatMult: "@",
}


def evaluate(expression: str, *, max_length: int = MAX_LENGTH) -> Number:
    """Compute an arithmetic expression; raise :class:`ExpressionError` with a reason."""
    if not isinstance(expression, str):
        raise ExpressionError("the expression must be a string")
    if len(expression) > max_length:
        raise ExpressionError(
            f"expression is {len(expression):,} characters long; the limit is {max_length:,}"
        )
    if not expression.strip():
        raise ExpressionError("the expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        detail = exc.msg or "invalid syntax"
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"not a valid expression: {detail}{where}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is nested too deeply") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression has {count:,} parts; the limit is {MAX_NODES:,}")
    try:
        return _eval(tree.body, 0)
    except ExpressionError:
        raise
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except OverflowError:
        raise ExpressionError("result too large (floating-point overflow)") from None
    except ValueError as exc:
        raise ExpressionError(f"math domain error: {exc}") from None
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None


def _eval(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"only numbers are allowed, got {value!r}")
        return _check_int(value)
    if isinstance(node, ast.BinOp):
        # A flat chain such as 1 + 2 + ... + 62 parses as left-nested operations: it is
        # walked as a loop, so only real nesting (parentheses, calls, right operands)
        # counts towards the depth, and a long sum is not mistaken for a deep one.
        chain: list[ast.BinOp] = []
        cur: ast.AST = node
        while isinstance(cur, ast.BinOp):
            chain.append(cur)
            cur = cur.left
        value = _eval(cur, depth + 1)
        for binop in reversed(chain):
            op = BINARY.get(type(binop.op))
            if op is None:
                sym = _OP_SYMBOL.get(type(binop.op), type(binop.op).__name__)
                raise ExpressionError(f"operator {sym!r} is not allowed (use + - * / // % **)")
            value = _check_int(op(value, _eval(binop.right, depth + 1)))
        return value
    if isinstance(node, ast.UnaryOp):
        op1 = UNARY.get(type(node.op))
        if op1 is None:
            raise ExpressionError(f"unary operator {type(node.op).__name__} is not allowed")
        return op1(_eval(node.operand, depth + 1))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ExpressionError(
            f"unknown name {node.id!r}; allowed constants: {', '.join(CONSTANTS)}"
        )
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else "this call"
            raise ExpressionError(
                f"function {name!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed")
        if len(node.args) > 100:
            raise ExpressionError("too many arguments")
        args = [_eval(a, depth + 1) for a in node.args]
        try:
            return _check_int(FUNCTIONS[node.func.id](*args))
        except TypeError as exc:
            raise ExpressionError(f"{node.func.id}(): {exc}") from None
    kind = type(node).__name__
    raise ExpressionError(f"{kind} is not allowed in an arithmetic expression")
