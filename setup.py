"""Build the compiled engine modules.

Everything declarative lives in pyproject.toml; this file only exists because the
Cython extensions need code to describe them.

Two traps this file handles (see ../shared/STYLE.md):
- With the `tickplane.engine` -> `engine/` mapping, Cython looks for
  `tickplane/engine/x.pxd` when a module does `cimport tickplane.engine.x` and would
  silently miss `engine/x.pxd`. We give cythonize an include directory holding a
  `tickplane/engine` link to `engine/`.
- `TICKPLANE_CYTHON_ANNOTATE=1` writes the annotated HTML next to each .pyx and
  `TICKPLANE_CYTHON_PROFILE=1` builds with profiling hooks (slower).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
INCLUDE = ROOT / "build" / "cython-include"

# Compiled modules, lowest layer first. Each has a .pxd beside its .pyx.
MODULES = ["book", "matching", "events", "replay", "router"]
# Python modules compiled as they stand (Cython's pure Python mode): the .pxd beside
# each .py declares its cdef classes and typed locals; the .py stays plain Python,
# checked by mypy and importable uncompiled. The engine's command path.
PURE_MODULES = ["journal", "eventlog", "mdlog", "metrics", "finished", "risk", "state", "service"]


def _include_tree() -> str:
    link = INCLUDE / "tickplane" / "engine"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(ROOT / "engine", target_is_directory=True)
    return str(INCLUDE)


def _extensions() -> list[Extension]:
    profile = os.environ.get("TICKPLANE_CYTHON_PROFILE") == "1"
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if profile:
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
    exts = [
        Extension(
            f"tickplane.engine.{name}",
            [f"engine/{name}.pyx" if name in MODULES else f"engine/{name}.py"],
            include_dirs=[numpy.get_include()],
            define_macros=macros,
            extra_compile_args=[
                "-O3",
                "-fno-strict-aliasing",
                # The book's small functions are exported to other modules through
                # Cython's capsules, which makes gcc reluctant to inline them in their
                # own module; these limits let it (~15% on the replay benchmark).
                "--param=max-inline-insns-auto=300",
                "--param=inline-unit-growth=400",
                "--param=large-function-growth=1000",
            ],
        )
        for name in MODULES + PURE_MODULES
    ]
    directives = {
        "language_level": "3",
        "profile": profile,
        "linetrace": profile,
        "embedsignature": True,
    }

    def compiled(names: list[str], **extra: object) -> list[Extension]:
        return cythonize(
            [e for e in exts if e.name.rsplit(".", 1)[1] in names],
            include_path=[_include_tree()],
            annotate=os.environ.get("TICKPLANE_CYTHON_ANNOTATE") == "1",
            compiler_directives={**directives, **extra},
        )

    # A pure module's annotations are for mypy: typed as C (an `int` as an exact Python
    # int, refusing a bool) they would change what its code accepts; its .pxd types it.
    return compiled(MODULES) + compiled(PURE_MODULES, annotation_typing=False)


setup(ext_modules=_extensions())
