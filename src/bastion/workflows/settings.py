"""Settings of the workflows module (``BASTION_WORKFLOWS__<FIELD>``).

BASTION_WORKFLOWS__GHL_API_URL=https://services.leadconnectorhq.com
BASTION_WORKFLOWS__GHL_WEBHOOK_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----..."   # GHL's published Ed25519 key
BASTION_WORKFLOWS__MAX_STEPS=5000
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bastion.core.settings import Problem

_P = "BASTION_WORKFLOWS__"


class WorkflowsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    ghl_api_url: str = "https://services.leadconnectorhq.com"
    """GHL's API (and OAuth token endpoint) base URL; tests point it at a local fake."""
    ghl_api_version: str = "2021-07-28"
    """The ``Version`` header every GHL API call carries."""
    ghl_client_id: str = ""
    ghl_client_secret: SecretStr = SecretStr("")
    ghl_requests_per_window: int = Field(100, ge=1)
    ghl_window_seconds: float = Field(10.0, gt=0)
    """GHL's burst limit: 100 requests per 10 s per location, counted in the shared store across instances."""
    ghl_timeout_seconds: float = Field(10.0, gt=0)
    refresh_margin_seconds: int = Field(300, ge=0)
    """Refresh an access token this long before it expires (GHL's SDK uses 30 s; more margin, fewer 401s)."""

    ghl_webhook_public_key: str = ""
    """GHL's Ed25519 public key (PEM) for ``x-ghl-signature``. Unset: every webhook is refused (401)."""
    ghl_webhook_legacy_rsa_key: str = ""
    """GHL's RSA public key (PEM) for the legacy ``x-wh-signature``; used only with ``accept_legacy_signatures``."""
    accept_legacy_signatures: bool = False
    webhook_tolerance_seconds: int = Field(300, ge=1)
    """Webhooks whose ``timestamp`` is further than this from now are refused (replays)."""

    max_definition_bytes: int = Field(2 * 1_048_576, ge=1024)
    max_steps: int = Field(5000, ge=1)
    """Largest workflow analysed, in steps (and triggers)."""
    reanalyse_every_seconds: float = Field(5.0, gt=0)
    """How often the queue of re-analyses (from GHL webhooks) is looked at."""
    history_page_size: int = Field(20, ge=1, le=200)

    def problems(self) -> list[Problem]:
        """What is unsafe or unusable in these settings (errors stop a production start)."""
        found: list[Problem] = []
        if self.ghl_client_id and not self.ghl_client_secret.get_secret_value():
            found.append(Problem("error", _P + "GHL_CLIENT_SECRET", "GHL_CLIENT_ID is set without its secret"))
        if self.ghl_client_id and not self.ghl_webhook_public_key.strip():
            found.append(
                Problem("warning", _P + "GHL_WEBHOOK_PUBLIC_KEY", "unset: every GoHighLevel webhook is refused (401)")
            )
        if self.accept_legacy_signatures and not self.ghl_webhook_legacy_rsa_key.strip():
            found.append(Problem("error", _P + "GHL_WEBHOOK_LEGACY_RSA_KEY", "legacy signatures on, but no RSA key"))
        for name, pem, kind in (
            ("GHL_WEBHOOK_PUBLIC_KEY", self.ghl_webhook_public_key, "Ed25519PublicKey"),
            ("GHL_WEBHOOK_LEGACY_RSA_KEY", self.ghl_webhook_legacy_rsa_key, "RSAPublicKey"),
        ):
            if pem.strip() and not _is_key(pem, kind):
                found.append(Problem("error", _P + name, f"not a PEM {kind.removesuffix('PublicKey')} public key"))
        return found


def _is_key(pem: str, kind: str) -> bool:
    from cryptography.hazmat.primitives import serialization  # only when a key is configured

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return False
    return any(kind == t.__name__ for t in type(key).__mro__)
