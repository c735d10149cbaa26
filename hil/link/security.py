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
    """A keys folder or key file is missing, unreadable or holds no usable key; the message
    names it, what is wrong and the fix."""


def generate(keys_dir: str | Path) -> list[Path]:
    """Create the plant's and the controller's key pairs; never overwrite existing keys."""
    if not str(keys_dir).strip():
        raise CurveKeyError("the keys folder's name is empty: name a folder (made if missing), "
                            "e.g. hil keygen keys")
    d = Path(keys_dir)
    existing = [p for p in (d / "plant.key_secret", d / "controller.key_secret") if p.exists()]
    if existing:
        raise CurveKeyError(f"{existing[0]} exists: refusing to overwrite keys (remove them first)")
    try:
        # Only the owner may add or swap keys, whatever the umask (an authorized key is trust).
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        (d / "authorized").mkdir(mode=0o700, exist_ok=True)
        made = []
        for name in ("plant", "controller"):
            public, secret = zmq.curve_keypair()
            made.append(_write_certificate(d / f"{name}.key", public, None))
            made.append(_write_certificate(d / f"{name}.key_secret", public, secret))
            if name == "controller":
                made.append(_write_certificate(d / "authorized" / "controller.key", public,
                                               None))
    except OSError as exc:
        raise CurveKeyError(f"cannot write keys in {d}: {exc.strerror or exc}; name a folder "
                            "you can write (made if missing)") from None
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


Z85_KEY_CHARS = 40  # a CURVE key (32 bytes) in ZeroMQ's Z85 text, as certificates hold it
_Z85 = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 b".-:+=^!/*?&<>()[]{}@%$#")
_REMAKE = "make new keys with `hil keygen NEW_DIR` (it never overwrites) and use that folder"


def keys_folder(keys_dir: str | Path) -> Path:
    """`keys_dir` as a folder that exists; CurveKeyError naming what is wrong. An empty name
    is refused, not taken as the current folder."""
    if isinstance(keys_dir, str) and not keys_dir.strip():
        raise CurveKeyError(f"the CURVE keys folder name is empty ({keys_dir!r}): give the "
                            "folder made by `hil keygen DIR`")
    d = Path(keys_dir)
    if not d.exists():
        raise CurveKeyError(f"CURVE keys folder {d} does not exist: create keys with "
                            f"`hil keygen {d}`")
    if not d.is_dir():
        raise CurveKeyError(f"CURVE keys folder {d} is not a folder: give the folder made by "
                            "`hil keygen DIR`")
    return d


def _key_problem(key: bytes) -> str:
    """Why `key` (from a certificate) is not a Z85 CURVE key, or ""."""
    if not key.isascii():
        return "holds non-ASCII characters"
    if len(key) != Z85_KEY_CHARS:
        return f"is {len(key)} characters long, not {Z85_KEY_CHARS}"
    if not set(key) <= _Z85:
        return "holds characters outside ZeroMQ's Z85 alphabet"
    return ""


def _load(path: Path) -> tuple[bytes, bytes | None]:
    """The (public, secret or None) keys of the certificate `path`, each checked;
    CurveKeyError naming the file, what is wrong with it and the fix."""
    if not path.exists():
        raise CurveKeyError(f"CURVE key {path} not found: create keys with `hil keygen "
                            f"{path.parent}` or point security.keys_dir at them")
    try:
        public, private = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"CURVE key {path} is unreadable ({exc}): {_REMAKE}") from None
    for which, key in (("public-key", public), ("secret-key", private)):
        problem = "" if key is None else _key_problem(key)
        if problem:
            raise CurveKeyError(f"CURVE key {path}: its {which} {problem} (a key is "
                                f"{Z85_KEY_CHARS} Z85 characters): {_REMAKE}")
    return public, private


def _load_pair(path: Path) -> tuple[bytes, bytes]:
    """The (public, secret) pair of the secret certificate `path`, checked as `_load` does."""
    public, secret = _load(path)
    if secret is None:
        raise CurveKeyError(f"CURVE key {path} holds no secret-key: {_REMAKE}")
    return public, secret


def _apply(sock: zmq.Socket[bytes], source: Path, **options: bytes | bool) -> None:
    """Set the CURVE socket `options`; ZeroMQ's refusal becomes a CurveKeyError naming
    `source`, the file the keys came from."""
    try:
        for option, value in options.items():
            setattr(sock, option, value)
    except zmq.ZMQError as exc:
        raise CurveKeyError(f"ZeroMQ refused the CURVE keys in {source} ({exc}): "
                            f"{_REMAKE}") from None


def secure_server(sock: zmq.Socket[bytes], keys_dir: str | Path) -> ThreadAuthenticator:
    """Make `sock` a CURVE server accepting only authorized clients. Call before bind."""
    d = keys_folder(keys_dir)
    public, secret = _load_pair(d / "plant.key_secret")
    authorized = d / "authorized"
    clients = sorted(authorized.glob("*.key")) if authorized.is_dir() else []
    if not clients:
        raise CurveKeyError(f"no authorized client keys in {authorized}: copy each client's "
                            "public key (controller.key) there")
    for client in clients:
        _load(client)
    _apply(sock, d / "plant.key_secret", curve_secretkey=secret, curve_publickey=public,
           curve_server=True)
    auth = ThreadAuthenticator(sock.context)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized))
    return auth


def secure_client(sock: zmq.Socket[bytes], keys_dir: str | Path, name: str = "controller") -> None:
    """Give `sock` the client pair `name` and the plant's public key. Call before connect."""
    d = keys_folder(keys_dir)
    public, secret = _load_pair(d / f"{name}.key_secret")
    server_public, _ = _load(d / "plant.key")
    _apply(sock, d / f"{name}.key_secret", curve_secretkey=secret, curve_publickey=public)
    _apply(sock, d / "plant.key", curve_serverkey=server_public)
