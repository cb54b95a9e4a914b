"""SSH key material and client-side files of a testbed.

Owns generating key pairs with ssh-keygen (the user key, a second key that is
authorized nowhere, the shared host key and a "wrong" host key), and writing
known_hosts files: the real one, one that pins every host to the wrong key,
and an empty one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .system import run


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair on disk."""

    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    def public_line(self) -> str:
        """'ssh-ed25519 AAAA... comment' of the public key."""
        return self.public.read_text().strip()

    def key_only(self) -> str:
        """'ssh-ed25519 AAAA...' without the comment (for known_hosts)."""
        kind, blob = self.public_line().split()[:2]
        return f"{kind} {blob}"


def generate(path: Path, comment: str) -> KeyPair:
    """Create an ed25519 key pair at path (kept if it already exists)."""
    pair = KeyPair(path)
    if not (path.exists() and pair.public.exists()):
        path.unlink(missing_ok=True)
        pair.public.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)
    return pair


def known_hosts_text(entries: Iterable[tuple[str, int, KeyPair]]) -> str:
    """known_hosts lines for (address, port, host key) entries."""
    lines = []
    for address, port, key in entries:
        name = address if port == 22 else f"[{address}]:{port}"
        lines.append(f"{name} {key.key_only()}\n")
    return "".join(lines)
