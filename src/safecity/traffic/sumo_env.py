"""Where the pinned SUMO wheels live, set up in code (no shell ``SUMO_HOME`` needed).

``eclipse-sumo`` ships the binaries and tools under the ``sumo`` package folder; ``libsumo``
finds its data through ``sumo_data``. Both set ``SUMO_HOME``/``PROJ_LIB`` on import when they
are unset; :func:`sumo_home` does the same explicitly so that binaries started with
``subprocess`` (``netgenerate``, ``sumo``) see them too.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from types import ModuleType

from safecity.platform.errors import ConfigurationError

SUMO_VERSION = "1.28.0"


def sumo_home() -> Path:
    """The ``sumo`` package folder of the eclipse-sumo wheel; exports SUMO_HOME and PROJ_LIB."""
    try:
        import sumo  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            f"SUMO is not installed: pip install eclipse-sumo=={SUMO_VERSION}"
        ) from exc
    home = Path(sumo.SUMO_HOME)
    os.environ.setdefault("SUMO_HOME", str(home))
    proj = str(home / "data" / "proj")
    os.environ.setdefault("PROJ_LIB", proj)
    os.environ.setdefault("PROJ_DATA", proj)
    return home


def binary(name: str) -> Path:
    """Path of a SUMO binary (``sumo``, ``netgenerate``, ``duarouter``...)."""
    path = sumo_home() / "bin" / name
    if not path.exists():
        raise ConfigurationError(f"SUMO binary {name!r} not found under {path.parent}")
    return path


def tool(relative: str) -> Path:
    """Path of a SUMO python tool, e.g. ``randomTrips.py``."""
    path = sumo_home() / "tools" / relative
    if not path.exists():
        raise ConfigurationError(f"SUMO tool {relative!r} not found under {path.parent}")
    return path


def load_libsumo() -> ModuleType:
    """Import libsumo (one simulation per process), without its pyarrow banner on stdout."""
    sumo_home()
    if "libsumo" in sys.modules:
        return sys.modules["libsumo"]
    with contextlib.redirect_stdout(io.StringIO()):
        import libsumo  # type: ignore[import-untyped]
    if getattr(libsumo, "__version__", SUMO_VERSION) not in (SUMO_VERSION, "0.0.0"):
        raise ConfigurationError(
            f"libsumo {libsumo.__version__} does not match eclipse-sumo {SUMO_VERSION}"
        )
    module: ModuleType = libsumo
    return module
