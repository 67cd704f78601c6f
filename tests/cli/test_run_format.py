"""The terminal table's figures: floats to 4 digits, long lists and dicts cut, deep nesting left to result.json."""

from __future__ import annotations

from convscope.cli.run import _fmt


def test_figures_are_short_and_nesting_is_left_to_the_file():
    assert _fmt(0.18166667222976685) == "0.1817"
    assert _fmt(list(range(8))) == "[0, 1, 2, 3, 4, 5, …]"
    assert _fmt({"a": 0.123456, "b": [1.0, 2.5]}) == "{a: 0.1235, b: [1, 2.5]}"
    assert _fmt({"s0": {"x": 1, "y": {"z": 2}}, "s1": {"x": 0.5}}) == "{s0: {… in result.json}, s1: {x: 0.5}}"
    assert _fmt({str(i): i for i in range(10)}).endswith("7: 7, …}")
