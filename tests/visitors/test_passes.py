"""The pass link: the message carries ``<pass_url>/passes/{visit}/{code}``, which answers the QR code of
``<visit>.<code>`` while the pass is usable and 404 otherwise."""

from __future__ import annotations

import io

import segno
from PIL import Image

from tests.conftest import eventually, serve
from tests.visitors.conftest import GUARD, VISITOR_PHONE, invite, setup_site

BASE = "https://gate.example.com"


def modules_of(png: bytes, scale: int = 8, border: int = 4) -> list[list[bool]]:
    """The dark modules read back from the image (the centre pixel of each)."""
    image = Image.open(io.BytesIO(png)).convert("L")
    size = image.width // scale - 2 * border

    def dark(x: int, y: int) -> bool:
        value = image.getpixel(((border + x) * scale + scale // 2, (border + y) * scale + scale // 2))
        return isinstance(value, int) and value < 128

    return [[dark(x, y) for x in range(size)] for y in range(size)]


async def test_the_pass_message_links_to_a_qr_code_of_visit_and_code(make_visitors_app, fake):
    """With pass_url set, the WhatsApp pass carries the link; the link's PNG encodes ``<visit>.<code>``; after
    check-out, and for a wrong code, the link is 404."""
    app = make_visitors_app(fake, visitors={"pass_url": BASE + "/"})
    async with serve(app) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        code = visit["pass_code"]
        await eventually(lambda: fake.sent_to(VISITOR_PHONE), timeout=10)
        [message] = fake.sent_to(VISITOR_PHONE)
        link = message.payload["template"]["components"][0]["parameters"][3]["text"]
        assert link == f"{BASE}/passes/{visit['id']}/{code}"

        answer = await http.get(link.removeprefix(BASE))
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.headers["cache-control"] == "private, no-store"
        expected = segno.make(f"{visit['id']}.{code}", error="m", micro=False)
        assert modules_of(answer.content) == [[bool(cell & 1) for cell in row] for row in expected.matrix]

        assert (await http.get(f"/passes/{visit['id']}/wrong-{code}")).status_code == 404
        scan = {"code": code, "site_id": world.site_id}
        await http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD)
        assert (await http.get(link.removeprefix(BASE))).status_code == 200
        await http.post(f"/api/visits/{visit['id']}/check-out", json=scan, headers=GUARD)
        assert (await http.get(link.removeprefix(BASE))).status_code == 404
