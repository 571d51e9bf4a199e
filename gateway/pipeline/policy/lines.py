"""Where a problem in a policy file is: the line a JSON pointer names. No I/O.

``gateway.pipeline.policy.document`` reports every problem with an RFC 6901 pointer into the parsed
document; an IG lead editing the YAML needs the line instead ("line 42: 'cjitt' is not a
known recipient"). The text is composed (not constructed) with PyYAML, so aliases are not
expanded, and the pointer is followed through the node graph.
"""

from __future__ import annotations

import re

import yaml

from gateway.domain.errors import Violation
from gateway.pipeline.policy.document import MAX_POLICY_BYTES

_STATED_LINE = re.compile(r"\bline (\d+)\b")


def line_of(text: str, pointer: str) -> int | None:
    """The line (from 1) of the value ``pointer`` names; of its nearest existing parent
    when it names something missing (a required key); None when the text cannot be read
    as YAML or is too large to read (then the problem itself says where)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    line = int(node.start_mark.line) + 1
    for token in _tokens(pointer):
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == token:
                    found, line = value, int(key.start_mark.line) + 1
                    break
        elif (isinstance(node, yaml.SequenceNode) and token.isdigit()
              and int(token) < len(node.value)):
            found = node.value[int(token)]
            line = int(found.start_mark.line) + 1
        if found is None:
            break
        node = found
    return line


def _tokens(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def located(text: str, violation: Violation) -> tuple[int | None, str]:
    """A violation's line and message: the line the message states (a YAML syntax error,
    a key given twice), else the line its pointer names."""
    stated = _STATED_LINE.search(violation.message)
    if stated is not None:
        return int(stated.group(1)), violation.message
    return line_of(text, violation.pointer), violation.message
