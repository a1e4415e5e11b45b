"""The ``dicomhaven`` command line: parses arguments, calls the core, renders the result.

Exit codes: 0 success; 1 the work ran but something needs attention (an unreadable file,
an inconsistent ledger); 2 bad usage, settings or site. No business logic lives here.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dicomhaven import __version__
from dicomhaven.errors import ConfigError, DicomHavenError, SiteError

__all__ = ["app", "main"]

log = logging.getLogger(__name__)

app = typer.Typer(
    name="dicomhaven",
    help="Collect, pseudonymise, de-identify and verify medical images for research.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

SiteOption = Annotated[
    Path,
    typer.Option(
        "--site",
        envvar="DICOMHAVEN_SITE",
        help="The site folder (made by 'dicomhaven init').",
        show_default=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, max=256, help="Worker processes (default: the 'workers' setting)."
    ),
]
DEFAULT_SITE = Path("dicomhaven-site")


def _open(site_dir: Path) -> Any:
    from dicomhaven._logging import configure_logging
    from dicomhaven.site import open_site

    site = open_site(site_dir)
    configure_logging(site.logs, site.settings.log_level, site.settings.log_format)
    return site


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@app.command()
def version() -> None:
    """Print the dicomhaven version."""
    out.print(__version__)


@app.command()
def init(
    site_dir: Annotated[Path, typer.Argument(help="Folder to create the site in.")],
    as_json: JsonOption = False,
) -> None:
    """Create a site: zones, settings file, keys and the catalogue database."""
    from dicomhaven.site import ZONES, init_site

    site = init_site(site_dir)
    if as_json:
        _print_json({"site": str(site.root), "database": site.database_url, "zones": list(ZONES)})
        return
    out.print(f"Site ready at {site.root}")
    out.print(f"  zones: {', '.join(ZONES)}")
    out.print(f"  settings: {site.root / 'dicomhaven.yaml'}")


@app.command()
def settings(
    site_dir: SiteOption = DEFAULT_SITE,
    markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Print the settings reference page (docs/settings.md)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List every setting with its effective value, default and help."""
    from dicomhaven.settings import load_settings, registry, render_markdown

    if markdown:
        sys.stdout.write(render_markdown())
        return
    effective = load_settings(site_dir if (site_dir / "dicomhaven.yaml").exists() else None)
    rows = [
        {
            "name": info.name,
            "env": info.env_var,
            "type": info.type,
            "default": info.default,
            "value": getattr(effective, info.name),
            "help": info.help,
        }
        for info in registry()
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("setting", "value", "default", "environment variable", "meaning")
    for row in rows:
        table.add_row(row["name"], str(row["value"]), str(row["default"]), row["env"], row["help"])
    out.print(table)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the synthetic site into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of fake patients.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    full_size: Annotated[
        bool, typer.Option("--full-size", help="Real-size mammograms (~27 MB each) for benchmarks.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate fake patients and studies with planted identifiers, and their answer key."""
    from dicomhaven.synth import generate_site

    with _progress(disabled=as_json) as bar:
        task = bar.add_task("generating", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        key = generate_site(
            out_dir, patients=patients, seed=seed, full_size=full_size, progress=advance
        )
    if as_json:
        _print_json({"out": str(out_dir), "patients": len(key.patients), "files": len(key.files)})
        return
    out.print(
        f"Wrote {len(key.files)} files for {len(key.patients)} synthetic patients to "
        f"{out_dir / 'export'}; answer key {out_dir / 'answer_key.json'}"
    )


def _progress(*, disabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disabled or not err.is_terminal,
        transient=True,
    )


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to import (recursive).")],
    site_dir: SiteOption = DEFAULT_SITE,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import files and folders into intake, recording every object in the ledger."""
    from dicomhaven.collect import count_files
    from dicomhaven.ingest import import_paths

    missing = [p for p in paths if not (p.exists() or p.is_symlink())]
    if missing:
        raise ConfigError(f"no such file or folder: {missing[0]}")
    site = _open(site_dir)
    total = count_files(paths)
    log.info("import started", extra={"files": total})
    with _progress(disabled=as_json) as bar:
        task = bar.add_task("importing", total=total)
        summary = import_paths(
            site,
            paths,
            workers=workers,
            progress=lambda files, _bytes: bar.advance(task, files),
        )
    log.info("import finished", extra=summary.ledger_summary() | {"job": summary.job_id})
    if as_json:
        _print_json(summary.as_dict())
    else:
        out.print(
            f"Imported {summary.files} files ({summary.bytes / 1e6:.1f} MB) as job {summary.job_id}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(summary.receipts.items()))
        )
        if summary.outcomes:
            out.print(
                "  outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items()))
            )
        for path, reason in summary.rejected[:20]:
            out.print(f"  rejected {path}: {reason}")
        if len(summary.rejected) > 20:
            out.print(f"  … and {len(summary.rejected) - 20} more rejected (see --json)")
        for path, reason in summary.unreadable:
            err.print(f"  not received {path}: {reason}")
    if summary.unreadable:
        raise typer.Exit(1)


@app.command()
def process(
    site_dir: SiteOption = DEFAULT_SITE,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finish objects left in flight by an interrupted job, and retry failed ones."""
    from dicomhaven.ingest import process_pending

    outcomes = process_pending(_open(site_dir), workers=workers)
    if as_json:
        _print_json(dict(outcomes))
    else:
        done = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing to do"
        out.print(f"Processed: {done}")


@app.command()
def ledger(
    site_dir: SiteOption = DEFAULT_SITE,
    deep: Annotated[bool, typer.Option("--deep", help="Also re-hash every intake file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the ledger's counts and verify that every object is accounted for.

    Exits 1 when an object is unaccounted for or the ledger is inconsistent.
    """
    from dicomhaven.catalogue import make_engine
    from dicomhaven.ledger import Ledger

    site = _open(site_dir)
    book = Ledger(make_engine(site.database_url))
    report = book.verify(site.intake, check_content=deep)
    if as_json:
        _print_json(report.as_dict() | {"reasons": book.rejections()})
    else:
        table = Table("status", "objects", title="Ledger")
        for status, count in report.counts.items():
            table.add_row(status, str(count))
        table.add_row("[bold]total", f"[bold]{report.total}")
        out.print(table)
        for reason, count in book.rejections():
            out.print(f"  {count:>6}  {reason}")
        out.print(f"in flight: {report.in_flight}   unaccounted: {report.unaccounted}")
        for problem in report.problems:
            err.print(f"  problem: {problem}")
        out.print("ledger consistent" if report.consistent else "ledger INCONSISTENT")
    if not report.consistent:
        raise typer.Exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the app and turns dicomhaven errors into messages and exit codes."""
    from dicomhaven.catalogue import dispose_engines

    try:
        app(args=list(argv) if argv is not None else None, prog_name="dicomhaven")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (ConfigError, SiteError) as exc:
        err.print(f"error: {exc}")
        return 2
    except DicomHavenError as exc:
        err.print(f"error: {exc}")
        return 1
    except Exception as exc:
        # Never a traceback on the console: its text may quote a value from a file. The log
        # keeps the exception type and where it happened.
        log.error("internal error", exc_info=True)
        err.print(f"internal error ({type(exc).__name__}); please report it with the site's log")
        return 70
    finally:
        dispose_engines()
    return 0


if __name__ == "__main__":
    sys.exit(main())
