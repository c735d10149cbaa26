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
import shutil
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
    (d / "authorized").mkdir(parents=True, exist_ok=True)
    made = []
    for name in ("plant", "controller"):
        public, secret = zmq.auth.create_certificates(str(d), name)
        os.chmod(secret, 0o600)
        made += [Path(public), Path(secret)]
    made.append(Path(shutil.copy(d / "controller.key", d / "authorized" / "controller.key")))
    return made


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
