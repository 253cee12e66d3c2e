from tbhns_opensearch.catalog.judgments import Judgment, graded_qrels
from tbhns_opensearch.eval.queries import query_key


def test_a_pair_judged_twice_keeps_its_highest_grade_in_either_order():
    high_first = [Judgment("drill", "p1", 3), Judgment("drill", "p1", 1), Judgment("drill", "p2", 0)]
    assert graded_qrels(high_first) == graded_qrels(reversed(high_first)) == {"drill": {"p1": 3, "p2": 0}}


def test_the_key_groups_spellings_of_one_query():
    judgments = [Judgment("LEGO  Duplo", "p1", 2), Judgment("lego duplo", "p2", 1), Judgment("lego", "p1", 1)]
    assert graded_qrels(judgments, key=query_key) == {"lego duplo": {"p1": 2, "p2": 1}, "lego": {"p1": 1}}
