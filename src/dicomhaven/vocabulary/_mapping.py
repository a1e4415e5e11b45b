"""The vocabulary's mapping files: what free text and local codes mean, as data.

The shipped ``default.yaml`` is read first, then a site's ``SITE/vocabulary.yaml`` when
there is one; the site file adds rules, replaces a default rule by giving its ``name``
again, or removes one with ``{name: ..., enabled: false}``. Every problem is a
:class:`~dicomhaven.errors.ConfigError` naming the file and line::

    version: 1                      # optional; 1 is the only version
    standard:                       # what the standard says, and its priority (null: off)
      anatomic_region_sequence: 1000  # an SCT (or SNOMED RT) code of CID 4031 / Annex L
      body_part_examined: 900         # a Body Part Examined that is an Annex L term
      procedure_code_sequence: 1000   # a code of PS3.16's imaging procedure CIDs
      body_part_words: 50             # text holding an Annex L term or a body part's meaning
      procedure_words: 50             # text holding a procedure code's meaning
    procedure_codes:                # codes outside those CIDs that rules may give
      - {code: "99LOCAL CTHEAD", meaning: "CT head"}
    ignore: [ROUTINE, AXIAL]        # words that name no body part nor procedure
    rules:
      - name: ct-head               # unique; a site file's rule of this name replaces it
        priority: 200               # higher first (default 100); then site, then file order
        words: [CT HEAD, HEAD CT]   # whole words and phrases, any case and punctuation
        regex: "\\bcrani\\w*"       # searched in the value as words (case folded, spaced)
        codes: ["99ORION CTHD"]     # Anatomic Region or Procedure Code Sequence items
        modality: [CT]              # only for these modalities
        attributes: [StudyDescription]  # only in these attributes (default: all of them)
        body_part: HEAD             # an Annex L term, or an SCT code value of CID 4031 / Annex L
        procedure: LN 24725-4       # "SCHEME VALUE": a standard or declared procedure code

A rule needs something to match (words, regex, codes, or a modality alone) and something
to give (body_part, procedure or both). The standard's words are rules too, made from the
tables (one per code and phrase, after the files' rules of the same priority, the phrase
of more words first): ``Knee``, ``LSPINE``, ``Lumbar spine``, ``Head CT``, ``Mammography``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dicomhaven.errors import ConfigError
from dicomhaven.vocabulary import _body_parts, _procedures
from dicomhaven.vocabulary._codes import (
    SNOMED_CT,
    Code,
    body_part_code,
    body_part_for_term,
    defined_term,
    procedure_code,
)
from dicomhaven.vocabulary._words import phrase

__all__ = [
    "CODE_SEQUENCES",
    "DEFAULT_FILE",
    "SITE_FILE",
    "TEXT_ATTRIBUTES",
    "Rule",
    "Standard",
    "Vocabulary",
    "default_vocabulary",
    "load_vocabulary",
    "site_vocabulary",
]

DEFAULT_FILE = Path(__file__).with_name("default.yaml")
#: The site's own mapping file, in the site folder.
SITE_FILE = "vocabulary.yaml"
#: The attributes whose text rules read, by DICOM keyword; for the Procedure Code
#: Sequence, its items' Code Meanings.
TEXT_ATTRIBUTES = (
    "BodyPartExamined",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "ProcedureCodeSequence",
)
#: The code sequences whose items ``codes:`` and the standard's codes are looked for in.
CODE_SEQUENCES = ("AnatomicRegionSequence", "ProcedureCodeSequence")
DEFAULT_PRIORITY = 100
_PROCEDURE_WORDS = 3  # the kind of a standard rule made from a procedure's meaning
_TOP_KEYS = frozenset({"version", "standard", "procedure_codes", "ignore", "rules"})
_RULE_KEYS = frozenset(
    {"name", "enabled", "priority", "words", "regex", "codes", "modality", "attributes",
     "body_part", "procedure"}
)  # fmt: skip
_STANDARD_KEYS = (
    "anatomic_region_sequence",
    "body_part_examined",
    "procedure_code_sequence",
    "body_part_words",
    "procedure_words",
)
_SCHEME = re.compile(r"[A-Za-z0-9_.\-]{1,16}")
_MODALITY = re.compile(r"[A-Z0-9_ ]{1,16}")
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_Lines = dict[tuple[object, ...], int]


@dataclass(frozen=True)
class Rule:
    """One mapping rule, parsed: ``words`` as phrases (see :mod:`._words`), ``codes`` as
    (upper-case scheme, value) pairs; ``where`` is its file name and line."""

    name: str
    where: str
    priority: int
    words: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    codes: frozenset[tuple[str, str]] = frozenset()
    modalities: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset(TEXT_ATTRIBUTES)
    body_part: Code | None = None
    procedure: Code | None = None

    @property
    def conditional_only(self) -> bool:
        """True when the rule matches on its modality alone."""
        return not (self.words or self.regex or self.codes)


@dataclass(frozen=True)
class Standard:
    """The priority of what the standard itself says (None: not used): codes the header
    holds, and the standard's own words for body parts and procedures in its text."""

    anatomic_region_sequence: int | None = 1000
    body_part_examined: int | None = 900
    procedure_code_sequence: int | None = 1000
    body_part_words: int | None = 50
    procedure_words: int | None = 50


@dataclass(frozen=True)
class Index:
    """The rules compiled for matching: rule positions by phrase, by code, by kind."""

    phrases: Mapping[str, tuple[int, ...]]
    first_words: frozenset[str]
    longest: int
    regexes: tuple[tuple[int, re.Pattern[str]], ...]
    codes: Mapping[tuple[str, str], tuple[int, ...]]
    unconditional: tuple[int, ...]
    known: frozenset[str]  # words that alone make a rule match, or are ignored


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The loaded mapping: rules in the order they are tried, the standard's priorities,
    the ignored words, the files read and a SHA-256 of their bytes (record it beside
    whatever the vocabulary normalised)."""

    rules: tuple[Rule, ...]
    standard: Standard
    ignore: frozenset[str]
    files: tuple[str, ...]
    digest: str
    index: Index = field(repr=False)


@dataclass
class _Document:
    path: Path
    raw: bytes
    data: dict[str, Any]
    lines: _Lines

    def where(self, *path: object) -> str:
        """``file:line`` of the deepest part of ``path`` the file has a line for."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)

    def fail(self, path: tuple[object, ...], message: str) -> ConfigError:
        return ConfigError(f"{self.where(*path)}: {message}")


def load_vocabulary(site_file: Path | None = None) -> Vocabulary:
    """The shipped defaults, then ``site_file`` (which must exist when given) over them."""
    documents = [_read(DEFAULT_FILE)]
    if site_file is not None:
        documents.append(_read(site_file))
    return _build(documents)


def site_vocabulary(site_root: Path) -> Vocabulary:
    """A site's vocabulary: the defaults, and ``SITE/vocabulary.yaml`` when it exists."""
    path = site_root / SITE_FILE
    return load_vocabulary(path if path.exists() else None)


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The shipped vocabulary, loaded once."""
    return load_vocabulary()


def _read(path: Path) -> _Document:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"vocabulary file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"vocabulary file {path} cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    loader = _LOADER(text)
    try:  # one parse: the nodes give the lines, their construction the data
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        lines: _Lines = {}
        if node is not None:
            _walk(node, (), lines, path, set())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a vocabulary file") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:1: a vocabulary file is a mapping of {', '.join(sorted(_TOP_KEYS))}"
        )
    return _Document(path, raw, data, lines)


def _walk(
    node: yaml.Node, path: tuple[object, ...], lines: _Lines, file: Path, seen: set[int]
) -> None:
    """Record the 1-based line of every key and item under ``path``; a key given twice in
    one mapping is an error (YAML would keep the last one silently). A node reached again
    through an alias is walked once: a file of nested aliases is not walked exponentially."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[object] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in keys:
                raise ConfigError(f"{file}:{key_node.start_mark.line + 1}: '{key}' given twice")
            keys.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, file, seen)


def _build(documents: list[_Document]) -> Vocabulary:
    standard = Standard()
    declared: dict[tuple[str, str], Code] = {}
    ignore: set[str] = set()
    for document in documents:
        _check_keys(document, (), document.data, _TOP_KEYS, "a vocabulary file")
        version = document.data.get("version", 1)
        if version != 1 or isinstance(version, bool):
            raise document.fail(("version",), f"version {version!r} is unknown: write version: 1")
        standard = _standard(document, standard)
        declared.update(_declared(document))
        ignore |= _ignore(document)
    chosen: dict[str, tuple[Rule, int, int]] = {}
    for tier, document in enumerate(documents):
        for name, line, rule in _rules(document, declared):
            if rule is None:
                if chosen.pop(name, None) is None:
                    raise ConfigError(
                        f"{document.path}:{line}: no earlier rule named '{name}' to disable"
                    )
            else:
                chosen[name] = (rule, tier, line)
    # Higher priority first; at equal priority a site's rule before a default, then file
    # order, then the standard's words.
    keyed = [((-rule.priority, -tier, line), rule) for rule, tier, line in chosen.values()]
    keyed += [((-rule.priority, 1, n), rule) for n, rule in enumerate(_standard_rules(standard))]
    rules = tuple(rule for _key, rule in sorted(keyed, key=lambda entry: entry[0]))
    digest = hashlib.sha256()
    for document in documents:
        digest.update(len(document.raw).to_bytes(8, "big") + document.raw)
    return Vocabulary(
        rules=rules,
        standard=standard,
        ignore=frozenset(ignore),
        files=tuple(str(d.path) for d in documents),
        digest=digest.hexdigest(),
        index=_index(rules, frozenset(ignore)),
    )


def _check_keys(
    document: _Document,
    path: tuple[object, ...],
    data: dict[Any, Any],
    allowed: frozenset[str],
    what: str,
) -> None:
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise document.fail(
                (*path, key),
                f"unknown key '{key}' in {what} (expected: {', '.join(sorted(allowed))})",
            )


def _standard(document: _Document, current: Standard) -> Standard:
    section = document.data.get("standard")
    if section is None:
        return current
    if not isinstance(section, dict):
        raise document.fail(("standard",), f"standard is a mapping of {', '.join(_STANDARD_KEYS)}")
    _check_keys(document, ("standard",), section, frozenset(_STANDARD_KEYS), "standard")
    values = {key: getattr(current, key) for key in _STANDARD_KEYS}
    for key, value in section.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise document.fail(
                ("standard", key), f"{key} is a priority (a whole number) or null, not {value!r}"
            )
        values[key] = value
    return Standard(**values)


def _declared(document: _Document) -> dict[tuple[str, str], Code]:
    found: dict[tuple[str, str], Code] = {}
    for index, item in enumerate(_list(document, ("procedure_codes",))):
        at = ("procedure_codes", index)
        if not isinstance(item, dict):
            raise document.fail(at, "a procedure code is a mapping of code and meaning")
        _check_keys(document, at, item, frozenset({"code", "meaning"}), "a procedure code")
        key = _code_key(document, (*at, "code"), item.get("code"))
        meaning = item.get("meaning")
        if not isinstance(meaning, str) or not meaning.strip() or len(meaning) > 64:
            raise document.fail(
                (*at, "meaning"), "a procedure code needs a meaning: text of 1 to 64 characters"
            )
        standard = procedure_code(*key)
        if standard is not None:
            raise document.fail(
                (*at, "code"),
                f"'{key[0]} {key[1]}' is a standard procedure code ({standard.meaning}): "
                "give it in rules without declaring it",
            )
        if key in found:
            raise document.fail((*at, "code"), f"'{key[0]} {key[1]}' declared twice")
        found[key] = Code(key[0], key[1], meaning.strip())
    return found


def _ignore(document: _Document) -> set[str]:
    ignored: set[str] = set()
    for index, text in enumerate(_strings(document, ("ignore",))):
        word = phrase(text)
        if not word or " " in word:
            raise document.fail(
                ("ignore", index), f"ignore lists single words; '{text}' is not one"
            )
        ignored.add(word)
    return ignored


def _rules(
    document: _Document, declared: Mapping[tuple[str, str], Code]
) -> list[tuple[str, int, Rule | None]]:
    """Each rule of one file as (name, line, rule), the rule None for a disable entry."""
    found: list[tuple[str, int, Rule | None]] = []
    names: set[str] = set()
    for index, item in enumerate(_list(document, ("rules",))):
        at: tuple[object, ...] = ("rules", index)
        if not isinstance(item, dict):
            raise document.fail(at, "a rule is a mapping: a name, what it matches, what it gives")
        _check_keys(document, at, item, _RULE_KEYS, "a rule")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise document.fail((*at, "name"), "a rule needs a name (text)")
        if name in names:
            raise document.fail((*at, "name"), f"a second rule named '{name}'")
        names.add(name)
        line = document.lines[at]
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise document.fail((*at, "enabled"), f"enabled is true or false, not {enabled!r}")
        if not enabled:
            if set(item) - {"name", "enabled"}:
                raise document.fail(at, "a rule with enabled: false only names the rule to remove")
            found.append((name, line, None))
            continue
        found.append((name, line, _rule(document, at, item, name, declared)))
    return found


def _rule(
    document: _Document,
    at: tuple[object, ...],
    item: dict[str, Any],
    name: str,
    declared: Mapping[tuple[str, str], Code],
) -> Rule:
    priority = item.get("priority", DEFAULT_PRIORITY)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise document.fail((*at, "priority"), f"priority is a whole number, not {priority!r}")
    phrases = []
    for index, text in enumerate(_strings(document, (*at, "words"))):
        words = phrase(text)
        if not words:
            raise document.fail((*at, "words", index), f"'{text}' has no letters or digits")
        phrases.append(words)
    regex = item.get("regex")
    pattern = None
    if regex is not None:
        if not isinstance(regex, str):
            raise document.fail((*at, "regex"), f"regex is text, not {regex!r}")
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise document.fail((*at, "regex"), f"not a regular expression ({exc})") from None
    codes = frozenset(
        _code_key(document, (*at, "codes", index), text)
        for index, text in enumerate(_strings(document, (*at, "codes")))
    )
    modalities = set()
    for index, text in enumerate(_strings(document, (*at, "modality"))):
        modality = text.strip().upper()
        if not _MODALITY.fullmatch(modality):
            raise document.fail((*at, "modality", index), f"'{text}' is not a Modality value")
        modalities.add(modality)
    attributes = set()
    for index, text in enumerate(_strings(document, (*at, "attributes"))):
        if text not in TEXT_ATTRIBUTES:
            raise document.fail(
                (*at, "attributes", index),
                f"'{text}' is not an attribute rules read (expected: {', '.join(TEXT_ATTRIBUTES)})",
            )
        attributes.add(text)
    rule = Rule(
        name=name,
        where=f"{document.path.name}:{document.lines[at]}",
        priority=priority,
        words=tuple(phrases),
        regex=pattern,
        codes=codes,
        modalities=frozenset(modalities),
        attributes=frozenset(attributes or TEXT_ATTRIBUTES),
        body_part=_body_part(document, (*at, "body_part"), item.get("body_part")),
        procedure=_procedure(document, (*at, "procedure"), item.get("procedure"), declared),
    )
    if rule.conditional_only and not rule.modalities:
        raise document.fail(
            at, f"rule '{name}' matches nothing: give words, regex, codes or modality"
        )
    if rule.body_part is None and rule.procedure is None:
        raise document.fail(at, f"rule '{name}' gives nothing: give body_part, procedure or both")
    return rule


def _body_part(document: _Document, at: tuple[object, ...], value: object) -> Code | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise document.fail(at, f"body_part is an Annex L term or an SCT code value, not {value!r}")
    text = value.strip()
    code = body_part_code(text) if text.isdigit() else body_part_for_term(text)
    if code is None:
        raise document.fail(
            at,
            f"unknown body-part code '{text}' (not in CID 4031 nor PS3.16 Annex L: give an SCT "
            "code value such as 69536005, or a Body Part Examined term such as HEAD)",
        )
    return code


def _procedure(
    document: _Document,
    at: tuple[object, ...],
    value: object,
    declared: Mapping[tuple[str, str], Code],
) -> Code | None:
    if value is None:
        return None
    key = _code_key(document, at, value)
    code = declared.get(key) or procedure_code(*key)
    if code is None:
        cids = ", ".join(map(str, _procedures.CIDS))
        raise document.fail(
            at,
            f"unknown procedure code '{key[0]} {key[1]}' (not in PS3.16's imaging procedure "
            f"CIDs {cids}; declare it under procedure_codes)",
        )
    return code


def _code_key(document: _Document, at: tuple[object, ...], value: object) -> tuple[str, str]:
    """(upper-case scheme, value) of a code written ``SCHEME VALUE``."""
    parts = value.split(None, 1) if isinstance(value, str) else []
    if len(parts) != 2 or not _SCHEME.fullmatch(parts[0]) or len(parts[1].strip()) > 64:
        raise document.fail(
            at,
            f"{value!r} is not a code: write the coding scheme designator, a space and the "
            "code value, as 'LN 24725-4'",
        )
    return parts[0].upper(), parts[1].strip()


def _list(document: _Document, at: tuple[object, ...]) -> list[Any]:
    value: Any = document.data
    for key in at:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            value = None
    if value is None:
        return []
    if not isinstance(value, list):
        raise document.fail(at, f"{at[-1]} is a list, not {type(value).__name__}")
    return value


def _strings(document: _Document, at: tuple[object, ...]) -> list[str]:
    items = _list(document, at)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise document.fail((*at, index), f"expected text, not {item!r} (quote it)")
    return items


def _standard_rules(standard: Standard) -> list[Rule]:
    """The standard's words as rules: each phrase of an Annex L term or meaning, or of a
    CID 4031 meaning, for its body part, and of a procedure meaning for its code; phrases
    of more words first, and for one phrase an Annex L term before a meaning."""
    # (phrase, code) -> (kind, name, where); kinds below _PROCEDURE_WORDS are body parts
    entries: dict[tuple[str, Code], tuple[int, str, str]] = {}

    def add(text: str, code: Code, kind: int, name: str, where: str) -> None:
        words = phrase(text)
        if words:
            entries.setdefault((words, code), (kind, name, where))

    if standard.body_part_words is not None:
        for term, (value, meaning, _paired) in _body_parts.TERMS.items():
            code = Code(SNOMED_CT, value, _body_parts.CODES[value][0])
            add(term, code, 0, term, "PS3.16 Annex L")
            add(meaning, code, 1, term, "PS3.16 Annex L")
        for value, (meaning, common) in _body_parts.CODES.items():
            if common:
                code = Code(SNOMED_CT, value, meaning)
                add(meaning, code, 2, defined_term(code) or f"SCT {value}", "PS3.16 CID 4031")
    if standard.procedure_words is not None:
        for (scheme, value), (meaning, cids) in _procedures.CODES.items():
            code = Code(scheme, value, meaning)
            add(meaning, code, _PROCEDURE_WORDS, f"{scheme} {value}", f"PS3.16 CID {cids[0]}")
    rules = []
    for (words, code), (kind, name, where) in sorted(
        entries.items(), key=lambda entry: (-entry[0][0].count(" "), entry[1][0], entry[0][0])
    ):
        body = kind < _PROCEDURE_WORDS
        priority = standard.body_part_words if body else standard.procedure_words
        assert priority is not None  # only kinds that are on were added
        rules.append(
            Rule(
                name=name,
                where=where,
                priority=priority,
                words=(words,),
                body_part=code if body else None,
                procedure=None if body else code,
            )
        )
    return rules


def _index(rules: tuple[Rule, ...], ignore: frozenset[str]) -> Index:
    phrases: dict[str, list[int]] = {}
    codes: dict[tuple[str, str], list[int]] = {}
    regexes: list[tuple[int, re.Pattern[str]]] = []
    unconditional: list[int] = []
    for rank, rule in enumerate(rules):
        for words in rule.words:
            phrases.setdefault(words, []).append(rank)
        for key in rule.codes:
            codes.setdefault(key, []).append(rank)
        if rule.regex is not None:
            regexes.append((rank, rule.regex))
        if rule.conditional_only:
            unconditional.append(rank)
    return Index(
        phrases={p: tuple(ranks) for p, ranks in phrases.items()},
        first_words=frozenset(p.split(" ", 1)[0] for p in phrases),
        longest=max((p.count(" ") + 1 for p in phrases), default=0),
        regexes=tuple(regexes),
        codes={key: tuple(ranks) for key, ranks in codes.items()},
        unconditional=tuple(unconditional),
        known=frozenset(p for p in phrases if " " not in p) | ignore,
    )
