# The hardware guide and the freezing manifests stay in step with their sources: the SVGs
# with docs/schematics/*.sch, the pin table with boards/*.json, the manifests with firmware/.
import os
import re
import subprocess
import sys

import pytest

import build
from conftest import ROOT

DOCS = os.path.join(ROOT, "docs")


def test_schematics_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(DOCS, "schematics", "draw.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    sources = [n for n in os.listdir(os.path.join(DOCS, "schematics")) if n.endswith(".sch")]
    assert len(sources) >= 4
    for n in sources:
        assert os.path.exists(os.path.join(DOCS, "schematics", n[:-4] + ".svg"))


def test_every_schematic_is_shown_in_the_guide():
    text = open(os.path.join(DOCS, "hardware.md")).read()
    for n in os.listdir(os.path.join(DOCS, "schematics")):
        if n.endswith(".svg"):
            assert "(schematics/%s)" % n in text, n


def test_pin_table_matches_the_board_profiles():
    text = open(os.path.join(DOCS, "hardware.md")).read()
    assert build.doc_with_table(text) == text, "run: python3 tools/build.py --update-docs"
    for name in build.board_names():
        b = build.load_board(name)
        row = [l for l in text.splitlines() if l.startswith("| `%s` |" % name)]
        assert len(row) == 1, name
        rx = (b.get("uart") or {}).get("rx")
        if isinstance(rx, int):
            assert "| GPIO%d |" % rx in row[0]
        if b.get("flash_offset"):
            assert "| %s |" % b["flash_offset"] in row[0]


def test_guide_covers_what_the_issue_asks():
    text = open(os.path.join(DOCS, "hardware.md")).read().lower()
    for words in ("tss721a", "zener", "optocoupler", "data request", "external", "multimeter",
                  "parts list", "invert_rx", "rj12", "rj45", "pull-up"):
        assert words in text, words


def test_flashing_guide_names_the_targets():
    text = open(os.path.join(DOCS, "flashing.md")).read()
    for t in ("make flash BOARD=", "make deploy BOARD=", "make firmware BOARD=", "hardware.md",
              "settings.local.json", "RESET_CONFIG=1", "not run in CI"):
        assert t in text, t


class FakeManifest:
    # Runs a MicroPython manifest with stand-ins for its functions, resolving paths the way
    # tools/manifestfile.py does (relative to the manifest's directory).
    def __init__(self):
        self.files = []
        self.includes = []

    def run(self, path):
        path = os.path.abspath(path)
        here = os.path.dirname(path)

        def resolve(p, base="."):
            if p.startswith("$("):
                return None
            return os.path.normpath(os.path.join(here, base, p))

        def include(p, **kw):
            r = resolve(p)
            self.includes.append(p)
            if r is not None:
                self.run(os.path.join(r, "manifest.py") if os.path.isdir(r) else r)

        def package(name, files=None, base_path=".", opt=None):
            d = resolve(name, base_path)
            assert os.path.isdir(d), d
            self.files.append(d)

        def module(name, base_path=".", opt=None):
            self.files.append(resolve(name, base_path))

        g = {"include": include, "package": package, "module": module,
             "require": lambda *a, **k: None, "metadata": lambda **k: None,
             "freeze": lambda *a, **k: None}
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), g)


@pytest.mark.parametrize("board", [b for b in build.board_names()
                                   if build.load_board(b).get("chip") != "host"])
def test_board_manifest_freezes_the_application(board):
    m = FakeManifest()
    m.run(os.path.join(ROOT, "boards", board, "manifest.py"))
    assert "$(PORT_DIR)/boards/manifest.py" in m.includes
    fw = os.path.join(ROOT, "firmware")
    assert os.path.join(fw, "han") in m.files and os.path.join(fw, "app") in m.files
    for f in ("main.py", "boot.py"):
        if os.path.exists(os.path.join(fw, f)):
            assert os.path.join(fw, f) in m.files
    frozen_profile = os.path.join(ROOT, "build", board + "-frozen", "board_json.py")
    assert frozen_profile in m.files


def test_firmware_target_explains_itself_without_a_checkout():
    r = subprocess.run(["make", "-s", "-o", ".venv/.stamp", "firmware", "BOARD=lolin_s2_mini",
                        "MICROPY_DIR="], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "not run in CI" in r.stdout and "MICROPY_DIR" in r.stdout
    gen = os.path.join(ROOT, "build", "lolin_s2_mini-frozen", "board_json.py")
    ns = {}
    exec(open(gen).read(), ns)
    assert ns["TEXT"] == open(os.path.join(ROOT, "boards", "lolin_s2_mini.json")).read()


def test_no_registry_hosts_named():
    pat = re.compile(r"pypi\.org|files\.pythonhosted|registry\.npmjs|crates\.io")
    paths = ["mk/tools.mk", "tools/build.py", "tools/flash.py", "tools/deploy.py",
             "tools/capture.py", "docs/hardware.md", "docs/flashing.md", "boards/manifest.py"]
    for p in paths:
        assert not pat.search(open(os.path.join(ROOT, p)).read()), p
