"""The text as the model reads it, and its tokens as the learner sees them.

    from superpos_core.lm import tokens
    text, notes = tokens.clean_text("a\x00b")            # "ab", and a note that a control character went
    tokens.readable_token(tokenizer, token_id)           # " was", not "Ġwas"; part of an emoji as "<0xF0><0x9F>"
    tokens.shown_tokens(tokenizer, ids)                  # the emoji whole on its first token, "⋯" on the rest

Nothing here runs a model: only the tokenizer is read.
"""

from __future__ import annotations

import codecs
import unicodedata

MAX_TOKENS = 1024  # longest text analysed, whatever the model's context: one CPU forward stays ~seconds
MAX_CHARS = 100_000  # cut before tokenising, so a huge paste cannot stall the tokenizer


class TextInputError(ValueError):
    """Text the model cannot analyse; the message is meant for the learner."""


def bos_token_id(tokenizer) -> int | None:
    """The token a document starts with: the tokenizer's BOS, else its end-of-text (GPT-2 has one token for
    both: its training text ran documents together, each after an ``<|endoftext|>``), else None."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return None


def any_token_id(tokenizer) -> int:
    """A token every tokenizer has: the document start (``bos_token_id``), else the token for "a"."""
    bos = bos_token_id(tokenizer)
    return bos if bos is not None else int(tokenizer("a", add_special_tokens=False).input_ids[0])


# --- the text as the model will read it --------------------------------------------------------------


def clean_text(text: str) -> tuple[str, list[str]]:
    """Text -> (text to analyse, notes for the learner).

    Control characters (NUL, BEL, escape codes...) are removed, except tab and newline, and ``\\r\\n``
    and ``\\r`` become ``\\n``. The tokenizer could read them, but each would be a token the learner
    cannot see, usually pasted by accident; removing them is reported in the notes. Format characters
    are kept: zero-width joiners build emoji and direction marks shape Arabic and Hebrew text. Lone
    surrogates (not text at all, and refused by the tokenizer) become U+FFFD.

    Raises:
        TextInputError: not a string, or nothing but whitespace once cleaned.
    """
    if not isinstance(text, str):
        raise TextInputError(f"Expected text, got {type(text).__name__}.")
    notes = []
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"The text was cut to its first {MAX_CHARS:,} characters before reading it.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept, removed, replaced = [], 0, 0
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc" and char not in "\t\n":
            removed += 1
        elif category == "Cs":
            kept.append("\ufffd")
            replaced += 1
        else:
            kept.append(char)
    text = "".join(kept)
    if removed:
        notes.append(
            f"Removed {removed} invisible control character{'s' * (removed != 1)} (such as NUL or escape codes) from the text."
        )
    if replaced:
        notes.append(f"Replaced {replaced} broken character{'s' * (replaced != 1)} (lone surrogates) with �.")
    if not text.strip():
        extra = " (it held only control characters)" if removed else ""
        raise TextInputError(f"The text is empty{extra}: type a sentence or two for the model to read.")
    return text, notes


# GPT-2's byte-level tokenizers spell each byte as one printable character: bytes that are already
# printable stand for themselves, the others (space, control bytes, ...) are moved to chr(256 + n) in
# order. Inverting that spelling recovers a token's bytes when the token is only part of a character.
_PRINTABLE_BYTES = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
_BYTE_OF_CHAR = {chr(b): b for b in _PRINTABLE_BYTES}
_BYTE_OF_CHAR.update({chr(256 + n): b for n, b in enumerate(sorted(set(range(256)) - set(_PRINTABLE_BYTES)))})


def _bytes_as_hex(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(f"<0x{b:02X}>" for b in error.object[error.start : error.end]), error.end


codecs.register_error("superpos_hex_bytes", _bytes_as_hex)


def readable_token(tokenizer, token_id: int) -> str:
    """The text one token stands for: ``" was"`` rather than ``"Ġwas"``.

    A byte-level token can hold part of a character (an emoji or a CJK character is often two or
    three tokens). Its incomplete bytes are shown as ``<0xF0><0x9F>``, the spelling SentencePiece
    models use for their byte tokens, rather than as a meaningless ``�``.
    """
    text = tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if "\ufffd" in text and isinstance(piece, str) and piece and all(c in _BYTE_OF_CHAR for c in piece):
        return bytes(_BYTE_OF_CHAR[c] for c in piece).decode("utf-8", errors="superpos_hex_bytes")
    if isinstance(piece, str) and piece.startswith("▁") and not text.startswith(" "):
        text = " " + text  # SentencePiece drops a lone token's leading space when decoding it
    return text


CONTINUED = "⋯"  # shown for a token that holds only the rest of a character begun by the token before


def _token_bytes(tokenizer, token_id: int, readable: str) -> bytes:
    """The bytes of text one token stands for (a byte-level piece, a SentencePiece ``<0xF0>`` byte, or its readable text)."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str) and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            pass
    if "<0x" in readable and isinstance(piece, str) and piece and all(c in _BYTE_OF_CHAR for c in piece):
        return bytes(_BYTE_OF_CHAR[c] for c in piece)
    return readable.encode("utf-8")


def _utf8_length(lead: int) -> int:
    return (
        1
        if lead < 0x80
        else 2
        if 0xC2 <= lead < 0xE0
        else 3
        if 0xE0 <= lead < 0xF0
        else 4
        if 0xF0 <= lead < 0xF5
        else 0
    )


def shown_tokens(tokenizer, token_ids: list[int], tokens: list[str] | None = None) -> list[str]:
    """One label per token for pictures and lists, with characters split over several tokens put back together.

    An emoji is often 2-3 byte-level tokens, each holding part of its UTF-8 bytes (``readable_token`` spells
    them ``<0xF0><0x9F>``). Here the whole character is shown on the token where its bytes begin, and a
    token that holds only the rest of it is shown as ``⋯``; a token that ends one such character and starts
    others shows ``⋯`` then those. There is still one label per token, so rows and numbers stay the tokens'.
    Bytes that never make a character stay ``<0xNN>``.
    """
    tokens = tokens if tokens is not None else [readable_token(tokenizer, int(i)) for i in token_ids]
    if not any("<0x" in token for token in tokens):
        return list(tokens)  # the usual case: every token is whole characters
    pieces = [_token_bytes(tokenizer, int(i), token) for i, token in zip(token_ids, tokens)]
    data = b"".join(pieces)
    owner = [k for k, piece in enumerate(pieces) for _ in piece]  # (bytes,) which token holds each byte
    labels = [""] * len(tokens)
    continues = [False] * len(tokens)
    at = 0
    while at < len(data):
        length = _utf8_length(data[at])
        try:
            char = data[at : at + length].decode("utf-8") if length else None
        except UnicodeDecodeError:
            char = None
        if char is None:  # a byte that starts no character: spelled as the tokenizer's byte tokens are
            char, length = f"<0x{data[at]:02X}>", 1
        labels[owner[at]] += char
        for k in set(owner[at + 1 : at + length]) - {owner[at]}:
            continues[k] = True
        at += length
    return [(CONTINUED + label) if more else label for label, more in zip(labels, continues)]


def token_label(token: str) -> str:
    """A token with its whitespace made visible, for axis labels: ``" was"`` -> ``"␣was"``."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"
