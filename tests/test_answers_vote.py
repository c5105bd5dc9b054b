"""Answer extraction, normalisation and voting for Contemplating (pure functions, no model).
Run: `.venv/bin/pytest tests/test_answers_vote.py`."""

from __future__ import annotations

import pytest

from openmuse.assistant import AgentTrace
from openmuse.modes.contemplating import ContemplatingMode, waves
from openmuse.modes.contemplating.agents import answer_kind, requests, shares_prefix, specs
from openmuse.answers import extract, normalize, options, parse_grid
from openmuse.modes.contemplating.synthesis import agreement_line, decide
from openmuse.modes.contemplating.vote import settled, tail_confidence, vote
from openmuse.types import Message

Q_CHOICE = "What is the capital of Japan? (A) Osaka (B) Tokyo (C) Rome (D) Lima"


@pytest.mark.parametrize("raw", ["1,000", "1000.0", "$1000", "1000", " 1,000.00 "])
def test_numbers_are_one_answer(raw):
    assert normalize(raw, "number") == "1000"


@pytest.mark.parametrize("raw", ["(B)", "B", "B)", "b.", "Answer: B"])
def test_option_letters_are_one_answer(raw):
    assert extract(raw, Q_CHOICE) == "B"


def test_extraction_from_prose():
    assert extract("7 + 8 = 15. So the answer is 15.", "What is 7 + 8?", "number") == "15"
    assert extract("First 3, then 4 more.\nAnswer: $1,000.50", "", "number") == "1000.5"
    assert extract("The capital of Japan is Tokyo.", Q_CHOICE) == "B"  # names the option
    assert extract("The answer is \\boxed{42}.", "", "number") == "42"
    assert extract("", Q_CHOICE) is None
    assert extract("I do not know.", "What is 2 + 2?", "number") is None
    assert extract("Paris is the capital of France. It is big.", "What is the capital of France?") == "paris is capital of france"


def test_options_one_a_line_and_inline():
    assert options("Pick one:\nA) red\nB) blue") == {"A": "red", "B": "blue"}
    assert options(Q_CHOICE) == {"A": "Osaka", "B": "Tokyo", "C": "Rome", "D": "Lima"}
    assert options("What is 2 + 2?") == {}


def test_majority_and_weighted_vote():
    r = vote(["15", "55", "15", None])
    assert (r.winner, r.agreement, r.total, r.answered, r.tie) == ("15", 2, 4, 3, False)
    assert not r.clear_majority  # 2 of 4 is not more than half
    w = vote(["15", "55", "15"], [0.1, 0.9, 0.2])
    assert w.winner == "55" and w.votes["55"] == pytest.approx(0.9)


def test_ties_go_to_weight_then_the_first_agent():
    r = vote(["A", "B", "B", "A"])
    assert r.tie and r.winner == "A"  # agent 1 (greedy, leading approach) breaks the tie
    assert vote(["A", "B", "B", "A"], [0.2, 0.5, 0.5, 0.2]).winner == "B"
    assert vote([None, None]).winner is None


def test_tail_confidence():
    assert tail_confidence(None) is None
    assert tail_confidence([0.0, 0.0]) == pytest.approx(1.0)
    assert tail_confidence([-100.0] * 10 + [-0.1] * 16) == pytest.approx(0.904837, rel=1e-5)


def test_settled_rules():
    kw = {"min_confidence": 0.5, "max_weight": 0.7}
    # with confidences: two agreeing agents never settle it (tests/test_early_stop.py has more);
    # three confident agents that agree do; a hesitant one does not
    assert not settled(["4", "4"], [0.8, 0.6], remaining=6, **kw)
    assert settled(["4", "4", "4"], [0.8, 0.6, 0.7], remaining=5, **kw)
    assert not settled(["4", "4", "4"], [0.8, 0.4, 0.7], remaining=5, **kw)
    assert not settled(["4", "5"], [0.9, 0.9], remaining=6, **kw)
    # a weighted lead of 0.9+0.8+0.8-0.3 = 2.2 > 3 * 0.7 = 2.1 with three left; not with four
    assert settled(["4", "4", "4", "5"], [0.9, 0.8, 0.8, 0.3], remaining=3, **kw)
    assert not settled(["4", "4", "4", "5"], [0.9, 0.8, 0.8, 0.3], remaining=4, **kw)
    # without confidences: unanimity needs three agents, a lead must be out of reach of all the rest
    assert not settled(["4", "4"], None, remaining=6, **kw)
    assert settled(["4", "4", "4"], None, remaining=5, **kw)
    assert settled(["4", "4", "4", "4", "5", "6"], None, remaining=2, **kw)  # 4 - 1 > 2
    assert not settled(["4", "4", "4", "5"], [None] * 4, remaining=2, **kw)  # 3 - 1 = 2, not more
    assert not settled([None, None], [0.9, 0.9], remaining=6, **kw)


def test_waves():
    assert waves(8, True) == [3, 2, 1, 1, 1]
    assert waves(16, True) == [3, 2, 1, 1, 1, 4, 4]
    assert waves(4, True) == [3, 1]
    assert waves(3, True) == [3]
    assert waves(12, True) == [3, 2, 1, 1, 1, 4]
    assert waves(2, True) == [2] and waves(1, True) == [1]
    assert waves(8, False) == [8]


def test_agreement_line_and_majority_guard():
    r = vote(["15", "15", "15", "55", None])
    assert agreement_line(r) == "Agreement: 3 of 5 agents answered 15; 1 answered 55; 1 gave no answer."
    final, note = decide("55, because 7 + 8 is 55.", "What is 7 + 8?", "number", r)
    assert final == "15" and "clear majority (3 of 5)" in note
    split = vote(["15", "55", "12"])
    assert decide("55", "What is 7 + 8?", "number", split) == ("55", "")


def test_equation_in_the_answer_segment():
    assert extract('The answer is "2 + 8 = 10."', "What is 2 + 8?", "number") == "10"


Q_GRID = ("Each example maps an input grid to an output grid by one common rule.\n\nExample 1\nInput:\n01\n10\n"
          "Output:\n10\n01\n\nApply the same rule to this test input:\nInput:\n001\n110\n\n"
          "Write the output grid only, one row of digits per line.")


def test_grid_questions_and_answers():
    assert answer_kind(Q_GRID) == "grid"
    assert answer_kind("What is 12 + 30?") == "number"  # digits alone do not make a grid
    assert answer_kind("How many cells does a 3 by 4 grid have?") == "number"  # "grid" without rows
    # one grid however it is written; the last grid of the text, even after an "Answer:" line
    for text in ("110\n001", "Answer:\n1 1 0\n0 0 1", "[[1, 1, 0], [0, 0, 1]]",
                 "Sure!\n|1|1|0|\n|0|0|1|\nThat is the output.", "First 000\n000\nthen:\n110\n001"):
        assert extract(text, Q_GRID, "grid") == "110\n001", text
    assert extract("I cannot tell.", Q_GRID, "grid") is None
    assert extract("12\n345", Q_GRID, "grid") is None  # rows of unequal length are no grid
    assert parse_grid(extract("[[3,4],[5,6]]", Q_GRID, "grid")) == [[3, 4], [5, 6]]


def test_grid_vote_agreement_and_final_text():
    r = vote(["110\n001", "110\n001", "000\n000"], [0.9, 0.8, 0.95])
    assert r.winner == "110\n001" and r.agreement == 2
    line = agreement_line(r)
    assert line == "Agreement: 2 of 3 agents answered 110/001; 1 answered 000/000."
    assert parse_grid(line) is None  # the line cannot be read back as a grid
    final, note = decide("000\n000", Q_GRID, "grid", r)
    assert final == "110\n001" and "proposed 000/000" in note
    two = [AgentTrace(agent=i, approach="direct", wave=1, reasoning="110\n001") for i in (1, 2)]
    text = ContemplatingMode._text(two, r.winner, r, None, "", "grid")
    assert text.startswith("Final answer:\n110\n001\n") and parse_grid(text) == [[1, 1, 0], [0, 0, 1]]
    row = vote(["1333", "1333"])  # a grid of one row also stands on its own line
    text = ContemplatingMode._text(two, row.winner, row, None, "", "grid")
    assert text.startswith("Final answer:\n1333\n") and parse_grid(text) == [[1, 3, 3, 3]]
    assert ContemplatingMode._text(two, "15", vote(["15", "15"]), None, "", "number").startswith("Final answer: 15\n")


def test_agent_prompt_layouts():
    long_q = "Here is the report:\n" + "The shipment left on time. " * 30 + "\nWhen did it leave?"
    conv = [Message(role="system", content="Answer in French."), Message(role="user", content="Hi"),
            Message(role="assistant", content="Bonjour"), Message(role="user", content=long_q)]
    assert shares_prefix(conv) and not shares_prefix(conv[:3])
    reqs = requests(conv, specs(4, None), 64)
    for r in reqs:  # long: the user's own system message and the whole conversation come first, unchanged
        assert list(r.messages[:3]) == conv[:3] and len(r.messages) == 4
        assert r.messages[3].content.startswith(long_q + "\n\n")
    assert len({r.messages[3].content for r in reqs}) == 4  # each agent its own framing and approach
    assert "Double-check facts and arithmetic." in reqs[1].messages[3].content  # agent 2 is careful
    # short: the framing is the system message (the user's own follows it), the approach follows the question
    short = [Message(role="system", content="Answer in French."), Message(role="user", content="What is 7 + 8?")]
    a1, a2 = requests(short, specs(2, None), 64)
    assert a1.messages == (Message(role="system", content="You are a helpful assistant. Answer in French."),
                           Message(role="user", content="What is 7 + 8?\n\nAnswer in one short sentence."))
    assert a2.messages[0].content.startswith("You are a careful assistant") and len(a2.messages) == 2
    assert requests(short, specs(1, None), 64, shared=True)[0].messages[0] == short[0]
    image = [Message(role="user", content=[{"type": "text", "text": "What is this?"},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}])]
    assert shares_prefix(image)  # media is long for a model that sees it
