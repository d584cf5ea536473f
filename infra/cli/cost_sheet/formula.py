"""Formulas as text, evaluated as written: what the sheet shows is what it computed.

A formula is arithmetic (`+ - * /`, parentheses, numbers) over named inputs, with `ceil`,
`min` and `max`; anything else is refused."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {"ceil": math.ceil, "min": min, "max": max}


class FormulaError(ValueError):
    """A formula that is not arithmetic over its inputs, or names an input it was not given."""


def evaluate(formula: str, values: Mapping[str, float]) -> float:
    """The value of `formula` with its names bound to `values`."""
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"{formula!r}: {exc.msg}") from None
    return float(_value(tree.body, formula, values))


def names(formula: str) -> set[str]:
    """The input names `formula` uses (not its functions)."""
    tree = ast.parse(formula, mode="eval")
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    return {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id not in called
    }


def _value(node: ast.expr, formula: str, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise FormulaError(f"{formula!r}: no input named {node.id!r}")
        return float(values[node.id])
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left, formula, values), _value(node.right, formula, values)
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand, formula, values)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        arguments = [_value(argument, formula, values) for argument in node.args]
        return float(_FUNCTIONS[node.func.id](*arguments))
    raise FormulaError(f"{formula!r}: {ast.unparse(node)!r} is not arithmetic over the inputs")
