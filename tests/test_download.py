"""lightning_gans.download against a local HTTP server on 127.0.0.1 (a thread) and file:// URLs: no network."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lightning_gans import download
from lightning_gans.download import extract, fetch, first_reachable, socket_timeout
from lightning_gans.errors import DownloadError, LightningGANsError

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_HEAD(self) -> None:
        if self.path == "/file.bin":
            self._headers(len(PAYLOAD))
        else:
            self.send_error(404)

    def do_GET(self) -> None:
        if self.path == "/file.bin":
            self._headers(len(PAYLOAD))
            self.wfile.write(PAYLOAD)
        elif self.path == "/truncated.bin":  # announces the whole file, sends half, hangs up
            self._headers(len(PAYLOAD))
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers (the kernel completes the handshake)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/file.bin"
    listener.close()


@pytest.fixture
def refused() -> str:
    """A URL on a port nobody listens on (connection refused at once)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/file.bin"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------- fetch
def test_fetch_with_checksum(tmp_path: Path, server: str) -> None:
    target = tmp_path / "sub" / "file.bin"
    assert fetch(f"{server}/file.bin", target, what="test file", sha256=SHA256, md5=MD5, size=len(PAYLOAD)) == target
    assert target.read_bytes() == PAYLOAD
    assert _leftovers(target.parent) == ["file.bin"]  # no temporary file left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # the umask's permissions (not mkstemp's 0600)


def test_fetch_from_a_file_url(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    target = fetch(source.as_uri(), tmp_path / "out" / "copy.bin", what="test file", sha256=SHA256)
    assert target.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_a_clear_error_and_leaves_no_file(tmp_path: Path, server: str) -> None:
    target = tmp_path / "file.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        fetch(f"{server}/file.bin", target, what="test file", sha256=wrong)
    message = str(info.value)
    assert "test file" in message and f"{server}/file.bin" in message
    assert "checksum mismatch" in message and SHA256 in message and wrong in message
    assert isinstance(info.value, LightningGANsError) and isinstance(info.value, OSError)
    assert _leftovers(tmp_path) == []
    with pytest.raises(DownloadError, match="md5"):
        fetch(f"{server}/file.bin", target, what="test file", md5="f" * 32)
    assert _leftovers(tmp_path) == []


def test_first_mirror_dead_second_used(tmp_path: Path, server: str, refused: str) -> None:
    target = fetch([refused, f"{server}/missing.bin", f"{server}/file.bin"], tmp_path / "f.bin", what="test file")
    assert target.read_bytes() == PAYLOAD


def test_timeout_names_the_url(tmp_path: Path, silent: str) -> None:
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(silent, tmp_path / "f.bin", what="test file", timeout_s=1.0)
    assert time.monotonic() - start < 10.0
    assert silent in str(info.value) and "timed out" in str(info.value) and "1 s" in str(info.value)
    assert info.value.attempts[0][0] == silent
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_no_partial_file(tmp_path: Path, server: str) -> None:
    target = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as info:
        fetch(f"{server}/truncated.bin", target, what="test file", timeout_s=5.0)
    assert "truncated.bin" in str(info.value) and str(len(PAYLOAD)) in str(info.value)
    assert _leftovers(tmp_path) == []


def test_killed_download_leaves_no_file(tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or any exception) mid-transfer: the temporary file goes, nothing appears under the final name."""

    def interrupt(self, done: int, final: bool = False) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(download._Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(f"{server}/file.bin", tmp_path / "f.bin", what="test file")
    assert _leftovers(tmp_path) == []


def test_the_error_lists_every_url_tried(tmp_path: Path, server: str, refused: str, silent: str) -> None:
    urls = [refused, f"{server}/missing.bin", silent, f"{server}/file.bin"]
    with pytest.raises(DownloadError) as info:
        fetch(urls, tmp_path / "f.bin", what="the test file", sha256="a" * 64, timeout_s=1.0)
    err = info.value
    assert [url for url, _ in err.attempts] == urls
    message = str(err)
    assert "could not download the test file" in message and "tried 4 URL(s)" in message
    for url in urls:
        assert url in message and url in err.reason
    assert "HTTP 404" in message and "checksum mismatch" in message and "timed out" in message
    assert "\n" not in err.reason
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == message and copy.attempts == err.attempts


def test_a_good_file_in_place_is_kept_without_network(tmp_path: Path, refused: str) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(PAYLOAD)
    assert fetch(refused, target, what="test file", sha256=SHA256) == target
    target.write_bytes(b"corrupted")  # a bad file in place is fetched again (and the failure reported)
    with pytest.raises(DownloadError, match="refused|Errno"):
        fetch(refused, target, what="test file", sha256=SHA256)
    assert target.read_bytes() == b"corrupted"  # never half-overwritten


def test_first_reachable(server: str, refused: str, silent: str) -> None:
    assert first_reachable([refused, f"{server}/file.bin"], timeout_s=1.0) == f"{server}/file.bin"
    with pytest.raises(DownloadError) as info:
        first_reachable([refused, silent], timeout_s=1.0)
    assert [url for url, _ in info.value.attempts] == [refused, silent]
    assert "timed out" in info.value.reason


def test_socket_timeout_is_restored() -> None:
    before = socket.getdefaulttimeout()
    with socket_timeout(3.5):
        assert socket.getdefaulttimeout() == 3.5
    assert socket.getdefaulttimeout() == before


# ---------------------------------------------------------------------------------------------- extract
def test_extract_zip_with_a_member_filter(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("top/keep/x.txt", "x")
        zipped.writestr("top/drop/y.txt", "y")
    (tmp_path / "out" / "top").mkdir(parents=True)
    (tmp_path / "out" / "top" / "already.txt").write_text("kept")  # folders present are merged, not replaced
    names = extract(archive, tmp_path / "out", members=lambda name: "/keep/" in name)
    assert names == ["top/keep/x.txt"]
    assert (tmp_path / "out" / "top" / "keep" / "x.txt").read_text() == "x"
    assert not (tmp_path / "out" / "top" / "drop").exists() and (tmp_path / "out" / "top" / "already.txt").exists()
    assert archive.is_file() and _leftovers(tmp_path / "out") == ["top"]  # no staging folder left


def test_extract_tar_gz_and_remove(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"hello"
        info = tarfile.TarInfo("set/train/a.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    extract(archive, tmp_path / "root", remove=True)
    assert (tmp_path / "root" / "set" / "train" / "a.txt").read_bytes() == b"hello"
    assert not archive.exists()


def test_extract_refuses_paths_leaving_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DownloadError):
        extract(archive, tmp_path / "root")
    assert not (tmp_path / "escaped.txt").exists() and _leftovers(tmp_path / "root") == []


def test_extract_an_unreadable_archive_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(DownloadError, match="broken.zip is not a readable zip or tar archive.*download it again"):
        extract(archive, tmp_path / "root")
    assert _leftovers(tmp_path / "root") == []


# ---------------------------------------------------------------------------------------------- callers
def _serve_folder(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local static server for ``folder`` (the caller shuts it down)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def test_mnist_downloads_from_the_mirror_that_answers(
    tmp_path: Path, refused: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    from data_factories import write_mnist_idx

    import datamodules.mnist as mnist

    raw = write_mnist_idx(tmp_path / "src", n_train=20, n_test=10) / "MNIST" / "raw"
    mirror, md5 = tmp_path / "mirror", {}
    mirror.mkdir()
    for name in mnist.MNIST_FILES:
        packed = gzip.compress((raw / name).read_bytes())
        (mirror / f"{name}.gz").write_bytes(packed)
        md5[name] = hashlib.md5(packed).hexdigest()
    httpd, url = _serve_folder(mirror)
    try:
        monkeypatch.setattr(mnist, "MNIST_MIRRORS", (refused.rsplit("/", 1)[0] + "/", url))
        monkeypatch.setattr(mnist, "MNIST_GZ_MD5", md5)
        dm = mnist.MNISTDataModule(data_dir=str(tmp_path / "data"), download=True)
        dm.prepare_data()
        dm.setup("fit")
        assert len(dm.real_images("train")[1]) == 20 and len(dm.real_images("test")[1]) == 10
        (dm.raw_dir / "t10k-labels-idx1-ubyte").unlink()
        (dm.raw_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
        monkeypatch.setattr(mnist, "MNIST_GZ_MD5", {**md5, "t10k-labels-idx1-ubyte": "0" * 32})
        with pytest.raises(mnist.DatasetNotFoundError) as info:  # the mirror's file fails the md5 check
            mnist.MNISTDataModule(data_dir=str(tmp_path / "data"), download=True).prepare_data()
        message = str(info.value)
        assert "Missing: t10k-labels-idx1-ubyte\n" in message and "md5" in message and url in message
        assert "wget" in message and "DATA_DIR=" in message
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_wiki_faces_downloads_and_extracts_the_tar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from data_factories import write_wiki_crop

    import datamodules.wiki_faces as wiki

    source = write_wiki_crop(tmp_path / "src")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "wiki_crop.tar", "w") as tar:
        tar.add(source / "wiki_crop", arcname="wiki_crop")
    monkeypatch.setattr(wiki, "URL", mirror.as_uri() + "/{name}_crop.tar")
    dm = wiki.WikiFacesDataModule(str(tmp_path / "data"), download=True)
    dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["wiki_crop"]  # the tar is removed
    dm.setup("fit")
    assert len(dm.train_dataloader().dataset) > 0


def test_shapenet_downloads_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from data_factories import write_voxel_shapes

    import datamodules.shapenet as shapenet

    source = write_voxel_shapes(tmp_path / "src", train=2, test=1, categories=["airplane"])
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / shapenet.ARCHIVE_NAME, "w") as zipped:
        for path in sorted(source.rglob("*.mat")):
            zipped.write(path, Path("3DShapeNets") / path.relative_to(source))
        zipped.writestr("3DShapeNets/README.txt", "code, not data")
    monkeypatch.setattr(shapenet, "ARCHIVE_URL", f"{mirror.as_uri()}/{shapenet.ARCHIVE_NAME}")
    dm = shapenet.ShapeNetVoxelsDataModule(data_dir=str(tmp_path / "data"), resolution=32)
    dm.prepare_data()
    assert dm.split_sizes() == {"train": 2, "test": 1}
    assert (dm.root / shapenet.ARCHIVE_NAME).is_file() and not (dm.root / "3DShapeNets" / "README.txt").exists()


def test_inception_weights_download_failure_names_the_url(
    tmp_path: Path, refused: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_gans.metrics.inception as inception
    from lightning_gans.errors import ExtractorWeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inception, "weights_url", lambda: refused)
    with pytest.raises(ExtractorWeightsError) as info:
        inception.resolve_weights(download=True)
    assert f"download failed: {refused}" in str(info.value) and "weights_path" in str(info.value)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "file.bin").exists()
