"""One contract over every place uploads are kept (the data dir, an S3-compatible bucket on moto's server),
and the upload → erase path with S3 configured."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bastion.visitors.files import Files, LocalFiles, S3Files
from bastion.visitors.settings import ObjectStorage
from tests.conftest import free_port, serve
from tests.visitors.conftest import HOST, ROOT, setup_site


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def bucket(endpoint: str, name: str) -> ObjectStorage:
    import boto3

    storage = ObjectStorage(
        bucket=name,
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return storage


@pytest.fixture(params=["local", "s3"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Files:
    if request.param == "local":
        return LocalFiles(tmp_path / "files")
    return S3Files(bucket(request.getfixturevalue("s3_endpoint"), f"contract-{uuid.uuid4().hex[:12]}"))


async def test_put_get_delete(files: Files):
    """What is put is read back exactly; a deleted or unknown key reads as None; deleting twice is fine."""
    await files.put("site/v1/photo-1.jpg", b"\xff\xd8 one")
    await files.put("site/v1/photo-2.jpg", b"\xff\xd8 two")
    assert await files.get("site/v1/photo-1.jpg") == b"\xff\xd8 one"
    await files.delete("site/v1/photo-1.jpg")
    await files.delete("site/v1/photo-1.jpg")
    assert await files.get("site/v1/photo-1.jpg") is None
    assert await files.get("site/v1/never.jpg") is None
    assert await files.get("site/v1/photo-2.jpg") == b"\xff\xd8 two"


async def test_a_put_replaces_the_whole_file(files: Files):
    """A second put of one key leaves only the second content."""
    await files.put("k.jpg", b"a" * 1000)
    await files.put("k.jpg", b"b")
    assert await files.get("k.jpg") == b"b"


async def test_uploads_go_to_the_bucket_and_erasure_deletes_them(make_visitors_app, s3_endpoint: str, tmp_path: Path):
    """With a bucket configured the re-encoded photo is an object (not a file in the data dir), served back,
    and gone from the bucket after erasure."""
    import boto3

    storage = bucket(s3_endpoint, f"uploads-{uuid.uuid4().hex[:12]}")
    app = make_visitors_app(visitors={"storage": storage.model_dump(mode="python")})
    client: Any = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0)}
    Image.new("RGB", (40, 30)).save(out, format="JPEG", exif=exif)
    async with serve(app) as http:
        world = await setup_site(http)
        url = f"/api/visitors/{world.visitor_id}/photo"
        assert (
            await http.put(url, content=out.getvalue(), headers={**HOST, "content-type": "image/jpeg"})
        ).status_code == 204
        [obj] = client.list_objects_v2(Bucket=storage.bucket)["Contents"]
        stored = client.get_object(Bucket=storage.bucket, Key=obj["Key"])["Body"].read()
        assert obj["Key"].startswith("visitors/") and b"Exif" not in stored
        assert (await http.get(url, headers=HOST)).content == stored
        assert not (app.settings.data_dir / "visitors").exists()
        assert (await http.delete(f"/api/visitors/{world.visitor_id}", headers=ROOT)).status_code == 204
    assert client.list_objects_v2(Bucket=storage.bucket).get("Contents", []) == []


async def test_unreachable_object_storage_is_a_503_not_a_500(make_visitors_app):
    """A bucket on a port nobody listens on: the upload answers 503 DEPENDENCY_UNAVAILABLE with Retry-After."""
    storage = {
        "bucket": "nowhere",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "timeout_seconds": 1,
    }
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG")
    async with serve(make_visitors_app(visitors={"storage": storage})) as http:
        world = await setup_site(http)
        answer = await http.put(
            f"/api/visitors/{world.visitor_id}/photo",
            content=out.getvalue(),
            headers={**HOST, "content-type": "image/png"},
        )
        assert answer.status_code == 503 and answer.json()["code"] == "DEPENDENCY_UNAVAILABLE", answer.text
        assert "retry-after" in answer.headers
        assert (await http.get(f"/api/visitors/{world.visitor_id}", headers=HOST)).json()["has_photo"] is False
