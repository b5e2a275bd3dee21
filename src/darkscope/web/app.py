"""The dashboard application: server-rendered pages and the JSON API behind each of them.

Server-rendered HTML (Jinja2, autoescaped) with a few small scripts of our own: pages work
without a build step or a front-end toolchain, every string from captures and crawls passes the
template escaper, and a strict CSP forbids any script but ours. FastAPI serves both the pages
and ``/api/v1`` (OpenAPI at ``/api/openapi.json``); each page's data is exactly its API's.
"""

import base64
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from darkscope.errors import UsageError
from darkscope.intel.findings import expert_labels
from darkscope.intel.taxii import Feed, FeedSettings, TaxiiError
from darkscope.store import ReviewStore
from darkscope.store.users import ROLES, TOKEN_PREFIX, Session, UserStore
from darkscope.web import charts, queries
from darkscope.web.data import DataSource, Host
from darkscope.web.review import Reviewer, find_model
from darkscope.web.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Hardening,
    LoginLimiter,
    NotAllowed,
    check_csrf,
    new_login_token,
    same_token,
)
from darkscope.web.taxii import router as taxii_router
from darkscope.web.taxii import taxii_response

HERE = Path(__file__).resolve().parent
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class TaxiiSettings:
    """What the TAXII 2.1 collections share (see :mod:`darkscope.intel.taxii`)."""

    operator: str = "darkscope telescope"
    victims: str = "prefix24"
    expert_notes: bool = False
    allowlists: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Settings:
    data: Path
    store: Path
    model: Path | None = None
    cache: Path | None = None    # the summaries' DuckDB file; default: beside the store
    ppml_state: Path | None = None  # a PP-ELM aggregator's state directory (read only)
    secure_cookies: bool = False
    max_body: int = MAX_BODY
    taxii: TaxiiSettings = field(default_factory=lambda: TaxiiSettings())

    @property
    def summaries(self) -> Path:
        return self.cache or self.store.with_name(self.store.name + ".cache.duckdb")


class _Stores(threading.local):
    """One SQLite connection per worker thread (sqlite3 connections stay in their thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: ReviewStore | None = None
        self.users: UserStore | None = None


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data = DataSource(settings.data, settings.summaries)
        self._stores = _Stores(settings.store)
        self.reviewer = Reviewer(self.store, settings.model or find_model(settings.data))
        self.notice: dict[str, str] = {}   # per user: what their last label changed

    def store(self) -> ReviewStore:
        if self._stores.store is None:
            self._stores.store = ReviewStore(self.settings.store)
        return self._stores.store

    def users(self) -> UserStore:
        if self._stores.users is None:
            self._stores.users = UserStore(self.store())
        return self._stores.users


class LabelRequest(BaseModel):
    src: int
    window_start: int
    label: str


class NewUser(BaseModel):
    name: str
    password: str
    role: str = "viewer"


class UserChange(BaseModel):
    role: str | None = None
    password: str | None = None


class NewToken(BaseModel):
    user: str
    label: str
    role: str | None = None   # default: the user's role
    days: int | None = None   # default: until revoked


def create_app(settings: Settings) -> FastAPI:
    state = App(settings)
    # no Swagger UI page: it loads its scripts from a CDN, which the CSP (and an offline
    # telescope network) refuses; the OpenAPI document itself is served
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.data.close()  # stop the summaries' builder before DuckDB goes

    api = FastAPI(title="darkscope", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["ipv4"] = queries.ipv4_text
    templates.env.filters["count"] = lambda n: f"{int(n or 0):,}"
    templates.env.filters["when"] = _when
    templates.env.filters["proto"] = lambda p: PROTOCOLS.get(p, p)
    api.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    limiter = LoginLimiter()

    def from_token(token: str) -> Session:
        found = state.users().token_session(token)
        if found is None:
            raise NotAllowed(401, "unknown, expired or revoked API token",
                             {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return found

    def from_password(request: Request, credentials: str) -> Session:
        """HTTP Basic, which TAXII clients send: a user's name and password (counted like
        logins), or any name with an API token as the password."""
        try:
            name, _, password = base64.b64decode(credentials, validate=True).decode(
                ).partition(":")
        except (ValueError, UnicodeDecodeError):
            raise NotAllowed(401, "malformed Basic credentials") from None
        if password.startswith(TOKEN_PREFIX):
            return from_token(password)
        client = request.client.host if request.client else "-"
        wait = limiter.wait_s(name, client)
        if wait:
            raise NotAllowed(429, "too many failed attempts", {"Retry-After": str(wait)})
        user = state.users().authenticate(name, password)
        if user is None:
            limiter.failed(name, client)
            raise NotAllowed(401, "wrong name or password")
        limiter.succeeded(name)
        return Session(user, "", 0)

    def session(request: Request) -> Session | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        path = request.url.path
        if path.startswith(("/api/", "/taxii2/")) and scheme.lower() in ("bearer", "token"):
            return from_token(credentials.strip())  # TAXII clients say Token, others Bearer
        if path.startswith("/taxii2/") and scheme.lower() == "basic":
            return from_password(request, credentials.strip())
        token = request.cookies.get(SESSION_COOKIE)
        return state.users().session(token) if token else None

    def require(role: str):
        def guard(request: Request) -> Session:
            found = session(request)
            if found is None:
                raise NotAllowed(401, "log in first")
            if not found.user.can(role):
                raise NotAllowed(403, f"this needs the {role} role")
            return found
        return guard

    viewer = Annotated[Session, Depends(require("viewer"))]
    expert = Annotated[Session, Depends(require("expert"))]
    admin = Annotated[Session, Depends(require("admin"))]
    shared = settings.taxii
    api.include_router(taxii_router(Feed(FeedSettings(
        settings.data, settings.store, shared.operator, shared.victims,
        allowlists=shared.allowlists,
        labels=(lambda: expert_labels(settings.store)) if shared.expert_notes else None)),
        require("viewer")))

    @api.exception_handler(TaxiiError)
    async def taxii_error(request: Request, exc: TaxiiError) -> Response:
        return taxii_response(exc.resource(), exc.status)

    @api.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        if request.url.path.startswith("/taxii2/"):
            headers = dict(exc.headers)
            if exc.status == 401:
                headers.setdefault("WWW-Authenticate", 'Basic realm="darkscope", '
                                                       'Bearer realm="darkscope"')
            return taxii_response(TaxiiError(exc.status, exc.detail).resource(), exc.status,
                                  headers)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status,
                                headers=exc.headers)
        if exc.status == 401:
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query
                                               else ""), safe="")
            return RedirectResponse(f"/login?next={target}", status_code=303)
        return templates.TemplateResponse(request, "error.html", {
            "status": exc.status, "detail": exc.detail, "me": session(request)},
            status_code=exc.status, headers=exc.headers)

    def page(request: Request, name: str, me: Session, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"me": me, **context})

    def bad_request(request: Request, detail: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=400)
        return templates.TemplateResponse(request, "error.html", {
            "status": 400, "detail": detail, "me": session(request)}, status_code=400)

    # -- login ------------------------------------------------------------------------------
    def login_page(request: Request, next: str, failed: str | None = None,
                   status: int = 200, headers: dict[str, str] | None = None) -> Response:
        token = new_login_token()
        response = templates.TemplateResponse(request, "login.html", {
            "me": None, "next": _local(next), "login_token": token, "failed": failed},
            status_code=status, headers=headers)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=settings.secure_cookies, max_age=3600)
        return response

    @api.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return login_page(request, next)

    @api.post("/login", include_in_schema=False)
    def login(request: Request, name: Annotated[str, Form(max_length=64)],
              password: Annotated[str, Form(max_length=1024)],
              login_token: Annotated[str, Form(max_length=64)],
              next: Annotated[str, Form(max_length=2048)] = "/") -> Response:
        if not same_token(request.cookies.get(LOGIN_COOKIE), login_token):
            raise NotAllowed(403, "the login form expired: reload it and try again")
        client = request.client.host if request.client else "-"
        wait = limiter.wait_s(name, client)
        if wait:
            return login_page(request, next, f"too many failed attempts: try again in "
                              f"{(wait + 59) // 60} min", 429, {"Retry-After": str(wait)})
        user = state.users().authenticate(name, password)
        if user is None:
            limiter.failed(name, client)
            return login_page(request, next, "wrong name or password", 401)
        limiter.succeeded(name)
        token, _ = state.users().open_session(user)
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                            secure=settings.secure_cookies)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @api.post("/logout", include_in_schema=False)
    def logout(request: Request, me: viewer,
               csrf: Annotated[str, Form(max_length=64)]) -> Response:
        check_csrf(me, csrf)
        state.users().close_session(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- overview -----------------------------------------------------------------------------
    def _range(range_: str | None, start: str | None, end: str | None):
        try:
            return state.data.time_range(range_, start, end)
        except ValueError:
            return None

    @api.get("/api/v1/overview", tags=["overview"])
    def overview_api(request: Request, me: viewer, range: str | None = "all",
                     start: str | None = None, end: str | None = None) -> Any:
        """Hourly packets and hosts by verdict, top ports and victims, current attacks, tool
        host counts, over a time range (6h/24h/7d/30d back from the newest data, all, or
        ISO 8601 start/end)."""
        span = _range(range, start, end)
        if span is None:
            return bad_request(request, "start/end: not ISO 8601 date-times")
        return queries.overview(state.data, span)

    @api.get("/", include_in_schema=False)
    def overview_page(request: Request, me: viewer, range: str | None = "all",
                      start: str | None = None, end: str | None = None) -> Response:
        span = _range(range, start, end)
        if span is None:
            return bad_request(request, "start/end: not ISO 8601 date-times")
        found = queries.overview(state.data, span)
        return page(request, "overview.html", me, o=found, chart=charts.hourly(found["hourly"]),
                    ranges=["6h", "24h", "7d", "30d", "all"], catalog=state.data.catalog)

    # -- IP pages -----------------------------------------------------------------------------
    @api.get("/api/v1/ip/{address}", tags=["ip"])
    def ip_api(request: Request, address: str, me: viewer) -> Any:
        """One address as source and victim: first/last seen, verdicts with who decided and
        the 17 features, a packet sample, ports and /24s, tools, tags, notes, attacks."""
        host = Host.parse(address)
        if host is None:
            return bad_request(request, f"{address!r} is not an IPv4 or IPv6 address")
        return {**queries.ip_context(state.data, host), "notes": _notes(host)}

    @api.get("/ip/", include_in_schema=False)
    def ip_search(me: viewer, q: Annotated[str, Query(max_length=64)] = "") -> Response:
        return RedirectResponse(f"/ip/{quote(q.strip(), safe='')}", status_code=303)

    @api.get("/ip/{address}", include_in_schema=False)
    def ip_page(request: Request, address: str, me: viewer) -> Response:
        host = Host.parse(address)
        if host is None:
            return bad_request(request, f"{address!r} is not an IPv4 or IPv6 address")
        context = queries.ip_context(state.data, host)
        return page(request, "ip.html", me, c=context, notes=_notes(host))

    def _notes(host: Host) -> list[dict[str, Any]]:
        if host.v4 is None:
            return []  # the review store keys hosts by IPv4 address
        return [{"label": h.label, "previous": h.previous, "who": h.who, "at": h.at,
                 "note": h.note, "window_start": h.window_start,
                 "model_version": h.model_version, "score": h.score}
                for h in state.store().history(host.v4)]

    # -- review queue -------------------------------------------------------------------------
    def _queue(evaluation: bool, limit: int = 50) -> dict[str, Any]:
        items = state.reviewer.queue(evaluation, limit=limit)
        return {"counts": state.reviewer.counts(), "model_version": state.reviewer.model_version,
                "slice": "evaluation" if evaluation else "uncertain",
                "items": [{"src": i.src, "ip": queries.ipv4_text(i.src),
                           "window_start": i.window_start, "window_end": i.window_end,
                           "packets": i.packets, "reason": i.reason,
                           "confidence": i.confidence, "model_version": i.model_version}
                          for i in items]}

    @api.get("/api/v1/review/queue", tags=["review"])
    def queue_api(me: viewer, slice: Annotated[str, Query(pattern="^(uncertain|evaluation)$")]
                  = "uncertain", limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
        """Pending items, least confident first; or the random evaluation slice."""
        return _queue(slice == "evaluation", limit)

    @api.get("/api/v1/review/history", tags=["review"])
    def history_api(me: viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        return [h.__dict__ for h in state.reviewer.history(limit)]

    @api.get("/api/v1/review/evaluation", tags=["review"])
    def evaluation_api(me: viewer) -> Any:
        """Accuracy on the random evaluation slice: the model's guess for each labelled slice
        item, made before it learnt the label, against the experts' standing label (with a
        Wilson 95 % interval and the confusion by label)."""
        return state.reviewer.evaluation()

    @api.get("/api/v1/review/agreement", tags=["review"])
    def agreement_api(me: viewer) -> Any:
        """Cohen's kappa per expert pair and the items experts disagree on."""
        return state.reviewer.agreement()

    def _apply(me: Session, src: int, window_start: int, label: str) -> dict[str, Any]:
        item = state.reviewer.item(src, window_start)
        if item is None:
            raise NotAllowed(404, "no such queued item")
        if label not in ("ddos", "scan", "other"):
            raise NotAllowed(400, "label must be ddos, scan or other")
        outcome = state.reviewer.label(item, label, me.user.name)
        return _outcome(me, outcome, f"{queries.ipv4_text(src)} labelled {label}")

    def _outcome(me: Session, outcome, what: str) -> dict[str, Any]:
        update = outcome.update
        effect = (f"model {outcome.model_version} now decides {update.now_decided} of "
                  f"{update.pending} pending items" if update else "the model learnt nothing "
                  "yet (it needs labels of both kinds)")
        state.notice[me.user.name] = f"{what}; {effect}"
        return {"label": outcome.label.__dict__, "model_version": outcome.model_version,
                "update": update.__dict__ if update else None}

    @api.post("/api/v1/review/labels", tags=["review"])
    def label_api(body: LabelRequest, me: expert,
                  x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        """Label a queued item (experts; send the session's CSRF token as X-CSRF-Token)."""
        check_csrf(me, x_csrf_token)
        return _apply(me, body.src, body.window_start, body.label)

    @api.post("/api/v1/review/undo", tags=["review"])
    def undo_api(me: expert, x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        """Withdraw your newest label (a new history row restores the one before)."""
        check_csrf(me, x_csrf_token)
        outcome = state.reviewer.undo(me.user.name)
        if outcome is None:
            raise NotAllowed(404, "nothing of yours to undo")
        return _outcome(me, outcome, f"undid your label of {queries.ipv4_text(outcome.label.src)}")

    @api.get("/review", include_in_schema=False)
    def review_page(request: Request, me: viewer, slice: str = "uncertain") -> Response:
        evaluation = slice == "evaluation"
        return page(request, "review.html", me, q=_queue(evaluation),
                    history=state.reviewer.history(20), agreement=state.reviewer.agreement(),
                    accuracy=state.reviewer.evaluation(),
                    notice=state.notice.pop(me.user.name, None), evaluation=evaluation)

    @api.post("/review/label", include_in_schema=False)
    def review_label(me: expert, src: Annotated[int, Form()],
                     window_start: Annotated[int, Form()],
                     label: Annotated[str, Form(max_length=16)],
                     csrf: Annotated[str, Form(max_length=64)],
                     slice: Annotated[str, Form(max_length=16)] = "uncertain") -> Response:
        check_csrf(me, csrf)
        _apply(me, src, window_start, label)
        return RedirectResponse(f"/review?slice={_slice(slice)}", status_code=303)

    @api.post("/review/undo", include_in_schema=False)
    def review_undo(me: expert, csrf: Annotated[str, Form(max_length=64)],
                    slice: Annotated[str, Form(max_length=16)] = "uncertain") -> Response:
        check_csrf(me, csrf)
        outcome = state.reviewer.undo(me.user.name)
        if outcome is None:
            state.notice[me.user.name] = "nothing of yours to undo"
        else:
            _outcome(me, outcome, f"undid your label of {queries.ipv4_text(outcome.label.src)}")
        return RedirectResponse(f"/review?slice={_slice(slice)}", status_code=303)

    # -- attacks ------------------------------------------------------------------------------
    @api.get("/api/v1/attacks", tags=["attacks"])
    def attacks_api(request: Request, me: viewer, range: str | None = "all",
                    start: str | None = None, end: str | None = None,
                    port: Annotated[int | None, Query(ge=0, le=65535)] = None,
                    icmp: bool = False) -> Any:
        """DDoS victims seen through their backscatter, with estimated attack rates;
        ``port``: the victim replied from it; ``icmp``: seen through ICMP errors."""
        span = _range(range, start, end)
        if span is None:
            return bad_request(request, "start/end: not ISO 8601 date-times")
        return queries.attacks(state.data, span, port, icmp)

    @api.get("/attacks", include_in_schema=False)
    def attacks_page(request: Request, me: viewer, range: str | None = "all",
                     port: Annotated[int | None, Query(ge=0, le=65535)] = None,
                     icmp: bool = False) -> Response:
        span = state.data.time_range(range, None, None)
        rows = queries.attacks(state.data, span, port, icmp)
        return page(request, "attacks.html", me, rows=rows, chart=charts.timeline(rows),
                    port=port, icmp=icmp, range=span.name)

    # -- scanner rules ------------------------------------------------------------------------
    @api.get("/api/v1/rules", tags=["rules"])
    def rules_api(me: viewer, match: Annotated[str | None, Query(max_length=200)] = None
                  ) -> Any:
        """Every rule through time (first/last period, peak hosts and when, hosts per period,
        Mirai share at the peak), highest peak first; ``match``: rules whose text contains
        it. ``panels``: the top six per item kind, as the page draws them."""
        return queries.rules(state.data, match)

    @api.get("/api/v1/rules/rule", tags=["rules"])
    def rule_api(me: viewer, text: Annotated[str, Query(max_length=2000)]) -> Any:
        """One rule (its text, e.g. ``{tos=0, win=5840} -> {dport=23}``): per period, and
        the hosts fingerprinted as its tool family."""
        return _exists(queries.rule(state.data, text), "rule")

    @api.get("/rules", include_in_schema=False)
    def rules_page(request: Request, me: viewer,
                   match: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        found = queries.rules(state.data, match)
        return page(request, "rules.html", me, r=found,
                    chart=charts.rule_panels(found["periods"], found["panels"]))

    @api.get("/rules/rule", include_in_schema=False)
    def rule_page(request: Request, me: viewer,
                  text: Annotated[str, Query(max_length=2000)]) -> Response:
        found = _exists(queries.rule(state.data, text), "rule")
        return page(request, "rule.html", me, x=found)

    # -- feature map --------------------------------------------------------------------------
    def _map() -> dict[str, Any]:
        queued = {(i.src, i.window_start) for i in state.reviewer.queue(False, limit=1000)}
        return queries.feature_map(state.data, queued)

    @api.get("/api/v1/map", tags=["map"])
    def map_api(me: viewer) -> Any:
        """Host-windows in two dimensions (PCA of the 17 features; ``axes`` names the features
        that load most on each), with verdicts and whether each waits in the review queue:
        every ddos, needs-review and queued window and a fixed sample of the rest."""
        return _map()

    @api.get("/map", include_in_schema=False)
    def map_page(request: Request, me: viewer) -> Response:
        found = _map()
        return page(request, "map.html", me, m=found,
                    chart=charts.feature_map(found["points"], found["axes"]))

    # -- dark web -----------------------------------------------------------------------------
    @api.get("/api/v1/darkweb", tags=["darkweb"])
    def darkweb_api(me: viewer, q: Annotated[str | None, Query(max_length=200)] = None) -> Any:
        """Markets and their crawls, the newest listings (``q``: in the title), and each
        topic model: topics with words, representative products and trends."""
        return queries.darkweb(state.data, q)

    @api.get("/api/v1/darkweb/listing", tags=["darkweb"])
    def listing_api(me: viewer, url: Annotated[str, Query(max_length=4096)]) -> Any:
        """Every crawled version of one listing (by its URL) and its topics."""
        return _exists(queries.listing(state.data, url), "listing")

    @api.get("/darkweb", include_in_schema=False)
    def darkweb_page(request: Request, me: viewer,
                     q: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        found = queries.darkweb(state.data, q)
        return page(request, "darkweb.html", me, d=found,
                    trends={(m["path"], t["id"]): charts.trend(t["trend"])
                            for m in found["models"] for t in m["topics"]})

    @api.get("/darkweb/listing", include_in_schema=False)
    def listing_page(request: Request, me: viewer,
                     url: Annotated[str, Query(max_length=4096)]) -> Response:
        found = _exists(queries.listing(state.data, url), "listing")
        return page(request, "listing.html", me, x=found)

    # -- PP-ELM rounds -------------------------------------------------------------------------
    @api.get("/api/v1/ppml", tags=["ppml"])
    def ppml_api(me: viewer) -> Any:
        """The aggregator's rounds (--ppml-state): parties in and waiting, status, and the
        accuracy parties reported for each published model. No data values."""
        return queries.ppml_rounds(settings.ppml_state, state.data)

    @api.get("/ppml", include_in_schema=False)
    def ppml_page(request: Request, me: viewer) -> Response:
        return page(request, "ppml.html", me,
                    p=queries.ppml_rounds(settings.ppml_state, state.data))

    # -- users and API tokens (admins) --------------------------------------------------------
    def _users() -> dict[str, Any]:
        return {"users": [u.__dict__ for u in state.users().users()],
                "tokens": [t.__dict__ for t in state.users().tokens()], "roles": list(ROLES)}

    def _admin(action, *args: Any) -> Any:
        try:
            return action(*args)
        except UsageError as exc:
            raise NotAllowed(400, str(exc)) from None

    @api.get("/api/v1/admin/users", tags=["admin"])
    def users_api(me: admin) -> Any:
        """Users with their roles, and API tokens (never the tokens themselves)."""
        return _users()

    @api.post("/api/v1/admin/users", tags=["admin"], status_code=201)
    def add_user_api(body: NewUser, me: admin,
                     x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        check_csrf(me, x_csrf_token)
        return _admin(state.users().add, body.name, body.password, body.role).__dict__

    @api.patch("/api/v1/admin/users/{name}", tags=["admin"])
    def change_user_api(name: str, body: UserChange, me: admin,
                        x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        """Change a role and/or password (a new password ends the user's sessions)."""
        check_csrf(me, x_csrf_token)
        if body.role is not None:
            _admin(state.users().set_role, name, body.role)
        if body.password is not None:
            _admin(state.users().set_password, name, body.password)
        return _exists(state.users().get(name), "user").__dict__

    @api.delete("/api/v1/admin/users/{name}", tags=["admin"], status_code=204)
    def remove_user_api(name: str, me: admin,
                        x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
        check_csrf(me, x_csrf_token)
        _admin(state.users().remove, name)
        return Response(status_code=204)

    @api.post("/api/v1/admin/tokens", tags=["admin"], status_code=201)
    def add_token_api(body: NewToken, me: admin,
                      x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        """A new API token, returned once as ``token``: send it as ``Authorization: Bearer``."""
        check_csrf(me, x_csrf_token)
        token, record = _admin(state.users().create_token, body.user, body.label, body.role,
                               body.days)
        return {"token": token, **record.__dict__}

    @api.delete("/api/v1/admin/tokens/{token_id}", tags=["admin"], status_code=204)
    def revoke_token_api(token_id: str, me: admin,
                         x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
        check_csrf(me, x_csrf_token)
        _admin(state.users().revoke_token, token_id)
        return Response(status_code=204)

    @api.get("/admin", include_in_schema=False)
    def admin_page(request: Request, me: admin) -> Response:
        return page(request, "admin.html", me, u=_users(),
                    notice=state.notice.pop(me.user.name, None))

    @api.post("/admin", include_in_schema=False)
    def admin_form(me: admin, csrf: Annotated[str, Form(max_length=64)],
                   action: Annotated[str, Form(max_length=16)],
                   name: Annotated[str, Form(max_length=64)] = "",
                   role: Annotated[str, Form(max_length=16)] = "",
                   password: Annotated[str, Form(max_length=1024)] = "",
                   label: Annotated[str, Form(max_length=100)] = "",
                   days: Annotated[str, Form(max_length=6)] = "",
                   token_id: Annotated[str, Form(max_length=32)] = "") -> Response:
        """The admin page's forms: one action each, the outcome shown once as a notice."""
        check_csrf(me, csrf)
        users = state.users()
        try:
            if action == "add":
                users.add(name, password, role)
                done = f"user {name} ({role}) added"
            elif action == "role":
                users.set_role(name, role)
                done = f"{name} is now {role}"
            elif action == "password":
                users.set_password(name, password)
                done = f"password of {name} changed; their sessions are closed"
            elif action == "remove":
                users.remove(name)
                done = f"user {name} removed (their labels stay in the history)"
            elif action == "token":
                if days and not days.isdigit():
                    raise UsageError("days: a whole number, or empty for until revoked")
                token, record = users.create_token(name, label, role or None,
                                                   int(days) if days else None)
                done = (f"API token {record.id} for {name} ({record.role}): {token} — copy it "
                        "now, it is not shown again")
            elif action == "revoke":
                users.revoke_token(token_id)
                done = f"API token {token_id} revoked"
            else:
                raise UsageError(f"unknown action {action!r}")
        except UsageError as exc:
            done = f"not done: {exc}"
        state.notice[me.user.name] = done
        return RedirectResponse("/admin", status_code=303)

    @api.get("/api/v1/catalog", tags=["data"])
    def catalog_api(me: viewer) -> Any:
        """The outputs found under --data, by kind, the files that matched no kind, and the
        summaries' state (``pending``: kinds whose newest files are still being summarised,
        answered from the raw files meanwhile)."""
        state.data.refresh()
        catalog = state.data.catalog
        root = catalog.root
        return {"files": {k: [str(p.relative_to(root)) for p in v]
                          for k, v in catalog.files.items()}, "skipped": catalog.skipped,
                "summaries": state.data.rollups.status()}

    @api.get("/api/v1/me", tags=["data"])
    def me_api(me: viewer) -> Any:
        """Who you are, your role, and the CSRF token API writes need."""
        return {"name": me.user.name, "role": me.user.role, "csrf": me.csrf}

    return Hardening(api, settings.max_body, hsts=settings.secure_cookies)  # type: ignore[return-value]


PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


def _when(value: Any) -> str:
    """A time for a table cell: ISO text, datetime or ns since the epoch -> 'YYYY-MM-DD
    HH:MM:SS' (UTC; the API keeps full precision)."""
    if value is None:
        return "–"
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1e9, UTC)
    if isinstance(value, datetime):
        value = value.isoformat()
    return str(value).replace("T", " ")[:19]


def _exists(found: Any, what: str) -> Any:
    """A page's data, or the 404 that names what was not found."""
    if found is None:
        raise NotAllowed(404, f"no such {what} under --data")
    return found


def _local(target: str) -> str:
    """Only same-site paths after login (no open redirect to another host)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _slice(value: str) -> str:
    return "evaluation" if value == "evaluation" else "uncertain"


def run(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                proxy_headers=True, server_header=False)

