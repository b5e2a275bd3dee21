"""The aggregator: an aiohttp service that adds parties' ciphertexts and never holds a secret key.

Everything lives under a state directory, written atomically, so a restarted aggregator carries
on with the same rounds::

    rounds/<round>/round.dsp                    config + public key (from the key holder)
    rounds/<round>/contributions/<party>.dsp    one per party, created exclusively
    rounds/<round>/aggregate.dsp                the homomorphic sum, once every party is in
    rounds/<round>/model.npz                    the model the key holder published

The aggregate is released only when *every* party of the round has contributed or, in a round
with a deadline, once the deadline has passed and at least ``quorum`` parties are in; no
contribution is accepted after the deadline, so the released sum never changes. No endpoint
returns a single party's ciphertexts, so the key holder can decrypt nothing but a sum over at
least ``quorum`` parties.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from darkscope.errors import DarkscopeError
from darkscope.ppml import backends
from darkscope.ppml.rounds import ROUND_ID, RoundConfig
from darkscope.ppml.tokens import Identity, TokenTable
from darkscope.ppml.wire import Message, decode

_HEADER_ALLOWANCE = 64 << 10
_PER_CHUNK_HEADER = 256
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY = web.AppKey("identity", Identity)


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _write_atomic(path: Path, data: bytes, exclusive: bool = False) -> bool:
    """Write via a temporary file; with ``exclusive`` return False if ``path`` already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # atomic "create if absent", even across restarts
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        _fsync_directory(path.parent)  # the new name survives a crash before a 201 is sent
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RoundStore:
    """Rounds on disk, with the public backend of each round cached in memory."""

    def __init__(self, state: Path, tokens: TokenTable) -> None:
        self.state = state
        self.tokens = tokens
        # A round never changes once opened: decode and hash-check round.dsp once.
        self._rounds: dict[str, tuple[RoundConfig, backends.Backend, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.uploading: set[tuple[str, str]] = set()

    def lock(self, round_id: str) -> asyncio.Lock:
        return self._locks.setdefault(round_id, asyncio.Lock())

    def directory(self, round_id: str) -> Path:
        if not ROUND_ID.fullmatch(round_id):
            raise HTTPProblem(400, f"bad round id {round_id!r}")
        return self.state / "rounds" / round_id

    def round(self, round_id: str) -> tuple[RoundConfig, backends.Backend]:
        config, backend, _ = self._round(round_id)
        return config, backend

    def round_bytes(self, round_id: str) -> bytes:
        return self._round(round_id)[2]

    def _round(self, round_id: str) -> tuple[RoundConfig, backends.Backend, bytes]:
        if round_id not in self._rounds:
            path = self.directory(round_id) / "round.dsp"
            if not path.exists():
                raise HTTPProblem(404, f"no round {round_id!r}")
            data = path.read_bytes()
            message = decode(data, f"round {round_id}")
            config = RoundConfig.from_json(message.header["config"])
            self._rounds[round_id] = (config, backends.load(config.backend, message.chunks[0]),
                                      data)
        return self._rounds[round_id]

    def contributed(self, round_id: str) -> list[str]:
        folder = self.directory(round_id) / "contributions"
        if not folder.exists():
            return []
        return sorted(p.stem for p in folder.glob("*.dsp"))


def max_contribution_bytes(config: RoundConfig, backend: backends.Backend) -> int:
    """The largest body a valid contribution to this round can have: container header (JSON,
    about 100 bytes per chunk's length and digest) plus every chunk at its largest size."""
    chunks = backend.n_chunks(config.n_values)
    return _HEADER_ALLOWANCE + chunks * (_PER_CHUNK_HEADER + backend.max_chunk_bytes())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _auth_middleware(tokens: TokenTable) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/health":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        identity = tokens.identify(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            return web.json_response({"error": "missing or invalid bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        request[IDENTITY] = identity
        try:
            return await handler(request)
        except HTTPProblem as problem:
            return _error(problem.status, str(problem))
        except DarkscopeError as exc:
            return _error(400, str(exc))
        except web.HTTPException:
            raise
        except Exception as exc:  # a clear message instead of aiohttp's bare 500
            return _error(500, f"internal error in {request.method} {request.path}: "
                               f"{type(exc).__name__}: {exc}")
    return middleware


def _require_keyholder(request: web.Request) -> None:
    if not request[IDENTITY].is_keyholder:
        raise HTTPProblem(403, "only the key holder may do this")


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def open_round(request: web.Request) -> web.Response:
    _require_keyholder(request)
    store: RoundStore = request.app[STORE]
    round_id = request.match_info["round_id"]
    folder = store.directory(round_id)
    message = decode(await request.read(), "round message")
    config = RoundConfig.from_json(message.header.get("config", {}))
    if config.round_id != round_id:
        raise HTTPProblem(400, f"config names round {config.round_id!r}, URL {round_id!r}")
    unknown = sorted(set(config.parties) - set(store.tokens.parties))
    if unknown:
        raise HTTPProblem(400, f"parties without a token here: {unknown}")
    if len(message.chunks) != 1:
        raise HTTPProblem(400, "a round message carries exactly one chunk: the public key")
    backend = backends.load(config.backend, message.chunks[0])
    if backend.has_secret_key():
        raise HTTPProblem(400, "refusing a context that holds the secret key: publish only "
                               "the public context to the aggregator")
    backends.require_secure(backend, f"round {round_id!r}")
    config.encoding.check_capacity(config.total_rows_bound, backend.plaintext_bound,
                                   f"round {round_id}")
    if not _write_atomic(folder / "round.dsp", message.encode(), exclusive=True):
        raise HTTPProblem(409, f"round {round_id!r} already exists")
    return web.json_response({"round": round_id, "security": backend.security()}, status=201)


async def get_round(request: web.Request) -> web.Response:
    store: RoundStore = request.app[STORE]
    return web.Response(body=store.round_bytes(request.match_info["round_id"]),
                        content_type="application/octet-stream")


async def contribute(request: web.Request) -> web.Response:
    store: RoundStore = request.app[STORE]
    identity: Identity = request[IDENTITY]
    round_id = request.match_info["round_id"]
    config, backend = store.round(round_id)
    if identity.name not in config.parties:
        raise HTTPProblem(403, f"{identity.name!r} is not a party of round {round_id!r}")
    target = store.directory(round_id) / "contributions" / f"{identity.name}.dsp"
    if target.exists():
        raise HTTPProblem(409, f"{identity.name!r} already contributed to round {round_id!r}")
    _refuse_if_closed(config)
    # Judge the size from the headers, before reading a byte of the body.
    length = request.content_length
    if length is None:
        raise HTTPProblem(411, "a contribution needs a Content-Length header")
    limit = max_contribution_bytes(config, backend)
    if length > limit:
        raise HTTPProblem(413, f"contribution of {length} bytes exceeds the {limit} bytes a "
                               f"contribution to round {round_id!r} can have")
    key = (round_id, identity.name)
    if key in store.uploading:
        raise HTTPProblem(409, f"an upload from {identity.name!r} to round {round_id!r} is "
                               "already in progress")
    store.uploading.add(key)
    try:
        return await _receive(request, store, config, backend, target)
    finally:
        store.uploading.discard(key)


async def _receive(request: web.Request, store: RoundStore, config: RoundConfig,
                   backend: backends.Backend, target: Path) -> web.Response:
    identity: Identity = request[IDENTITY]
    round_id = config.round_id
    body = await request.read()
    message = decode(body, f"contribution of {identity.name}")
    header = message.header
    if header.get("round") != round_id or header.get("party") != identity.name:
        raise HTTPProblem(400, "contribution header names another round or party")
    if header.get("n_values") != config.n_values:
        raise HTTPProblem(400, f"contribution header announces n_values "
                               f"{header.get('n_values')!r}, round {round_id!r} needs "
                               f"{config.n_values}")
    expected = backend.n_chunks(config.n_values)
    if len(message.chunks) != expected:
        raise HTTPProblem(400, f"contribution has {len(message.chunks)} ciphertext chunks, "
                               f"round {round_id!r} needs {expected}")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _check_all, backend, message.chunks, config.n_values)
    async with store.lock(round_id):
        # checked again under the lock the aggregate is made under: once the deadline has
        # passed and the sum exists, no late upload can slip in beside it
        _refuse_if_closed(config)
        if not _write_atomic(target, body, exclusive=True):
            raise HTTPProblem(409, f"{identity.name!r} already contributed to round {round_id!r}")
    return web.json_response({"round": round_id, "party": identity.name, "bytes": len(body)},
                             status=201)


def _refuse_if_closed(config: RoundConfig) -> None:
    if config.closed():
        raise HTTPProblem(409, f"round {config.round_id!r} closed at its deadline "
                               f"{config.deadline}; contributions are no longer accepted")


def _check_all(backend: backends.Backend, chunks: list[bytes], n_values: int) -> None:
    counts = backend.chunk_counts(n_values)
    for index, (chunk, count) in enumerate(zip(chunks, counts, strict=True)):
        backend.check(chunk, index, count)


async def status(request: web.Request) -> web.Response:
    store: RoundStore = request.app[STORE]
    round_id = request.match_info["round_id"]
    config, _ = store.round(round_id)
    done = store.contributed(round_id)
    folder = store.directory(round_id)
    closed = config.closed()
    return web.json_response({
        "round": round_id, "parties": list(config.parties), "contributed": done,
        "waiting": [p for p in config.parties if p not in done],
        "complete": set(done) >= set(config.parties),
        "quorum": config.quorum, "deadline": config.deadline or None, "closed": closed,
        "failed": closed and len(done) < config.quorum,
        "model": (folder / "model.npz").exists()})


async def aggregate(request: web.Request) -> web.Response:
    _require_keyholder(request)
    store: RoundStore = request.app[STORE]
    round_id = request.match_info["round_id"]
    config, backend = store.round(round_id)
    folder = store.directory(round_id)
    path = folder / "aggregate.dsp"
    if not path.exists():
        _check_releasable(config, store.contributed(round_id))
    async with store.lock(round_id):
        if not path.exists():
            contributed = store.contributed(round_id)
            _check_releasable(config, contributed)
            loop = asyncio.get_running_loop()
            try:
                data = await loop.run_in_executor(None, _sum_contributions, folder, config,
                                                  backend, contributed)
            except Exception as exc:  # any failure must reach the key holder as a message
                raise HTTPProblem(500, f"adding the contributions of round {round_id!r} "
                                       f"failed: {exc}") from exc
            _write_atomic(path, data)
    return web.Response(body=path.read_bytes(), content_type="application/octet-stream")


def _check_releasable(config: RoundConfig, contributed: list[str]) -> None:
    """Raise unless the sum over ``contributed`` may be released now."""
    if set(contributed) >= set(config.parties):
        return
    waiting = [p for p in config.parties if p not in contributed]
    if not config.closed():
        until = (f" until its deadline {config.deadline} (then {config.quorum} suffice)"
                 if config.deadline else "; the aggregate exists only once every party has "
                                         "contributed")
        raise HTTPProblem(409, f"round {config.round_id!r} still waits for {waiting}{until}")
    if len(contributed) < config.quorum:
        raise HTTPProblem(410, f"round {config.round_id!r} failed: {len(contributed)} of its "
                               f"{len(config.parties)} parties contributed by the deadline "
                               f"{config.deadline}, fewer than its quorum {config.quorum}; "
                               "open a new round")


def _sum_contributions(folder: Path, config: RoundConfig, backend: backends.Backend,
                       contributed: list[str]) -> bytes:
    names = [p for p in config.parties if p in contributed]
    parts = [decode((folder / "contributions" / f"{p}.dsp").read_bytes(), f"contribution {p}")
             for p in names]
    total = backend.add([m.chunks for m in parts])
    header = {"kind": "aggregate", "round": config.round_id, "parties": names,
              "n_values": config.n_values}
    return Message(header, total).encode()


async def put_model(request: web.Request) -> web.Response:
    _require_keyholder(request)
    store: RoundStore = request.app[STORE]
    round_id = request.match_info["round_id"]
    store.round(round_id)
    body = await request.read()
    if not body.startswith(b"PK"):
        raise HTTPProblem(400, "a model is an .npz file written by darkscope ppml solve")
    if not _write_atomic(store.directory(round_id) / "model.npz", body, exclusive=True):
        raise HTTPProblem(409, f"round {round_id!r} already has a model")
    return web.json_response({"round": round_id, "bytes": len(body)}, status=201)


async def get_model(request: web.Request) -> web.Response:
    store: RoundStore = request.app[STORE]
    round_id = request.match_info["round_id"]
    path = store.directory(round_id) / "model.npz"
    if not path.exists():
        raise HTTPProblem(404, f"round {round_id!r} has no published model yet")
    return web.Response(body=path.read_bytes(), content_type="application/octet-stream")


STORE = web.AppKey("store", RoundStore)


def make_app(state: str | Path, tokens_file: str | Path,
             max_upload_bytes: int = 1 << 30) -> web.Application:
    tokens = TokenTable.load(tokens_file)
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    app = web.Application(middlewares=[_auth_middleware(tokens)],
                          client_max_size=max_upload_bytes)
    app[STORE] = RoundStore(state, tokens)
    app.router.add_get("/v1/health", health)
    app.router.add_put("/v1/rounds/{round_id}", open_round)
    app.router.add_get("/v1/rounds/{round_id}", get_round)
    app.router.add_post("/v1/rounds/{round_id}/contributions", contribute)
    app.router.add_get("/v1/rounds/{round_id}/status", status)
    app.router.add_get("/v1/rounds/{round_id}/aggregate", aggregate)
    app.router.add_put("/v1/rounds/{round_id}/model", put_model)
    app.router.add_get("/v1/rounds/{round_id}/model", get_model)
    return app


async def _serve(app: web.Application, host: str, port: int, ready_file: Path | None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise DarkscopeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = runner.addresses[0]
    url = f"http://{bound[0]}:{bound[1]}"
    if ready_file is not None:
        _write_atomic(ready_file, json.dumps({"url": url, "pid": os.getpid()}).encode())
    print(f"darkscope ppml aggregator listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(state: str | Path, tokens_file: str | Path, host: str = "127.0.0.1", port: int = 8750,
          ready_file: str | Path | None = None) -> None:
    """Run the aggregator until SIGINT/SIGTERM."""
    app = make_app(state, tokens_file)
    asyncio.run(_serve(app, host, port, Path(ready_file) if ready_file else None))
