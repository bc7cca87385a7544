"""Reads build.mk, the compile settings the Makefile shares with the Python build
(bindings/python/setup.py) and the Python tests' rebuild check (conftest.py)."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_MK = os.path.join(ROOT, "build.mk")

_ASSIGNMENT = re.compile(r"([A-Z][A-Z0-9_]*)\s*:=\s*(.*)")


def read(path: str = BUILD_MK) -> dict[str, list[str]]:
    """Each setting's words. A line that is not `NAME := value`, a comment or blank, or
    a value that make would expand (`$`), is an error: Python must read what make reads."""
    settings: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            m = _ASSIGNMENT.fullmatch(text)
            if not m or "$" in m.group(2) or "#" in m.group(2):
                raise ValueError(f"{path}:{number}: expected NAME := value (no $, no #): {text}")
            settings[m.group(1)] = m.group(2).split()
    return settings
