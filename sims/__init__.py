"""The simulated device backend: the other end of the wire.

Simulated boards (rfctl protocol, OpenSourceRIS, bias source), simulated instruments and
benches, and the loopback servers that expose them to pyserial and pyvisa. Installed as
``rfctl.sims``; the library finds them only through the entry-point group ``rfctl.sims``
(see ``rfctl.hal.discovery``). Drivers never import this package.
"""
