"""The CelebA download helper against a local HTTP server on 127.0.0.1 serving a tiny
CelebA: a good download, web pages instead of the file, truncated and interrupted
transfers, a wrong checksum, hostile archives, a held lock. Whatever fails, ``--out``
never holds a half-written or unverified file."""

from __future__ import annotations

import hashlib
import http.server
import io
import tempfile
import threading
import zipfile
from pathlib import Path

import filelock
import pytest
from conftest import make_official_root, run_script
from hypothesis import given
from hypothesis import strategies as st

import dataset
import download

QUOTA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
    b"Too many users have viewed or downloaded this file recently.</body></html>"
)
VIRUS_PAGE = b"<html><body>Google Drive can't scan this file for viruses.</body></html>"
OTHER_PAGE = b"<!doctype html><html><body>Nothing to see here</body></html>"


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` by name, each as its ``server.modes`` entry says:
    good (ranges honoured), page (an HTML page instead), truncate (half, then the
    connection drops, every time), once (truncate the first request only), norange
    (ranges ignored), missing (404)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        server = self.server
        server.log.append((name, self.headers.get("Range")))
        mode = server.modes.get(name, "good")
        body = server.files.get(name)
        if body is None or mode == "missing":
            self.send_error(404)
        elif mode == "page":
            self._send(200, server.page, {"Content-Type": "text/html; charset=utf-8"})
        elif mode == "truncate" or (mode == "once" and name not in server.broken):
            server.broken.add(name)
            self._send(200, body, {}, cut=len(body) // 2)
        else:
            self._ranged(body, ranges=mode != "norange")

    def _ranged(self, body: bytes, ranges: bool) -> None:
        asked = self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and ranges else 0
        if start >= len(body) and start:
            self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
        elif start:
            headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            self._send(206, body[start:], headers)
        else:
            self._send(200, body, {})

    def _send(self, code: int, body: bytes, headers: dict, cut: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.modes, httpd.log, httpd.page = {}, {}, [], QUOTA_PAGE
    httpd.broken = set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def symbolic_link(name: str) -> zipfile.ZipInfo:
    """A zip member that unpacks as a symbolic link (to the path stored as its data)."""
    link = zipfile.ZipInfo(name)
    link.external_attr = 0o120777 << 16
    return link


def zipped(members: dict[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def celeba(tmp_path, server):
    """A tiny CelebA (7 images, so the zip is large enough to cut) on the server;
    returns the mirror URL and the files' bytes."""
    root, _ = make_official_root(tmp_path / "source", count=7)
    images = sorted((root / "img_align_celeba").iterdir())
    server.files = {
        "img_align_celeba.zip": zipped(
            {f"img_align_celeba/{p.name}": p.read_bytes() for p in images}
        ),
        "list_attr_celeba.txt": (root / "list_attr_celeba.txt").read_bytes(),
        "list_eval_partition.txt": (root / "list_eval_partition.txt").read_bytes(),
    }
    return f"http://127.0.0.1:{server.server_port}", server.files


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def fetch(out: Path, mirror: str, files: dict[str, bytes], **kwargs) -> str:
    remotes = download.remotes(mirror, md5s(files))
    kwargs.setdefault("retries", 2)
    return download.fetch_celeba(
        out, remotes, dataset.check_root, backoff=0, progress=False, **kwargs
    )


def assert_nothing_landed(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    assert not list(out.parent.glob(f"{out.name}.tmp-*")), "a staging folder was left"


def assert_landed(out: Path, files: dict[str, bytes]) -> None:
    assert (out / "list_attr_celeba.txt").read_bytes() == files["list_attr_celeba.txt"]
    with zipfile.ZipFile(io.BytesIO(files["img_align_celeba.zip"])) as archive:
        for name in archive.namelist():
            assert (out / name).read_bytes() == archive.read(name)
    assert not download.downloads_folder(out).exists()


def test_a_good_download_lands_verified_and_readable(tmp_path, celeba):
    mirror, files = celeba
    out = tmp_path / "data" / "celeba"
    summary = fetch(out, mirror, files)
    assert summary.startswith("7 labelled images")
    assert_landed(out, files)
    assert len(dataset.scan(out).names) == 7


def test_the_command_line_downloads_and_says_what_is_next(tmp_path, celeba):
    mirror, files = celeba
    sums = tmp_path / "MD5SUMS"
    sums.write_text("".join(f"{md5}  {name}\n" for name, md5 in md5s(files).items()))
    out = tmp_path / "celeba"
    result = run_script(
        "dataset.py", "download", "--out", str(out), "--mirror", mirror, "--checksums", str(sums)
    )
    assert result.returncode == 0, result.stderr
    assert f"{out}: 7 labelled images" in result.stdout
    assert "python dcgan.py --data-dir" in result.stdout
    assert_landed(out, files)


@pytest.mark.parametrize(
    ("page", "why"),
    [(QUOTA_PAGE, "quota"), (VIRUS_PAGE, "scan for viruses"), (OTHER_PAGE, "a web page instead")],
)
def test_a_web_page_is_explained_and_never_saved_as_the_file(tmp_path, celeba, server, page, why):
    mirror, files = celeba
    server.modes["img_align_celeba.zip"], server.page = "page", page
    out = tmp_path / "celeba"
    with pytest.raises(download.DownloadError, match=why) as caught:
        fetch(out, mirror, files)
    message = str(caught.value)
    assert message.splitlines()[0].startswith("img_align_celeba.zip:")
    assert "00d2c5bc6d35e252742224ab0c1e8fcb" in message and "Kaggle" in message
    assert_nothing_landed(out)
    assert not (download.downloads_folder(out) / "img_align_celeba.zip.part").exists()


def test_the_command_line_fails_in_one_line_then_the_manual_steps(tmp_path, celeba, server):
    mirror, _ = celeba
    server.modes["img_align_celeba.zip"] = "page"
    out = tmp_path / "celeba"
    result = run_script("dataset.py", "download", "--out", str(out), "--mirror", mirror)
    assert result.returncode == 2
    error = result.stderr[result.stderr.index("error: ") :].splitlines()
    assert error[0].startswith("error: img_align_celeba.zip:") and "quota" in error[0]
    assert error[1].startswith("To set CelebA up by hand")
    assert "md5sum" in result.stderr and str(out) in result.stderr
    assert_nothing_landed(out)


def test_a_truncated_transfer_is_retried_kept_aside_and_resumed_next_run(tmp_path, celeba, server):
    mirror, files = celeba
    server.modes["img_align_celeba.zip"] = "truncate"
    out = tmp_path / "celeba"
    with pytest.raises(download.DownloadError, match="gave up after 3 attempts"):
        fetch(out, mirror, files)
    assert_nothing_landed(out)
    part = download.downloads_folder(out) / "img_align_celeba.zip.part"
    half = len(files["img_align_celeba.zip"]) // 2
    assert part.stat().st_size == half
    asked = [r for name, r in server.log if name == "img_align_celeba.zip"]
    assert asked == [None, f"bytes={half}-", f"bytes={half}-"]

    server.modes["img_align_celeba.zip"], server.log[:] = "good", []
    fetch(out, mirror, files)
    assert ("img_align_celeba.zip", f"bytes={half}-") in server.log
    assert_landed(out, files)


def test_a_transfer_interrupted_once_resumes_from_the_break_and_verifies(tmp_path, celeba, server):
    mirror, files = celeba
    server.modes["img_align_celeba.zip"] = "once"
    out = tmp_path / "celeba"
    fetch(out, mirror, files)
    half = len(files["img_align_celeba.zip"]) // 2
    asked = [r for name, r in server.log if name == "img_align_celeba.zip"]
    assert asked == [None, f"bytes={half}-"]
    assert_landed(out, files)


def test_a_server_that_ignores_ranges_gets_the_file_again_whole(tmp_path, celeba, server):
    mirror, files = celeba
    out = tmp_path / "celeba"
    part = download.downloads_folder(out) / "img_align_celeba.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that a resume would keep")
    server.modes["img_align_celeba.zip"] = "norange"
    fetch(out, mirror, files)
    assert_landed(out, files)


def test_a_wrong_checksum_deletes_the_file_and_lands_nothing(tmp_path, celeba, server):
    mirror, files = celeba
    published = md5s(files)
    server.files["list_attr_celeba.txt"] = files["list_attr_celeba.txt"].replace(b" 1", b"-1", 1)
    out = tmp_path / "celeba"
    remotes = download.remotes(mirror, published)
    with pytest.raises(
        download.DownloadError, match=r"list_attr_celeba\.txt: MD5 .* expected"
    ) as caught:
        download.fetch_celeba(out, remotes, dataset.check_root, backoff=0, progress=False)
    assert published["list_attr_celeba.txt"] in str(caught.value)
    assert_nothing_landed(out)
    assert not list(download.downloads_folder(out).glob("list_attr_celeba.txt*"))


def test_a_file_that_is_not_a_zip_is_refused_at_its_first_bytes(tmp_path, celeba, server):
    mirror, _ = celeba
    server.files["img_align_celeba.zip"] = b"\x89PNG\r\n\x1a\n" + bytes(1000)
    out = tmp_path / "celeba"
    with pytest.raises(download.DownloadError, match="not a zip archive"):
        fetch(out, mirror, server.files)
    assert_nothing_landed(out)


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.jpg", "climbs out"),
        ("/tmp/evil.jpg", "absolute"),
        ("C:/evil.jpg", "absolute"),
        (symbolic_link("img_align_celeba/000002.jpg"), "symbolic link"),
    ],
)
def test_a_hostile_archive_is_refused_whole(tmp_path, celeba, server, member, why):
    mirror, _ = celeba
    server.files["img_align_celeba.zip"] = zipped(
        {"img_align_celeba/000001.jpg": b"x", member: b"x"}
    )
    out = tmp_path / "celeba"
    with pytest.raises(download.DownloadError, match=why):
        fetch(out, mirror, server.files)
    assert_nothing_landed(out)
    assert not (tmp_path / "evil.jpg").exists()


def test_an_archive_the_reader_rejects_lands_nothing(tmp_path, celeba, server):
    mirror, _ = celeba
    server.files["img_align_celeba.zip"] = zipped({"img_align_celeba/999999.jpg": b"not a jpeg"})
    out = tmp_path / "celeba"
    with pytest.raises(dataset.DataError, match="none of the 7 labelled images"):
        fetch(out, mirror, server.files)
    assert_nothing_landed(out)


def test_a_missing_file_is_named_with_the_status(tmp_path, celeba, server):
    mirror, files = celeba
    server.modes["list_eval_partition.txt"] = "missing"
    out = tmp_path / "celeba"
    with pytest.raises(download.DownloadError, match=r"list_eval_partition\.txt: .* HTTP 404"):
        fetch(out, mirror, files)
    assert_nothing_landed(out)


def test_offline_fails_at_once_with_the_manual_steps(tmp_path):
    out = tmp_path / "celeba"
    remotes = download.remotes("http://celeba.invalid")
    with pytest.raises(download.DownloadError, match="cannot reach") as caught:
        download.fetch_celeba(out, remotes, dataset.check_root, backoff=60, progress=False)
    assert "list_eval_partition.txt  MD5 d32c9cbf5e040fd4025c592c306e6668" in str(caught.value)
    assert_nothing_landed(out)


def test_a_second_download_into_one_folder_is_refused(tmp_path, celeba):
    mirror, files = celeba
    out = tmp_path / "celeba"
    download.downloads_folder(out).mkdir(parents=True)
    held = filelock.FileLock(download.downloads_folder(out) / "lock")
    with held, pytest.raises(download.DownloadError, match="another download into it is running"):
        fetch(out, mirror, files)
    assert_nothing_landed(out)


def test_a_folder_that_holds_files_is_not_downloaded_into(tmp_path, celeba):
    mirror, files = celeba
    out = tmp_path / "celeba"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(download.DownloadError, match="already holds files"):
        fetch(out, mirror, files)
    assert sorted(out.iterdir()) == [out / "notes.txt"]


def test_checksum_files_are_read_as_md5sum_writes_them(tmp_path):
    path = tmp_path / "MD5SUMS"
    lines = [f"{'ab' * 16} {'*' if i else ' '}{r.name}" for i, r in enumerate(download.OFFICIAL)]
    path.write_text("\n".join(lines) + "\n\n")
    assert download.read_checksums(path) == {r.name: "ab" * 16 for r in download.OFFICIAL}
    path.write_text(lines[0] + "\n")
    with pytest.raises(download.DownloadError, match=r"no checksum for list_attr_celeba\.txt"):
        download.read_checksums(path)
    path.write_text(lines[0] + "\nnot a checksum line\n")
    with pytest.raises(download.DownloadError, match="line 2: 'not a checksum line'"):
        download.read_checksums(path)


@given(st.text())
def test_any_checksum_file_parses_or_fails_in_one_line(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "MD5SUMS"
        path.write_text(text)
        try:
            found = download.read_checksums(path)
        except download.DownloadError as error:
            assert "\n" not in str(error)
            return
    assert {r.name for r in download.OFFICIAL} <= set(found)
