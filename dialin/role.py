"""The dial-in role: its CLI commands and its installation on a server."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confserver.cli_support import CliError, ProgressBar, config_of, emit, with_db
from confserver.limits.window import AttemptWindow
from confserver.storage.access_numbers import LANGUAGES, AccessNumberDirectory, parse_language
from confserver.storage.meetings import MeetingDirectory
from confserver.storage.pins import PinStore

from .attendant import Attendant
from .catalog import CATALOG_DIRECTORY, CatalogError, load_catalogs
from .cdr import DialInCdrStore
from .prompt_build import PromptBuildError, build_prompts
from .prompt_store import PromptStore

if TYPE_CHECKING:
    from confserver.process import Server


def _languages(text: str | None) -> tuple[str, ...]:
    if not text:
        return LANGUAGES
    try:
        return tuple(parse_language(x, "--language") for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def cmd_prompts_build(args: argparse.Namespace) -> int:
    output = Path(args.output or config_of(args).prompt_directory)
    try:
        catalogs = load_catalogs(_languages(args.language))
    except CatalogError as exc:
        raise CliError(str(exc)) from exc
    bar: ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total, "prompt", "building prompts", hidden=args.json or total == 0)
        bar.reached(done)

    started = time.monotonic()
    try:
        report = build_prompts(catalogs.values(), output, force=args.force, jobs=args.jobs,
                               progress=progress)
    except PromptBuildError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write prompts under {output}: {exc.strerror or exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - started
    data = {"built": report.built, "skipped": report.skipped, "seconds": round(seconds, 1),
            "bytes": report.bytes_on_disk, "directory": str(output),
            "languages": list(catalogs)}
    emit(args, data, f"{report.built} prompts built, {report.skipped} already built, "
                     f"in {seconds:.1f} s; {report.bytes_on_disk / 1e6:.1f} MB in {output}")
    return 0


def cmd_prompts_check(args: argparse.Namespace) -> int:
    try:
        catalogs = load_catalogs(_languages(args.language))
    except CatalogError as exc:
        raise CliError(str(exc)) from exc
    config = config_of(args)
    store = PromptStore(Path(config.prompt_directory), Path(config.custom_prompt_directory))
    missing = [m for c in catalogs.values() for m in store.missing([c.language], c.pieces())]
    emit(args, {"catalogs": list(catalogs), "missing_audio": missing},
         f"{len(catalogs)} catalogs complete; "
         + (f"{len(missing)} prompts have no audio yet (run 'switchboard prompts build')"
            if missing else "every prompt has audio"))
    return 0


def cmd_cdrs(args: argparse.Namespace) -> int:
    rows = with_db(args, lambda db: DialInCdrStore(db).recent(args.limit, args.number))
    lines = [f"{'ANSWERED':19} {'NUMBER':14} {'CALLER':18} {'LANG':6} {'MEETING':9} "
             f"{'OUTCOME':14} JOINED AFTER"]
    for r in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.answered_at))
        joined = f"{r.joined_after:.1f} s" if r.joined_after is not None else "-"
        lines.append(f"{stamp:19} {r.access_number:14} {r.caller_id[:18]:18} {r.language:6} "
                     f"{r.conference_id or '-':9} {r.outcome:14} {joined}")
    emit(args, [r.as_dict() for r in rows], "\n".join(lines) if rows else "no dial-in calls")
    return 0


class DialInRole:
    name = "dialin"

    def add_commands(self, commands: Any, common: argparse.ArgumentParser) -> None:
        prompts = commands.add_parser("prompts", help="attendant prompts")
        sub = prompts.add_subparsers(dest="action", required=True, parser_class=type(prompts))
        p = sub.add_parser("build", parents=[common],
                           help="speak the prompt catalogs into WAVs (espeak-ng)",
                           description="Build 8 and 16 kHz WAVs for every prompt of every "
                                       f"catalog in {CATALOG_DIRECTORY}; prompts already built "
                                       "from the same text are skipped.")
        p.add_argument("--language", help="comma-separated languages (default: all 14)")
        p.add_argument("--output", help="directory (default [dialin] prompts)")
        p.add_argument("--force", action="store_true", help="rebuild everything")
        p.add_argument("--jobs", type=int, default=4, help="espeak-ng processes at once")
        p.set_defaults(func=cmd_prompts_build)
        p = sub.add_parser("check", parents=[common],
                           help="check the catalogs and which prompts have audio")
        p.add_argument("--language", help="comma-separated languages (default: all 14)")
        p.set_defaults(func=cmd_prompts_check)
        dialin = commands.add_parser("dialin", help="dial-in conferencing")
        sub = dialin.add_subparsers(dest="action", required=True, parser_class=type(dialin))
        p = sub.add_parser("cdrs", parents=[common], help="recent dial-in call records")
        p.add_argument("--limit", type=int, default=50)
        p.add_argument("--number", help="only this access number")
        p.set_defaults(func=cmd_cdrs)

    def install(self, server: Server) -> None:
        focus = server.app.focus
        if focus is None:
            raise RuntimeError("the dial-in attendant needs the conferencing focus")
        config = server.config
        attendant = Attendant(server.reactor, AccessNumberDirectory(server.db),
                              MeetingDirectory(server.db), PinStore(server.db), focus,
                              PromptStore(Path(config.prompt_directory),
                                          Path(config.custom_prompt_directory)),
                              DialInCdrStore(server.db),
                              guesses=AttemptWindow(config.failed_guesses,
                                                    config.failed_guesses_window),
                              secret=server.app.secret,
                              sip_language=config.dialin_sip_language)
        server.app.routers.append(attendant)
        focus.passcode_gate = attendant  # anonymous callers of a meeting's own address
        server.on_stop.append(attendant.records.flush)
