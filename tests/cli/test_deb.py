"""The .deb that `make bundle` makes: real maintainer and homepage, a copyright file, AppStream
metainfo, and no postinst (dpkg's triggers refresh the desktop database and icon cache).
Built here around a stand-in bundle, so the test takes seconds, not a PyInstaller run."""
import shutil
import subprocess
from pathlib import Path

import pytest

import lab
from lab.core.environment import HOMEPAGE

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")


def test_deb_carries_maintainer_homepage_copyright_and_metainfo(tmp_path):
    shutil.copytree(REPO / "packaging", tmp_path / "packaging")
    shutil.copytree(REPO / "resources" / "icons", tmp_path / "resources" / "icons")
    bundle = tmp_path / "dist" / "tvlab"
    bundle.mkdir(parents=True)
    (bundle / "tvlab").write_text("#!/bin/sh\necho stand-in\n")
    (bundle / "tvlab").chmod(0o755)
    proc = subprocess.run(["sh", "packaging/build_deb.sh", lab.__version__], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    deb = tmp_path / "dist" / f"tvlab_{lab.__version__}_amd64.deb"

    def field(name):
        return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True).stdout.strip()

    assert field("Version") == lab.__version__
    assert field("Homepage") == HOMEPAGE
    maintainer = field("Maintainer")
    assert "localhost" not in maintainer and "invalid" not in maintainer and "@" in maintainer
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True).stdout
    assert "postinst" not in info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    assert "./usr/share/doc/tvlab/copyright" in files
    assert "./usr/share/metainfo/org.tvlab.TransformerVisualLab.metainfo.xml" in files
    assert "./usr/share/applications/tvlab.desktop" in files

    out = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    metainfo = out / "usr/share/metainfo/org.tvlab.TransformerVisualLab.metainfo.xml"
    text = metainfo.read_text()
    assert f'<release version="{lab.__version__}"' in text and "@" not in text.split("<releases>")[1]
    assert "<launchable type=\"desktop-id\">tvlab.desktop</launchable>" in text
    if shutil.which("appstreamcli"):
        check = subprocess.run(["appstreamcli", "validate", "--no-net", "--explain", str(metainfo)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    copyright_text = (out / "usr/share/doc/tvlab/copyright").read_text()
    assert copyright_text.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
    assert "License: MIT" in copyright_text and "License: LGPL-3.0-only" in copyright_text
