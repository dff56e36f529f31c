"""psn.images without a Docker engine: discovery, dependency order, errors, the real tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psn import images
from psn.errors import ImageBuildError, PsnError

ROOT = Path(__file__).resolve().parents[2]


def make_tree(tmp_path: Path, dockerfiles: dict[str, str]) -> Path:
    base = tmp_path / "images" / "base"
    base.mkdir(parents=True)
    (base / "build.sh").write_text("#!/bin/sh\n")
    for name, text in dockerfiles.items():
        d = tmp_path / "images" / name
        d.mkdir()
        (d / "Dockerfile").write_text(text)
    return tmp_path


def names(order: list[images.Component]) -> list[str]:
    return [c.name for c in order]


def test_order_puts_base_first_and_parents_before_children(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "web": "ARG PSN_VERSION\nFROM psn/proxy:${PSN_VERSION}\n",
            "proxy": "ARG PSN_VERSION=dev\nFROM psn/base:${PSN_VERSION}\n",
            "alpha": "FROM psn/base:${PSN_VERSION} AS build\nFROM psn/web:${PSN_VERSION}\n",
            "zeta": "from --platform=linux/amd64 psn/base:1\n",
        },
    )
    comps = images.discover(root)
    assert comps["alpha"].depends == ("base", "web")
    assert comps["zeta"].depends == ("base",)
    order = names(images.build_order(comps))
    assert order[0] == "base"
    assert order.index("proxy") < order.index("web") < order.index("alpha")
    assert sorted(order) == ["alpha", "base", "proxy", "web", "zeta"]


def test_only_adds_what_an_image_is_built_from(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "proxy": "FROM psn/base:${PSN_VERSION}\n",
            "web": "FROM psn/proxy:${PSN_VERSION}\n",
            "redis": "FROM psn/base:${PSN_VERSION}\n",
        },
    )
    comps = images.discover(root)
    assert names(images.build_order(comps, ["web"])) == ["base", "proxy", "web"]
    assert names(images.build_order(comps, ["base"])) == ["base"]


def test_unknown_only_names_the_known_images(tmp_path):
    root = make_tree(tmp_path, {"redis": "FROM psn/base:x\n"})
    with pytest.raises(ImageBuildError) as err:
        images.build_order(images.discover(root), ["nope"])
    assert err.value.image == "nope"
    assert "redis" in err.value.problems[0].message
    assert isinstance(err.value, PsnError) and err.value.exit_code == 5


def test_unknown_parent_and_cycles_are_errors(tmp_path):
    root = make_tree(tmp_path, {"a": "FROM psn/missing:1\n"})
    with pytest.raises(ImageBuildError, match="unknown image psn/missing"):
        images.discover(root)
    root2 = make_tree(tmp_path / "two", {"a": "FROM psn/b:1\n", "b": "FROM psn/a:1\n"})
    with pytest.raises(ImageBuildError, match="cycle"):
        images.build_order(images.discover(root2))


def test_missing_base_recipe(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ImageBuildError, match="base image recipe"):
        images.discover(tmp_path)


def test_the_real_tree():
    comps = images.discover(ROOT)
    expected = {
        "base", "registry", "etcd", "postgres", "patroni", "haproxy", "redis", "ldap",
        "postfix", "dovecot", "rspamd", "clamav", "sogo", "web", "proxy", "memcached",
        "syslog-ng", "glusterfs", "prometheus",
    }  # fmt: skip
    assert expected <= set(comps)
    order = names(images.build_order(comps))
    assert order.index("postgres") < order.index("patroni")
    assert order.index("proxy") < order.index("web")
    assert images.image_tag("ldap", "1.2.3") == "psn/ldap:1.2.3"
    for comp in comps.values():
        if comp.name == "base":
            continue
        text = (comp.directory / "Dockerfile").read_text()
        assert "ARG PSN_VERSION" in text and "psn-install" in text, comp.name
        if comp.name != "web":  # web inherits them from psn/proxy
            assert "HEALTHCHECK" in text, comp.name
            assert '"/usr/bin/tini", "--"' in text, comp.name


def test_ensure_archive_saves_again_when_an_image_changed(monkeypatch, tmp_path):
    """An image rebuilt by another command since the archive was saved makes a new archive."""
    archive = images.archive_path(tmp_path, "9.9.9")
    saved = []
    current = {"psn/base:9.9.9": "sha256:a", "psn/ldap:9.9.9": "sha256:b"}

    def fake_save(root, version, out, progress=None):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"archive")
        images.ids_path(out).write_text(json.dumps(current))
        saved.append(out)
        return out

    monkeypatch.setattr(images, "build_images", lambda *a, **k: [])
    monkeypatch.setattr(images, "image_tags", lambda root, version: list(current))
    monkeypatch.setattr(images, "image_ids", lambda tags: dict(current))
    monkeypatch.setattr(images, "save_images", fake_save)
    assert images.ensure_archive(tmp_path, "9.9.9") == archive and len(saved) == 1
    images.ensure_archive(tmp_path, "9.9.9")
    assert len(saved) == 1, "nothing changed: the archive is kept"
    current["psn/ldap:9.9.9"] = "sha256:c"
    images.ensure_archive(tmp_path, "9.9.9")
    assert len(saved) == 2, "the ldap image changed: the archive is saved again"
    images.ids_path(archive).unlink()
    images.ensure_archive(tmp_path, "9.9.9")
    assert len(saved) == 3, "no record of what the archive holds: saved again"
