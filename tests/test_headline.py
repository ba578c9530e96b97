"""The README's headline is what the committed records of the article study give, and the generator says a
study in progress is in progress."""

from __future__ import annotations

import re

import pytest

from focalbench.reports.headline import END, START, headline_markdown, replace_block
from focalbench.sweeps.reproduce import suite_of_sweep, suite_report
from tests.conftest import REPO

SWEEP = REPO / "results" / "article" / "sweeps" / "article"


@pytest.mark.skipif(
    not (SWEEP / "sweep.json").is_file(), reason="the article study's sweep folder is not committed"
)
def test_the_readme_headline_regenerates_from_the_committed_records():
    report = suite_report(suite_of_sweep(SWEEP), SWEEP)
    expected = headline_markdown(report, "results/article/sweeps/article")
    readme = (REPO / "README.md").read_text()
    block = re.search(re.escape(START) + r"\n(.*)\n" + re.escape(END), readme, re.S).group(1)
    assert block == expected, (
        "README.md: run python -m focalbench.reports.headline results/article/sweeps/article README.md"
    )


def test_replace_block_keeps_the_rest_and_needs_the_markers():
    text = f"a\n{START}\nold\n{END}\nb\n"
    assert replace_block(text, "new") == f"a\n{START}\nnew\n{END}\nb\n"
    with pytest.raises(ValueError, match="no <!-- article:start -->"):
        replace_block("no markers", "new")
