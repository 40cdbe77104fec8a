"""Bank kinds as handlers: one module per kind, one registry keyed by the config's ``kind``.

A handler knows, for its kind of actuator bank, which :class:`~rfctl.state.ArrayState`
part feeds it, how many bits a code takes, how to load its code book, how to turn the
state part into codes (refusing what the board cannot do) and how to turn codes back
into the state part. :func:`~rfctl.hal.quantize.quantize`,
:func:`~rfctl.hal.quantize.dequantize`, :func:`~rfctl.hal.quantize.compile_board` and the
image layout are loops over these handlers.

Adding a bank kind means adding its config model to the bank union in
:mod:`rfctl.config` and one module here that defines a :class:`BankHandler` subclass
decorated with :func:`register` (see ``docs/architecture.md`` for a worked example).
Every module of this package is imported when the package is, so nothing else needs
editing.
"""

from __future__ import annotations

import importlib
import pkgutil

from rfctl.errors import ConfigError

from .base import BankHandler, register, registry

__all__ = ["BankHandler", "handler", "register", "registry"]


def handler(kind: str) -> BankHandler:
    """The handler of a bank kind.

    Raises
    ------
    ConfigError
        No handler is registered for ``kind``.
    """
    try:
        return registry()[kind]
    except KeyError:
        raise ConfigError(f"no bank handler for kind {kind!r} (known: "
                          f"{', '.join(sorted(registry()))})", field="kind",
                          reason="unknown bank kind") from None


for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")
