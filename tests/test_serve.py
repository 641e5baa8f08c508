"""serve.py, the web page: its calls, its refusals, concurrent and malformed traffic on
loopback, and the page itself in a real headless Chromium (Debian's, driven by
Playwright; never a browser download)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT, tiny_run
from PIL import Image

import dcgan
import generation
import serve
from pixels import to_uint8

sys.path.insert(0, str(PROJECT / "benchmarks"))

import page_load

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def checkpoint(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert dcgan.main([*tiny_run(synth_root, out, 3), "--epochs", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def url(checkpoint):
    server = serve.start(serve.Page(generation.FaceModel.checkpoint(checkpoint)), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(url: str, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data), timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_faces_come_back_as_pngs_of_the_generator_for_the_same_draws(url, checkpoint):
    status, answer = post(url, "/faces", {"spec": "Smiling=0.7, -Male", "seed": 4, "count": 3})
    assert status == 200 and answer["title"] == "Smiling=0.7, -Male"
    faces = np.stack([pixels(row[0]) for row in answer["faces"]])
    request = generation.Request(generation.FaceModel.checkpoint(checkpoint), "Smiling=0.7, -Male")
    expected = to_uint8(request.faces(3, seed=4))
    assert np.abs(faces.astype(int) - expected).max() <= 1


def test_a_switch_keeps_the_face_and_changes_it_only_by_the_attribute(url):
    query = {"spec": "Smiling", "seed": 2, "count": 4}
    _, plain = post(url, "/faces", query)
    status, switched = post(url, "/flip", {**query, "attribute": "Eyeglasses"})
    assert status == 200 and switched["columns"] == ["as asked", "Eyeglasses flipped"]
    for face, (before, after) in zip(plain["faces"], switched["faces"], strict=True):
        assert np.array_equal(pixels(face[0]), pixels(before))  # the same face
        assert not np.array_equal(pixels(before), pixels(after))


def test_an_interpolation_has_its_frames_in_order_for_each_face(url):
    status, answer = post(url, "/interpolate", {"target": "-Smiling", "count": 2, "frames": 4})
    assert status == 200 and answer["columns"] == ["0", "0.33", "0.67", "1"]
    assert [len(face) for face in answer["faces"]] == [4, 4]


BAD_CALLS = {
    "unknown attribute": ("/faces", {"spec": "Smilng"}, 400, "Did you mean Smiling?"),
    "strength out of range": ("/faces", {"spec": "Smiling=9"}, 400, "from 0 (off) to 1.5"),
    "count over the limit": ("/faces", {"count": 500}, 400, "field count: Input should be less"),
    "count as text": (
        "/faces",
        {"count": "8"},
        400,
        "field count: Input should be a valid integer",
    ),
    "negative seed": ("/faces", {"seed": -1}, 400, "field seed: Input should be greater"),
    "unknown field": ("/faces", {"colour": 1}, 400, "field colour: Extra inputs are not permitted"),
    "not JSON": ("/faces", b"{spec: ", 400, "the body is not JSON"),
    "two attributes to switch": ("/flip", {"attribute": "Smiling,Male"}, 400, "give one"),
    "no target": ("/interpolate", {"frames": 3}, 400, "field target: Field required"),
    "too many frames": ("/interpolate", {"target": "1", "frames": 99}, 400, "field frames: Input"),
    "unknown call": ("/delete", {}, 404, "no call /delete; the page uses /faces"),
    "huge body": ("/faces", b" " * (serve.MAX_BODY + 1), 413, "the body is over 16384 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_a_bad_call_gets_one_line_and_the_server_goes_on(url, case):
    path, body, code, message = BAD_CALLS[case]
    status, answer = post(url, path, body)
    assert status == code and message in answer["error"] and "\n" not in answer["error"]
    assert post(url, "/faces", {"count": 1})[0] == 200


def garbage(url: str, payload: bytes) -> None:
    """Raw bytes to the server, the answer (if any) read and dropped."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        while connection.recv(65536):
            pass


def test_a_burst_of_concurrent_and_malformed_calls_leaves_every_good_one_answered(url):
    """8 clients x 6 calls, good ones mixed with broken HTTP; each good call gets its
    faces, and the faces of one query are the same whichever thread asked."""
    malformed = [
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b'POST /faces HTTP/1.1\r\nContent-Length: 400\r\n\r\n{"spec"',  # short body
        b"POST /faces HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"\x00\xff" * 64,
    ]

    def client(k: int) -> list[str]:
        urls = []
        for m in range(6):
            if (k + m) % 3 == 0:
                garbage(url, malformed[(k + m) % len(malformed)])
                continue
            status, answer = post(url, "/faces", {"spec": "Eyeglasses", "seed": m, "count": 2})
            assert status == 200
            urls.append(answer["faces"][0][0])
        return urls

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(client, range(8)))
    _, reference = post(url, "/faces", {"spec": "Eyeglasses", "seed": 1, "count": 2})
    for k, urls in enumerate(answers):
        seeds = [m for m in range(6) if (k + m) % 3]
        assert len(urls) == len(seeds)
        if 1 in seeds:
            assert urls[seeds.index(1)] == reference["faces"][0][0]
    with urllib.request.urlopen(url + "/", timeout=30) as page:
        assert b"Faces on request" in page.read()


def test_the_load_test_answers_every_call_of_concurrent_clients(checkpoint):
    page = serve.Page(generation.FaceModel.checkpoint(checkpoint))
    result = page_load.load_test(page, clients=4, requests=3)
    assert result["calls"] == 12 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]


def test_the_port_in_use_is_named_with_the_fix(url, checkpoint):
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(serve.UsageError, match=f"--port {port}: in use; choose another"):
        serve.start(serve.Page(generation.FaceModel.checkpoint(checkpoint)), port)


def test_the_page_fetches_nothing_from_elsewhere():
    page = serve.PAGE.read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (CI installs Debian's: .ci/run)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_the_page_in_a_browser_generates_switches_and_shows_refusals(url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(url + "/")
        page.select_option("#attr-Smiling", "on")
        page.select_option("#attr-Eyeglasses", "on")
        page.fill("#strength-Eyeglasses", "0.8")
        assert page.inner_text("#spec") == "request: Smiling, Eyeglasses=0.8"
        page.click("#generate")
        page.wait_for_selector("#results .grid img")
        faces = [img.get_attribute("src") for img in page.query_selector_all("#results img")]
        assert len(faces) == 8 and page.inner_text("#results h2") == "Smiling, Eyeglasses=0.8"

        page.select_option("#flip-attribute", "Eyeglasses")
        page.click("#flip")
        page.wait_for_selector("#results table")
        rows = page.query_selector_all("#results tr")[1:]
        pairs = [
            [img.get_attribute("src") for img in row.query_selector_all("img")] for row in rows
        ]
        assert [pair[0] for pair in pairs] == faces  # the same faces, switched beside them
        eyes = slice(8, 18)  # rows of the eye band in a 32x32 face
        assert all(
            np.abs(pixels(a)[eyes].astype(int) - pixels(b)[eyes]).mean() > 0 for a, b in pairs
        )
        assert page.get_attribute("#results a", "download") == "face-1-1.png"

        page.fill("#count", "500")
        page.click("#generate")
        page.wait_for_selector("#message.error")
        assert "field count: Input should be less than or equal to 32" in page.inner_text(
            "#message"
        )
        page.fill("#count", "2")
        page.fill("#target", "Smilng")
        page.click("#interpolate")
        page.wait_for_function("document.querySelector('#message').textContent.includes('Did')")
        page.fill("#target", "3")
        page.click("#interpolate")
        page.wait_for_function("document.querySelector('#results h2').textContent.endsWith('3')")
        assert page.inner_text("#results h2") == "Smiling, Eyeglasses=0.8: seed 0 to seed 3"
        assert len(page.query_selector_all("#results img")) == 2 * 7
        assert page.inner_text("#message") == ""
    except Exception:
        page.screenshot(path=str(tmp_path / "page-failure.png"))
        print(f"screenshot of the page at the failure: {tmp_path / 'page-failure.png'}")
        raise
