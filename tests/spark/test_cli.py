"""``bastion spark add | list | remove`` as an operator runs them (subprocesses, settings from BASTION_*)."""

from __future__ import annotations

from pathlib import Path

from tests.process.conftest import bastion, server_env


def test_add_list_remove(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    env = server_env(tmp_path / "data", identity__bootstrap_owner="false")

    added = bastion("spark", "add", "notes", str(dist), "--host", "Notes.Example.com", env=env, cwd=tmp_path)
    again = bastion("spark", "add", "other", str(dist), "--host", "notes.example.com", env=env, cwd=tmp_path)
    empty = bastion("spark", "add", "empty", str(tmp_path), "--host", "e.example.com", env=env, cwd=tmp_path)
    bad_host = bastion("spark", "add", "bad", str(dist), "--host", "not a host", env=env, cwd=tmp_path)
    public = bastion(
        "spark", "add", "board", str(dist), "--host", "board.example.com", "--public", env=env, cwd=tmp_path
    )
    listed = bastion("spark", "list", env=env, cwd=tmp_path)
    removed = bastion("spark", "remove", "notes", env=env, cwd=tmp_path)
    missing = bastion("spark", "remove", "notes", env=env, cwd=tmp_path)
    after = bastion("spark", "list", env=env, cwd=tmp_path)

    assert added.returncode == 0 and "notes.example.com, private" in added.stdout
    assert again.returncode == 1 and "notes is served on notes.example.com" in again.stderr
    assert empty.returncode == 1 and "has no index.html" in empty.stderr
    assert bad_host.returncode == 1 and "host" in bad_host.stderr
    assert public.returncode == 0 and "public" in public.stdout
    assert listed.stdout.splitlines() == [
        f"board\tboard.example.com\tpublic\t{dist.resolve()}",
        f"notes\tnotes.example.com\tprivate\t{dist.resolve()}",
    ]
    assert removed.returncode == 0 and missing.returncode == 1
    assert after.stdout.splitlines() == [f"board\tboard.example.com\tpublic\t{dist.resolve()}"]
