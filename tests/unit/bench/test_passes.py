"""The bench's query passes: systems interleaved query by query in rotating order, runs and counts per system."""

from __future__ import annotations

from types import SimpleNamespace

from tbhns_opensearch.bench.passes import WARM_UP_QUERIES, SystemUnderTest, measure_qps, run_interleaved


class Recording:
    """A search that logs (system, query text, user) and answers one hit scored by the call's number."""

    def __init__(self, name: str, log: list[tuple[str, str, str | None]], personalization: str | None = None) -> None:
        self.name, self.log, self.personalization = name, log, personalization

    def search(self, text: str, user_id: str | None = None, mode: str = "bm25", k: int = 10) -> SimpleNamespace:
        self.log.append((self.name, text, user_id))
        falls_back = self.personalization is not None and user_id is None
        return SimpleNamespace(
            hits=[SimpleNamespace(id=f"{self.name}-{text}", score=float(len(self.log)))],
            fallback=falls_back,
            personalization=None if falls_back else self.personalization,
        )


def test_the_systems_take_turns_on_each_query_in_a_seeded_shuffled_order_after_a_warm_up_each() -> None:
    log: list[tuple[str, str, str | None]] = []
    texts = {f"q{i}": f"text {i}" for i in range(40)}
    user_of = {f"q{i}": f"u{i % 3}" for i in range(39)}  # q39: no user
    systems = [
        SystemUnderTest("a", Recording("a", log), "bm25"),
        SystemUnderTest("b", Recording("b", log), "semantic"),
        SystemUnderTest("c", Recording("c", log, "learned"), "personalized", user_of),
    ]
    runs = run_interleaved(systems, texts, depth=10)
    warm_up = [(name, f"text {i}") for name in "abc" for i in range(WARM_UP_QUERIES)]
    assert [(name, text) for name, text, _ in log[: len(warm_up)]] == warm_up
    timed = log[len(warm_up) :]
    turns = [tuple(name for name, _, _ in timed[i : i + 3]) for i in range(0, len(timed), 3)]
    assert all(sorted(turn) == ["a", "b", "c"] for turn in turns)  # every system once on each query
    assert [text for _, text, _ in timed] == [f"text {i}" for i in range(40) for _ in range(3)]
    follows = {(turn[i], turn[i + 1]) for turn in turns for i in range(2)}
    assert follows == {(x, y) for x in "abc" for y in "abc" if x != y}  # no system always runs after the same one
    assert len({turn[0] for turn in turns}) == 3
    log.clear()
    run_interleaved(systems, texts, depth=10)
    again = log[len(warm_up) :]
    assert [tuple(name for name, _, _ in again[i : i + 3]) for i in range(0, len(again), 3)] == turns  # seeded
    assert {user for name, _, user in timed if name != "c"} == {None}
    assert [user for name, _, user in timed if name == "c"] == [user_of.get(f"q{i}") for i in range(40)]
    for name in "abc":
        assert sorted(runs[name].run) == sorted(texts) and len(runs[name].latencies) == 40
        assert all(len(hits) == 1 for hits in runs[name].run.values())
        assert all(seconds >= 0 for seconds in runs[name].latencies)
    call_of_a_on_q2 = len(warm_up) + 6 + turns[2].index("a") + 1
    assert runs["a"].run["q2"] == {"a-text 2": float(call_of_a_on_q2)}  # the hit of a's own call on q2
    assert (runs["c"].fallbacks, dict(runs["c"].methods)) == (1, {"learned": 39})
    assert (runs["a"].fallbacks, dict(runs["a"].methods)) == (0, {})


def test_throughput_sends_every_query_once_with_its_user() -> None:
    log: list[tuple[str, str, str | None]] = []
    system = SystemUnderTest("c", Recording("c", log, "blend"), "personalized", {"q1": "u1"})
    qps = measure_qps(system, ["q1", "q2"], {"q1": "one", "q2": "two"}, clients=2, depth=5)
    assert qps > 0 and sorted(log) == [("c", "one", "u1"), ("c", "two", None)]


def test_a_query_is_warm_once_the_system_met_its_text_and_its_user() -> None:
    """Warm: no first encoding of the text and no first profile read of the user, for that system."""
    log: list[tuple[str, str, str | None]] = []
    texts = {f"w{i}": f"warm {i}" for i in range(WARM_UP_QUERIES)}
    texts |= {"q1": "milk", "q2": "milk", "q3": "eggs", "q4": "eggs", "q5": "milk", "q6": "u2"}
    user_of = {"q1": "u1", "q2": "u2", "q3": "u2", "q4": "u2", "q5": "u1", "q6": "u1"}
    plain = SystemUnderTest("plain", Recording("plain", log), "semantic", user_of)  # sent, but reads no profile
    personal = SystemUnderTest("personal", Recording("personal", log, "learned"), "personalized", user_of)
    runs = run_interleaved([plain, personal], texts, depth=10)
    warm_up = [True] * WARM_UP_QUERIES  # asked once untimed before
    assert runs["plain"].warm == [*warm_up, False, True, False, True, True, False]
    assert runs["personal"].warm == [*warm_up, False, False, False, True, True, False]  # "u2" the text is not user u2
    assert runs["personal"].warm_latencies == [
        seconds for seconds, warm in zip(runs["personal"].latencies, runs["personal"].warm) if warm
    ]
    assert len(runs["personal"].warm_latencies) == WARM_UP_QUERIES + 2
