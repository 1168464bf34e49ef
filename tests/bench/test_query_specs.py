"""The bench's `_q` mix holds the shapes issue 16 sets targets for, with right totals."""

from __future__ import annotations

from bindle_bench.invoices import QUERY_GROUPS, corpus_name
from bindle_bench.queries import STRICT_ONE, TERM_PAGE, query_specs

INVOICES = 10_000


def test_the_mix_has_a_strict_one_match_and_a_page_of_a_hundred() -> None:
    specs = list(query_specs(400, INVOICES))
    assert {spec.kind for spec in specs} == {STRICT_ONE, TERM_PAGE, "term+range", "empty,l=50"}
    pages = [spec for spec in specs if spec.kind == TERM_PAGE]
    assert {spec.params["l"] for spec in pages} == {"50"}
    assert {spec.expected_total for spec in pages} == {INVOICES // QUERY_GROUPS}
    strict = [spec for spec in specs if spec.kind == STRICT_ONE]
    assert len({spec.params["q"] for spec in strict}) == len(strict)
    names = [corpus_name(index) for index in range(INVOICES)]
    for spec in strict[:25]:
        assert spec.expected_total == 1
        assert spec.params["strict"] == "true"
        assert sum(spec.params["q"] in name for name in names) == 1
