"""A byte-damaging TCP proxy for link tests, run in its own process (loopback only).

    python tests/damage_proxy.py --upstream 127.0.0.1:PORT [--flip P] [--drop P]
        [--dup P] [--cut P] [--seed N] [--max-seconds S]

Listens on 127.0.0.1 (a free port; the first line on stdout is
``damage proxy on 127.0.0.1:PORT``), and for every client opens a connection to the
upstream board and relays bytes both ways, damaging each byte independently: flipped
(XOR with a random non-zero value) with probability ``flip``, dropped with ``drop``,
sent twice with ``dup``; and, with probability ``cut`` per byte, the connection is cut
(both sides closed), as when a cable or a bridge drops. Seeded; one generator per
direction and connection. Every loop is bounded: sockets poll with a timeout and the
process exits after ``--max-seconds`` (default 600) or when stdin closes.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
import time

import numpy as np

LOOPBACK = "127.0.0.1"


class Damage:
    """Per-byte damage of one direction of one connection."""

    def __init__(self, rng: np.random.Generator, flip: float, drop: float, dup: float,
                 cut: float) -> None:
        self.rng, self.flip, self.drop, self.dup, self.cut = rng, flip, drop, dup, cut
        self.counts = {"bytes": 0, "flips": 0, "drops": 0, "dups": 0, "cuts": 0}

    def apply(self, data: bytes) -> tuple[bytes, bool]:
        """(damaged bytes, cut here)."""
        n = len(data)
        self.counts["bytes"] += n
        arr = np.frombuffer(data, np.uint8).copy()
        u = self.rng.random((4, n))
        cut_at = np.flatnonzero(u[3] < self.cut)
        if cut_at.size:
            arr, u = arr[: cut_at[0]], u[:, : cut_at[0]]
        hit = u[0] < self.flip
        arr[hit] ^= self.rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
        keep = u[1] >= self.drop
        rep = np.where(u[2] < self.dup, 2, 1) * keep
        self.counts["flips"] += int(hit.sum())
        self.counts["drops"] += int((~keep).sum())
        self.counts["dups"] += int((rep == 2).sum())
        self.counts["cuts"] += int(cut_at.size > 0)
        return np.repeat(arr, rep).tobytes(), bool(cut_at.size)


def relay(client: socket.socket, upstream: socket.socket, down: Damage, up: Damage,
          stop: threading.Event) -> None:
    """Relay until either side closes, a cut, or stop (polls every 50 ms)."""
    pairs = {client: (upstream, up), upstream: (client, down)}
    try:
        while not stop.is_set():
            r, _, _ = select.select(list(pairs), [], [], 0.05)
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                other, dmg = pairs[s]
                out, cut = dmg.apply(data)
                if out:
                    other.sendall(out)
                if cut:
                    return
    except OSError:
        return
    finally:
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="127.0.0.1:PORT of the board")
    ap.add_argument("--flip", type=float, default=0.0)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--dup", type=float, default=0.0)
    ap.add_argument("--cut", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--port", type=int, default=0, help="listening port (0: any free)")
    args = ap.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    if host != LOOPBACK:
        ap.error("the proxy relays to 127.0.0.1 only")
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((LOOPBACK, args.port))
    lsock.listen(8)
    lsock.settimeout(0.1)
    print(f"damage proxy on {LOOPBACK}:{lsock.getsockname()[1]}", flush=True)
    stop = threading.Event()
    seeds = np.random.SeedSequence(args.seed)
    end = time.monotonic() + args.max_seconds

    def watch_stdin() -> None:  # the parent closing our stdin ends the proxy
        try:
            sys.stdin.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not stop.is_set() and time.monotonic() < end:
        try:
            client, _ = lsock.accept()
        except TimeoutError:
            continue
        try:
            upstream = socket.create_connection((LOOPBACK, int(port)), timeout=2)
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
        down, up = (Damage(np.random.default_rng(ss), args.flip, args.drop, args.dup,
                           args.cut) for ss in seeds.spawn(2))
        threading.Thread(target=relay, args=(client, upstream, down, up, stop),
                         daemon=True).start()
    stop.set()
    lsock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
