"""The text as the model reads it: cleaned, refused when empty, its tokens readable and split characters shown whole."""

import pytest

from superpos_core import lm
from tests import helpers


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x07\x1b"])
def test_empty_text_is_refused_with_a_clear_message(tiny, text):
    with pytest.raises(lm.TextInputError, match="empty"):
        lm.analyse_text(tiny, text, layer=0)


def test_not_text_is_refused(tiny):
    with pytest.raises(lm.TextInputError, match="Expected text"):
        lm.analyse_text(tiny, None, layer=0)


def test_emoji_cjk_and_right_to_left_text_just_work(tiny):
    text = "日本 😀 שלום עולם مرحبا"
    analysis = lm.analyse_text(tiny, text, layer=2)
    assert analysis.text == text and tiny.tokenizer.decode(analysis.token_ids) == text
    assert analysis.tokens[0] == "日"  # a whole character in one token reads as itself
    assert "<0xF0><0x9F>" in analysis.tokens  # part of a character: its bytes, not "�"
    assert not any("\ufffd" in token for token in analysis.tokens)
    assert len(analysis.tokens) == analysis.hidden_states.shape[1] == len(analysis.token_ids)
    assert len(analysis.next_tokens) == 5 and analysis.summary()["tokens"] == analysis.tokens
    assert not any("control" in note for note in analysis.notes)


def test_control_characters_are_removed_and_reported(tiny):
    analysis = lm.analyse_text(tiny, "a\x00b\x07c\r\nd\te\u200df\ud800", layer=0)
    assert analysis.text == "abc\nd\te\u200df\ufffd"  # tab, newline, zero-width joiner kept; \r\n -> \n
    assert any("Removed 2 invisible control characters" in note for note in analysis.notes)
    assert any("lone surrogates" in note for note in analysis.notes)
    assert lm.token_label(" a\n\t") == "␣a↵⇥"


def test_split_characters_are_shown_whole_on_their_first_token(tiny):
    analysis = lm.analyse_text(tiny, "日本 😀x", layer=1)
    # "本" is three single-byte tokens and "😀" two bytes in one token then two single bytes: one label per token still
    assert analysis.tokens == ["日", "<0xE6>", "<0x9C>", "<0xAC>", " ", "<0xF0><0x9F>", "<0x98>", "<0x80>", "x"]
    assert analysis.shown == ["日", "本", "⋯", "⋯", " ", "😀", "⋯", "⋯", "x"]
    assert (
        analysis.labels == ["日", "本", "⋯", "⋯", "␣", "😀", "⋯", "⋯", "x"]
        and len(analysis.labels) == analysis.hidden_states.shape[1]
    )
    assert "marks the others ⋯" in analysis.split_characters_note
    assert lm.analyse_text(tiny, "the cat", layer=1).split_characters_note is None
    # bytes that never make a character stay bytes
    ids = tiny.tokenizer.convert_tokens_to_ids([helpers.spelled("😀")[:2], helpers.spelled("x")])
    assert lm.shown_tokens(tiny.tokenizer, ids) == ["<0xF0><0x9F>", "x"]
