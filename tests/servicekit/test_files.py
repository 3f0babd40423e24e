"""file_write_atomic: whole content or none, the replaced file's permissions, no temporary file left behind."""

from __future__ import annotations

import os

import pytest

from servicekit.files import file_write_atomic


def test_writes_text_and_bytes_and_makes_the_folder(tmp_path):
    target = tmp_path / "sub" / "a.json"
    assert file_write_atomic(path=target, data="héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    file_write_atomic(path=target, data=b"\x00\x01", durable=False)
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_keeps_the_replaced_files_mode_and_gives_a_new_file_the_umask_mode(tmp_path):
    existing = tmp_path / "routes.yaml"
    existing.write_text("old")
    existing.chmod(0o640)
    file_write_atomic(path=existing, data="new")
    assert existing.stat().st_mode & 0o777 == 0o640
    mask = os.umask(0o027)
    try:
        file_write_atomic(path=tmp_path / "fresh", data="x")
    finally:
        os.umask(mask)
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "ownership.json"
    target.write_text("before")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        file_write_atomic(path=target, data="after")
    assert target.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["ownership.json"]
