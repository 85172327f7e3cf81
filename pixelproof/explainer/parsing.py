"""Turn a vision-language model's free text into ``{artifact: explanation}`` with constrained keys.

A slide of the Team 57 report ("Image Classification and Artifact Detection") shows what a naive
parser makes of a model answer: numbered-list fragments ("1", "2") and sentences become keys, and
one explanation is scattered over several entries. Here the keys can only be the artifacts that were
asked about; everything else in the text either continues the explanation of the artifact it follows
or is dropped (and reported).

Reading order:

1. ``"key": "value"`` pairs (JSON, also broken JSON: trailing commas, repeated keys, cut-off
   text), or a Python-style dict with single quotes; otherwise
2. lines: numbered / bulleted lists, markdown emphasis, ``Name: text``, ``Name - text``, or a
   heading line with the name and the explanation on the lines below.

A key or line head matches an artifact by its normalised name, by the part before a colon
(``Ghosting effects``), or by a close spelling (difflib ratio >= 0.88: "within single object"
for "within single objects"). Text after a matched artifact that is not itself a key (the
sentence fragments of Team 57's broken dictionary) continues that artifact's explanation, up
to a new key, a list number or a summary sentence ("These artifacts ...", "Overall ...").
3. For artifacts still missing, the first prose sentence of the text (no braces or brackets)
   that names the artifact.

The first non-empty explanation of an artifact wins; repeats are reported as duplicates. A value
that only repeats the artifact's name, or has no letters, is no explanation.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pixelproof.explainer.taxonomy import normalise_name

CLOSE_MATCH = 0.88
_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.S)
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022+>]+|\(?\d{1,3}[.)]|\(?[a-z][.)](?=\s))\s*")
_EMPHASIS = re.compile(r"[*_`#]+")
_SUMMARY = re.compile(
    r"^(these|the above|all|overall|in summary|in conclusion|to summari[sz]e|together)\b", re.I
)
_NAMED_HEAD = re.compile(r"^([^:.!?]{2,80}?)\s*(?::|\s[-\u2013\u2014]\s)\s*(.*)$", re.S)
_NUMBERED = re.compile(r"^\s*\(?\d{1,3}[.)]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class ParsedExplanations:
    """``explanations``: artifact -> sentence for the artifacts found in the text, in the
    order asked; ``missing``: artifacts asked about and not found; ``ignored``: keys in the
    text that are no artifact asked about; ``duplicates``: artifacts explained more than once."""

    explanations: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class _NameMatcher:
    def __init__(self, names: Sequence[str]) -> None:
        self.by_form: dict[str, str] = {}
        for name in names:
            self.by_form.setdefault(normalise_name(name), name)
            short = normalise_name(name.split(":", 1)[0])
            if short:
                self.by_form.setdefault(short, name)

    def match(self, text: str) -> str | None:
        key = normalise_name(text)
        if not key:
            return None
        if key in self.by_form:
            return self.by_form[key]
        close = difflib.get_close_matches(key, list(self.by_form), n=1, cutoff=CLOSE_MATCH)
        return self.by_form[close[0]] if close else None

    def match_prefix(self, line: str) -> tuple[str, str] | None:
        """A line that starts with an artifact name: (name, the rest of the line)."""
        norm_line = normalise_name(line)
        best = None
        for form, name in self.by_form.items():
            if (norm_line == form or norm_line.startswith(form + " ")) and (
                best is None or len(form) > len(best[0])
            ):
                best = (form, name)
        if best is None:
            return None
        return best[1], _cut_words(line, len(best[0].split()))


def _cut_words(line: str, n_words: int) -> str:
    """``line`` without its first ``n_words`` words (as normalise_name counts them)."""
    pattern = r"^\W*" + r"[0-9A-Za-z]+[^0-9A-Za-z]+" * n_words
    match = re.match(pattern, line + " ")
    return line[match.end() :] if match else ""


def clean_sentence(text: str) -> str:
    """Strip quotes, markdown and separators, collapse whitespace, capitalise, end with a
    full stop; '' when there is no letter in it."""
    text = _EMPHASIS.sub("", text)
    text = " ".join(text.split()).strip(" \"'-:;,\u2013\u2014")
    if not re.search(r"[A-Za-z]", text):
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _unescape(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw.replace('\\"', '"').replace("\\n", "\n")


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs = [(_unescape(k), _unescape(v)) for k, v in _PAIR.findall(text)]
    if pairs:
        return pairs
    for block in re.findall(r"\{.*?\}", text, re.S):
        try:
            value = ast.literal_eval(block)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            pairs.extend((str(k), v) for k, v in value.items() if isinstance(v, str))
    return pairs


def _strip_line(line: str) -> str:
    previous = None
    while previous != line:  # "1. **Name**:" -> "Name:"; "- * Name" -> "Name"
        previous = line
        line = _LIST_MARKER.sub("", _EMPHASIS.sub("", line)).strip()
    return line


class _Collector:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.matcher = _NameMatcher(names)
        self.parts: dict[str, list[str]] = {}
        self.result = ParsedExplanations()
        self.current: str | None = None

    def start(self, name: str, text: str) -> None:
        if name in self.parts:
            if name not in self.result.duplicates:
                self.result.duplicates.append(name)
            self.current = None  # first non-empty explanation wins; a repeat adds nothing
            if not clean_sentence(" ".join(self.parts[name])):
                self.parts[name] = [text]
                self.current = name
            return
        self.parts[name] = [text]
        self.current = name

    def unknown(self, key: str) -> None:
        key = " ".join(key.split())
        if key not in self.result.ignored:
            self.result.ignored.append(key)
        self.current = None

    def continue_with(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if _SUMMARY.match(text):
            self.current = None
        elif self.current is not None:
            self.parts[self.current].append(text)

    def finish(self, full_text: str) -> ParsedExplanations:
        for name in self.names:
            pieces = (clean_sentence(part) for part in self.parts.get(name, []))
            sentence = self._sentence(name, " ".join(p for p in pieces if p))
            if not sentence:
                sentence = self._mentioned(name, full_text)
            if sentence:
                self.result.explanations[name] = sentence
            else:
                self.result.missing.append(name)
        return self.result

    def _sentence(self, name: str, text: str) -> str:
        sentence = clean_sentence(text)
        names = {normalise_name(name), normalise_name(name.split(":", 1)[0])}
        return "" if normalise_name(sentence) in names else sentence

    def _mentioned(self, name: str, text: str) -> str:
        forms = {normalise_name(name)}
        short = normalise_name(name.split(":", 1)[0])
        if len(short.split()) >= 2:
            forms.add(short)
        for sentence in _SENTENCE.split(text):
            if re.search(r"[{}\[\]]", sentence):
                continue  # structure (a JSON list of names), not prose
            norm = f" {normalise_name(sentence)} "
            if any(f" {f} " in norm for f in forms):
                found = self._sentence(name, _strip_line(sentence))
                if found:
                    return found
        return ""


def _is_list_number(text: str) -> bool:
    return bool(re.fullmatch(r"\s*\(?\d{1,3}[.)]?\s*", text))


def _read_pairs(collector: _Collector, pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        name = collector.matcher.match(_strip_line(key))
        if name is not None:
            collector.start(name, value)
        elif not key.strip() or _is_list_number(key) or _is_list_number(value):
            collector.current = None if _is_list_number(key) else collector.current
        elif normalise_name(value).startswith(normalise_name(key)) or len(key.split()) > 8:
            # a sentence cut into key and value, or a long key: prose, not a name
            collector.continue_with(value if normalise_name(value) else key)
        else:
            collector.unknown(key)


def _read_lines(collector: _Collector, text: str) -> None:
    for raw in text.splitlines():
        if _is_list_number(raw):
            collector.current = None
            continue
        line = _strip_line(raw)
        if not line:
            continue
        hit = collector.matcher.match_prefix(line)
        if hit is not None:
            collector.start(hit[0], hit[1])
            continue
        head = _NAMED_HEAD.match(line)
        if head and len(head.group(1).split()) <= 8 and not _SUMMARY.match(line):
            name = collector.matcher.match(head.group(1))
            if name is not None:
                collector.start(name, head.group(2))
            else:
                collector.unknown(head.group(1))
            continue
        if _NUMBERED.match(raw):
            collector.current = None  # a new numbered item that names no artifact asked about
        collector.continue_with(line)


def parse_explanations(text: str | None, names: Sequence[str]) -> ParsedExplanations:
    """Explanations for ``names`` (the artifacts asked about) found in a model's ``text``."""
    text = re.sub(r"```[a-zA-Z]*", "", text or "")
    collector = _Collector(names)
    pairs = _pairs(text)
    if pairs:
        _read_pairs(collector, pairs)
    else:
        _read_lines(collector, text)
    return collector.finish(text)


def fallback_explanation(name: str, description: str, region: str | None, score: float) -> str:
    """The sentence used when the model's answer gives nothing usable for ``name``."""
    where = f" {region}" if region else ""
    where += "" if not region or region.endswith("image") else " of the image"
    what = description or "a pattern typical of generated images"
    return clean_sentence(
        f"The artifact detector found {name.lower()}{where} (CLIP score {score:.2f}): {what}"
    )
