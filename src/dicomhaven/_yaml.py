"""Reading a YAML configuration file so that every error can name its file and line.

Settings, profiles, profile layers and device templates are all YAML files checked on
load; this is the one reader they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dicomhaven.errors import ConfigError

__all__ = ["read_yaml"]

#: libyaml's parser when PyYAML was built with it (about ten times faster than the pure
#: Python one, and every command reads its profile, settings and rules); the same safe
#: constructor and resolver either way.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, what: str) -> tuple[Any, dict[str, int]]:
    """The parsed document (None when the file is empty) and the 1-based line of each
    top-level key, and of each item of a top-level list as ``key[i]``.

    A missing file is "``what`` ``path`` not found"; invalid YAML names the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
        loader = _LOADER(text)
        try:  # one parse: the node tree gives the lines, its construction the data
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.SequenceNode):
                for index, item in enumerate(value_node.value):
                    lines[f"{key_node.value}[{index}]"] = item.start_mark.line + 1
    return data, lines
