"""The sign-in page Bastion serves (``GET /auth/signin?next=/path``): email and password, and a button per
configured OAuth provider (GitHub first). Hosted apps send signed-out visitors here; operators use it too.

The page is static apart from the providers and ``next`` (checked by :func:`safe_next`, so it can only send
the browser back to a path of this host). Its script posts to ``/auth/login`` in cookie mode from this
origin (no CSRF header needed: the browser proves the origin) and then goes to ``next``.
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources
from urllib.parse import quote

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ASSETS = {"signin.js": "text/javascript", "signin.css": "text/css"}
_LABELS = {"github": "GitHub", "google": "Google", "gitlab": "GitLab", "microsoft": "Microsoft"}


class SignInPage:
    def __init__(self, providers: list[str]) -> None:
        folder = resources.files("bastion.identity") / "assets"
        self.assets = {name: (folder / name).read_bytes() for name in ASSETS}
        self.versions = {name: hashlib.sha256(body).hexdigest()[:16] for name, body in self.assets.items()}
        self.template = (folder / "signin.html").read_text("utf-8")
        # GitHub first: Spark users are GitHub users.
        self.providers = sorted(providers, key=lambda name: (name != "github", name))

    def render(self, next_path: str) -> bytes:
        buttons = "".join(
            f'<a class="provider" href="/auth/login/{quote(name)}?next={quote(next_path, safe="")}">'
            f"Sign in with {html.escape(_LABELS.get(name, name.title()))}</a>"
            for name in self.providers
        )
        values = {
            "css": f"/auth/assets/signin.css?v={self.versions['signin.css']}",
            "js": f"/auth/assets/signin.js?v={self.versions['signin.js']}",
            "providers": f'<div class="providers">{buttons}</div>' if buttons else "",
            "next": html.escape(next_path, quote=True),
        }
        text = self.template
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return text.encode()
