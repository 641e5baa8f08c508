"""Fetching CelebA's aligned images and label files into a folder that ends up whole or
absent: never a quota page saved as the zip, a truncated file or an unverified one.

How (``fetch_celeba``):

* each file streams into ``NAME.part`` in a downloads folder beside the target
  (``.OUT.download/``, kept between runs so a later run resumes it with an HTTP Range
  request where the server allows; one that does not starts the file again);
* its first bytes are checked (a web page is recognised and explained: Google Drive's
  quota, virus-scan and sign-in pages; a zip must start with a zip header), broken
  transfers are retried a bounded number of times from where they broke, and the whole
  file must match its published MD5 (torchvision's list) before it is renamed ``NAME``;
* the archive is refused if any member would land outside the folder (absolute paths,
  ``..``, links), then extracted with the label files into a staging folder, checked
  by the caller's ``validate`` (dataset.py passes the reader that trains) and renamed
  into place; the downloads folder goes only then;
* a lock on the downloads folder stops two downloads into one target.

Offline, blocked or over quota, the error names what failed and ends with the manual
steps (``manual_steps``). What this module is not: a reader of CelebA (dataset.py is,
and owns the ``python dataset.py download`` command) nor a general-purpose downloader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import filelock
import requests
import urllib3
from tqdm import tqdm

import atomic
from cli import CommandError

ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 1 << 20
TIMEOUT = (15, 60)  # seconds to connect, and between bytes
SITE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
KAGGLE = "https://www.kaggle.com/datasets/jessicali9530/celeba-dataset"


class DownloadError(CommandError):
    """A download that cannot finish; the message names the file, why, and what to do."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """One file of the CelebA root: its name there, where to fetch it, its MD5."""

    name: str
    url: str
    md5: str


def drive_url(file_id: str) -> str:
    """Google Drive's direct download of a public file; ``confirm=t`` skips the
    "cannot scan for viruses" page that large files get."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


# File IDs and MD5s as torchvision's CelebA lists them (the official Google Drive folder).
OFFICIAL = (
    Remote(
        "img_align_celeba.zip",
        drive_url("0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
        "00d2c5bc6d35e252742224ab0c1e8fcb",
    ),
    Remote(
        "list_attr_celeba.txt",
        drive_url("0B7EVK8r0v71pblRyaVFSWGxPY0U"),
        "75e246fa4810816ffd6ee81facbd244c",
    ),
    Remote(
        "list_eval_partition.txt",
        drive_url("0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
        "d32c9cbf5e040fd4025c592c306e6668",
    ),
)
MD5_LINE = re.compile(r"(?P<md5>[0-9a-fA-F]{32}) [ *](?P<name>\S.*)")


def remotes(mirror: str | None = None, checksums: dict[str, str] | None = None) -> list[Remote]:
    """The official files, fetched from ``mirror`` (a base URL holding them by name)
    where given, and checked against ``checksums`` (name -> MD5) where given."""
    found = []
    for remote in OFFICIAL:
        url = f"{mirror.rstrip('/')}/{remote.name}" if mirror else remote.url
        md5 = (checksums or {}).get(remote.name, remote.md5)
        found.append(Remote(remote.name, url, md5.lower()))
    return found


def read_checksums(path: Path) -> dict[str, str]:
    """An ``md5sum``-format file (``HEX  NAME`` lines) naming every official file."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DownloadError(f"--checksums {path}: cannot read it ({error})") from None
    found = {}
    for number, line in enumerate(lines, 1):
        match = MD5_LINE.fullmatch(line.strip())
        if line.strip() and not match:
            raise DownloadError(
                f"{path}, line {number}: {line.strip()[:60]!r} is not 'MD5  NAME' "
                "(32 hex digits, two spaces, a file name), as md5sum writes it"
            )
        if match:
            found[match["name"]] = match["md5"]
    missing = [remote.name for remote in OFFICIAL if remote.name not in found]
    if missing:
        raise DownloadError(f"{path}: no checksum for {', '.join(missing)}; add a line for each")
    return found


def manual_steps(out: Path) -> str:
    """What to do by hand when the helper cannot fetch the files."""
    files = "\n".join(f"    {remote.name}  MD5 {remote.md5}" for remote in OFFICIAL)
    return (
        f"To set CelebA up by hand: from {SITE} ('Align&Cropped Images' and 'Anno', "
        f"or the Google Drive folder it links to), download\n{files}\n"
        f"  check them with `md5sum`, unzip img_align_celeba.zip into {out} (so that "
        f"{out}/img_align_celeba/000001.jpg exists) and put the two .txt files beside it.\n"
        f"  Or unzip Kaggle's copy ({KAGGLE}) into {out} as it comes: its nested "
        "img_align_celeba/img_align_celeba/ and .csv label files are read as they are.\n"
        f"  Then: python dataset.py info --data-dir {out}"
    )


# ---------------------------------------------------------------------- transfer


class _BrokenError(Exception):
    """A transfer that broke off and may be retried from where it stopped."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while block := file.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _web_page(remote: Remote, start: bytes) -> str | None:
    """Why ``start`` (a response's first bytes) is a web page, not the file, or None."""
    text = start[:4096].decode("utf-8", "replace").lower()
    if not re.match(r"\s*(<!doctype html|<html)", text):
        return None
    if "quota" in text or "too many users" in text:
        why = "its download quota for this file is used up (it resets within a day)"
    elif "virus" in text:
        why = "it asks to confirm a file it cannot scan for viruses"
    elif "sign in" in text or "accounts.google" in text:
        why = "it asks for a sign-in"
    else:
        why = "it sent a web page instead of the file"
    return f"{remote.name}: {remote.url.split('?')[0]} answered with a web page: {why}"


def _check_start(remote: Remote, start: bytes, offset: int) -> None:
    page = _web_page(remote, start)
    if page:
        raise DownloadError(page)
    if offset == 0 and remote.name.endswith(".zip") and not start.startswith(ZIP_MAGIC):
        raise DownloadError(
            f"{remote.name}: {remote.url.split('?')[0]} sent something that is not a zip "
            f"archive (it starts with {start[:8]!r})"
        )


def _open(session: requests.Session, remote: Remote, have: int) -> requests.Response:
    """The response to a GET from byte ``have`` on; a refusal is a DownloadError."""
    # Identity encoding: byte ranges and Content-Length then count the file's own bytes.
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = session.get(remote.url, headers=headers, stream=True, timeout=TIMEOUT)
    except (requests.ConnectionError, requests.Timeout) as error:
        if _offline(error):
            raise DownloadError(
                f"{remote.name}: cannot reach {remote.url.split('?')[0]} (no network, or the "
                "name does not resolve)"
            ) from None
        raise _BrokenError(str(error)) from None
    if response.status_code in (429, 500, 502, 503, 504):
        response.close()
        raise _BrokenError(f"HTTP {response.status_code} {response.reason}")
    if response.status_code not in (200, 206, 416):
        response.close()
        raise DownloadError(
            f"{remote.name}: {remote.url.split('?')[0]} answered HTTP {response.status_code} "
            f"{response.reason}"
        )
    return response


def _offline(error: Exception) -> bool:
    """Whether a connection error is a name that does not resolve: retrying is futile."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NameResolutionError)


def _transfer(session: requests.Session, remote: Remote, part: Path, progress: bool) -> None:
    """Append to ``part`` what the server sends from its current size on (or rewrite it
    when the server ignores the range). Raises _BrokenError when the stream breaks off."""
    have = part.stat().st_size if part.exists() else 0
    with _open(session, remote, have) as response:
        if response.status_code == 416:  # nothing after ``have``: the part is whole
            return
        if response.status_code == 200:
            have = 0
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()  # resumed somewhere else: only a fresh start is safe
            raise _BrokenError(f"the server resumed at {response.headers.get('Content-Range')!r}")
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if total:
            atomic.check_space(part.parent, total - have, f"{remote.name}")
        _stream(response, remote, part, have, total, progress)


def _stream(
    response: requests.Response,
    remote: Remote,
    part: Path,
    have: int,
    total: int | None,
    progress: bool,
) -> None:
    bar = tqdm(
        total=total,
        initial=have,
        unit="B",
        unit_scale=True,
        desc=remote.name,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    written = have
    try:
        with bar, part.open("ab" if have else "wb") as file:
            # read1 hands over what arrived before a break (iter_content drops it).
            while block := response.raw.read1(CHUNK):
                if written == have:
                    _check_start(remote, block, have)
                file.write(block)
                written += len(block)
                bar.update(len(block))
    except (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError) as error:
        raise _BrokenError(
            f"the transfer broke off at {written} bytes ({type(error).__name__})"
        ) from None
    except OSError as error:
        raise atomic.write_error(error, part) from None
    if total is not None and written != total:
        raise _BrokenError(f"the transfer stopped at {written} of {total} bytes")


def fetch(
    session: requests.Session,
    remote: Remote,
    folder: Path,
    retries: int,
    backoff: float,
    progress: bool = True,
) -> Path:
    """``folder/NAME``, downloaded (or resumed) and verified against its MD5."""
    final, part = folder / remote.name, folder / f"{remote.name}.part"
    if final.exists() and md5_of(final) == remote.md5:
        return final
    for attempt in range(retries + 1):
        try:
            _transfer(session, remote, part, progress)
            break
        except _BrokenError as error:
            if attempt == retries:
                raise DownloadError(
                    f"{remote.name}: {error}; gave up after {retries + 1} attempts. What "
                    f"arrived is kept in {part}: run the command again to resume"
                ) from None
            time.sleep(backoff * 2**attempt)
        except DownloadError:
            part.unlink(missing_ok=True)  # a web page or a refusal is nothing to resume
            raise
    digest = md5_of(part)
    if digest != remote.md5:
        part.unlink()
        raise DownloadError(
            f"{remote.name}: MD5 {digest}, expected {remote.md5}: not the published file "
            "(corrupt, truncated at the source, or another version); it was deleted"
        )
    part.rename(final)
    return final


# ---------------------------------------------------------------------- extraction


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this member could write outside the folder, or None."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in path.parts:
        return "climbs out of the folder with '..'"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "is a symbolic link"
    return None


def extract(archive: Path, into: Path, progress: bool = True) -> int:
    """Unpack ``archive`` into ``into`` after refusing it whole if any member is unsafe;
    returns the number of files."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for info in members:
                problem = _unsafe(info)
                if problem:
                    raise DownloadError(
                        f"{archive.name}: member {info.filename!r} {problem}; the archive was "
                        "not extracted"
                    )
            atomic.check_space(into, sum(info.file_size for info in members), "extracting")
            for info in tqdm(
                members,
                unit="file",
                desc=f"extracting {archive.name}",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
            ):
                zipped.extract(info, into)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise DownloadError(f"{archive.name}: not a readable zip archive ({error})") from None
    return sum(not info.is_dir() for info in members)


# ---------------------------------------------------------------------- the whole job


def downloads_folder(out: Path) -> Path:
    """Where the parts and verified files wait, beside ``out`` (never inside it)."""
    return out.with_name(f".{out.name}.download")


def fetch_celeba(
    out: Path,
    files: Sequence[Remote],
    validate: Callable[[Path], str],
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
) -> str:
    """Download ``files`` (the zip and the label files), verify, extract and validate
    them into ``out``, which must be absent or empty; returns ``validate``'s summary."""
    if out.exists() and any(out.iterdir()):
        raise DownloadError(
            f"--out {out} already holds files; choose an empty or new folder, or remove it"
        )
    folder = downloads_folder(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(folder / "lock", timeout=0)
        lock.acquire()
    except filelock.Timeout:
        raise DownloadError(
            f"{out}: another download into it is running (it holds {folder / 'lock'}); wait "
            "for it to finish"
        ) from None
    except OSError as error:
        raise atomic.write_error(error, folder) from None
    with lock:
        try:
            with requests.Session() as session:
                got = [fetch(session, r, folder, retries, backoff, progress) for r in files]
            with atomic.building(out) as staging:
                for path in got:
                    if path.suffix == ".zip":
                        extract(path, staging, progress)
                    else:
                        shutil.copy2(path, staging / path.name)
                summary = validate(staging)
        except DownloadError as error:
            raise DownloadError(f"{error}\n{manual_steps(out)}") from None
    shutil.rmtree(folder, ignore_errors=True)
    return summary
