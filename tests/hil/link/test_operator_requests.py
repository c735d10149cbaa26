"""hil/link/operator.py and observer.py refuse, before sending anything, what the plant could
not take: an endpoint ZeroMQ cannot connect to, a timeout that never ends, a non-finite gain,
a request over the protocol's bounds (hil/link/messages.py)."""

from __future__ import annotations

import math
import re

import pytest
from conftest import free_endpoint

from hil.link import messages as msg
from hil.link import operator
from hil.link.observer import Observer

NOBODY = free_endpoint()


@pytest.mark.parametrize("endpoint", ["nonsense", "tcp://127.0.0.1:*", "udp://1.2.3.4:5"])
def test_an_endpoint_zeromq_refuses_is_a_bad_request_naming_it(endpoint: str) -> None:
    named = re.escape(f"endpoint '{endpoint}'")
    with pytest.raises(operator.BadRequest, match=named + ".*tcp://HOST:PORT"):
        operator.clear(endpoint, 0.05)
    with pytest.raises(operator.BadRequest, match=named):
        Observer(endpoint)


@pytest.mark.parametrize("timeout_s", [math.nan, math.inf, 1e308, 0.0, -1.0])
def test_a_timeout_that_cannot_be_waited_is_a_bad_request(timeout_s: float) -> None:
    with pytest.raises(operator.BadRequest, match=r"timeout_s must be in 0 < t <= 3600"):
        operator.estop(NOBODY, "test", timeout_s)
    with pytest.raises(operator.BadRequest, match="timeout_s"):
        Observer(NOBODY).subscribe(timeout_s)


@pytest.mark.parametrize(("names", "values", "named"), [
    ([], [1.0, math.nan], "gain #2 is nan"),
    (["k1", "K"], [1.0, -math.inf], "gain 'K' is -inf"),
])
def test_a_non_finite_gain_is_refused_naming_it(names: list[str], values: list[float],
                                                named: str) -> None:
    with pytest.raises(operator.BadRequest, match=named):
        operator.gains(NOBODY, names, values, 0.05)


def test_the_largest_gains_request_the_protocol_takes_goes_and_one_more_is_refused() -> None:
    # Each float packs in 9 bytes: find the count at the bound, as the plant would decode it.
    fits = max(n for n in range(1700, 1900)
               if len(msg.encode("gains_set", 2**32 - 1, "x" * 64, [], [0.5] * n))
               <= msg.MAX_MESSAGE_BYTES)
    payload = operator.request("gains_set", 2**32 - 1, "x" * 64, [], [0.5] * fits)
    assert msg.decode(payload)["values"] == [0.5] * fits
    with pytest.raises(operator.BadRequest, match=f"a gains_set of {fits + 1} values makes .* "
                       f"over the protocol's {msg.MAX_MESSAGE_BYTES}-byte limit"):
        operator.request("gains_set", 2**32 - 1, "x" * 64, [], [0.5] * (fits + 1))


def test_a_request_the_plant_would_drop_as_malformed_is_refused() -> None:
    with pytest.raises(operator.BadRequest, match="longest text is 9000 characters"):
        operator.request("gains_set", 1, "op", ["k" * 9000], [1.0])
    with pytest.raises(operator.BadRequest, match="not valid text"):
        operator.request("estop", "smoke \udcff")
