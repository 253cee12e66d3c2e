"""The comparison page in a real browser (Debian's Chromium driven by Selenium) against the real node.

`tbhns serve`'s app runs in a thread on a free loopback port with two systems over the toys fixture index
("trained" and "base": the same encoder, so the test needs no training) and a hand-made judgments file. The
test types a query, sees four columns, types the user of a personalized column (the server lists no users, its
default), sees the grades and each column's NDCG@10, and reloads the page's URL. It FAILS (never skips) when
Chromium or its driver is missing: `bash scripts/setup.sh` installs them. The screenshot goes to
$TBHNS_TEST_ARTIFACTS (default test-artifacts/).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.api.background import running_app
from tbhns_opensearch.api.compare import ComparedSystem, judgments_by_query
from tbhns_opensearch.eval.queries import LabelledQuery, load_labelled_queries, write_labelled_queries
from tbhns_opensearch.query import SearchClient
from tests.helpers import PERSONALIZATION, SLOT_CARS, TRAINS, Env, toys_search_env

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("TBHNS_TEST_ARTIFACTS", "test-artifacts"))
QUERY = "slot car racing set"


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder):  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


@pytest.fixture(scope="module")
def judged(env: Env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Hand-made grades for QUERY (slot cars 2, trains 0), written and read back as a labelled-queries JSONL."""
    grades = {pid: 2 for pid, p in env.products.items() if p.taxonomy_path[:2] == SLOT_CARS}
    grades |= {pid: 0 for pid, p in sorted(env.products.items()) if p.taxonomy_path[:2] == TRAINS}
    path = tmp_path_factory.mktemp("judgments") / "judgments.jsonl"
    write_labelled_queries(path, [LabelledQuery(QUERY, pid, grade) for pid, grade in grades.items()])
    return judgments_by_query(load_labelled_queries(str(path)))[QUERY]


@pytest.fixture(scope="module")
def server(env: Env, judged: dict[str, int], opensearch_config, encoder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings = ServeSettings(
        opensearch_config,
        alias=env.alias,
        users_index=env.users_index,
        warm=False,
        name="trained",
        judgments={QUERY: judged},
        systems=(ComparedSystem("base", env.alias, "all-MiniLM-L6-v2", env.users_index),),
    )
    base = SearchClient(
        opensearch_config, env.alias, encoder, users_index=env.users_index, personalization=PERSONALIZATION
    )
    with running_app(create_app(settings, search_client=env.search, clients={"base": base})) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "the browser test needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
        "run `bash scripts/setup.sh` as root, or `apt-get install chromium chromium-driver`"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _columns(browser: webdriver.Chrome, count: int) -> list:  # type: ignore[type-arg]
    WebDriverWait(browser, 30).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, "#results .column")) == count
            and QUERY in b.find_element(By.ID, "status").text
        )
    )
    return browser.find_elements(By.CSS_SELECTOR, "#results .column")


def _status(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.ID, "status").text


def test_the_page_compares_four_columns_with_grades_users_and_a_shareable_url(
    server: str, browser: webdriver.Chrome, judged: dict[str, int], env: Env
) -> None:
    browser.get(server + "/")
    WebDriverWait(browser, 30).until(lambda b: "system(s)" in _status(b))
    assert "2 system(s), users not listed (serve --list-users), judgments for 1 queries" in _status(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#users option")  # no user ids for any client to see
    assert browser.switch_to.active_element.get_attribute("id") == "query"  # keyboard first: the box has focus

    Select(browser.find_element(By.ID, "mode-1")).select_by_value("personalized")
    browser.find_element(By.ID, "user").send_keys("newbie")
    browser.find_element(By.ID, "query").send_keys(QUERY, Keys.ENTER)
    columns = _columns(browser, 4)
    headers = [column.find_element(By.TAG_NAME, "h2").text for column in columns]
    assert headers == ["bm25 · trained", "personalized · trained", "hybrid · trained", "hybrid · base"]
    assert "fallback:" in columns[1].find_element(By.CSS_SELECTOR, ".meta").text
    assert columns[1].find_element(By.CSS_SELECTOR, ".meta").text.startswith("semantic")
    for column in columns:
        assert "NDCG@10" in column.text
        hits = column.find_elements(By.CSS_SELECTOR, "li[data-product-id]")
        assert len(hits) == 10
        grades = [hit.find_element(By.CSS_SELECTOR, ".grade").text for hit in hits]
        for hit, grade in zip(hits, grades):
            expected = judged.get(hit.get_attribute("data-product-id"))
            assert grade == ("unjudged" if expected is None else f"grade {expected}")
    assert any(g == "grade 2" for g in grades)
    moves = columns[2].find_elements(By.CSS_SELECTOR, ".move")
    assert len(moves) == 10 and not columns[0].find_elements(By.CSS_SELECTOR, ".move")

    user = browser.find_element(By.ID, "user")
    user.clear()
    user.send_keys("slotcar-fan", Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda b: "as slotcar-fan" in _status(b))
    columns = _columns(browser, 4)
    assert "fallback" not in columns[1].find_element(By.CSS_SELECTOR, ".meta").text
    assert columns[1].find_element(By.CSS_SELECTOR, ".meta").text.startswith("personalized")

    url = browser.current_url
    assert (
        "query=slot+car+racing+set" in url and "column=personalized%3Atrained" in url and "user_id=slotcar-fan" in url
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "compare-page.png"))
    shown = [
        [hit.get_attribute("data-product-id") for hit in column.find_elements(By.CSS_SELECTOR, "li[data-product-id]")]
        for column in columns
    ]

    browser.get(url)  # a link reproduces the comparison
    columns = _columns(browser, 4)
    again = [
        [hit.get_attribute("data-product-id") for hit in column.find_elements(By.CSS_SELECTOR, "li[data-product-id]")]
        for column in columns
    ]
    assert again == shown
    assert browser.find_element(By.ID, "user").get_attribute("value") == "slotcar-fan"


def test_a_bad_filter_is_one_clear_line_on_the_page(server: str, browser: webdriver.Chrome) -> None:
    browser.get(server + "/?query=kite&column=bm25:trained&filter=price%3Dcheap")
    WebDriverWait(browser, 30).until(lambda b: "invalid request" in _status(b))
    assert "filter" in _status(browser) and "MIN..MAX" in _status(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .column")
