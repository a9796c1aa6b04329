"""Names that moved: how an old spelling keeps working, with a warning, until a stated release.

A package lists the names it no longer exports as ``MOVED = {name: new module}`` (or
``"module:new_name"`` for a name that was renamed) and resolves them in its PEP 562
``__getattr__`` with :func:`moved_attribute`: the object is the new module's own, and a
``DeprecationWarning`` names the new home and the release that removes the old spelling.
A function whose keywords were replaced (e.g. the MAP numbers ``grid=``, ``steps=`` that a
``map_settings=MAPSettings(...)`` now carries) keeps the old ones working for a while with
:func:`deprecated_keywords`. Imports nothing of the package.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     f = moved_attribute("pkg", "dumps", {"dumps": "json"})
    >>> f.__module__, str(caught[0].message)
    ('json', 'pkg.dumps is deprecated and will be removed in conceptebm 0.3; import it from json')
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping

__all__ = ["REMOVED_IN", "moved_attribute", "deprecated_keywords"]

#: The release that removes every deprecated spelling of this one.
REMOVED_IN = "0.3"


def moved_attribute(package: str, name: str, moved: Mapping[str, str], *,
                    removed_in: str = REMOVED_IN, stacklevel: int = 3):
    """``moved[name]``'s object, after a DeprecationWarning; AttributeError for a name that
    never lived in ``package``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     f = moved_attribute("pkg", "old", {"old": "json:loads"})
        >>> f.__name__, str(caught[0].message).split("; ")[1]
        ('loads', 'use json.loads')
    """
    if name not in moved:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module, _, new = moved[name].partition(":")
    where = f"use {module}.{new}" if new else f"import it from {module}"
    warnings.warn(f"{package}.{name} is deprecated and will be removed in conceptebm "
                  f"{removed_in}; {where}", DeprecationWarning, stacklevel=stacklevel)
    return getattr(importlib.import_module(module), new or name)


def deprecated_keywords(function: str, given: Mapping[str, object], use: str, *,
                        removed_in: str = REMOVED_IN, stacklevel: int = 3) -> dict:
    """The keywords of ``given`` that a caller passed (those not ``None``), after a
    DeprecationWarning naming them and what to ``use`` instead; ``{}`` and no warning when
    none was passed. Call it from the function itself (``stacklevel`` 3 points the warning
    at that function's caller).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     old = deprecated_keywords("pkg.f", {"grid": 9, "steps": None}, "use s=")
        >>> old, str(caught[0].message)
        ({'grid': 9}, 'pkg.f(grid=...) is deprecated and will be removed in conceptebm 0.3; use s=')
        >>> deprecated_keywords("pkg.f", {"grid": None}, "use s=")
        {}
    """
    passed = {k: v for k, v in given.items() if v is not None}
    if passed:
        names = ", ".join(f"{k}=..." for k in passed)
        warnings.warn(f"{function}({names}) is deprecated and will be removed in conceptebm "
                      f"{removed_in}; {use}", DeprecationWarning, stacklevel=stacklevel)
    return passed
