"""Optional Tor control port (through stem): health check and new circuits on demand."""

from __future__ import annotations

from darkscope.darkweb.connection import ProxyUnavailable
from darkscope.errors import UsageError


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"control port {address!r}: give HOST:PORT, e.g. 127.0.0.1:9051")
    return host, int(port)


class TorControl:
    """A stem controller with password or cookie authentication.

    stem picks the method the Tor client offers: ``password`` for ``HashedControlPassword``,
    or the cookie file Tor names for ``CookieAuthentication 1``.
    """

    def __init__(self, address: str, password: str | None = None) -> None:
        from stem import SocketError
        from stem.connection import AuthenticationFailure
        from stem.control import Controller

        host, port = parse_address(address)
        try:
            self._controller = Controller.from_port(address=host, port=port)
        except SocketError as exc:
            raise ProxyUnavailable(
                f"no Tor control port at {address}: {exc} (is Tor running with ControlPort?)"
            ) from None
        try:
            self._controller.authenticate(password=password)
        except AuthenticationFailure as exc:
            self._controller.close()
            raise ProxyUnavailable(f"Tor control port {address}: authentication failed: {exc}"
                                   ) from None
        self.address = address

    def bootstrap_progress(self) -> tuple[int, str]:
        """``(percent, summary)`` of the client's bootstrap, from ``status/bootstrap-phase``."""
        phase = self._controller.get_info("status/bootstrap-phase")
        fields = dict(
            part.split("=", 1) for part in phase.split() if "=" in part)
        return int(fields.get("PROGRESS", "0")), fields.get("SUMMARY", "").strip('"')

    def check_health(self) -> None:
        """Raise with a clear message unless Tor is bootstrapped and has circuits."""
        progress, summary = self.bootstrap_progress()
        if progress < 100:
            raise ProxyUnavailable(
                f"Tor at {self.address} is not bootstrapped yet ({progress}%: {summary}); "
                "wait and retry")
        if self._controller.get_info("network-liveness", "up") != "up":
            raise ProxyUnavailable(f"Tor at {self.address} reports the network as down")

    def new_identity(self) -> bool:
        """Ask for new circuits (NEWNYM); False when Tor's rate limit says not yet."""
        from stem import Signal

        if not self._controller.is_newnym_available():
            return False
        self._controller.signal(Signal.NEWNYM)
        return True

    def close(self) -> None:
        self._controller.close()
