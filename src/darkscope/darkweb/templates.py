"""Per-market templates as TOML data files: CSS selectors per field, pages, links to follow.

A template is data, so a market that changes its layout needs a new file, not new code; a
``hook`` (a Python file beside the template) handles what selectors cannot.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cssselect import SelectorError
from lxml.cssselect import CSSSelector

from darkscope.errors import InputFormatError, UsageError

FIELDS = ("title", "description", "price", "vendor", "category", "ships_from", "ships_to", "url")
Hook = Callable[[dict[str, Any], Any], "dict[str, Any] | None"]


@dataclass(frozen=True)
class FieldSpec:
    """``selector`` picks the first matching node; ``attribute`` reads it instead of text."""

    selector: str
    attribute: str | None = None

    @classmethod
    def parse(cls, text: str) -> FieldSpec:
        selector, _, attribute = text.partition(" @")
        return cls(selector.strip(), attribute.strip() or None)


@dataclass(frozen=True)
class PageRule:
    """Listings on pages whose path (and query) matches ``url``: one per ``item`` node."""

    url: re.Pattern[str]
    item: str
    fields: dict[str, FieldSpec]


@dataclass
class Template:
    name: str
    pages: list[PageRule] = field(default_factory=list)
    follow: list[str] = field(default_factory=list)
    hook: Hook | None = None
    source: str = "<built-in>"

    def rule_for(self, path: str) -> PageRule | None:
        return next((rule for rule in self.pages if rule.url.search(path)), None)


def builtin(name: str) -> Path:
    """Path of a template shipped with darkscope (``darkscope/darkweb/markets/NAME.toml``)."""
    return Path(str(resources.files("darkscope.darkweb") / "markets" / f"{name}.toml"))


def load_template(path: str | Path, allow_hook: bool = False) -> Template:
    """Read and validate a template; errors name the file and the field.

    A ``hook`` is Python code, so it runs only with ``allow_hook`` (the CLI's ``--allow-hook``)
    and only from the template's own folder: a template (or a crawl directory that remembers
    one) from someone else cannot run a file elsewhere on this machine.
    """
    path = Path(path)
    if not path.exists() and not path.suffix and builtin(str(path)).exists():
        path = builtin(str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"market template {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(path, f"not a valid TOML template: {exc}") from None

    def need(value: Any, kind: type, where: str) -> Any:
        if not isinstance(value, kind):
            raise InputFormatError(path, f"{where}: expected {kind.__name__}, got {value!r}")
        return value

    def css(value: Any, where: str) -> str:
        """A selector that compiles now, so a typo is a template error, not a crawl failure."""
        text = need(value, str, where)
        try:
            CSSSelector(text)
        except SelectorError as exc:
            raise InputFormatError(path, f"{where}: bad CSS selector {text!r}: {exc}") from None
        return text

    name = need(data.get("name"), str, "name")
    pages = []
    for index, page in enumerate(need(data.get("page", []), list, "page")):
        where = f"page[{index}]"
        need(page, dict, where)
        try:
            pattern = re.compile(need(page.get("url"), str, f"{where}.url"))
        except re.error as exc:
            raise InputFormatError(path, f"{where}.url: bad regular expression: {exc}") from None
        fields = need(page.get("fields"), dict, f"{where}.fields")
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise InputFormatError(path, f"{where}.fields: unknown field(s) {sorted(unknown)}; "
                                         f"known: {', '.join(FIELDS)}")
        if "title" not in fields:
            raise InputFormatError(path, f"{where}.fields: a title selector is required")
        specs = {k: FieldSpec.parse(need(v, str, f"{where}.fields.{k}")) for k, v in fields.items()}
        for key, spec in specs.items():
            css(spec.selector, f"{where}.fields.{key}")
        item = need(page.get("item", "html"), str, f"{where}.item")
        if item != "html":
            css(item, f"{where}.item")
            if "url" not in specs:
                raise InputFormatError(
                    path, f"{where}.fields: a url selector is required with item = {item!r}: "
                          "several listings on one page each need their own URL (without it "
                          "all would share the page URL and all but one would be lost)")
        pages.append(PageRule(pattern, item, specs))
    follow = need(data.get("follow", {}).get("selectors", []), list, "follow.selectors")
    hook = None
    if "hook" in data:
        hook = _load_hook(path, need(data["hook"], str, "hook"), allow_hook)
    return Template(name, pages,
                    [css(s, f"follow.selectors[{i}]") for i, s in enumerate(follow)], hook,
                    str(path))


def _load_hook(template: Path, name: str, allow_hook: bool) -> Hook:
    """A template's Python hook: ``fix(record, node)`` returns the record, changed, or None."""
    folder = template.parent.resolve()
    hook_path = (folder / name).resolve()
    if not hook_path.is_relative_to(folder):
        raise InputFormatError(template, f"hook: {name!r} is outside the template's folder "
                                         f"{folder}; a hook must sit beside its template")
    if not allow_hook:
        raise UsageError(f"market template {template} runs Python code ({hook_path}); "
                         "read it, then pass --allow-hook to run it")
    if not hook_path.exists():
        raise InputFormatError(template, f"hook: {hook_path} does not exist")
    spec = importlib.util.spec_from_file_location(f"darkscope_hook_{hook_path.stem}", hook_path)
    if spec is None or spec.loader is None:
        raise InputFormatError(template, f"hook: cannot load {hook_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fix = getattr(module, "fix", None)
    if not callable(fix):
        raise InputFormatError(template, f"hook: {hook_path} defines no fix(record, node)")
    return fix
