"""Build of the s3sink CPython extension (``s3sink._s3sink``).

The extension is compiled from the runtime's C sources in ``../../runtime`` plus the Lua
scripts embedded by ``tools/embed_scripts.lua`` (the same sorted list the Makefile uses),
so the package is built from a checkout of the repository: ``pip install
--no-build-isolation ./bindings/python`` (or ``-e``) works offline once setuptools and
wheel are installed. System dependencies: lua5.4 (interpreter and headers), libcurl,
OpenSSL and pkg-config.

Environment:
  S3SINK_SANITIZE=1   build with -fsanitize=address,undefined (run Python with
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RUNTIME = os.path.join(ROOT, "runtime")
GEN_DIR = os.path.join(ROOT, "build", "gen")
BUNDLED_C = os.path.join(GEN_DIR, "bundled.c")
PKGS = ["lua5.4", "libcurl", "openssl"]

WARN = [
    "-Wall",
    "-Wextra",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
]


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
            "install pkg-config, liblua5.4-dev, libcurl4-openssl-dev and libssl-dev "
            "(`make deps-apt` from the repository root)"
        )
    return shlex.split(out)


def _scripts() -> list[str]:
    """The Makefile's $(sort $(wildcard formats/*.lua) $(wildcard scripts/*/*.lua)),
    relative to the repository root (the embedded names are these paths)."""
    found = glob.glob("formats/*.lua", root_dir=ROOT) + glob.glob(
        "scripts/*/*.lua", root_dir=ROOT
    )
    return sorted(set(found))


def generate_bundled() -> str:
    """Writes build/gen/bundled.c (atomically, only when its text changes)."""
    scripts = _scripts()
    if not scripts:
        sys.exit(f"s3sink: no Lua scripts under {ROOT}/formats and {ROOT}/scripts")
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
        # headers too, so that editing one rebuilds the extension
        ext.depends = own_depends + sorted(
            glob.glob(os.path.join(RUNTIME, "*.h")) + glob.glob(os.path.join(RUNTIME, "include", "*.h"))
        )
        try:
            super().build_extension(ext)
        finally:  # the manifest analysis that follows must see only relative paths
            ext.sources, ext.depends = own, own_depends


def _extension() -> Extension:
    sources = sorted(glob.glob("src/*.c", root_dir=HERE))  # + the runtime's, added by BuildExt

    cflags = [f for f in _pkg_config("--cflags") if not f.startswith("-I")]
    includes = [f[2:] for f in _pkg_config("--cflags") if f.startswith("-I")]
    compile_args = [
        "-std=c11",
        "-D_POSIX_C_SOURCE=200809L",
        "-D_DEFAULT_SOURCE",
        "-fvisibility=hidden",
        *WARN,
        *cflags,
    ]
    # the Makefile's optimization level (Python's own CFLAGS say -O3; the last -O wins)
    compile_args.append("-O2")
    link_args: list[str] = []
    if _env_flag("S3SINK_DEBUG"):
        compile_args += ["-O0", "-g3"]
    if _env_flag("S3SINK_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        compile_args += ["-O1", "-g", *san]
        link_args += san
    return Extension(
        "s3sink._s3sink",
        sources=sources,
        include_dirs=[
            os.path.join(RUNTIME, "include"),
            RUNTIME,
            GEN_DIR,
            *includes,
        ],
        libraries=["lua5.4", "curl", "ssl", "crypto", "pthread"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


setup(
    packages=["s3sink"],
    package_data={"s3sink": ["py.typed", "*.pyi"]},
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExt},
)
