"""`images save` for real: the archive holds the registry's storage with each image's manifest
naming that image's ID, the index and psn/registry's image, and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import psn
from psn import images
from psn.errors import ImageBuildError

ROOT = Path(__file__).resolve().parents[2]
VERSION = psn.__version__
STORAGE = "docker/registry/v2"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    if not images.engine_answers():
        pytest.skip("no Docker engine answers: start one with `bash .ci/docker-engine.sh`")
    images.build_images(ROOT, VERSION, only=["etcd", "registry"])
    out = tmp_path_factory.mktemp("archive") / "psn-images.tar"
    return images.save_images(ROOT, VERSION, out, only=["etcd"])


def leftovers() -> list[str]:
    """Containers, volumes and tags of throwaway registries still on the engine."""
    found = []
    for argv in (
        ["ps", "-a", "--format", "{{.Names}}"],
        ["volume", "ls", "--format", "{{.Name}}"],
        ["images", "--format", "{{.Repository}}"],
    ):
        out = subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout
        found += [n for n in out.split() if n.startswith(("psn-save-", "127.0.0.1:"))]
    return found


def test_archive_holds_index_registry_image_and_storage(saved):
    ids = images.image_ids([f"psn/etcd:{VERSION}", f"psn/registry:{VERSION}"])
    with tarfile.open(saved) as tar:
        names = tar.getnames()
        # The role lists the index with --occurrence: it must come first.
        assert names[:2] == ["images.json", "registry-image.tar.gz"]
        assert json.load(tar.extractfile("images.json")) == ids
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())

        def blob(digest: str) -> bytes:
            algo, hexa = digest.split(":")
            return tar.extractfile(f"{STORAGE}/blobs/{algo}/{hexa[:2]}/{hexa}/data").read()

        for tag, image_id in ids.items():
            repo, version = tag.split(":")
            link = f"{STORAGE}/repositories/{repo}/_manifests/tags/{version}/current/link"
            manifest = json.loads(blob(tar.extractfile(link).read().decode()))
            assert manifest["config"]["digest"] == image_id
            for layer in manifest["layers"]:
                assert (
                    f"{STORAGE}/blobs/sha256/{layer['digest'][7:9]}/{layer['digest'][7:]}/data"
                    in (names)
                )
    assert not leftovers()


def test_unknown_component_is_refused(saved, tmp_path):
    with pytest.raises(ImageBuildError, match="no such image: psn/nosuch"):
        images.save_images(ROOT, VERSION, tmp_path / "x.tar", only=["nosuch"])
    assert not (tmp_path / "x.tar").exists()
