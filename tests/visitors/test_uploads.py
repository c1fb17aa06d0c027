"""Photos and ID documents: type by content, size cap, metadata stripped by re-encoding, served only to those
who may see the visitor."""

from __future__ import annotations

import io

from PIL import Image

from tests.conftest import serve
from tests.visitors.conftest import GUARD, HOST, OTHER_HOST, setup_site

GPS = 0x8825


def image_with_gps(kind: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[GPS] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 120, 200)).save(out, format=kind, exif=exif)
    return out.getvalue()


def stored_files(app) -> list[bytes]:
    root = app.settings.data_dir / "visitors"
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_gps_metadata_is_gone_after_re_encoding(make_visitors_app):
    """A JPEG with GPS and camera EXIF comes back (and is stored) as a JPEG with no EXIF at all, same size."""
    upload = image_with_gps()
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(GPS)  # the fixture really carries GPS
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        put = await http.put(
            f"/api/visitors/{world.visitor_id}/photo", content=upload, headers={**HOST, "content-type": "image/jpeg"}
        )
        assert put.status_code == 204, put.text
        served = await http.get(f"/api/visitors/{world.visitor_id}/photo", headers=GUARD)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert (await http.get(f"/api/visitors/{world.visitor_id}/photo", headers=OTHER_HOST)).status_code == 404
    [stored] = stored_files(app)
    for data in (served.content, stored):
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == (80, 60)
        assert dict(image.getexif()) == {} and b"Exif" not in data and b"PhoneMaker" not in data


async def test_an_upload_that_lies_about_its_type_is_refused(make_visitors_app):
    """Text and a PDF sent as image/jpeg, a GIF (an image, not accepted): 422, nothing stored; a PNG sent
    as image/jpeg is judged by its content and accepted."""
    app = make_visitors_app()
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    async with serve(app) as http:
        world = await setup_site(http)
        url = f"/api/visitors/{world.visitor_id}/id-document"
        for body in (
            b"not an image at all" * 10,
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            gif.getvalue(),
        ):
            answer = await http.put(url, content=body, headers={**HOST, "content-type": "image/jpeg"})
            assert answer.status_code == 422 and answer.json()["code"] == "UPLOAD_TYPE_REFUSED", answer.text
        assert stored_files(app) == []
        png = image_with_gps("PNG")
        answer = await http.put(url, content=png, headers={**HOST, "content-type": "image/jpeg"})
        assert answer.status_code == 204
    [stored] = stored_files(app)
    assert Image.open(io.BytesIO(stored)).format == "JPEG"


async def test_an_oversized_upload_is_refused(make_visitors_app):
    """Above ``max_upload_bytes``: 413, nothing stored."""
    app = make_visitors_app(visitors={"max_upload_bytes": 2048})
    noisy = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(noisy, format="PNG")
    assert len(noisy.getvalue()) > 2048
    async with serve(app) as http:
        world = await setup_site(http)
        answer = await http.put(
            f"/api/visitors/{world.visitor_id}/photo",
            content=noisy.getvalue(),
            headers={**HOST, "content-type": "image/png"},
        )
        assert answer.status_code == 413, answer.text
        assert (await http.get(f"/api/visitors/{world.visitor_id}", headers=HOST)).json()["has_photo"] is False
    assert stored_files(app) == []


async def test_an_image_over_the_pixel_limit_is_refused_before_decoding(make_visitors_app):
    """A small file that declares a huge image (a decompression bomb): 422, nothing stored."""
    app = make_visitors_app(visitors={"max_pixels": 100_000})
    big = io.BytesIO()
    Image.new("1", (2000, 2000)).save(big, format="PNG")  # 4 Mpx in a few kB
    assert len(big.getvalue()) < 64 * 1024
    async with serve(app) as http:
        world = await setup_site(http)
        answer = await http.put(
            f"/api/visitors/{world.visitor_id}/photo",
            content=big.getvalue(),
            headers={**HOST, "content-type": "image/png"},
        )
        assert answer.status_code == 422 and answer.json()["code"] == "UPLOAD_TYPE_REFUSED"
    assert stored_files(app) == []
