"""Board and instrument drivers, installed as ``rfctl.drivers``.

Drivers depend on :mod:`rfctl.hal` only for the device interface and image types;
nothing in ``rfctl`` imports a concrete driver (they are found through the entry-point
group ``rfctl.drivers``). The serial, VISA and simulated-board drivers arrive with the
board-link work (issue 3).
"""
