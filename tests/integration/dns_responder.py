"""A DNS responder for tests: answers every A query with one address (UDP, one socket).

Usage: python dns_responder.py <listen address> <answer address>. Prints "ready" once
bound; runs until killed.
"""

from __future__ import annotations

import socket
import struct
import sys


def answer(query: bytes, address: bytes) -> bytes:
    """The response to ``query``: its question, and one A record (TTL 0) for it."""
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12 : end + 5]
    qtype = struct.unpack("!H", query[end + 1 : end + 3])[0]
    answers = b""
    if qtype == 1 and qdcount == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + address
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def main() -> None:
    listen, reply = sys.argv[1], socket.inet_aton(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(data, reply), peer)
        except (IndexError, struct.error):
            continue


if __name__ == "__main__":
    main()
