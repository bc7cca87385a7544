"""Build of the s3sink CPython extension (``s3sink._s3sink``).

The extension is compiled from the runtime's C sources in ``runtime/`` plus the Lua
scripts (``formats/``, ``scripts/``) embedded by ``tools/embed_scripts.lua``, with the
compile settings of ``build.mk`` (shared with the Makefile, read by ``tools/buildmk.py``).
Those live at the repository's root, two folders up in a checkout: ``pip install
--no-build-isolation ./bindings/python`` (or ``-e``) works offline once setuptools and
wheel are installed. The sdist (``python -m build --sdist``) carries a copy of them beside
this file (see SdistWithRuntime), so it builds on its own, and so does the wheel built
from it. System dependencies: lua5.4 (interpreter and headers), libcurl, OpenSSL, zlib,
libzstd, a C compiler and pkg-config.

Environment:
  S3SINK_SANITIZE=1   build with ASan/UBSan, build.mk's SANITIZE (run Python with
                      LD_PRELOAD=$(cc -print-file-name=libasan.so) PYTHONMALLOC=malloc)
  S3SINK_DEBUG=1      build with -O0 -g3
  LUA                 the Lua 5.4 interpreter (default: lua5.4)
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))


def _find_root() -> str:
    """The folder holding build.mk, runtime/, formats/, scripts/ and tools/: this one in
    an sdist, the repository's root (two folders up) in a checkout."""
    for candidate in (HERE, os.path.normpath(os.path.join(HERE, "..", ".."))):
        if os.path.isfile(os.path.join(candidate, "build.mk")):
            return candidate
    sys.exit(
        f"s3sink: build.mk is neither in {HERE} (an sdist) nor two folders up (a checkout "
        "of the repository): build from a checkout, or from an sdist made with "
        "`python -m build --sdist bindings/python`"
    )


ROOT = _find_root()
sys.path.insert(0, os.path.join(ROOT, "tools"))
import buildmk  # noqa: E402  (from the repository's tools/)

BUILD = buildmk.read()
RUNTIME = os.path.join(ROOT, *BUILD["RUNTIME_DIR"])
PUBLIC_INCLUDE = os.path.join(ROOT, *BUILD["PUBLIC_INCLUDE_DIR"])
GEN_DIR = os.path.join(ROOT, "build", "gen")
BUNDLED_C = os.path.join(GEN_DIR, "bundled.c")
# the extension links Lua itself (the Lua module gets it from its interpreter)
PKGS = BUILD["LUA_PKG"] + BUILD["PKGS"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(
            ["pkg-config", *args, *PKGS], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        sys.exit(
            f"s3sink: pkg-config {' '.join(args)} {' '.join(PKGS)} failed: {detail.strip()}\n"
            "install pkg-config, liblua5.4-dev, libcurl4-openssl-dev, libssl-dev, "
            "zlib1g-dev and libzstd-dev "
            "(`make deps-apt` from the repository root)"
        )
    return shlex.split(out)


def _scripts() -> list[str]:
    """The Makefile's $(sort $(wildcard $(SCRIPT_GLOBS))), relative to the repository
    root (the embedded names are these paths)."""
    found = [p for g in BUILD["SCRIPT_GLOBS"] for p in glob.glob(g, root_dir=ROOT)]
    return sorted(set(found))


def generate_bundled() -> str:
    """Writes build/gen/bundled.c (atomically, only when its text changes)."""
    scripts = _scripts()
    if not scripts:
        sys.exit(f"s3sink: no Lua scripts in {ROOT} match {' '.join(BUILD['SCRIPT_GLOBS'])}")
    lua = os.environ.get("LUA", "lua5.4")
    os.makedirs(GEN_DIR, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bundled.", suffix=".c", dir=GEN_DIR)
    os.close(fd)
    try:
        subprocess.run(
            [lua, "tools/embed_scripts.lua", tmp, *scripts], cwd=ROOT, check=True
        )
        with open(tmp, "rb") as f:
            new = f.read()
        try:
            with open(BUNDLED_C, "rb") as f:
                old = f.read()
        except OSError:
            old = None
        if new != old:
            os.replace(tmp, BUNDLED_C)
    except OSError as e:
        sys.exit(f"s3sink: cannot run {lua} to embed the Lua scripts: {e}")
    except subprocess.CalledProcessError as e:
        sys.exit(f"s3sink: {lua} tools/embed_scripts.lua failed ({e.returncode})")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return BUNDLED_C


def _runtime_sources() -> list[str]:
    return sorted(glob.glob(os.path.join(RUNTIME, "*.c"))) + [BUNDLED_C]


def _root_files() -> list[str]:
    """What the build reads from ROOT, relative to it: the sdist's copy."""
    globs = [
        *(f"{d}/*.[ch]" for d in BUILD["RUNTIME_DIR"]),
        *(f"{d}/*.h" for d in BUILD["PUBLIC_INCLUDE_DIR"]),
        *BUILD["SCRIPT_GLOBS"],
    ]
    files = {p for g in globs for p in glob.glob(g, root_dir=ROOT)}
    files |= {"build.mk", "tools/buildmk.py", "tools/embed_scripts.lua"}
    return sorted(files)


class SdistWithRuntime(sdist):
    """An sdist of this folder alone would lack the runtime and the scripts, which are
    outside it (setuptools' manifest takes no '../..' paths): they are copied in at the
    same relative paths, where _find_root finds them."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        for rel in _root_files():
            dest = os.path.join(base_dir, rel)
            self.mkpath(os.path.dirname(dest))
            self.copy_file(os.path.join(ROOT, rel), dest)


class BuildExt(build_ext):
    """Generates the embedded scripts, then adds the runtime's sources (outside this
    directory, so they cannot be listed in setup(): setuptools wants relative paths
    inside the project, and objects of '../..' sources would land outside build/)."""

    def run(self):
        generate_bundled()
        super().run()

    def build_extension(self, ext):
        if ext.name != "s3sink._s3sink":
            return super().build_extension(ext)
        own, own_depends = ext.sources, ext.depends
        ext.sources = own + _runtime_sources()
        # headers and the compile settings too, so that editing one rebuilds the extension
        ext.depends = own_depends + [buildmk.BUILD_MK] + sorted(
            glob.glob(os.path.join(RUNTIME, "*.h")) + glob.glob(os.path.join(PUBLIC_INCLUDE, "*.h"))
        )
        try:
            super().build_extension(ext)
        finally:  # the manifest analysis that follows must see only relative paths
            ext.sources, ext.depends = own, own_depends


def _extension() -> Extension:
    sources = sorted(glob.glob("src/*.c", root_dir=HERE))  # + the runtime's, added by BuildExt

    cflags = _pkg_config("--cflags")
    libs = _pkg_config("--libs") + BUILD["EXTRA_LIBS"]
    # without WERROR: a pip install on a newer compiler with new warnings must not fail
    compile_args = [
        *BUILD["C_STD"],
        *BUILD["C_DEFINES"],
        *BUILD["VISIBILITY"],
        *BUILD["WARN"],
        *(f for f in cflags if not f.startswith("-I")),
    ]
    # after Python's own CFLAGS (which say -O3): the last -O wins
    compile_args += BUILD["OPTIMIZE"]
    link_args: list[str] = []
    if _env_flag("S3SINK_DEBUG"):
        compile_args += ["-O0", "-g3"]
    if _env_flag("S3SINK_SANITIZE"):
        compile_args += BUILD["SANITIZE_OPTIMIZE"] + BUILD["SANITIZE"]
        link_args += BUILD["SANITIZE"]
    return Extension(
        "s3sink._s3sink",
        sources=sources,
        depends=sorted(glob.glob("src/*.h", root_dir=HERE)),
        include_dirs=[
            PUBLIC_INCLUDE,
            RUNTIME,
            GEN_DIR,
            *(f[2:] for f in cflags if f.startswith("-I")),
        ],
        library_dirs=[f[2:] for f in libs if f.startswith("-L")],
        libraries=[f[2:] for f in libs if f.startswith("-l")],
        extra_compile_args=compile_args,
        extra_link_args=link_args + [f for f in libs if not f.startswith(("-l", "-L"))],
    )


setup(
    packages=["s3sink"],
    package_data={"s3sink": ["py.typed", "*.pyi"]},
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExt, "sdist": SdistWithRuntime},
)
