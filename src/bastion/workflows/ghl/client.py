"""The GoHighLevel API client, on core's upstream path (breaker, bulkhead, timeout, retries on what is transient).

    client = GhlClient(platform.http, settings.workflows, store=ctx.store)
    pair = await client.refresh(refresh_token, user_type="Location")      # rotates: keep the new pair
    workflows = await client.workflows("loc_1", access_token)              # metadata only

Every API call carries GHL's ``Version`` header and counts against GHL's burst limit (100 requests per 10 s
per location) in the shared store, so the workers and instances together stay under it; a call over it is
refused here (429 with Retry-After) instead of being sent. GHL's own 429s and 5xx are retried by the
upstream after their Retry-After when short; token requests (POSTs that rotate tokens) are never repeated.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bastion.core.errors import RateLimited
from bastion.core.http import HttpClients, classify_http
from bastion.core.stores.base import Store
from bastion.core.upstream import Upstream, UpstreamSettings
from bastion.workflows.errors import DefinitionUnavailable, GhlRateLimited, GhlUnavailable
from bastion.workflows.settings import WorkflowsSettings

if TYPE_CHECKING:
    import httpx


class GhlAuthRejected(Exception):
    """GHL refused the token (401 on a call, ``invalid_grant`` on a refresh): refresh it, or reconnect."""


class GhlClient:
    def __init__(self, http: HttpClients, settings: WorkflowsSettings, *, store: Store) -> None:
        self.settings = settings
        self.store = store
        upstream = UpstreamSettings(
            timeout_seconds=settings.ghl_timeout_seconds,
            connect_timeout_seconds=min(5.0, settings.ghl_timeout_seconds),
            retries=2,
            max_retry_wait_seconds=2.0,
        )
        self.upstream = Upstream("ghl", upstream, classify_http)
        self._clients, self._upstream_settings = http, upstream

    @cached_property
    def http(self) -> httpx.AsyncClient:
        """Made with the first call: httpx (12 MB) is imported with the first outbound client, not at start-up."""
        return self._clients.for_upstream(
            "ghl", self._upstream_settings, base_url=self.settings.ghl_api_url.rstrip("/")
        )

    # -- OAuth -------------------------------------------------------------------------------------------

    async def refresh(self, refresh_token: str, *, user_type: str) -> dict[str, Any]:
        """Trade a refresh token for a new pair (GHL rotates both: the old refresh token is dead after this)."""
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "user_type": user_type}
        )

    async def location_token(self, company_token: str, company_id: str, location_id: str) -> dict[str, Any]:
        """An agency's token → tokens for one of its locations."""
        response = await self._call(
            "POST",
            "/oauth/locationToken",
            company_token,
            resource=company_id,
            data={"companyId": company_id, "locationId": location_id},
            retries=0,
        )
        return self._json(response, "the location token")

    async def installed_locations(self, company_token: str, company_id: str) -> list[dict[str, Any]]:
        response = await self._call(
            "GET",
            "/oauth/installedLocations",
            company_token,
            resource=company_id,
            params={"companyId": company_id, "appId": self.settings.ghl_client_id, "isInstalled": "true"},
        )
        found = self._json(response, "the installed locations").get("locations")
        return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []

    # -- workflows ---------------------------------------------------------------------------------------

    async def workflows(self, location_id: str, token: str) -> list[dict[str, Any]]:
        """``GET /workflows/?locationId=``: the location's workflows, metadata only (GHL's one documented call)."""
        response = await self._call(
            "GET", "/workflows/", token, resource=location_id, params={"locationId": location_id}
        )
        found = self._json(response, "the workflow list").get("workflows")
        return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []

    async def definition(self, location_id: str, workflow_id: str, token: str) -> dict[str, Any]:
        """``GET /workflows/{id}``: a definition, where GHL enables it for the location (it is undocumented;
        a 403 ``WORKFLOW_API_NOT_ENABLED_FOR_LOCATION`` or a 404 sends the user to the JSON import)."""
        response = await self._call(
            "GET", f"/workflows/{workflow_id}", token, resource=location_id, params={"locationId": location_id}
        )
        if response.status_code in (403, 404):
            raise DefinitionUnavailable(
                "GoHighLevel does not give this workflow's steps to apps for this location: export it and "
                "send it to POST /api/workflows/import.",
                extra={"ghl_status": response.status_code},
            )
        return self._json(response, "the workflow")

    # -- plumbing ----------------------------------------------------------------------------------------

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        data = {
            "client_id": self.settings.ghl_client_id,
            "client_secret": self.settings.ghl_client_secret.get_secret_value(),
            **form,
        }

        async def send() -> Any:
            response = await self.http.post("/oauth/token", data=data, headers={"Accept": "application/json"})
            if response.status_code >= 500 or response.status_code == 429:
                response.raise_for_status()
            return response

        response = await self._through(send, retries=0)  # a refresh token is single-use: never repeat
        if response.status_code in (400, 401):
            raise GhlAuthRejected(response.text[:200])
        return self._json(response, "the token")

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        resource: str,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        retries: int | None = None,
    ) -> Any:
        await self._admit(resource)
        headers = {
            "Authorization": f"Bearer {token}",
            "Version": self.settings.ghl_api_version,
            "Accept": "application/json",
        }

        async def send() -> Any:
            response = await self.http.request(method, path, params=params, data=data, headers=headers)
            if response.status_code >= 500 or response.status_code == 429:
                response.raise_for_status()  # the upstream's failure: classified, retried when transient
            return response

        response = await self._through(send, retries=retries, resource=resource)
        if response.status_code == 401:
            raise GhlAuthRejected(response.text[:200])
        await self._heed(resource, response.headers)
        return response

    async def _heed(self, resource: str, headers: Any) -> None:
        """GHL says how many calls are left (``X-RateLimit-Remaining``, limits can differ from the documented
        ones): at 0, pause calls for ``resource`` for its interval on every worker and instance."""
        if headers.get("x-ratelimit-remaining") != "0":
            return
        interval = _number(headers.get("x-ratelimit-interval-milliseconds"))
        seconds = interval / 1000 if interval else self.settings.ghl_window_seconds
        await self.store.set(f"ghl:pause:{resource}", b"1", ttl=max(seconds, 0.1))

    async def _admit(self, resource: str) -> None:
        """Count the call against GHL's burst limit for ``resource``, shared by every worker and instance."""
        paused = await self.store.ttl(f"ghl:pause:{resource}")
        if paused is not None and paused > 0:
            raise GhlRateLimited("GoHighLevel said this location's calls are used up for now.", retry_after=paused)
        window = self.settings.ghl_window_seconds
        now = time.time()
        slot = int(now // window)
        used = await self.store.increment(f"ghl:rate:{resource}:{slot}", 1, ttl=window * 2)
        if used > self.settings.ghl_requests_per_window:
            retry = max(1.0, (slot + 1) * window - now)
            raise GhlRateLimited(
                f"GoHighLevel allows {self.settings.ghl_requests_per_window} requests per {window:g} s per location.",
                retry_after=retry,
            )

    async def _through(self, send: Any, *, retries: int | None, resource: str = "") -> Any:
        try:
            return await self.upstream.call(send, retries=retries)
        except (GhlAuthRejected, RateLimited):
            raise
        except TimeoutError as exc:
            raise GhlUnavailable(f"GoHighLevel did not answer within {self.settings.ghl_timeout_seconds:g} s.") from exc
        except Exception as exc:
            response = getattr(exc, "response", None)
            if response is not None and response.status_code == 429:  # GHL's limit, its wait too long to retry
                wait = _number(response.headers.get("retry-after")) or self.settings.ghl_window_seconds
                if resource:
                    await self.store.set(f"ghl:pause:{resource}", b"1", ttl=wait)
                raise GhlRateLimited(
                    "GoHighLevel's rate limit for this location is reached.", retry_after=wait
                ) from exc
            if type(exc).__module__.split(".")[0] in ("httpx", "httpx2"):
                raise GhlUnavailable(f"GoHighLevel did not answer properly ({type(exc).__name__}).") from exc
            raise

    @staticmethod
    def _json(response: Any, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise GhlUnavailable(f"GoHighLevel refused {what} (HTTP {response.status_code}).")
        try:
            body = response.json()
        except ValueError:
            raise GhlUnavailable(f"GoHighLevel answered {what} with something that is not JSON.") from None
        if not isinstance(body, dict):
            raise GhlUnavailable(f"GoHighLevel answered {what} with an unexpected shape.")
        return body


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
