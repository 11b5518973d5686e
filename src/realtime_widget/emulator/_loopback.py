"""Let aioice offer a loopback ICE candidate when loopback is all there is.

aioice's ``get_host_addresses`` always drops ``127.0.0.1`` and ``::1``, and no option turns that
off. Inside the loopback-only network namespace the tests (and CI) run in, the emulator's SDP
answer would then carry no candidate at all and no peer could ever connect. ``gather_candidates``
looks the function up on the module at call time, so wrapping that one module attribute is
enough. We add ``127.0.0.1`` only when nothing else was found, so on a normal host aioice's
behaviour is unchanged. This is the only place in the project that patches aioice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import aioice.ice

_MARKER = "_realtime_widget_loopback"


def install_loopback_candidates() -> None:
    """Wrap ``aioice.ice.get_host_addresses`` once per process (idempotent)."""
    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    if getattr(original, _MARKER, False):
        return

    @functools.wraps(original)
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        if not addresses and use_ipv4:
            addresses = ["127.0.0.1"]
        return addresses

    setattr(get_host_addresses, _MARKER, True)
    aioice.ice.get_host_addresses = get_host_addresses
