"""The offline guarantee: the whole selftest passes with every network connection refused.

A sitecustomize.py on PYTHONPATH patches socket creation, create_connection and
getaddrinfo to raise (and logs every attempt), HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE are
removed from the environment to prove the lab sets them itself, and the lab is started
from an empty folder with its own HOME to prove it writes nothing beside itself.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SITECUSTOMIZE = r'''
import os, socket

_LOG = os.environ["TVLAB_NET_LOG"]
open(_LOG + ".loaded", "w").close()


def _refuse(what, *args):
    with open(_LOG, "a") as f:
        f.write(f"{what} {args!r}\n")
    raise OSError(101, f"network refused by the offline test ({what})")


_Socket = socket.socket


class _RefusingSocket(_Socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (socket.AF_INET, socket.AF_INET6, -1):
            _refuse("socket", family, type)
        super().__init__(family, type, proto, fileno)


socket.socket = _RefusingSocket
socket.create_connection = lambda *a, **k: _refuse("create_connection", *a)
socket.getaddrinfo = lambda *a, **k: _refuse("getaddrinfo", *a)
'''


def _snapshot(*folders):
    out = {}
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                out[str(p)] = p.stat().st_mtime_ns
    return out


def test_selftest_passes_with_the_network_refused(tmp_path, tiny_gpt2):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    cwd, home, out = tmp_path / "cwd", tmp_path / "home", tmp_path / "shots"
    cwd.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TVLAB_ALLOW_NETWORK",
                        "TVLAB_SETTINGS_DIR", "TVLAB_ZOO")}
    env.update(PYTHONPATH=str(site), TVLAB_NET_LOG=str(tmp_path / "net.log"), QT_QPA_PLATFORM="offscreen",
               HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               HF_HOME=str(home / ".cache" / "huggingface"))
    if not (REPO / "models" / "bard-gpt" / "config.json").is_file():
        # Before the zoo is trained: the tiny test model stands in for zoo:bard-gpt.
        zoo = tmp_path / "zoo"
        zoo.mkdir()
        (zoo / "bard-gpt").symlink_to(tiny_gpt2)
        env["TVLAB_ZOO"] = str(zoo)
    watched = [REPO / "lab", REPO / "resources", REPO / "models"]
    before = _snapshot(*watched)
    proc = subprocess.run([sys.executable, "-m", "lab", "selftest", "--out", str(out), "--json"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert (tmp_path / "net.log.loaded").exists(), "the socket patch was not active"
    attempts = (tmp_path / "net.log").read_text() if (tmp_path / "net.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert attempts == "", f"the lab tried the network:\n{attempts}"
    report = json.loads(proc.stdout)
    assert report["ok"] and report["model"] == "zoo:bard-gpt"
    assert (out / "window.png").stat().st_size > 10_000
    assert all(Path(f).is_file() for f in report["files"])
    # nothing written beside the program or in the folder it was started from
    after = _snapshot(*watched)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}
    assert list(cwd.iterdir()) == []
