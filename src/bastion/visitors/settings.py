"""Settings of the visitors module (``BASTION_VISITORS__<FIELD>``).

BASTION_VISITORS__MAX_UPLOAD_BYTES=5242880
BASTION_VISITORS__RETENTION_DAYS=30
BASTION_VISITORS__TEMPLATES__INVITATION=visitor_pass          # WhatsApp templates, registered by the site's owner
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Templates(BaseModel):
    """The WhatsApp templates the module sends (registered in messaging under the site owner's account).

    invitation (the pass): visitor name, site name, start (site time), pass code      arrived: visitor name, site name
    reminder: visitor name, site name, start (site time)             digest: site name, count, names
    """

    model_config = ConfigDict(frozen=True)

    language: str = "en"
    invitation: str = "visitor_pass"
    arrived: str = "visitor_arrived"
    reminder: str = "visitor_reminder"
    digest: str = "visitor_digest"


class ObjectStorage(BaseModel):
    """An S3-compatible bucket for uploads (unset bucket: the data dir).

    BASTION_VISITORS__STORAGE__BUCKET=visitors
    BASTION_VISITORS__STORAGE__ENDPOINT_URL=https://s3.eu-west-3.amazonaws.com   # or MinIO, R2, ...
    BASTION_VISITORS__STORAGE__ACCESS_KEY_ID=...   BASTION_VISITORS__STORAGE__SECRET_ACCESS_KEY=...
    """

    model_config = ConfigDict(frozen=True)

    bucket: str | None = None
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = "visitors/"
    timeout_seconds: float = Field(10.0, gt=0)


class VisitorsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    templates: Templates = Templates()
    storage: ObjectStorage = ObjectStorage()
    pass_url: str | None = None
    """The public base URL of this server (``https://gate.example.com``): the pass message then carries the link
    to the pass's QR code (``/passes/{visit}/{code}``) instead of the bare code."""
    early_minutes: int = Field(15, ge=0, le=240)
    """A pass opens this long before the visit starts (visitors arrive early)."""
    no_show_grace_minutes: int = Field(30, ge=0)
    """An approved visit with no check-in this long after its end is a no-show."""
    reminder_minutes: int = Field(60, ge=1)
    """The reminder goes this long before the visit starts."""
    digest_hour: int = Field(8, ge=0, le=23)
    """The morning digest goes to each host from this hour (site time), once a day."""
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=10_000)
    """Larger images are refused before they are decoded (decompression bombs)."""
    retention_days: int = Field(30, ge=1)
    """Photos and ID documents go this long after the visitor's last visit ended."""
