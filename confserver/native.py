"""The media cores, compiled to C by mypyc.

The code that runs for every packet and every 20 ms frame of every call (RTP and
RTCP, receive statistics, the jitter buffer, the audio stream, G.711, and the
MCU's mixer, dominant-speaker tracker and bridge) is the same strictly typed
Python as the rest of Switchboard. mypyc (part of mypy) compiles exactly those
modules, unchanged, into C extensions placed beside their sources; Python then
imports the extension instead of the ``.py`` file. The instructions per echo
call-frame fall to about 0.6 of the interpreted figure, per meeting
participant-frame to about 0.7 (docs/performance.md).

One module is written in C by hand: ``confserver/adapters/media/fastrelay.c``, the
relayed packet's way through the shared RTP port (it makes system calls, which
mypyc's output cannot batch); it is built the same way, beside its source.

Without the extensions everything runs interpreted, with the same behaviour,
only slower. An extension older than its source would run old code, so the
tests refuse to start (tests/conftest.py) and the server warns when it finds one.

    python -m confserver.native           build the extensions if any is missing or stale
    python -m confserver.native --check   say what is compiled; exit 1 when stale
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import sys
from pathlib import Path

# the modules whose code runs per packet or per frame; pure cores only (no Twisted,
# no database), so that what is compiled is what the unit tests drive directly
COMPILED: tuple[str, ...] = (
    "confserver.media.rtp",
    "confserver.media.rtcp",
    "confserver.media.stats",
    "confserver.media.jitter",
    "confserver.media.stream",
    "confserver.media.codecs.g711",
    "confserver.media.codecs.opus_packet",
    "confserver.media.level",
    "confserver.mcu.mixer",
    "confserver.mcu.dominant",
    "confserver.mcu.bridge",
)
# mypyc puts the compiled code of all of them into one shared library, imported by
# a small extension per module; a dotted group name keeps it inside the package
GROUP = "confserver._native"
# hand-written C extensions, each from one .c file beside where the module would be
C_EXTENSIONS: tuple[str, ...] = ("confserver.adapters.media.fastrelay",)

ROOT = Path(__file__).resolve().parent.parent


def _source(module: str) -> Path:
    suffix = ".c" if module in C_EXTENSIONS else ".py"
    return ROOT.joinpath(*module.split(".")).with_suffix(suffix)


def _built(module: str) -> Path | None:
    """The extension file for ``module`` (or the group library), if there is one."""
    base = ROOT.joinpath(*module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.exists():
            return candidate
    return None


def _library() -> Path | None:
    return _built(GROUP + "__mypyc")


def built_modules() -> list[str]:
    """The modules that have an extension beside their source."""
    return [m for m in COMPILED if _built(m) is not None]


def stale() -> list[str]:
    """Modules whose source changed after the extensions were built (or whose
    extension is missing while others exist): their old code would run."""
    library = _library()
    extensions = [_built(m) for m in COMPILED]
    hand_written = [_built(m) for m in C_EXTENSIONS]
    if library is None and not any(extensions) and not any(hand_written):
        return []  # never built: everything runs interpreted, which is current
    old = [m for m, ext in zip(C_EXTENSIONS, hand_written, strict=True)
           if ext is None or _source(m).stat().st_mtime > ext.stat().st_mtime]
    if library is None:
        return list(COMPILED) + old
    built_at = library.stat().st_mtime
    return [m for m, ext in zip(COMPILED, extensions, strict=True)
            if ext is None or _source(m).stat().st_mtime > built_at] + old


def loaded_state() -> str:
    """One line for logs and reports: are the media cores running compiled?"""
    loaded = [m for m in COMPILED if m in sys.modules]
    compiled = [m for m in loaded
                if not str(getattr(sys.modules[m], "__file__", "") or "").endswith(".py")]
    if loaded and len(compiled) == len(loaded):
        return f"compiled by mypyc ({len(compiled)} modules loaded)"
    if compiled:
        return f"partly compiled ({len(compiled)} of {len(loaded)} loaded modules)"
    return "interpreted (no compiled modules: `make native` builds them)"


def build() -> None:
    """Compile the modules in place (C sources and objects under build/)."""
    # imported here: only a build needs mypyc and setuptools
    from mypyc.build import mypycify
    from setuptools import Extension, setup  # type: ignore[import-untyped]  # no stubs

    paths = [str(_source(m).relative_to(ROOT)) for m in COMPILED]
    extensions = mypycify(paths, opt_level="3", group_name=GROUP)
    extensions += [Extension(m, [str(_source(m).relative_to(ROOT))],
                             extra_compile_args=["-O2", "-Wall"]) for m in C_EXTENSIONS]
    setup(name="switchboard-native", ext_modules=extensions,
          script_args=["--quiet", "build_ext", "--inplace"])
    # a change to comments or docstrings alone gives the same C, which is then not
    # linked again; the library stands for the current sources all the same
    for built in [_library()] + [_built(m) for m in C_EXTENSIONS]:
        if built is not None:
            os.utime(built)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m confserver.native",
                                     description="Build or check the compiled media cores.")
    parser.add_argument("--check", action="store_true",
                        help="report what is built and exit 1 when an extension is stale")
    args = parser.parse_args(argv)
    old = stale()
    if args.check:
        print(f"compiled: {len(built_modules())} of {len(COMPILED)} modules; written in C: "
              f"{sum(_built(m) is not None for m in C_EXTENSIONS)} of {len(C_EXTENSIONS)}")
        if old:
            print("stale (source newer than the extension): " + ", ".join(old))
            return 1
        return 0
    if built_modules() and all(_built(m) is not None for m in C_EXTENSIONS) and not old:
        return 0
    os.chdir(ROOT)  # mypyc reads the project's mypy settings and writes build/ here
    build()
    left = stale()
    if left or len(built_modules()) != len(COMPILED) \
            or any(_built(m) is None for m in C_EXTENSIONS):
        print("switchboard: the media cores did not all compile", file=sys.stderr)
        return 1
    print(f"compiled {len(COMPILED)} media modules with mypyc and "
          f"{len(C_EXTENSIONS)} written in C")
    return 0


if __name__ == "__main__":
    sys.exit(main())
