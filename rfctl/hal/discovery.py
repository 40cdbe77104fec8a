"""Finding drivers, instruments and simulators through entry points.

Nothing in :mod:`rfctl` imports a concrete driver or simulator: boards are opened through
the entry-point group ``rfctl.drivers`` (keyed by a profile's ``driver``), instruments
through ``rfctl.instruments`` (keyed by kind) and simulators through ``rfctl.sims``
(keyed by the driver they simulate, or by a service name such as ``board-server`` and
``lab-bench``). Entry points are loaded lazily; a missing optional dependency becomes a
:class:`~rfctl.errors.ConfigError` that says what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from rfctl.config import BoardProfile
from rfctl.errors import ConfigError

__all__ = ["load_entry_point", "open_device", "open_instrument", "open_sim"]

_EXTRA = {"rfctl.drivers": "sim", "rfctl.instruments": "sim", "rfctl.sims": "sim"}


def load_entry_point(group: str, name: str) -> Callable[..., Any]:
    """The object an entry point names, loaded on first use.

    Parameters
    ----------
    group : str
        ``rfctl.drivers``, ``rfctl.instruments`` or ``rfctl.sims``.
    name : str
        The entry point's name.

    Raises
    ------
    ConfigError
        No such entry point is installed (the message lists those that are), or loading
        it needs a package that is missing.
    """
    eps = {ep.name: ep for ep in entry_points(group=group)}
    ep = eps.get(name)
    if ep is None:
        raise ConfigError(f"{group}: nothing named {name!r} is installed (installed: "
                          f"{', '.join(sorted(eps)) or 'none'})", field=group,
                          reason="unknown entry point")
    try:
        return ep.load()
    except ImportError as exc:
        raise ConfigError(f"{group} {name!r} needs a missing package ({exc.name}); install "
                          f"it, e.g. pip install 'rfctl[{_EXTRA[group]}]'", field=group,
                          reason="missing dependency") from None


def open_sim(name: str, *args: Any, **kwargs: Any) -> Any:
    """Build a simulator (group ``rfctl.sims``): ``open_sim(profile.driver, profile)``
    returns the simulated firmware of a board; ``open_sim("board-server", profile)`` a
    loopback server running it; ``open_sim("lab-bench", profile, ...)`` a board with a
    measurement bench."""
    return load_entry_point("rfctl.sims", name)(*args, **kwargs)


def open_device(profile: BoardProfile, **kwargs: Any) -> Any:
    """Open the driver a profile names (entry-point group ``rfctl.drivers``).

    Parameters
    ----------
    profile : BoardProfile
        ``profile.driver`` names the entry point; ``profile.link`` says where. A
        ``sim://`` link (the profile's or ``url=``) connects the driver to the in-process
        simulated firmware of that driver (group ``rfctl.sims``).
    **kwargs
        Passed to the driver factory (e.g. ``url=`` to override the link URL).

    Returns
    -------
    rfctl.hal.device.Device

    Raises
    ------
    ConfigError
        Unknown driver name, no simulator for a ``sim://`` link, or the driver's
        optional dependency is missing.
    """
    try:
        factory = load_entry_point("rfctl.drivers", profile.driver)
    except ConfigError as exc:
        raise ConfigError(f"{profile.name}: driver: {exc}", field="driver",
                          reason=exc.reason) from None
    url = kwargs.get("url") or profile.link.url
    if url.startswith("sim://") and kwargs.get("firmware") is None:
        kwargs["firmware"] = open_sim(profile.driver, profile)
    return factory(profile, **kwargs)


def open_instrument(kind: str, resource: str, *, visa_library: str | None = None,
                    **kwargs: Any) -> Any:
    """Open a measurement instrument of ``kind`` (group ``rfctl.instruments``) at the VISA
    ``resource`` with the pyvisa backend ``visa_library`` (``"@py"``, ``"x.yaml@sim"``)."""
    return load_entry_point("rfctl.instruments", kind)(kind, resource,
                                                       visa_library=visa_library, **kwargs)
