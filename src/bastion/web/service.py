"""The page's files, loaded once at start-up and served from memory.

    site = Site.load(title="Bastion Secrets", ttl_choices=[(3600, "1 hour", False), (86400, "1 day", True)],
                     max_views=100)
    site.create_page      # the HTML of /
    site.asset("app.js")  # Asset(body, content_type, version, integrity) or None

Asset URLs carry a hash of their content (``/assets/app.js?v=…``), so browsers may cache them for a
year and still get a new file after an upgrade; the HTML also pins each script and stylesheet with
Subresource Integrity. Written here rather than with Litestar's static files router: five small files
are cheaper to hold in memory than to read from disk per request, and the hashed URLs and SRI values
have to be computed anyway to render the pages.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

# Litestar adds "; charset=utf-8" to text/* media types itself.
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
ASSETS = ("app.js", "app.css", "favicon.svg")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'"
)
"""The pages' policy: only Bastion's own files, no inline code, and no DOM sinks that parse HTML."""
_PLACEHOLDER = re.compile(r"\{\{(\w+)(?: ([\w.]+))?\}\}")
TTL_CHOICES = (
    (300, "5 minutes"),
    (3600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str
    integrity: str

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        digest = hashlib.sha384(body).digest()
        return cls(
            body=body,
            content_type=TYPES[name[name.rfind(".") :]],
            version=digest.hex()[:16],
            integrity="sha384-" + base64.b64encode(digest).decode(),
        )

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def ttl_options(min_ttl: int, max_ttl: int, default_ttl: int) -> list[tuple[int, str, bool]]:
    """The expiry choices the form offers: the standard ones within bounds, the default selected."""
    choices = [(seconds, label) for seconds, label in TTL_CHOICES if min_ttl <= seconds <= max_ttl]
    if not choices:
        choices = [(max_ttl, f"{max_ttl // 60} minutes")]
    default = max((s for s, _ in choices if s <= default_ttl), default=choices[0][0])
    return [(seconds, label, seconds == default) for seconds, label in choices]


class Site:
    def __init__(self, assets: dict[str, Asset], create_page: bytes, reveal_page: bytes) -> None:
        self.assets = assets
        self.create_page = create_page
        self.reveal_page = reveal_page

    def asset(self, name: str) -> Asset | None:
        return self.assets.get(name)

    @classmethod
    def load(cls, *, title: str, ttl_choices: Sequence[tuple[int, str, bool]], max_views: int) -> Site:
        folder = resources.files("bastion.web") / "assets"
        assets = {name: Asset.of(name, (folder / name).read_bytes()) for name in ASSETS}
        options = "".join(
            f'<option value="{seconds}"{" selected" if chosen else ""}>{html.escape(label)}</option>'
            for seconds, label, chosen in ttl_choices
        )
        values = {"title": html.escape(title), "ttl_options": options, "max_views": str(max_views)}

        def render(name: str) -> bytes:
            def fill(match: re.Match[str]) -> str:
                kind, argument = match.group(1), match.group(2)
                if kind == "asset":
                    return f"/assets/{argument}?v={assets[argument].version}"
                if kind == "integrity":
                    return assets[argument].integrity
                return values[kind]

            return _PLACEHOLDER.sub(fill, (folder / name).read_text("utf-8")).encode()

        return cls(assets, render("create.html"), render("reveal.html"))
