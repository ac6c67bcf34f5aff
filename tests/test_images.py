"""Images by reference: decoding, features, media roots, ingest, DICOM anonymisation, SSRF,
and the media route (members only, thumbnails, ETags, no way out of the roots)."""

from __future__ import annotations

import http.server
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from loopwright import Workspace
from loopwright.config import MediaConfig, ProjectConfig
from loopwright.errors import Invalid
from loopwright.learning import featurize, image_features
from loopwright.learning.image_features import decode, outside_roots, vector
from loopwright.loop import media
from loopwright.service import Role, create_app
from loopwright.service.egress import EgressPolicy
from loopwright.service.media_fetch import http_reader
from loopwright.store.sql import SqlStore
from people import bearer, members


def png(path: Path, array: np.ndarray, fmt: str = "PNG") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return str(path)


def grey(h: int = 40, w: int = 30, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w)) * 255).astype(np.uint8)


def rgb(h: int = 20, w: int = 24, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def config(root: Path | str, **media_extra: Any) -> dict[str, Any]:
    return {
        "name": "scans",
        "labels": ["a", "b"],
        "modality": "image",
        "input_field": "image",
        "media": {"roots": [str(root)], **media_extra},
    }


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    image_features.CACHE.clear()
    yield
    image_features.remove_reader(("http", "https"))


# -- decoding and features -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_formats_keep_mode_and_size(tmp_path: Path, fmt: str) -> None:
    for array, mode in ((grey(), "L"), (rgb(), "RGB")):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format=fmt)
        d = decode(buf.getvalue(), "x", 10**6)
        if fmt == "WEBP" and mode == "L":  # WebP has no greyscale: Pillow stores three equal channels
            assert d.mode == "RGB" and np.array_equal(d.pixels[..., 0], d.pixels[..., 2])
            continue
        assert (d.format, d.mode, d.pixels.shape) == (fmt, mode, array.shape)
        if fmt == "PNG":  # lossless: the very pixels
            assert np.array_equal(d.pixels, array)


def test_decode_sixteen_bit_greyscale_is_scaled_to_eight_bits() -> None:
    a = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    d = decode(buf.getvalue(), "x", 100)
    assert d.mode == "L" and d.pixels.tolist() == [[0, 64], [128, 255]]


def test_decode_refuses_non_images_truncated_files_and_bombs(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="not a PNG, JPEG, WebP or DICOM image"):
        decode(b"hello, not an image", "notes.txt", 10**6)
    buf = io.BytesIO()
    Image.fromarray(grey(64, 64)).save(buf, format="PNG")
    with pytest.raises(Invalid, match="corrupt or truncated"):
        decode(buf.getvalue()[:200], "cut.png", 10**6)
    with pytest.raises(Invalid, match=r"more than media\.max_pixels"):
        decode(buf.getvalue(), "big.png", 64 * 64 - 1)
    gif = io.BytesIO()
    Image.fromarray(grey()).save(gif, format="GIF")
    with pytest.raises(Invalid, match="not a PNG, JPEG, WebP"):  # formats are an allow-list
        decode(gif.getvalue(), "x.gif", 10**6)


def test_features_thumbnail_hog_and_histogram() -> None:
    white = np.full((40, 40), 255, dtype=np.uint8)
    thumb = vector(white, MediaConfig(size=16))
    assert thumb.shape == (256,) and np.allclose(thumb, 1.0)
    hog = vector(grey(64, 64), MediaConfig(size=16, features="hog"))
    assert hog.shape == (3 * 3 * 2 * 2 * 9,)  # 4x4 cells of 4 px, 2x2 blocks: 3x3 blocks x 36
    with_hist = vector(rgb(), MediaConfig(size=8, histogram=True))
    assert with_hist.shape == (64 + 3 * 16,)
    assert np.allclose(with_hist[64:].reshape(3, 16).sum(axis=1), 1.0)  # each channel sums to 1


# -- media roots ---------------------------------------------------------------------------


def test_roots_refuse_traversal_prefix_tricks_and_symlinks_and_place_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    inside = png(root / "a.png", grey())
    png(tmp_path / "imgs2" / "b.png", grey())
    (tmp_path / "secret.txt").write_text("x")
    os.symlink(tmp_path / "secret.txt", root / "link.png")
    roots = [str(root)]
    assert outside_roots(inside, roots) is None
    assert outside_roots("file://" + inside, roots) is None
    for bad in (
        str(root / ".." / "secret.txt"),
        str(tmp_path / "imgs2" / "b.png"),  # a sibling whose name starts like the root
        str(root / "link.png"),  # a symlink out of the root
        "file://" + str(root / ".." / "secret.txt"),
    ):
        assert outside_roots(bad, roots) == f"{bad} is outside the project's media roots"
    assert outside_roots("a.png", roots) is None  # relative: under the first root
    assert (
        outside_roots("../secret.txt", roots) == f"{root}/../secret.txt is outside the project's media roots"
    )
    assert outside_roots("link.png", roots) == f"{root}/link.png is outside the project's media roots"
    assert "must hold an absolute path" in str(outside_roots("file://imgs/a.png", roots))
    assert "no media roots" in str(outside_roots(inside, []))
    url_roots = ["https://cdn.example.org/scans/"]
    assert outside_roots("https://cdn.example.org/scans/1.png", url_roots) is None
    for bad in (
        "https://cdn.example.org/scans/../admin.png",
        "https://cdn.example.org/scans/%2e%2e/admin.png",
        "https://cdn.example.org.evil.net/scans/1.png",
        "https://cdn.example.org/scansX/1.png",
        "http://cdn.example.org/scans/1.png",  # another scheme
        "s3://cdn.example.org/scans/1.png",
    ):
        assert outside_roots(bad, url_roots) is not None, bad


def test_config_refuses_relative_roots() -> None:
    with pytest.raises(Invalid, match="absolute directory or a URL prefix"):
        ProjectConfig.from_dict(config("imgs"))
    with pytest.raises(Invalid, match="needs a host or bucket"):
        ProjectConfig.from_dict(config("s3://"))


# -- ingest ----------------------------------------------------------------------------------


def _count_items(loop: Any) -> int:
    return int(loop.status().items)


def test_ingest_keeps_the_reference_and_describes_the_file(store: SqlStore, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    refs = [
        png(root / "g.png", grey()),
        png(root / "c.jpg", rgb(), "JPEG"),
        png(root / "w.webp", rgb(), "WEBP"),
    ]
    loop = Workspace(store).create_project(config(root))
    report = loop.ingest([{"external_id": f"i{k}", "payload": {"image": r}} for k, r in enumerate(refs)])
    assert report.created == 3
    with store.unit_of_work() as uow:
        items = uow.items.get_many([o.item_id for o in report.outcomes])
    assert [i.payload for i in items] == [{"image": r} for r in refs]  # a reference, not a copy
    described = [i.metadata["image"] for i in items]
    assert [(d["format"], d["mode"], d["width"], d["height"]) for d in described] == [
        ("PNG", "L", 30, 40),
        ("JPEG", "RGB", 24, 20),
        ("WEBP", "RGB", 24, 20),
    ]
    assert described[0]["sha256"] == __import__("hashlib").sha256(Path(refs[0]).read_bytes()).hexdigest()
    X = featurize(loop.config, [{"image": r} for r in refs])
    assert X.shape == (3, 256) and X.min() >= 0.0 and X.max() <= 1.0


def test_relative_references_lie_under_the_first_root_wherever_it_is_mounted(
    store: SqlStore, tmp_path: Path
) -> None:
    ws = Workspace(store)
    items = []
    for name in ("here", "there"):  # the same files mounted in two places
        root = tmp_path / name / "imgs"
        png(root / "g.png", grey())
        png(root / "sub" / "c.jpg", rgb(), "JPEG")
        loop = ws.create_project({**config(root), "name": name})
        report = loop.ingest(
            [
                {"external_id": "g", "payload": {"image": "g.png"}},
                {"external_id": "c", "payload": {"image": "sub/c.jpg"}},
            ]
        )
        with store.unit_of_work() as uow:
            items.append(uow.items.get_many([o.item_id for o in report.outcomes]))
        picture = loop.image(report.outcomes[1].item_id, cache_dir=tmp_path / "thumbs")
        assert picture.data == (root / "sub" / "c.jpg").read_bytes()
        assert np.array_equal(
            featurize(loop.config, [{"image": "g.png"}]),
            featurize(loop.config, [{"image": str(root / "g.png")}]),
        )
        with pytest.raises(Invalid) as caught:
            loop.ingest([{"external_id": "up", "payload": {"image": "../imgs2/g.png"}}])
        assert caught.value.errors == [
            ("[0].payload.image", f"{root}/../imgs2/g.png is outside the project's media roots")
        ]
    here, there = items
    assert (
        [i.payload for i in here]
        == [i.payload for i in there]
        == [{"image": "g.png"}, {"image": "sub/c.jpg"}]
    )
    assert [i.content_hash for i in here] == [i.content_hash for i in there]  # the same items
    assert [i.metadata["image"]["sha256"] for i in here] == [
        __import__("hashlib").sha256((tmp_path / "here" / "imgs" / p).read_bytes()).hexdigest()
        for p in ("g.png", "sub/c.jpg")
    ]


def test_bad_images_reject_the_batch_and_write_nothing(store: SqlStore, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    good = png(root / "ok.png", grey())
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    png(tmp_path / "elsewhere" / "x.png", grey())
    loop = Workspace(store).create_project(config(root))
    records = [
        {"external_id": "ok", "payload": {"image": good}},
        {"external_id": "missing", "payload": {"image": str(root / "missing.png")}},
        {"external_id": "corrupt", "payload": {"image": str(root / "corrupt.png")}},
        {"external_id": "outside", "payload": {"image": str(tmp_path / "elsewhere" / "x.png")}},
        {"external_id": "dotdot", "payload": {"image": str(root / ".." / "elsewhere" / "x.png")}},
        {"external_id": "dir", "payload": {"image": str(root)}},
    ]
    with pytest.raises(Invalid) as caught:
        loop.ingest(records)
    assert caught.value.errors == [
        ("[1].payload.image", f"{root / 'missing.png'}: no such image file"),
        ("[2].payload.image", f"{root / 'corrupt.png'}: not a PNG, JPEG, WebP or DICOM image"),
        ("[3].payload.image", f"{tmp_path / 'elsewhere' / 'x.png'} is outside the project's media roots"),
        ("[4].payload.image", f"{root / '..' / 'elsewhere' / 'x.png'} is outside the project's media roots"),
        ("[5].payload.image", f"{root}: is a directory, not an image file"),
    ]
    assert _count_items(loop) == 0


def test_object_store_images_through_fsspec(store: SqlStore) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    buf = io.BytesIO()
    Image.fromarray(rgb()).save(buf, format="PNG")
    fs.pipe("/bucket/scans/1.png", buf.getvalue())
    loop = Workspace(store).create_project(config("memory://bucket/scans/"))
    report = loop.ingest([{"external_id": "m1", "payload": {"image": "memory://bucket/scans/1.png"}}])
    assert report.created == 1
    with pytest.raises(Invalid, match="no such image file"):
        loop.ingest([{"external_id": "m2", "payload": {"image": "memory://bucket/scans/2.png"}}])
    fs.pipe("/bucket/scans/day2/3.png", buf.getvalue())  # relative: under the URL prefix
    assert loop.ingest([{"external_id": "m3", "payload": {"image": "day2/3.png"}}]).created == 1
    with pytest.raises(Invalid, match="is outside the project's media roots"):
        loop.ingest([{"external_id": "m4", "payload": {"image": "../other/1.png"}}])


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    png(tmp_path / "web" / "p.png", grey())
    handler = lambda *a: _Files(*a, directory=str(tmp_path / "web"))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_images_go_through_the_egress_policy(store: SqlStore, image_server: str) -> None:
    loop = Workspace(store).create_project(config(image_server))
    record = {"external_id": "web", "payload": {"image": image_server + "p.png"}}
    with pytest.raises(Invalid, match="fetched by the loopwright server"):  # no reader: never fetched
        loop.ingest([record])
    image_features.install_reader(("http",), http_reader(EgressPolicy()))
    with pytest.raises(Invalid) as caught:  # SSRF: the server refuses private addresses
        loop.ingest([record])
    assert caught.value.errors == [
        ("[0].payload.image", f"{image_server}p.png: refused, 127.0.0.1 is a loopback address")
    ]
    assert _count_items(loop) == 0
    image_features.install_reader(("http",), http_reader(EgressPolicy.parse(["127.0.0.1"])))
    assert loop.ingest([record]).created == 1  # an operator allowed the address
    with pytest.raises(Invalid, match="answered HTTP 404"):
        loop.ingest([{"external_id": "gone", "payload": {"image": image_server + "nope.png"}}])


# -- DICOM -----------------------------------------------------------------------------------


def dicom_file(path: Path) -> str:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-12345"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20260101"
    ds.InstitutionName = "St Example"
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.StudyDescription = "chest PA, call jane.doe@example.org"
    ds.Rows, ds.Columns = 16, 12
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(16 * 12, dtype=np.uint16) * 20).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)


def test_dicom_is_decoded_and_its_tags_anonymised_on_ingest(store: SqlStore, tmp_path: Path) -> None:
    ref = dicom_file(tmp_path / "dcm" / "1.dcm")
    loop = Workspace(store).create_project(config(tmp_path / "dcm"))
    report = loop.ingest([{"external_id": "d1", "payload": {"image": ref}}])
    with store.unit_of_work() as uow:
        item = uow.items.get(report.outcomes[0].item_id)
    assert item.metadata["image"]["format"] == "DICOM"
    assert (item.metadata["image"]["width"], item.metadata["image"]["height"]) == (12, 16)
    kept = item.metadata["dicom"]["tags"]
    assert kept == {
        "Modality": "CR",
        "BodyPartExamined": "CHEST",
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": 16,
        "Columns": 12,
        "BitsStored": 12,
        "StudyDescription": "chest PA, call [EMAIL]",
    }
    text = str(item.metadata)
    for secret in ("Doe", "P-12345", "19700101", "20260101", "St Example", "jane.doe"):
        assert secret not in text
    assert item.metadata["dicom"]["removed"] >= 5
    picture = loop.image(item.id)  # served as a PNG rendering, never the file with its tags
    assert picture.media_type == "image/png" and b"Doe" not in picture.data
    assert Image.open(io.BytesIO(picture.data)).size == (12, 16)


# -- the model reads the files -----------------------------------------------------------------


def test_digit_pngs_featurise_well_enough_to_learn(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    from loopwright.scenarios.images import render

    digits = load_digits()
    refs = []
    for i in range(400):
        path = tmp_path / "d" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        render(digits.data[i], path, "RGB" if i % 2 else "L")
        refs.append(str(path))
    cfg = ProjectConfig.from_dict(config(tmp_path / "d"))
    X = featurize(cfg, [{"image": r} for r in refs])
    accuracy = cross_val_score(SVC(), X, digits.target[:400], cv=4).mean()
    assert X.shape == (400, 256) and accuracy > 0.9  # greyscale and RGB scans alike


# -- the media route -----------------------------------------------------------------------------


@pytest.fixture
def served(store: SqlStore, tmp_path: Path) -> tuple[TestClient, dict[str, dict[str, str]], dict[str, Any]]:
    root = tmp_path / "imgs"
    ws = Workspace(store)
    loop = ws.create_project(config(root))
    other = ws.create_project({**config(tmp_path / "other"), "name": "other"})
    big = png(root / "big.png", rgb(900, 1400))
    small = png(root / "small.jpg", rgb(), "JPEG")
    victim = png(root / "victim.png", grey())
    report = loop.ingest(
        [
            {"external_id": "big", "payload": {"image": big}},
            {"external_id": "small", "payload": {"image": small}},
            {"external_id": "victim", "payload": {"image": victim}},
        ]
    )
    foreign = other.ingest(
        [{"external_id": "o", "payload": {"image": png(tmp_path / "other" / "o.png", grey())}}]
    )
    auth, tokens = members("scans", {"ann": Role.ANNOTATOR, "view": Role.VIEWER, "stranger": None})
    headers = bearer(tokens)
    ids = {o.external_id: o.item_id for o in report.outcomes} | {"foreign": foreign.outcomes[0].item_id}
    app = create_app(ws, authenticator=auth)
    app.state.thumbnail_dir = tmp_path / "thumbs"
    return (
        TestClient(app, raise_server_exceptions=False),
        headers,
        {"ids": ids, "root": root, "tmp": tmp_path},
    )


def test_members_get_the_image_with_etag_and_304(served: Any) -> None:
    client, headers, world = served
    url = f"/v1/projects/scans/items/{world['ids']['small']}/image"
    r = client.get(url, headers=headers["ann"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (world["root"] / "small.jpg").read_bytes()
    assert r.headers["cache-control"] == "private, max-age=3600"
    etag = r.headers["etag"]
    again = client.get(url, headers={**headers["ann"], "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url).status_code == 401
    assert client.get(url, headers=headers["stranger"]).status_code == 404  # not a member: no such project
    assert client.get(url, headers=headers["view"]).status_code == 403  # members who may not review


def test_thumbnails_are_cached_by_content_hash_and_size(served: Any) -> None:
    client, headers, world = served
    url = f"/v1/projects/scans/items/{world['ids']['big']}/image"
    r = client.get(url + "?size=256", headers=headers["ann"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (256, 165)  # 1400x900 shrunk, aspect kept
    cached = list((world["tmp"] / "thumbs").rglob("*.png"))
    digest = __import__("hashlib").sha256((world["root"] / "big.png").read_bytes()).hexdigest()
    assert [p.name for p in cached] == [f"{digest}-256.png"]
    assert client.get(url + "?size=256", headers=headers["ann"]).content == r.content
    assert r.headers["etag"] != client.get(url + "?size=64", headers=headers["ann"]).headers["etag"]
    bad = client.get(url + "?size=65", headers=headers["ann"])
    assert bad.status_code == 422 and "thumbnail size must be one of" in bad.json()["message"]


def test_no_way_out_of_the_roots_through_the_route(served: Any) -> None:
    client, headers, world = served
    ids = world["ids"]
    for path in ("..%2F..%2Fetc%2Fpasswd", "0", "-1", "big.png"):
        assert client.get(f"/v1/projects/scans/items/{path}/image", headers=headers["ann"]).status_code in (
            404,
            422,
        )
    # another project's item through this project's URL: not found
    assert (
        client.get(f"/v1/projects/scans/items/{ids['foreign']}/image", headers=headers["ann"]).status_code
        == 404
    )
    # the file swapped for a symlink to a file outside the roots after ingest: refused, not served
    secret = world["tmp"] / "secret.png"
    png(secret, grey(seed=7))
    victim = world["root"] / "victim.png"
    victim.unlink()
    os.symlink(secret, victim)
    r = client.get(f"/v1/projects/scans/items/{ids['victim']}/image", headers=headers["ann"])
    assert r.status_code == 422 and "outside the project's media roots" in r.json()["message"]
    victim.unlink()
    r = client.get(f"/v1/projects/scans/items/{ids['victim']}/image", headers=headers["ann"])
    assert r.status_code == 422 and "no such image file" in r.json()["message"]


def test_pixel_items_have_no_image_to_serve(store: SqlStore, tmp_path: Path) -> None:
    loop = Workspace(store).create_project({"name": "px", "labels": ["a", "b"], "modality": "image"})
    report = loop.ingest([{"external_id": "p", "payload": {"pixels": [0.0] * 64}}])
    with pytest.raises(Exception, match="has no image reference"):
        loop.image(report.outcomes[0].item_id)
    assert media.reference(loop.config, {"pixels": [0.0]}) is None


# -- the images scenario -------------------------------------------------------------------------


@pytest.mark.slow
def test_images_scenario_writes_files_and_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import sqlite3

    from loopwright.scenarios import images as scenario

    monkeypatch.setattr(scenario, "QUICK_ITEMS", 300)
    monkeypatch.setattr(scenario, "ROUND_SIZE", 150)
    result = scenario.run(tmp_path / "out", seed=3, quick=True)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert (tmp_path / "out" / "report.html").read_text().count("images") >= 1
    pngs = sorted((tmp_path / "out" / "images").glob("*.png"))
    assert len(pngs) == result["image_files"] == 1797  # every digit, no augmented copy needed
    modes = {Image.open(p).mode for p in pngs[:10]}
    assert modes == {"L", "RGB"}
    assert (result["scenario"], result["items_seen"], result["synthetic_items"]) == ("images", 300, 0)
    assert result["epsilon"] == 0.05  # quick certifies 5 % at δ = 10 % (the project's 2 % needs more audits)
    # Items reference their files relative to the media root, so the same seed into another
    # directory ingests the same items (content hashes), audits and holds out the same ones, and
    # gives the same run, to the label.
    again = scenario.run(tmp_path / "elsewhere" / "out", seed=3, quick=True)
    moving = ("database", "seconds", "cpu_seconds")
    assert {k: v for k, v in again.items() if k not in moving} == {
        k: v for k, v in result.items() if k not in moving
    }
    # Round 1 has no champion, so a person labels each of its items (gold answers apart). Round 2
    # auto-accepts only if round 1's audits certify a threshold: every item is either
    # auto-accepted or labelled, once, or more where an audit answer contradicted the model and
    # another of the three experts was asked (a second opinion, or a re-check of a lone answer
    # the next champion contradicts).
    first, second = result["history"]
    assert (first["auto_accepted"], first["human_labels"]) == (0, 150)
    with sqlite3.connect(result["database"]) as db:
        [(answers, items)] = db.execute("SELECT count(*), count(DISTINCT item_id) FROM annotations")
        asks = "('audit.second_opinion', 'audit.recheck')"
        [(asked,)] = db.execute(f"SELECT count(*) FROM events WHERE action IN {asks}")
    assert result["human_labels"] == answers == first["human_labels"] + second["human_labels"]
    assert items == 300 - result["auto_accepted"] == 300 - second["auto_accepted"]
    assert answers - items == asked  # every answer asked for was given
    assert (result["auto_accept_error"] is None) == (result["auto_accepted"] == 0)
    assert result["final_metric"]["name"] == "held_out_accuracy"
    assert 0.85 <= result["final_metric"]["value"] <= 1.0


def test_a_csv_of_image_paths_reads_as_references(store: SqlStore, tmp_path: Path) -> None:
    from loopwright.readers import ColumnMap, read_rows

    root = tmp_path / "imgs"
    refs = [png(root / f"{k}.png", grey(seed=k)) for k in range(3)]
    csv = tmp_path / "items.csv"
    csv.write_text("external_id,image\n" + "".join(f"r{k},{r}\n" for k, r in enumerate(refs)))
    loop = Workspace(store).create_project(config(root))
    rows = [
        row for batch in read_rows(str(csv), ColumnMap.for_project(loop.config), loop.config) for row in batch
    ]
    assert [r.record for r in rows] == [
        {"external_id": f"r{k}", "payload": {"image": r}} for k, r in enumerate(refs)
    ]
    assert loop.ingest([r.record for r in rows if r.record is not None]).created == 3
