"""`hil gains` through the plant: an operator's request relayed to the attached controller,
under a relay id of the plant's own (ids from different operators cannot collide), and the
controller's answer relayed back to the operator who asked."""

from __future__ import annotations

from hil.link import messages as msg
from hil.link.transport import PlantSocket

MAX_PENDING = 16  # requests awaiting an answer; the oldest is forgotten past this


class GainsRelay:
    def __init__(self, sock: PlantSocket) -> None:
        self._sock = sock
        self._pending: dict[int, tuple[bytes, int]] = {}  # relay id -> (operator, its id)
        self._relay_id = 0

    def request(self, operator: bytes, m: msg.Message, controller: bytes | None) -> None:
        """Pass `m` (gains_get or gains_set) on; answer at once when nobody can take it."""
        if controller is None:
            self.refuse(operator, m["request_id"], "no controller attached to this plant")
            return
        self._relay_id += 1
        if len(self._pending) >= MAX_PENDING:  # operators that never read their answer
            self._pending.pop(next(iter(self._pending)))
        self._pending[self._relay_id] = (operator, m["request_id"])
        if m.kind == "gains_get":
            payload = msg.encode("gains_get", self._relay_id, m["operator"][:80])
        else:
            payload = msg.encode("gains_set", self._relay_id, m["operator"][:80], m["names"],
                                 m["values"])
        self._sock.send(controller, payload)

    def reply(self, m: msg.Message) -> bool:
        """Relay the controller's answer; False for an answer to no request."""
        asked = self._pending.pop(m["request_id"], None)
        if asked is None:
            return False
        operator, request_id = asked
        self._sock.send(operator, msg.encode("gains_reply", request_id, m["ok"], m["detail"],
                                             m["names"], m["values"], m["old"]))
        return True

    def refuse(self, operator: bytes, request_id: int, reason: str) -> None:
        """Answer an operator's request with a refusal, without asking the controller."""
        self._sock.send(operator, msg.encode("gains_reply", request_id, False, reason, [], [],
                                             []))

