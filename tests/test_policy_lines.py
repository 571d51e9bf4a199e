"""Where a policy problem is: the line a JSON pointer names (``gateway.pipeline.policy.lines``), as
the console's draft page lists problems for IG leads ("line 12: …")."""

from __future__ import annotations

from gateway.domain.errors import Violation
from gateway.pipeline.policy.lines import line_of, located

TEXT = """\
# a note
policy: demo
rules:
  - id: first
    effect: permit
    when:
      type: ra1_notice
      "a/b": x
  - &second
    id: second
    effect: forbid
copy: *second
"""


def test_a_pointer_names_the_line_of_its_key() -> None:
    assert line_of(TEXT, "/policy") == 2
    assert line_of(TEXT, "/rules/0/effect") == 5
    assert line_of(TEXT, "/rules/0/when/type") == 7
    assert line_of(TEXT, "/rules/0/when/a~1b") == 8  # RFC 6901 escapes
    assert line_of(TEXT, "/rules/1") == 9  # where its anchor opens it
    assert line_of(TEXT, "/copy/id") == 10  # through an alias, to the anchored node


def test_something_missing_is_found_at_its_nearest_parent() -> None:
    assert line_of(TEXT, "/rules/0/reason") == 4
    assert line_of(TEXT, "/rules/7") == 3
    assert line_of(TEXT, "") == 2


def test_unreadable_text_has_no_line_but_a_stated_one_is_used() -> None:
    assert line_of("rules: [\n", "/rules") is None
    assert line_of("", "/rules") is None
    stated = Violation("", "The file is not valid YAML at line 708, column 6.")
    assert located("rules: [", stated) == (708, stated.message)
    assert located(TEXT, Violation("/rules/1/effect", "Must be one of …")) == (
        11, "Must be one of …")
