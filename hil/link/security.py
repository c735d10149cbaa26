"""ZeroMQ CURVE: keys for the plant and its clients, and applying them to sockets.

With `security.curve: true` every connection to the plant is encrypted and authenticated:
the plant only accepts clients whose public key is in `<keys_dir>/authorized/`, and a client
only talks to the plant whose public key is `<keys_dir>/plant.key`. `hil keygen DIR` makes
the files (ZeroMQ's certificate format, secret keys readable by their owner only):

    DIR/plant.key, DIR/plant.key_secret             the plant's pair
    DIR/controller.key, DIR/controller.key_secret   the clients' pair (controller, hil estop)
    DIR/authorized/controller.key                   public keys the plant accepts

To run the controller on another machine, copy `plant.key` and the controller's pair there.
A client with no or wrong keys never completes the ZeroMQ handshake: nothing it sends
reaches the plant, and it gives up after its connect timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class CurveKeyError(Exception):
    """A key file is missing or unreadable; the message names it and the fix."""


def generate(keys_dir: str | Path) -> list[Path]:
    """Create the plant's and the controller's key pairs; never overwrite existing keys."""
    d = Path(keys_dir)
    existing = [p for p in (d / "plant.key_secret", d / "controller.key_secret") if p.exists()]
    if existing:
        raise CurveKeyError(f"{existing[0]} exists: refusing to overwrite keys (remove them first)")
    # Only the owner may add or swap keys, whatever the umask (an authorized key is trust).
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    (d / "authorized").mkdir(mode=0o700, exist_ok=True)
    made = []
    for name in ("plant", "controller"):
        public, secret = zmq.curve_keypair()
        made.append(_write_certificate(d / f"{name}.key", public, None))
        made.append(_write_certificate(d / f"{name}.key_secret", public, secret))
        if name == "controller":
            made.append(_write_certificate(d / "authorized" / "controller.key", public, None))
    return made


def _write_certificate(path: Path, public: bytes, secret: bytes | None) -> Path:
    """A certificate in ZeroMQ's format (zmq.auth.load_certificate reads it). A secret one is
    created readable by its owner only (0600) from the start, whatever the umask: never
    written world-readable and chmod'ed afterwards. Refuses to overwrite (O_EXCL)."""
    lines = ["#   ZeroMQ CURVE " + ("**Secret** Certificate" if secret else "Public Certificate"),
             "#   " + ("DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
                      if secret else "Exchange securely, or use a secure mechanism to verify "
                      "the contents of this file after exchange."),
             "", "metadata", "curve", f'    public-key = "{public.decode("ascii")}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.exists():
        raise CurveKeyError(f"CURVE key {path} not found: create keys with `hil keygen "
                        f"{path.parent}` or point security.keys_dir at them")
    try:
        public, private = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"CURVE key {path} is unreadable: {exc}") from None
    if secret and private is None:
        raise CurveKeyError(f"{path} holds no secret key")
    return public, private


def secure_server(sock: zmq.Socket[bytes], keys_dir: str | Path) -> ThreadAuthenticator:
    """Make `sock` a CURVE server accepting only authorized clients. Call before bind."""
    d = Path(keys_dir)
    public, secret = _load(d / "plant.key_secret", secret=True)
    authorized = d / "authorized"
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise CurveKeyError(f"no authorized client keys in {authorized}: copy each client's "
                        "public key (controller.key) there")
    auth = ThreadAuthenticator(sock.context)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth


def secure_client(sock: zmq.Socket[bytes], keys_dir: str | Path, name: str = "controller") -> None:
    """Give `sock` the client pair `name` and the plant's public key. Call before connect."""
    d = Path(keys_dir)
    public, secret = _load(d / f"{name}.key_secret", secret=True)
    server_public, _ = _load(d / "plant.key", secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
