"""The simulated SCPI servers outlive a client that vanishes mid-reply."""

from __future__ import annotations

import socket
import struct

from rfctl.sims.scpi_server import ScpiServer


def test_a_client_reset_mid_reply_does_not_stop_the_server() -> None:
    """A client floods queries and resets the connection without reading (a Ctrl-C'd
    host): the server used to die on the BrokenPipe/ConnectionReset and never answer
    again. The next client must be served."""
    srv = ScpiServer(lambda line: "RFCTL,X,1,1" if line == "*IDN?" else None)
    port = srv.start()
    try:
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"*IDN?\n" * 20000)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST: the server's pending replies hit a reset connection
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"*IDN?\n")
        assert c.makefile("rb").readline() == b"RFCTL,X,1,1\n"
        c.close()
    finally:
        srv.stop()
