"""The settings registry: one place that names every setting, its type, default and help.

The same registry feeds the site's settings file (``dicomhaven.yaml``), the environment
variables (``DICOMHAVEN_<NAME>``), ``dicomhaven settings`` and ``docs/settings.md``.
Precedence, lowest first: defaults, the site's settings file, environment variables.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from dicomhaven._yaml import read_yaml
from dicomhaven.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MAX_PIXEL_BYTES_DEFAULT",
    "SETTINGS_FILE",
    "LogFormat",
    "LogLevel",
    "SettingInfo",
    "Settings",
    "check_ae_title",
    "load_settings",
    "registry",
    "render_markdown",
    "render_settings_file",
    "split_allow_entry",
]

ENV_PREFIX = "DICOMHAVEN_"
#: Default of the setting ``max_pixel_bytes`` (the pixel codec's limit outside a site).
MAX_PIXEL_BYTES_DEFAULT = 1 << 30
SETTINGS_FILE = "dicomhaven.yaml"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_ae_title(value: str) -> str:
    """An Application Entity title as PS3.5 allows it (1-16 characters of the default
    repertoire, no backslash or control character, not all spaces), without padding."""
    title = value.strip(" ")
    if not title or len(title) > 16:
        raise ValueError(f"an AE title has 1 to 16 characters, not {len(title)}")
    if any(not (0x20 <= ord(c) < 0x7F) or c == "\\" for c in title):
        raise ValueError(
            "an AE title may hold only printable ASCII characters other than backslash"
        )
    return title


def split_allow_entry(entry: str) -> tuple[str, str | None]:
    """``AE`` or ``AE@host`` (the last ``@`` starts the host: an IP address or host name)."""
    title, at, host = entry.rpartition("@")
    if not at:
        return check_ae_title(entry), None
    host = host.strip()
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError(
                "expected AE or AE@host, where host is an IP address or a host name"
            ) from None
    return check_ae_title(title), host


def _allow_entry(entry: str) -> str:
    title, host = split_allow_entry(entry)
    return title if host is None else f"{title}@{host}"


def _regular_expression(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    return value


class Settings(BaseModel):
    """Every setting of a site. Field descriptions are the help text shown everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the catalogue database. Empty means the site's own SQLite file "
            "(catalogue/catalogue.db); for a site server use "
            "postgresql+psycopg://user@host/dbname."
        ),
    )
    vault_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the pseudonym vault, a database apart from the catalogue. Empty "
            "means the site's own SQLite file (vault/vault.db); for a site server use a "
            "separate PostgreSQL database."
        ),
    )
    vault_key_file: str = Field(
        default="",
        description=(
            "File holding the vault's 32-byte master key; keep it on another volume than the "
            "vault. Empty means keys/vault.key in the site. The environment variable "
            "DICOMHAVEN_VAULT_KEY (base64) overrides the file."
        ),
    )
    nhs_issuers: tuple[str, ...] = Field(
        default=("NHS", "NHS NUMBER", "2.16.840.1.113883.2.1.4.1"),
        description=(
            "Values of Issuer of Patient ID (0010,0021) that mark a Patient ID as an NHS "
            "number (compared without regard to case)."
        ),
    )
    hospital_number_patterns: tuple[Annotated[str, AfterValidator(_regular_expression)], ...] = (
        Field(
            default=(r"[A-Z]{1,3}[0-9]{6,9}",),
            description=(
                "Shapes of the site's local hospital numbers (regular expressions, matched as "
                "whole words, case-insensitive): the scanner fails any text of that shape, "
                "whoever's number it is, as it fails any NHS or CHI number."
            ),
        )
    )
    chi_issuers: tuple[str, ...] = Field(
        default=("CHI", "CHI NUMBER"),
        description="Values of Issuer of Patient ID that mark a Patient ID as a CHI number.",
    )
    deid_profile: str = Field(
        default="limited-access",
        description=(
            "De-identification profile of the pipeline's header stage, which makes the site's "
            "limited-access copies: a built-in name (limited-access, publication) or a YAML file."
        ),
    )
    deid_layers: str = Field(
        default="",
        description=(
            "A layers file (YAML) of modality and device profiles composed on top of "
            "deid_profile for the objects they match; a relative path is read from the site "
            "folder. Empty: none."
        ),
    )
    device_gate: bool = Field(
        default=True,
        description=(
            "Release gate: hold the outputs of an imaging device until a data manager has "
            "trusted it ('dicomhaven devices trust'); false releases clean outputs of any device."
        ),
    )
    scan_rules: tuple[str, ...] = Field(
        default=(),
        description=(
            "The site's own scanner rule files (YAML), composed before the shipped rules, "
            "first match wins; a relative path is read from the site folder."
        ),
    )
    scan_pixels: bool = Field(
        default=False,
        description=(
            "The release gate's scan also reads the pixels of risky images with OCR (the pixel "
            "stage has already verified them with a second engine; this is a third reading)."
        ),
    )
    pixel_sample_every: int = Field(
        default=25,
        ge=1,
        le=100_000,
        description=(
            "Plain CT, MR, PET and mammography slices of a device trusted for their kind: one "
            "in this many of each series is read with OCR, besides the first of a series, each "
            "whose text bands differ from the last clean read and each whose bands show "
            "writing; text found revokes the device's trust for the kind. 1 reads every slice."
        ),
    )
    pixel_sample_every_untrusted: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description=(
            "The same, while the device is not trusted for the kind (keep it at or below "
            "pixel_sample_every); 'dicomhaven release' also reads the first, middle and last "
            "held slice of each series before releasing them."
        ),
    )
    max_pixel_bytes: int = Field(
        default=MAX_PIXEL_BYTES_DEFAULT,
        ge=1 << 20,
        le=1 << 40,
        description=(
            "Largest decoded Pixel Data (Rows x Columns x Number of Frames x Samples per Pixel "
            "x Bits Allocated, in bytes) the pixel stage, deid and redact decode; an image "
            "declaring more is held with the reason before any decoder runs (other readers of "
            "pixels use the default). 1 GiB admits every single image and the usual "
            "multi-frames (a breast tomosynthesis or a 1,000-slice enhanced CT is under 0.7 GiB), "
            "while a redaction, which needs about four times the decoded size, stays near 4-5 GB "
            "per worker."
        ),
    )
    head_series_quiet_seconds: float = Field(
        default=300.0,
        ge=0,
        le=7 * 24 * 3600,
        description=(
            "A head CT or MR series the pixel stage holds is complete, and the pipeline "
            "defaces it itself, once no new slice of it has arrived for this many seconds "
            "(checked at the end of import, process, release and pull, and every 30 s while a "
            "receiver runs); a pulled series is complete as soon as every instance the PACS "
            "announced has arrived. 0: complete when the command that received it ends. "
            "'dicomhaven deface' decides every held series at once."
        ),
    )
    import_series_quiet_seconds: float = Field(
        default=0.0,
        ge=0,
        le=7 * 24 * 3600,
        description=(
            "The quiet period of a held head series whose slices all came by folder import "
            "(instead of 'head_series_quiet_seconds'). 0: complete when the import that read "
            "it ends, since a folder holds what it holds; raise it when one series is "
            "imported from several folders in turn."
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Worker processes for pipeline work when --workers is not given; 1 runs inline.",
    )
    ledger_batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description=(
            "Objects recorded in the ledger per database transaction during an import. Larger "
            "is faster; an interrupted import simply re-imports the uncommitted batch."
        ),
    )
    intake_fsync: bool = Field(
        default=True,
        description=(
            "Flush every file written to the intake zone to disk before it is recorded in the "
            "ledger, so a power cut cannot lose an object the ledger says it has."
        ),
    )
    scp_ae_title: Annotated[str, AfterValidator(check_ae_title)] = Field(
        default="DICOMHAVEN",
        description=(
            "AE title of the DICOM receiver (dicomhaven scp); associations calling another "
            "AE title are rejected."
        ),
    )
    scp_allow: tuple[Annotated[str, AfterValidator(_allow_entry)], ...] = Field(
        default=(),
        description=(
            "Calling AE titles the DICOM receiver accepts, each as AE (from any host) or "
            "AE@host (an IP address or host name); every other caller is rejected. "
            "dicomhaven scp --allow adds to this list."
        ),
    )
    scp_max_associations: int = Field(
        default=8,
        ge=1,
        le=256,
        description=(
            "Associations the DICOM receiver serves at once; one more is rejected as "
            "'local limit exceeded' (transient), so the sender retries later."
        ),
    )
    pacs_host: str = Field(
        default="",
        description=(
            "Host (IP address or name) of the PACS that dicomhaven pull queries and retrieves "
            "from; --pacs-host overrides it."
        ),
    )
    pacs_port: int = Field(
        default=104, ge=1, le=65535, description="DICOM port of the PACS that dicomhaven pull uses."
    )
    pacs_ae_title: Annotated[str, AfterValidator(check_ae_title)] = Field(
        default="PACS", description="AE title of the PACS that dicomhaven pull calls."
    )
    pull_ae_title: str = Field(
        default="",
        description=(
            "Our calling AE title for C-FIND and C-MOVE; empty means scp_ae_title. The PACS must "
            "know it (with our host)."
        ),
    )
    pull_destination: str = Field(
        default="",
        description=(
            "C-MOVE destination: the AE title the PACS knows our receiver (dicomhaven scp) by; "
            "empty means scp_ae_title."
        ),
    )
    pull_max_moves: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "Retrievals (C-MOVE associations) a pull runs at once. Keep it low: a clinical "
            "PACS serves the wards first."
        ),
    )
    pull_pause_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="Pause after each retrieval before the next one starts, to spare the PACS.",
    )
    pull_max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Attempts per series before a pull reports it failed; each retry moves only the "
            "instances still missing."
        ),
    )
    pull_backoff_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description=(
            "Wait before the first retry of a series; each further retry waits twice as long "
            "(capped at 10 minutes)."
        ),
    )
    directory_threshold: int = Field(
        default=10,
        ge=2,
        description=(
            "Small-number suppression: a directory cell counting fewer patients than this is "
            "published without a number."
        ),
    )
    directory_rounding: int = Field(
        default=5,
        ge=1,
        description="Directory counts are published rounded to the nearest multiple of this.",
    )
    directory_public: bool = Field(
        default=False,
        description="Whether the directory's published counts may be browsed without signing in.",
    )
    log_level: LogLevel = Field(default=LogLevel.INFO, description="Lowest level written to logs.")
    log_format: LogFormat = Field(
        default=LogFormat.JSON,
        description="Format of the site's log file logs/dicomhaven.log: json (one object a line) or text.",
    )


@dataclass(frozen=True)
class SettingInfo:
    """One row of the registry, as shown by ``dicomhaven settings`` and the docs."""

    name: str
    type: str
    default: Any
    help: str

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _type_name(annotation: Any) -> str:
    if getattr(annotation, "__origin__", None) is tuple:
        return "list of str (environment: comma-separated)"
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "one of " + ", ".join(m.value for m in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, StrEnum) else value


def registry() -> list[SettingInfo]:
    """The settings registry, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append(
            SettingInfo(
                name=name,
                type=_type_name(field.annotation),
                default=_plain(field.default),
                help=field.description or "",
            )
        )
    return rows


def _read_settings_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    data, lines = read_yaml(path, "settings file")
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting names to values")
    return data, lines


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    known = {info.env_var: info for info in registry()}
    values: dict[str, Any] = {}
    for key, value in environ.items():
        if key in known:
            info = known[key]
            is_list = isinstance(info.default, list)
            values[info.name] = (
                [v.strip() for v in value.split(",") if v.strip()] if is_list else value
            )
    return values


def load_settings(site_dir: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings of a site: defaults, then ``SITE/dicomhaven.yaml``, then ``DICOMHAVEN_*``.

    Unknown keys and bad values are refused with a message naming the file and line (or the
    environment variable) and the expected type.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    path: Path | None = None
    if site_dir is not None and (site_dir / SETTINGS_FILE).exists():
        path = site_dir / SETTINGS_FILE
        values, lines = _read_settings_file(path)
    env_values = _from_environment(environ)
    merged = {**values, **env_values}
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            item = f"{name}[{error['loc'][1]}]" if len(error["loc"]) > 1 else name
            if name in env_values:
                where = f"environment variable {ENV_PREFIX}{name.upper()}"
            elif path is not None:
                where = f"{path}:{lines.get(item, lines.get(name, 1))}"
            else:
                where = "settings"
            if error["type"] == "extra_forbidden":
                known = ", ".join(info.name for info in registry())
                problems.append(f"{where}: unknown setting '{name}' (known settings: {known})")
            else:
                problems.append(f"{where}: setting '{name}': {error['msg']}")
        raise ConfigError("; ".join(problems)) from None


def _iter_help_lines(text: str, width: int = 88) -> Iterator[str]:
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            yield line
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        yield line


def render_settings_file() -> str:
    """The commented settings file ``dicomhaven init`` writes: every setting at its default."""
    out = [
        "# dicomhaven site settings. Every setting is listed at its default.",
        f"# Environment variables {ENV_PREFIX}<NAME> override this file.",
        "",
    ]
    for info in registry():
        out.extend(f"# {line}" for line in _iter_help_lines(info.help))
        out.append(yaml.safe_dump({info.name: info.default}, default_flow_style=False).strip())
        out.append("")
    return "\n".join(out)


def render_markdown() -> str:
    """``docs/settings.md``, generated from the registry so the two cannot drift apart."""
    out = [
        "# Settings",
        "",
        "Generated from the settings registry by `dicomhaven settings --markdown`; a test keeps "
        "this page in step with the code.",
        "",
        "Each site reads, lowest precedence first: the defaults below, the site's "
        f"`{SETTINGS_FILE}`, then environment variables `{ENV_PREFIX}<NAME>`.",
        "",
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for info in registry():
        default = f"`{json.dumps(info.default)}`" if info.default != "" else "(empty)"
        out.append(f"| `{info.name}` | `{info.env_var}` | {info.type} | {default} | {info.help} |")
    out.append("")
    return "\n".join(out)
