"""Composition: the concept expression language (and, later, calibrated composition)."""

from conceptebm.compose.expr import ExpressionError, build, compile_expression, parse

__all__ = ["ExpressionError", "parse", "build", "compile_expression"]
