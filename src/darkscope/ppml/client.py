"""HTTP client for the aggregator, used by parties and the key holder."""

from __future__ import annotations

import time
from typing import Any

import httpx

from darkscope.errors import DarkscopeError
from darkscope.ppml.rounds import RoundConfig
from darkscope.ppml.wire import Message, decode


class AggregatorError(DarkscopeError):
    """The aggregator refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AggregatorClient:
    """Talks to one aggregator with one role's token.

    A refused connection is retried for ``connect_wait`` seconds, so a role started right after
    the aggregator (``ppml serve ... &`` then ``ppml round``) does not fail while it binds.
    """

    def __init__(self, url: str, token: str, timeout: float = 600.0,
                 connect_wait: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.connect_wait = connect_wait
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AggregatorClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, content: bytes | None = None) -> httpx.Response:
        give_up = time.monotonic() + self.connect_wait
        while True:
            try:
                response = self._http.request(method, path, content=content)
                break
            except httpx.ConnectError as exc:
                if time.monotonic() >= give_up:
                    raise AggregatorError(f"cannot reach the aggregator at {self.url}: {exc}"
                                          ) from exc
                time.sleep(0.2)
            except httpx.HTTPError as exc:
                raise AggregatorError(f"cannot reach the aggregator at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                reason = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                reason = response.text[:200]
            raise AggregatorError(f"aggregator refused {method} {path} "
                                  f"({response.status_code}): {reason}", response.status_code)
        return response

    def open_round(self, config: RoundConfig, public_key: bytes) -> dict[str, Any]:
        message = Message({"kind": "round", "config": config.to_json()}, [public_key])
        return self._request("PUT", f"/v1/rounds/{config.round_id}", message.encode()).json()

    def round(self, round_id: str) -> tuple[RoundConfig, bytes]:
        message = decode(self._request("GET", f"/v1/rounds/{round_id}").content, "round message")
        return RoundConfig.from_json(message.header["config"]), message.chunks[0]

    def contribute(self, round_id: str, body: bytes) -> dict[str, Any]:
        return self._request("POST", f"/v1/rounds/{round_id}/contributions", body).json()

    def status(self, round_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/rounds/{round_id}/status").json()

    def aggregate(self, round_id: str, wait_seconds: float = 0.0) -> Message:
        """The summed ciphertexts; polls up to ``wait_seconds`` while parties are missing."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                response = self._request("GET", f"/v1/rounds/{round_id}/aggregate")
            except AggregatorError as exc:
                if exc.status != 409 or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
                continue
            return decode(response.content, f"aggregate of round {round_id}")

    def publish_model(self, round_id: str, model_bytes: bytes) -> dict[str, Any]:
        return self._request("PUT", f"/v1/rounds/{round_id}/model", model_bytes).json()

    def model(self, round_id: str) -> bytes:
        return self._request("GET", f"/v1/rounds/{round_id}/model").content
