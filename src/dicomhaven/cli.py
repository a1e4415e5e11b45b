"""The ``dicomhaven`` command line: parses arguments, calls the core, renders the result.

Exit codes: 0 success; 1 the work ran but something needs attention (an unreadable file,
an inconsistent ledger); 2 bad usage, settings or site; 74 (EX_IOERR) a disk was full;
70 an internal error. No business logic lives here.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from dicomhaven._console import printable, safe
from dicomhaven.errors import ConfigError, DicomHavenError, DiskFull, SiteError

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
EX_IOERR = 74  # sysexits.h: a disk was full (the message names the zone)


def _open(site_dir: Path) -> Any:
    from dicomhaven._logging import configure_logging
    from dicomhaven.site import open_site

    site = open_site(site_dir)
    configure_logging(site.logs, site.settings.log_level, site.settings.log_format)
    return site


E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], value: str, what: str) -> E:
    """``value`` as a member of ``kind``, or a usage error listing the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigError(f"unknown {what} '{value}'; choose one of: {choices}") from None


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


def _inputs_and_out(paths: Sequence[Path], command: str) -> tuple[list[Path], Path]:
    """``IN... OUT``: the inputs, each of which must exist, and the output folder."""
    if len(paths) < 2:
        raise ConfigError(
            f"give at least one input and the output folder: dicomhaven {command} IN... OUT"
        )
    *inputs, out_dir = paths
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {missing[0]}")
    return inputs, out_dir


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
        # Paths are the sender's choice: escaped for markup and control characters.
        out.print(
            f"Imported {summary.files} files ({summary.bytes / 1e6:.1f} MB) as job {summary.job_id}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(summary.receipts.items()))
        )
        if summary.outcomes:
            out.print(
                "  outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items()))
            )
        for path, reason in summary.rejected[:20]:
            out.print(f"  rejected {safe(path)}: {safe(reason)}")
        if len(summary.rejected) > 20:
            out.print(f"  … and {len(summary.rejected) - 20} more rejected (see --json)")
        for path, reason in summary.unreadable:
            err.print(f"  not received {printable(path)}: {printable(reason)}")
        _print_warnings(summary.warnings)
        _print_defaced(summary.defaced)
    _exit_if_disk_full(summary.disk_full)
    if summary.unreadable:
        raise typer.Exit(1)


def _print_defaced(summary: Any) -> None:
    """What the pipeline's own defacing of complete head series did, when it did anything."""
    if summary is None or not (summary.series or summary.waiting or summary.error):
        return
    out.print(
        f"  head series: {summary.defaced} defaced, {summary.released_without} showed no face, "
        f"{len(summary.held)} held, {summary.waiting} not complete yet; "
        f"{summary.objects_released} slices released"
    )
    for reason in summary.held:
        err.print(f"  held: {safe(reason)}")
    if summary.error:
        err.print(f"  {safe(summary.error)}")


def _print_warnings(warned: dict[str, int]) -> None:
    """Library warnings by kind (our words: their own text may quote a value)."""
    if warned:
        out.print(
            "  library warnings (kinds only; see the site's log): "
            + ", ".join(f"{n} {safe(kind)}" for kind, n in sorted(warned.items()))
        )


def _exit_if_disk_full(failed: dict[str, int]) -> None:
    """Objects failed on a full disk: say so, name the zones, exit 74."""
    if failed:
        zones = ", ".join(f"{zone} ({n} objects)" for zone, n in sorted(failed.items()))
        err.print(
            f"error: disk full: no space left in zone {zones}; those objects are 'failed': "
            "free space there, then run 'dicomhaven process'"
        )
        raise typer.Exit(EX_IOERR)


@app.command()
def process(
    site_dir: SiteOption = DEFAULT_SITE,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Account for everything after a crash: record intake files that no ledger entry
    names, finish objects left in flight by an interrupted job, and retry failed ones."""
    from dicomhaven.ingest import process_pending

    summary = process_pending(_open(site_dir), workers=workers)
    if as_json:
        _print_json(summary.as_dict())
    else:
        if summary.recovered or summary.partials_removed:
            out.print(
                f"Recovered: {summary.recovered} intake files without a ledger entry recorded, "
                f"{summary.partials_removed} partial files of dead writers removed"
            )
        for relpath in summary.not_recovered[:20]:
            err.print(f"  not recorded (its content names another file): {printable(relpath)}")
        done = ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items()))
        out.print(f"Processed: {done or 'nothing to do'}")
        _print_warnings(summary.warnings)
        _print_defaced(summary.defaced)
    _exit_if_disk_full(summary.disk_full)


@app.command()
def ledger(
    site_dir: SiteOption = DEFAULT_SITE,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also re-hash every intake file and check that no folder or file of the "
            "site is open to group or others.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the ledger's counts and verify that every object is accounted for.

    Exits 1 when an object is unaccounted for or the ledger is inconsistent, or (with
    --deep) when a folder or file of the site is open to group or others.
    """
    from dicomhaven.services import ledger as book

    check = book.check(_caller(None), _open(site_dir), deep)
    report = check.report
    if as_json:
        _print_json(check.as_dict())
    else:
        table = Table("status", "objects", title="Ledger")
        for status, count in report.counts.items():
            table.add_row(status, str(count))
        table.add_row("[bold]total", f"[bold]{report.total}")
        out.print(table)
        for reason, count in check.rejections:
            out.print(f"  {count:>6}  {safe(reason)}")
        out.print(f"in flight: {report.in_flight}   unaccounted: {report.unaccounted}")
        for problem in report.problems:
            err.print(f"  problem: {printable(problem)}")
        out.print("ledger consistent" if report.consistent else "ledger INCONSISTENT")
    if not report.consistent:
        raise typer.Exit(1)


TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="DICOMHAVEN_TOKEN", help="Your user token (NAME.SECRET)."),
]

users_app = typer.Typer(help="Users, their roles and API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
consent_app = typer.Typer(
    help="The consent register: consent, refusal and withdrawal.", no_args_is_help=True
)
vault_app = typer.Typer(help="The pseudonym vault.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")
app.add_typer(vault_app, name="vault")


def _caller(token: str | None) -> Any:
    """Who runs the command: the user whose token is given, else the local operator (the
    account that owns the site's files), whom the services let do only what needs no user."""
    from dicomhaven.services import LocalOperator, User

    return User(token) if token else LocalOperator()


def _users(site: Any) -> Any:
    from dicomhaven.access import Users
    from dicomhaven.catalogue import make_engine

    return Users(make_engine(site.database_url))


def _authorised(site: Any, token: str | None, action: Any, *, target: str, reason: str = "") -> Any:
    users = _users(site)
    actor = users.authenticate(token)
    users.authorise(actor, action, target=target, reason=reason)
    return actor


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name: lower-case letters, digits, - and _.")],
    role: Annotated[
        str, typer.Option(help="data-manager, clinician, committee-member, researcher or auditor.")
    ],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Add a user and print their token once. The first user needs no token."""
    from dicomhaven.access import Role
    from dicomhaven.services import users

    new_role = _choice(Role, role, "role")
    site = _open(site_dir)
    adding = users.add if token else users.add_first
    added = adding(_caller(token), site, name, new_role)
    out.print(f"user {added.name} ({added.role}) added; token (shown once, keep it secret):")
    sys.stdout.write(added.token + "\n")


@users_app.command("list")
def users_list(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """List users, roles and whether they are active."""
    from dicomhaven.services import users

    rows = users.listing(_caller(None), _open(site_dir))
    if as_json:
        _print_json([row.as_dict() for row in rows])
        return
    table = Table("user", "role", "active")
    for row in rows:
        table.add_row(row.name, row.role, "yes" if row.active else "no")
    out.print(table)


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="The user to revoke.")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Revoke a user's token (the user stays in the audit log)."""
    from dicomhaven.services import users

    users.revoke(_caller(token), _open(site_dir), name)
    out.print(f"user {name} revoked")


@app.command()
def reidentify(
    pseudonym: Annotated[str, typer.Argument(help="A master pseudonym.")],
    reason: Annotated[str, typer.Option(help="Why you need to know who this is (audited).")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the patient identifiers behind a pseudonym (data managers and clinicians only).

    Every attempt, allowed or refused, is written to the audit log.
    """
    from dicomhaven.services.reidentify import reidentify as look_up

    found = look_up(_caller(token), _open(site_dir), pseudonym, reason)
    if as_json:
        _print_json(
            [{"scheme": i.scheme.value, "issuer": i.issuer, "value": i.value} for i in found]
        )
    elif not found:
        out.print("no patient has this pseudonym")
    else:
        for identifier in found:
            issuer = f" ({identifier.issuer})" if identifier.issuer else ""
            out.print(f"{identifier.scheme.value}{issuer}: {identifier.value}")
    if not found:
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """Check the audit log's hash chain; exits 1 if an entry was changed, inserted or removed."""
    from dicomhaven.services import audit

    check = audit.verify(_caller(None), _open(site_dir))
    problems = check.problems
    if as_json:
        _print_json(check.as_dict())
    else:
        for problem in problems:
            err.print(f"  audit entry {problem.entry_id}: {problem.problem}")
        out.print("audit log intact" if not problems else "audit log TAMPERED")
    if problems:
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest entries.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the newest audit entries (auditors and data managers)."""
    from dicomhaven.services import audit

    rows = audit.show(_caller(token), _open(site_dir), limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "at", "actor", "action", "target", "outcome", "reason")
    for r in rows:
        table.add_row(str(r["id"]), str(r["at"])[:19], str(r["actor"]), str(r["action"]),
                      str(r["target"]), str(r["outcome"]), str(r["reason"]))  # fmt: skip
    out.print(table)


@consent_app.command("record")
def consent_record(
    status: Annotated[str, typer.Option(help="consented, refused or withdrawn.")],
    nhs: Annotated[str | None, typer.Option("--nhs", help="The patient's NHS number.")] = None,
    pseudonym: Annotated[
        str | None, typer.Option(help="Or the patient's master pseudonym.")
    ] = None,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Record one patient's consent decision (data managers)."""
    from dicomhaven.catalogue import ConsentStatus
    from dicomhaven.identity import PatientIdentifier, Scheme
    from dicomhaven.services import consent

    decision = _choice(ConsentStatus, status, "status")
    if (nhs is None) == (pseudonym is None):
        raise ConfigError("give exactly one of --nhs or --pseudonym")
    site = _open(site_dir)
    patient = PatientIdentifier(Scheme.NHS, nhs) if nhs is not None else pseudonym
    assert patient is not None
    recorded = consent.record(_caller(token), site, patient, decision)
    out.print(f"recorded: {recorded.pseudonym} {recorded.status.value}")


@consent_app.command("import-optout")
def consent_import_optout(
    file: Annotated[Path, typer.Argument(help="One NHS number a line; '#' starts a comment.")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import the national data opt-out list: each patient on it is recorded as withdrawn.

    Lines that are not valid NHS numbers are reported by line number and skipped; exit 1 if any.
    """
    from dicomhaven.services import consent

    result = consent.import_optout(_caller(token), _open(site_dir), file)
    if as_json:
        _print_json(result.as_dict())
    else:
        out.print(f"{result.recorded} patients recorded as withdrawn from {file}")
        for line, reason in result.invalid:
            err.print(f"  {file}:{line}: {reason}")
    if result.invalid:
        raise typer.Exit(1)


@consent_app.command("purge")
def consent_purge(
    pseudonym: Annotated[str, typer.Argument(help="The withdrawn patient's master pseudonym.")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Remove a withdrawn patient's de-identified copies; every object gets a ledger entry
    and the purge an audit entry (data managers)."""
    from dicomhaven.services import consent

    count = consent.purge(_caller(token), _open(site_dir), pseudonym)
    out.print(f"purged: {count} objects of {pseudonym} held with reason 'consent withdrawn'")


@consent_app.command("status")
def consent_status(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """Patients by the consent decision in force."""
    from dicomhaven.services import consent

    counts = consent.status_counts(_caller(None), _open(site_dir))
    if as_json:
        _print_json(counts)
    else:
        for status, count in counts.items():
            out.print(f"{status:>10}: {count}")


@vault_app.command("rotate-key")
def vault_rotate_key(site_dir: SiteOption = DEFAULT_SITE, token: TokenOption = None) -> None:
    """Re-seal the vault under a new key file; pseudonyms do not change (data managers)."""
    from dicomhaven.services import vault

    rotation = vault.rotate_key(_caller(token), _open(site_dir))
    out.print(
        f"vault key rotated: {rotation.resealed} values re-sealed; new key in {rotation.key_file}"
    )


templates_app = typer.Typer(
    help="Device templates: where each device burns text into its images.", no_args_is_help=True
)
app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def templates_list(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """Every device's template: its status, regions and how many images taught it."""
    from dicomhaven.services import templates

    found = templates.listing(_caller(None), _open(site_dir))
    if as_json:
        _print_json([{"id": t.device.id, **t.as_dict()} for t in found])
        return
    for template in found:
        device = template.device
        out.print(
            f"{device.id}  {template.status.value:<9} {len(template.regions)} regions, "
            f"learned from {template.learned_from} images  {device.manufacturer} "
            f"{device.model} {device.software} {device.columns}x{device.rows}"
        )


@templates_app.command("approve")
def templates_approve(
    device_id: Annotated[str, typer.Argument(help="The template's id (device-...).")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Approve a reviewed template: the device's images are then blanked in its regions
    without reading every frame (one in ten is still read to check it). Data managers only;
    audited."""
    from dicomhaven.services import templates

    template = templates.approve(_caller(token), _open(site_dir), device_id)
    out.print(
        f"template {device_id} approved by {template.approved_by}: {len(template.regions)} regions"
    )


@templates_app.command("revoke")
def templates_revoke(
    device_id: Annotated[str, typer.Argument(help="The template's id (device-...).")],
    reason: Annotated[str, typer.Option(help="Why: kept with the template.")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Stop using a template: the device's images are read in full again. Audited."""
    from dicomhaven.services import templates

    templates.revoke(_caller(token), _open(site_dir), device_id, reason)
    out.print(f"template {device_id} revoked")


clinical_app = typer.Typer(help="Linked clinical data, under pseudonyms.", no_args_is_help=True)
app.add_typer(clinical_app, name="clinical")


@clinical_app.command("import")
def clinical_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header row, keyed by NHS number.")],
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping of CSV columns to vocabulary fields.")
    ] = None,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import clinical rows under master pseudonyms, dates shifted (data managers).

    Rows with an invalid NHS number are reported by row number; exit 1 if any.
    """
    from dicomhaven.services import clinical

    result = clinical.import_csv(_caller(token), _open(site_dir), file, mapping)
    if as_json:
        _print_json(result.as_dict())
    else:
        out.print(f"{result.stored} of {result.rows} rows stored under pseudonyms")
        for row, reason in result.invalid:
            err.print(f"  {file}: row {row}: {reason}")
    if result.invalid:
        raise typer.Exit(1)


@app.command()
def patient(
    pseudonym: Annotated[str, typer.Argument(help="A master pseudonym.")],
    site_dir: SiteOption = DEFAULT_SITE,
    as_json: JsonOption = False,
) -> None:
    """What the catalogue holds about a pseudonym: objects, consent, clinical data.

    Nothing here identifies the patient: this is the researcher's view.
    """
    from dicomhaven.services import patients

    summary = patients.summary(_caller(None), _open(site_dir), pseudonym)
    if as_json:
        _print_json(summary)
        return
    out.print(f"pseudonym {pseudonym}")
    out.print(f"  consent: {summary['consent'] or 'no decision recorded'}")
    objects = summary["objects"]
    assert isinstance(objects, dict)
    out.print("  objects: " + (", ".join(f"{n} {m}" for m, n in sorted(objects.items())) or "none"))
    records = summary["clinical"]
    assert isinstance(records, list)
    for record in records:
        out.print("  clinical: " + ", ".join(f"{k}={v}" for k, v in sorted(record.items())))


@app.command()
def pseudonyms(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """List the master pseudonyms that have objects in the catalogue."""
    from dicomhaven.services import patients

    found = patients.pseudonyms(_caller(None), _open(site_dir))
    if as_json:
        _print_json(found)
    else:
        for pseudonym in found:
            out.print(pseudonym)


def _export_out(inputs: Sequence[Path], out_dir: Path, command: str) -> None:
    """OUT must not lie inside an input folder: the run would read its own copies."""
    resolved = out_dir.resolve()
    for path in inputs:
        if path.is_dir() and resolved.is_relative_to(path.resolve()):
            raise ConfigError(f"{command}: OUT is inside the input folder {path}; choose another")


def _run_export(
    site: Any, safe: Any, command: str, target: str, token: str | None,
    inputs: Sequence[Path], out_dir: Path, *, quiet: bool, workers: int | None = None,
) -> Any:  # fmt: skip
    """Authorise (audited), run the safe path over the inputs, audit the counts."""
    from dicomhaven.access import NotAuthenticated
    from dicomhaven.deid._folder import audit_export, authorise_export, run_folder

    try:
        actor = authorise_export(site, token, target)
    except NotAuthenticated as exc:
        raise ConfigError(
            f"{command} writes de-identified copies and needs a data manager's token: {exc}"
        ) from None
    with _progress(disabled=quiet) as bar:
        task = bar.add_task(command, total=None)
        summary = run_folder(
            safe, inputs, out_dir, progress=lambda n: bar.advance(task, n),
            workers=workers or site.settings.workers,
        )  # fmt: skip
    audit_export(site, actor, target, summary)
    log.info(f"{command} finished", extra={"files": summary.files, "written": summary.written,
             "held": len(summary.held), "skipped": len(summary.skipped)})  # fmt: skip
    return summary


def _print_export(summary: Any, out_dir: Path) -> None:
    for path, step, reason, held_as in summary.held[:20]:
        err.print(f"  held {printable(path)} ({step}): {printable(reason)} -> "
                  f"{printable(out_dir / held_as)}")  # fmt: skip
    for path, step, reason in summary.skipped[:20]:
        err.print(f"  skipped {printable(path)} ({step}): {printable(reason)}")
    if len(summary.held) + len(summary.skipped) > 40:
        err.print("  ... (--json lists every file)")


@app.command()
def deid(
    paths: Annotated[list[Path], typer.Argument(help="Input files or folders, then OUT last.")],
    profile: Annotated[
        str, typer.Option(help="A built-in profile (limited-access, publication) or a YAML file.")
    ] = "publication",
    layers: Annotated[
        Path | None,
        typer.Option(help="A layers file: modality and device profiles on top of --profile."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            help="Project whose pseudonyms, UIDs and date offsets to use (default: the site's)."
        ),
    ] = None,
    headers_only: Annotated[
        bool,
        typer.Option(
            "--headers-only",
            help="Do not read the pixels: each copy is marked 'pixels not checked' in its "
            "De-identification Method and in the summary.",
        ),
    ] = False,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make safe copies of files or folders into OUT (the last argument): the whole path.

    Each file's patient is found in the vault and their consent checked (a withdrawn
    patient's files are skipped); headers are de-identified with the profile; pixels are
    triaged on the header as received, read, blanked and verified, and head CT and MR
    series defaced; every copy is then scanned on its own with the rules of the profile's
    level. OUT/<pseudonym>/<study UID>/<instance UID>.dcm receives only copies that passed;
    the rest go to OUT/held/ with a reason file each. Data managers only; audited.
    Exit 0 when every file was written, 1 when any was held or skipped, 2 on bad usage.
    """
    from dicomhaven.deid import ProfileLayers, load_layers, load_profile
    from dicomhaven.deid._safe_path import PixelCheck, SafePath
    from dicomhaven.identity import SITE_PROJECT

    inputs, out_dir = _inputs_and_out(paths, "deid")
    _export_out(inputs, out_dir, "deid")
    chosen = load_profile(profile)
    profiles = load_layers(layers, chosen) if layers else ProfileLayers(chosen)
    site = _open(site_dir)
    pixels = PixelCheck.HEADERS_ONLY if headers_only else PixelCheck.CHECKED
    safe_path = SafePath.for_site(
        site.root, profiles=profiles, project=project or SITE_PROJECT, pixels=pixels,
        templates=_site_templates(site) if not headers_only else None,
    )  # fmt: skip
    target = f"deid profile {chosen.name} project {project or SITE_PROJECT} ({pixels.value})"
    summary = _run_export(
        site, safe_path, "deid", target, token, inputs, out_dir, quiet=as_json, workers=workers
    )
    if as_json:
        _print_json(summary.as_dict() | {"profile": chosen.name, "profile_sha256": chosen.sha256})
    else:
        not_checked = (
            f"; pixels NOT checked in {summary.pixels_not_checked} of them (--headers-only)"
            if headers_only
            else ""
        )
        out.print(
            f"De-identified {summary.written} of {summary.files} files into {safe(out_dir)} with profile "
            f"{chosen.name} (sha256 {chosen.sha256[:16]}){not_checked}; {len(summary.held)} held "
            f"in {safe(out_dir / 'held')}, {len(summary.skipped)} skipped"
        )
        _print_export(summary, out_dir)
    if not summary.complete:
        raise typer.Exit(1)


def _site_templates(site: Any) -> Any:
    from dicomhaven.pixels import TemplateStore

    return TemplateStore(site.root / "templates")


@app.command()
def scp(
    site_dir: SiteOption = DEFAULT_SITE,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port to listen on (0: any free port).")
    ] = 11112,
    ae_title: Annotated[
        str | None, typer.Option("--ae-title", help="Our AE title (default: 'scp_ae_title').")
    ] = None,
    bind: Annotated[
        str, typer.Option(help="IP address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    max_associations: Annotated[
        int | None,
        typer.Option(
            "--max-associations",
            min=1,
            max=256,
            help="Associations served at once (default: 'scp_max_associations').",
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="A calling AE title to accept, as AE or AE@host; repeatable. Added to the "
            "setting 'scp_allow'.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="TLS: the receiver's certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="TLS: the certificate's private key (PEM).")
    ] = None,
    drain_seconds: Annotated[
        float,
        typer.Option(
            "--drain-seconds",
            min=0,
            help="At shutdown, how long to go on processing received objects; the rest are "
            "left failed (retryable) for 'dicomhaven process'.",
        ),
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Receive objects over DICOM (C-ECHO, C-STORE) until SIGTERM or Ctrl-C.

    Each object is written to intake and entered in the ledger before success is answered;
    the pipeline runs on received objects in the background. On SIGTERM or SIGINT the
    receiver stops listening, finishes running associations, processes what it received
    (for --drain-seconds), then prints a summary.
    """
    import signal
    import threading

    from dicomhaven.collect import receiver_config, run_receiver

    site = _open(site_dir)
    config = receiver_config(
        site.settings, port=port, bind=bind, ae_title=ae_title,
        max_associations=max_associations, allow=allow or (), tls_cert=tls_cert,
        tls_key=tls_key,
    )  # fmt: skip
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    try:
        summary = run_receiver(
            site, config, stop, drain_seconds=drain_seconds,
            ready=lambda address: err.print(f"dicomhaven scp: listening on {address} as {config.ae_title}"),
        )  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        _print_json(summary.as_dict())
    else:
        rate = summary.stored / summary.seconds if summary.seconds else 0.0
        out.print(
            f"Received {summary.stored} objects ({summary.bytes / 1e6:.1f} MB) in "
            f"{summary.seconds:.1f} s ({rate:.0f}/s) as job {summary.job_id}; statuses: "
            + (", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())) or "none")
        )
        if summary.outcomes:
            out.print(
                "  outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(summary.outcomes.items()))
            )


# -- pull: C-FIND / C-MOVE from a PACS (issue 7) ---------------------------------------------


def _pull_criteria(
    modality: str | None,
    date_from: str | None,
    date_to: str | None,
    accession: Sequence[str],
    accessions_csv: Path | None,
    patients_csv: Path | None,
) -> Any:
    from datetime import date

    from dicomhaven.collect import Criteria, read_id_column

    def day(value: str | None, option: str) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise ConfigError(f"{option} '{value}': expected a date as YYYY-MM-DD") from None

    accessions = list(accession)
    if accessions_csv is not None:
        accessions += read_id_column(
            accessions_csv, "AccessionNumber", ("accession_number", "AccessionNumber")
        )
    patients = (
        read_id_column(patients_csv, "PatientID", ("patient_id", "PatientID"))
        if patients_csv is not None
        else ()
    )
    return Criteria(
        modality=modality.upper() if modality else None,
        date_from=day(date_from, "--from"),
        date_to=day(date_to, "--to"),
        accession_numbers=tuple(dict.fromkeys(accessions)),
        patient_ids=tuple(patients),
    )


@app.command()
def pull(
    site_dir: SiteOption = DEFAULT_SITE,
    modality: Annotated[
        str | None, typer.Option(help="Studies with this modality (CT, MR, ...); its series only.")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="Studies on or after this date (YYYY-MM-DD).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Studies on or before this date (YYYY-MM-DD).")
    ] = None,
    accession: Annotated[
        list[str] | None, typer.Option(help="An accession number; repeatable.")
    ] = None,
    accessions_csv: Annotated[
        Path | None,
        typer.Option(
            "--accessions-csv", help="CSV with a header row and an accession_number column."
        ),
    ] = None,
    patients_csv: Annotated[
        Path | None,
        typer.Option("--patients-csv", help="CSV with a header row and a patient_id column."),
    ] = None,
    resume: Annotated[
        int | None,
        typer.Option(
            help="Resume this pull job (criteria: the same ones, or none if it had no list)."
        ),
    ] = None,
    dicomweb: Annotated[
        str | None,
        typer.Option(
            help="Pull over DICOMweb (QIDO-RS, WADO-RS) from this base URL instead of "
            "C-FIND/C-MOVE."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="move: C-MOVE to our receiver; get: C-GET, instances come back on our own "
            "association (no receiver, no destination); dicomweb: see --dicomweb."
        ),
    ] = "move",
    pacs_host: Annotated[
        str | None, typer.Option("--pacs-host", help="PACS host (default: 'pacs_host').")
    ] = None,
    pacs_port: Annotated[
        int | None,
        typer.Option("--pacs-port", min=1, max=65535, help="PACS port (default: 'pacs_port')."),
    ] = None,
    pacs_ae: Annotated[
        str | None, typer.Option("--pacs-ae", help="PACS AE title (default: 'pacs_ae_title').")
    ] = None,
    calling_ae: Annotated[
        str | None, typer.Option("--calling-ae", help="Our AE title (default: 'pull_ae_title').")
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option(help="C-MOVE destination AE, our receiver (default: 'pull_destination')."),
    ] = None,
    receive_port: Annotated[
        int | None,
        typer.Option(
            "--receive-port",
            min=0,
            max=65535,
            help="Run the receiver in this process on this port for the pull (the PACS must "
            "know it); without it, a running 'dicomhaven scp' receives.",
        ),
    ] = None,
    receive_bind: Annotated[
        str, typer.Option("--receive-bind", help="IP address the --receive-port receiver binds.")
    ] = "127.0.0.1",
    max_moves: Annotated[
        int | None,
        typer.Option(
            "--max-moves", min=1, max=16, help="Retrievals at once (default: 'pull_max_moves')."
        ),
    ] = None,
    pause: Annotated[
        float | None,
        typer.Option(
            min=0, help="Seconds to pause after each retrieval (default: 'pull_pause_seconds')."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts",
            min=1,
            max=100,
            help="Attempts per series (default: 'pull_max_attempts').",
        ),
    ] = None,
    backoff: Annotated[
        float | None,
        typer.Option(
            min=0, help="First retry's wait in seconds, doubling (default: 'pull_backoff_seconds')."
        ),
    ] = None,
    drain_seconds: Annotated[
        float,
        typer.Option(
            "--drain-seconds",
            min=0,
            help="With --receive-port, --method get or --dicomweb: at the end, how long to go "
            "on processing received objects (the rest are left for 'dicomhaven process').",
        ),
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Pull studies from a PACS by criteria: C-FIND, then C-MOVE series by series.

    Every promised instance must reach the ledger; a series that stays short is retried
    with back-off, then reported. Exit 0 when the pull is complete; 1 when something failed
    or matched nothing. An interrupted pull resumes with --resume JOB (or by running the
    same command again).
    """
    import signal
    import threading

    from dicomhaven.collect import (
        SourceMethod,
        SourceOptions,
        open_source,
        pull_options,
        run_pull,
    )

    criteria = _pull_criteria(
        modality, date_from, date_to, accession or (), accessions_csv, patients_csv
    )
    chosen = _choice(SourceMethod, method, "--method")
    if dicomweb is not None:
        if chosen is not SourceMethod.MOVE:
            raise ConfigError(f"--method {method}: not used with --dicomweb; leave it out")
        chosen = SourceMethod.DICOMWEB
    source_options = SourceOptions(
        method=chosen, pacs_host=pacs_host, pacs_port=pacs_port, pacs_ae=pacs_ae,
        calling_ae=calling_ae, destination=destination, receive_port=receive_port,
        receive_bind=receive_bind, dicomweb_url=dicomweb, drain_seconds=drain_seconds,
    )  # fmt: skip
    source_options.check()
    site = _open(site_dir)
    options = pull_options(
        site.settings, max_moves=max_moves, pause_seconds=pause, max_attempts=max_attempts,
        backoff=backoff,
    )  # fmt: skip
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    try:
        with (
            open_source(
                site, source_options,
                receiving=lambda where, ae: err.print(f"dicomhaven pull: receiving on {where} as {ae}"),
            ) as source,
            _progress(disabled=as_json) as bar,
        ):  # fmt: skip
            task = bar.add_task("pulling", total=None)
            summary = run_pull(
                site, source, criteria, options, resume=resume, stop=stop,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        _print_json(summary.as_dict())
    else:
        verb = "Resumed" if summary.resumed else "Ran"
        out.print(
            f"{verb} pull job {summary.job_id} from {summary.source}: {summary.studies} studies, "
            f"{summary.items} series, {summary.received} of {summary.expected} instances in the "
            f"ledger; {summary.state}"
        )
        if summary.studies == 0:
            out.print("  no study matched the criteria")
        for name, positions in summary.unmatched.items():
            listed = ", ".join(map(str, positions[:20]))
            out.print(f"  {len(positions)} of the {name.replace('_', ' ')} matched no study "
                      f"(list positions {listed})")  # fmt: skip
        for item, reason in summary.failures[:20]:
            err.print(f"  series {item} failed: {reason}")
        if summary.interrupted:
            out.print(f"  interrupted: resume with 'dicomhaven pull --resume {summary.job_id}'")
    if not summary.complete or summary.studies == 0:
        raise typer.Exit(1)


@app.command("pull-status")
def pull_status(
    job: Annotated[int | None, typer.Argument(help="A pull job: list its series.")] = None,
    site_dir: SiteOption = DEFAULT_SITE,
    as_json: JsonOption = False,
) -> None:
    """List pull jobs, or the series of one job with their state and counts."""
    from dicomhaven.catalogue import make_engine
    from dicomhaven.collect import PullJobs

    jobs = PullJobs(make_engine(_open(site_dir).database_url))
    if job is None:
        rows: list[dict[str, object]] = [
            {"job": j.id, "kind": j.kind, "source": j.source, "state": j.state.value,
             "running": j.running, "runs": j.runs, "studies": j.studies,
             "criteria": j.criteria}
            for j in jobs.all()
        ]  # fmt: skip
        if as_json:
            _print_json(rows)
            return
        table = Table("job", "source", "state", "runs", "studies", "criteria")
        for row in rows:
            criteria = row["criteria"]
            assert isinstance(criteria, dict)
            shown = ", ".join(f"{k}={v}" for k, v in criteria.items() if v)
            state = f"{row['state']} (running)" if row["running"] else str(row["state"])
            table.add_row(str(row["job"]), str(row["source"]), state, str(row["runs"]),
                          str(row["studies"]), shown)  # fmt: skip
        out.print(table)
        return
    view = jobs.get(job)
    items = jobs.items(job)
    if as_json:
        _print_json(
            {"job": view.id, "state": view.state.value, "items": [
                {"item": i.id, "modality": i.modality, "state": i.state.value,
                 "attempts": i.attempts, "expected": i.expected, "received": i.received,
                 "error": i.last_error}
                for i in items
            ]}
        )  # fmt: skip
        return
    table = Table("series", "modality", "state", "attempts", "received", "last error",
                  title=f"pull job {view.id}: {view.state.value}")  # fmt: skip
    for i in items:
        table.add_row(str(i.id), i.modality or "", i.state.value, str(i.attempts),
                      f"{i.received}/{i.expected}", i.last_error)  # fmt: skip
    out.print(table)


collect_app = typer.Typer(
    help="Scheduled collection from a PACS, declared in a YAML spec.", no_args_is_help=True
)
app.add_typer(collect_app, name="collect")


@collect_app.command("run")
def collect_run(
    spec_file: Annotated[Path, typer.Argument(help="The collection spec (YAML).")],
    site_dir: SiteOption = DEFAULT_SITE,
    once: Annotated[
        bool, typer.Option("--once", help="Run once, even if the spec has 'every'.")
    ] = False,
    drain_seconds: Annotated[
        float,
        typer.Option(
            "--drain-seconds",
            min=0,
            help="At the end, how long to go on processing received objects.",
        ),
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Pull what is new for a collection spec, now and then every interval it names.

    Studies that an earlier run of the same collection brought completely are not pulled
    again. Stops on SIGTERM or Ctrl-C. Exit 1 when the last run did not complete.
    """
    import signal
    import threading

    from dicomhaven.collect import load_spec, run_collection

    spec = load_spec(spec_file)
    site = _open(site_dir)
    stop = threading.Event()

    def report(summary: Any) -> None:
        if as_json:
            sys.stdout.write(json.dumps(summary.as_dict(), sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        out.print(
            f"collection {spec.name}: job {summary.job_id}, {summary.studies} new studies "
            f"({summary.skipped_studies} pulled before), {summary.received} of "
            f"{summary.expected} instances in the ledger; {summary.state}"
        )
        for item, reason in summary.failures[:20]:
            err.print(f"  series {item} failed: {reason}")

    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    try:
        runs = run_collection(
            site, spec, once=once, stop=stop, drain_seconds=drain_seconds, on_run=report
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    last = runs[-1]
    if last.state != "complete" or last.unmatched:
        raise typer.Exit(1)


@app.command()
def redact(
    paths: Annotated[list[Path], typer.Argument(help="Input files or folders, then OUT last.")],
    detector: Annotated[
        str, typer.Option(help="Engine that finds the text: rapidocr, tesseract, tesseract-turned.")
    ] = "rapidocr",
    verifier: Annotated[
        str, typer.Option(help="A second, independent engine that checks after blanking.")
    ] = "tesseract",
    frames: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="Frames of a clip to read, spread first to last (default: all)."
        ),
    ] = None,
    templates: Annotated[
        Path | None,
        typer.Option(help="A folder of device templates (default: the site's templates/)."),
    ] = None,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make the pixels of files or folders safe into OUT (the last argument).

    The same path as 'dicomhaven deid' with the header step skipped: consent is checked,
    burned-in text is found, blanked on every frame and checked by a second engine, head
    series are defaced, and what OCR still reads in the copy is scanned. Headers are not
    touched, so the copies identify their patient. Outputs are named OUT/<SOP Instance
    UID>.dcm; the rest go to OUT/held/ with a reason file each. Data managers only; audited.
    Exit 1 when any file could not be made safe.
    """
    from dicomhaven.deid._safe_path import SafePath
    from dicomhaven.pixels import PixelPolicy, TemplateStore, engine_named

    inputs, out_dir = _inputs_and_out(paths, "redact")
    _export_out(inputs, out_dir, "redact")
    for name in (detector, verifier):
        try:
            engine_named(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    chosen: dict[str, Any] = {"frames_to_read": frames} if frames is not None else {}
    policy = PixelPolicy(detector=detector, verifier=verifier, **chosen)
    site = _open(site_dir)
    store = TemplateStore(templates) if templates is not None else _site_templates(site)
    safe_path = SafePath.for_site(site.root, profiles=None, policy=policy, templates=store)
    summary = _run_export(
        site, safe_path, "redact", "redact (headers kept)", token, inputs, out_dir,
        quiet=as_json, workers=workers,
    )  # fmt: skip
    if as_json:
        _print_json(summary.as_dict())
    else:
        counts = ", ".join(f"{n} {o}" for o, n in sorted(summary.pixels.items()))
        out.print(
            f"Read the pixels of {summary.files} files into {safe(out_dir)}: {counts or 'none'} "
            f"written; {len(summary.held)} held in {safe(out_dir / 'held')}, "
            f"{len(summary.skipped)} skipped"
        )
        _print_export(summary, out_dir)
    if not summary.complete:
        raise typer.Exit(1)


@app.command()
def deface(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """Deface every head CT and MR series the pixel stage holds, now, and release their slices.

    The pipeline defaces a held series itself once it is complete (every instance the PACS
    announced arrived, or none for 'head_series_quiet_seconds'); this decides every held
    series at once, complete or not. Each series is decided as a whole: a head volume is
    defaced (a before/after render is kept beside the held copies for review) and released;
    one that shows no face is released as it is; one that needs a person's review, or could
    not be defaced safely, stays held with the reason. Exit 1 when any series stays held.
    """
    from dicomhaven.pixels._deface_held import DefaceWhen, deface_held

    site = _open(site_dir)
    summary = deface_held(site, when=DefaceWhen.NOW)
    log.info("deface finished", extra=summary.as_dict())
    if as_json:
        _print_json(summary.as_dict())
    else:
        out.print(
            f"{summary.series} held head series: {summary.defaced} defaced, "
            f"{summary.released_without} showed no face; {summary.objects_released} slices "
            f"released; {len(summary.held)} series still held"
            + (f"; {summary.taken} being decided by another run" if summary.taken else "")
        )
        for reason in summary.held:
            err.print(f"  held: {reason}")
    if summary.held:
        raise typer.Exit(1)


# -- residual-PII scan, review, devices, release gate ------------------------------------------
@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders to scan.")],
    site_dir: Annotated[
        Path | None,
        typer.Option(
            "--site",
            help="Use this site's rules (its review decisions and 'scan_rules') and search each "
            "file for its patient's values in the vault; without it, the shipped rules only.",
        ),
    ] = None,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="A rules file (YAML) to apply first; repeatable."),
    ] = None,
    level: Annotated[
        str,
        typer.Option(help="Output level the files should meet: limited-access or publication."),
    ] = "limited-access",
    ocr: Annotated[
        bool, typer.Option("--ocr", help="Also read the pixels of risky images (OCR).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Scan files for residual personal information, independently of de-identification.

    Every element at any depth (private and binary ones included) is checked: patterns (NHS
    and CHI numbers, postcodes, phone numbers, e-mail, dates), person names, UIDs that the
    de-identifier did not make, watched attributes, and each file's own patient values. Every
    finding names the rule that decided it. Exit status 1 when a file fails or an entry
    could not be read (a link loop, a FIFO, no permission).
    """
    from dicomhaven.scan import Scanner, load_rules
    from dicomhaven.scan._detect import local_number_pattern
    from dicomhaven.settings import Settings

    if level not in ("limited-access", "publication"):
        raise ConfigError(f"--level is limited-access or publication, not '{level}'")
    from dicomhaven.collect import Unreadable, iter_entries

    files: list[Path] = []
    unreadable: list[Unreadable] = []
    for entry in iter_entries(_existing(paths, "scan")):
        if isinstance(entry, Unreadable):
            unreadable.append(entry)
        else:
            files.append(entry)
    rule_files = list(rules or [])
    known_for = None
    made_uid: Callable[[str], bool] | None = None
    if site_dir is not None:  # only then the site's database (SQLAlchemy loads in 0.2 s)
        from dicomhaven.scan._review import review_rules_path
        from dicomhaven.scan._stage import gate_services

        site = _open(site_dir)
        review = review_rules_path(site.root)
        rule_files += [review] if review.exists() else []
        rule_files += [site.root / p for p in site.settings.scan_rules]
        services = gate_services(site.root)
        known_for = lambda pseudonym: services.known(pseudonym, None)  # noqa: E731 - the vault's values
        made_uid = services.made_uid  # 2.25 UIDs checked against the site's project keys
    shapes = (site.settings if site_dir is not None else Settings()).hospital_number_patterns
    scanner = Scanner(
        load_rules(rule_files, level=level), ocr=ocr, known_for=known_for, made_uid=made_uid,
        local_numbers=local_number_pattern(shapes),
    )  # fmt: skip
    results = []
    with _progress(disabled=as_json or len(files) < 20) as bar:
        task = bar.add_task("scanning", total=len(files))
        for file in files:
            results.append((file, scanner.scan_file(file)))
            bar.advance(task)
    failed = sum(r.failed for _, r in results)
    if as_json:
        _print_json({
            "files": len(results), "failed": failed,
            "results": [{"path": str(f), **r.as_dict()} for f, r in results],
            "unreadable": [{"path": str(u.path), "reason": u.reason} for u in unreadable],
        })  # fmt: skip
    else:
        # File names and rule names are printed as they are, never as markup or controls.
        for file, result in results:
            if result.error:
                out.print(f"{safe(file)}: ERROR {safe(result.error)}")
            for f in result.findings:
                out.print(
                    f"{safe(file)}: {f.action.value.upper():<6} {safe(f.rule)} "
                    f"({f.detector.value}) at {safe(f.tag_path)} {safe(f.keyword)} value shaped "
                    f"{safe(repr(f.shape))}"
                )
        for entry in unreadable:
            err.print(f"{printable(entry.path)}: not scanned: {printable(entry.reason)}")
        out.print(
            f"{len(results)} files scanned, {failed} failed"
            + (f", {len(unreadable)} not readable" if unreadable else "")
        )
    if failed or unreadable:
        raise typer.Exit(1)


def _existing(paths: Sequence[Path], command: str) -> list[Path]:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"{command}: {', '.join(map(str, missing))} not found")
    return list(paths)


review_app = typer.Typer(
    help="Findings of the release gate's scans, grouped for review.", no_args_is_help=False,
    invoke_without_command=True,
)  # fmt: skip
app.add_typer(review_app, name="review")


@review_app.callback()
def review_list(
    ctx: typer.Context,
    site_dir: SiteOption = DEFAULT_SITE,
    limit: Annotated[int, typer.Option(min=1, help="Groups to show.")] = 30,
    suppressed: Annotated[
        bool,
        typer.Option(
            "--suppressed", help="Show what ignore rules hid instead, grouped the same way."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Groups of findings, highest risk first: one line (and one decision) per rule, tag
    path and value shape, however many objects share it; then the head series a person
    must look at (as 'dicomhaven review faces'). With --suppressed, what each ignore rule
    hid, so a rule can be traced to its effect."""
    if ctx.invoked_subcommand is not None:
        return
    from dicomhaven.services import review

    site = _open(site_dir)
    groups = review.groups(_caller(None), site, suppressed)
    if as_json:
        _print_json([g.as_dict() for g in groups])
        return
    if not groups:
        out.print("nothing suppressed" if suppressed else "no findings")
    for g in groups[:limit]:
        out.print(
            f"{g.id}  {g.action.upper():<6} {g.rule:<22} {g.detector:<22} {g.keyword or g.path_pattern}"
            f" {g.shape!r}: {g.findings} findings in {g.objects} objects, {g.devices} devices"
        )
    if len(groups) > limit:
        out.print(f"... and {len(groups) - limit} more groups (--limit)")
    if not suppressed:
        _print_faces(site, limit)


def _print_faces(site: Any, limit: int) -> None:
    from dicomhaven.pixels._series_complete import face_reviews

    for f in face_reviews(site)[:limit]:
        where = f" render {f.render}" if f.render else ""
        out.print(f"{f.series}  FACE   {f.kind:<6} {f.objects} objects:{where} {safe(f.reason)}")


@review_app.command("faces")
def review_faces(
    site_dir: SiteOption = DEFAULT_SITE,
    limit: Annotated[int, typer.Option(min=1, help="Series to show.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Head series a person must look at, once each with the reason: series held for
    review (a neck or rendered volume, a picture rendered from a head, slices that came
    after their series was decided) and the before/after render of each defaced series."""
    site = _open(site_dir)
    if as_json:
        from dicomhaven.pixels._series_complete import face_reviews

        _print_json([f.as_dict() for f in face_reviews(site)])
        return
    _print_faces(site, limit)


@review_app.command("decide")
def review_decide(
    group_id: Annotated[
        str, typer.Argument(help="The group's id (g-...), from 'dicomhaven review'.")
    ],
    allow: Annotated[
        bool, typer.Option("--allow/--fail", help="A false alarm (allow) or a real problem (fail).")
    ],
    reason: Annotated[str, typer.Option(help="Why: written into the rule and the audit log.")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
) -> None:
    """Decide a group once: the decision becomes a rule at the head of the site's review
    rules (SITE/rules/review.yaml). Run 'dicomhaven release' to apply it to held copies.
    Data managers only; audited."""
    from dicomhaven.scan._review import Decision
    from dicomhaven.services import review

    decision = Decision.ALLOW if allow else Decision.FAIL
    rule = review.decide(_caller(token), _open(site_dir), group_id, decision, reason)
    out.print(f"rule {rule['id']} ({rule['action']}) written to rules/review.yaml; "
              "run 'dicomhaven release' to apply it to held copies")  # fmt: skip


devices_app = typer.Typer(
    help="The device registry: which devices are trusted.", no_args_is_help=True
)
app.add_typer(devices_app, name="devices")


@devices_app.command("list")
def devices_list(site_dir: SiteOption = DEFAULT_SITE, as_json: JsonOption = False) -> None:
    """Every device seen, its trust state, how many of its copies the gate holds, and each
    kind of its objects whose trust a failed scan (or a data manager) revoked."""
    from dicomhaven.services import devices

    listed = devices.listing(_caller(None), _open(site_dir))
    if as_json:
        _print_json([device.as_dict() for device in listed])
        return
    for device in listed:
        d = device.record
        out.print(
            f"{d.id}  {d.state.value:<9} {d.modality:<4} {safe(d.manufacturer)} "
            f"{safe(d.model)} {safe(d.software)}: {device.held} held  ({safe(d.reason)})"
        )
        for k in device.revoked_kinds:
            out.print(f"    kind {k['kind']} revoked: {safe(k['cause'])}: {k['held']} held")


@devices_app.command("show")
def devices_show(
    device_id: Annotated[str, typer.Argument(help="The device's id (dev-...).")],
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    renders: Annotated[
        Path | None,
        typer.Option(
            "--renders", help="Write PNG renders of a sample of its held copies to this folder."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A device's record with its sealed attributes (serial number, station name), the
    findings on its outputs and, with --renders, pictures of a sample of its held copies:
    what a data manager reviews before trusting it. Audited."""
    from dicomhaven.services import devices

    report = devices.show(_caller(token), _open(site_dir), device_id, renders)
    if as_json:
        _print_json(report)
        return
    for key, value in report.items():
        if key == "revoked_kinds":
            out.print(f"revoked kinds: {len(value) or 'none'}")
            for k in value:
                out.print(f"  {k['kind']}: {safe(k['cause'])}: {k['held']} held")
        elif key == "findings":
            out.print(f"findings: {len(value) or 'none'}")
            for g in value:
                out.print(
                    f"  {g['id']} {g['action']} {g['rule']} at {g['keyword'] or g['tag_path']}: {g['findings']}"
                )
        else:
            out.print(f"{key}: {value}")


def _change_trust(
    site_dir: Path,
    selection: dict[str, Any],
    token: str | None,
    action: str,
    reason: str,
    kind: str | None,
    as_json: bool,
) -> None:
    from dicomhaven.scan._devices import DeviceSelection
    from dicomhaven.services import devices

    site = _open(site_dir)
    change = {"trust": devices.trust, "revoke": devices.revoke}[action](
        _caller(token), site, DeviceSelection(**selection), reason, kind
    )
    if as_json:
        _print_json(change.as_dict())
        return
    state = {"trust": "trusted", "revoke": "revoked"}[action]
    what = f"kind {kind} of " if kind else ""
    for device_id in change.devices:
        done = "is now" if device_id in change.changed else "was already"
        out.print(f"{what}device {device_id} {done} {state}")
    if len(change.devices) > 1:
        out.print(f"{len(change.changed)} of {len(change.devices)} devices changed")
    if action == "trust":
        out.print("run 'dicomhaven release' to release their held copies")


DeviceArgument = Annotated[
    str | None,
    typer.Argument(help="The device's id (dev-...); or select devices with the options."),
]
ManufacturerOption = Annotated[
    str | None,
    typer.Option(help="Every device of this manufacturer (as 'devices list' shows it)."),
]
ModelOption = Annotated[str | None, typer.Option(help="... and of this model.")]
SoftwareOption = Annotated[str | None, typer.Option(help="... and of these software versions.")]
EveryOption = Annotated[bool, typer.Option("--all", help="Every device in the registry.")]
KindOption = Annotated[
    str | None,
    typer.Option(help="Only this kind of their objects (as 'devices show' lists them)."),
]


@devices_app.command("trust")
def devices_trust(
    reason: Annotated[
        str, typer.Option(help="What was reviewed: kept with the device and audited.")
    ],
    device_id: DeviceArgument = None,
    manufacturer: ManufacturerOption = None,
    model: ModelOption = None,
    software: SoftwareOption = None,
    every: EveryOption = False,
    kind: KindOption = None,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trust a device (every kind of its objects) after reviewing a sample of its outputs;
    with --kind, trust one kind again after its cause is fixed. --manufacturer (--model,
    --software) or --all trust every matching device in one decision (exit 1 when none
    matches). Then 'dicomhaven release' releases their clean held copies. Data managers
    only; audited once."""
    selection = {"device": device_id, "manufacturer": manufacturer, "model": model,
                 "software": software, "every": every}  # fmt: skip
    _change_trust(site_dir, selection, token, "trust", reason, kind, as_json)


@devices_app.command("revoke")
def devices_revoke(
    reason: Annotated[str, typer.Option(help="Why: kept with the device and audited.")],
    device_id: DeviceArgument = None,
    manufacturer: ManufacturerOption = None,
    model: ModelOption = None,
    software: SoftwareOption = None,
    every: EveryOption = False,
    kind: KindOption = None,
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop trusting a device (with --kind, one kind of its objects; with --manufacturer,
    --model, --software or --all, every matching device): their next copies are held.
    Data managers only; audited once."""
    selection = {"device": device_id, "manufacturer": manufacturer, "model": model,
                 "software": software, "every": every}  # fmt: skip
    _change_trust(site_dir, selection, token, "revoke", reason, kind, as_json)


@app.command()
def release(
    site_dir: SiteOption = DEFAULT_SITE,
    device: Annotated[str | None, typer.Option(help="Only this device's held copies.")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide again about every copy the release gate holds, with today's rules and trust:
    each is scanned again and released (clean, device trusted) or kept. Data managers only;
    audited."""
    from dicomhaven.access import Action
    from dicomhaven.scan import release_held

    site = _open(site_dir)
    _authorised(
        site, token, Action.REVIEW_OUTPUTS, target=device or "all devices", reason="release"
    )
    summary = release_held(site.root, device=device)
    if as_json:
        _print_json(summary.as_dict())
        return
    outcomes = ", ".join(f"{n} {s}" for s, n in sorted(summary.outcomes.items())) or "nothing held"
    out.print(
        f"Release job {summary.job_id}: {summary.considered} held copies considered: {outcomes}"
    )
    _print_defaced(summary.defaced)


catalogue_app = typer.Typer(
    help="The catalogue of released objects: what researchers search.", no_args_is_help=True
)
app.add_typer(catalogue_app, name="catalogue")


@catalogue_app.command("rebuild")
def catalogue_rebuild(
    site_dir: SiteOption = DEFAULT_SITE,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Empty the catalogue and refill it from every released copy in store/ (after a
    failure to index, or a change of the vocabulary). Exits 1 when a copy could not be read."""
    from dicomhaven.services.catalogue import rebuild_catalogue

    with _progress(disabled=as_json) as bar:
        task = bar.add_task("indexing", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = rebuild_catalogue(_caller(token), _open(site_dir), advance)
    if as_json:
        _print_json(report.as_dict())
    else:
        out.print(
            f"catalogue rebuilt from {report.files} files: {report.instances} instances, "
            f"{report.series} series, {report.studies} studies"
        )
        for kind, count in sorted(report.failed.items()):
            err.print(f"  not indexed: {count} ({kind})")
    if report.failed:
        raise typer.Exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the app and turns dicomhaven errors into messages and exit codes.

    The process runs with umask 077 (``SITE_UMASK``), so every file any stage writes
    (held copies, renders, logs, the catalogue) is owner-only; the old umask is put back
    on return, for callers that run several commands in one process.
    """
    import os

    from dicomhaven._logging import route_library_warnings
    from dicomhaven._modes import SITE_UMASK

    previous_umask = os.umask(SITE_UMASK)
    try:
        # Library warnings quote values from files: into the log by kind, never the terminal.
        with route_library_warnings():
            app(args=list(argv) if argv is not None else None, prog_name="dicomhaven")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except DiskFull as exc:
        log.error("disk full", extra={"zones": exc.zones})
        err.print(f"error: {printable(exc)}")
        return EX_IOERR
    except (ConfigError, SiteError) as exc:
        err.print(f"error: {printable(exc)}")
        return 2
    except DicomHavenError as exc:
        err.print(f"error: {printable(exc)}")
        return 1
    except Exception as exc:
        # Never a traceback on the console: its text may quote a value from a file. The log
        # keeps the exception type and where it happened.
        from dicomhaven.pipeline._failures import is_disk_full

        if is_disk_full(exc):  # a write no zone-aware code wrapped: still named for what it is
            log.error("disk full", exc_info=True)
            err.print(
                f"error: disk full ({type(exc).__name__}): no space left on a file system "
                "this command writes to; free space, then run 'dicomhaven process'"
            )
            return EX_IOERR
        log.error("internal error", exc_info=True)
        err.print(f"internal error ({type(exc).__name__}); please report it with the site's log")
        return 70
    finally:
        if "dicomhaven.catalogue" in sys.modules:  # only a command that opened a database
            sys.modules["dicomhaven.catalogue"].dispose_engines()
        os.umask(previous_umask)
    return 0


if __name__ == "__main__":
    sys.exit(main())
