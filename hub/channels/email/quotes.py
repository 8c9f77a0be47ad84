"""Visible text of a reply: quoted history, reply headers and signatures removed.

The method follows discourse/email_reply_trimmer (MIT): classify every line with one letter,
then cut on patterns of that letter string. The line classes are the unit of knowledge, so a
new client or language is one more regular expression below. Measured against quotequail and
mail-parser-reply on ../shared/corpus (tests/unit/email/test_email_quotes.py prints the
figures): neither knows Outlook header blocks in most languages, which is where they lose.

Every regex is applied to one line at a time (except the multi-line "On ... wrote" joiner,
whose body stops at the next marker word), and the expensive ones sit behind a cheap substring
test, so the time stays linear in the text: the 767 KB github long-quote mail takes ~0.1 s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

EMPTY = "e"
DELIMITER = "d"
SIGNATURE = "s"
EMBEDDED = "b"
HEADER = "h"
QUOTE = "q"
TEXT = "t"

_I = re.IGNORECASE
# Blanks in the classes below include NBSP and the Unicode spaces, as Ruby's [[:blank:]]
# does: Outlook and Gmail write "a écrit\xa0:" in French.
_IMS = re.IGNORECASE | re.MULTILINE | re.DOTALL
_BL = r" \t\xa0\u2000-\u200b\u3000"  # goes inside [...]


def _on_date_wrote(lead: str, wrote: str, stop: str) -> re.Pattern[str]:
    """`<lead> ... <wrote>` reply header; it may span lines but stops at a `stop` word."""
    return re.compile(
        rf"^[{_BL}<>-]*(?:{lead})\s(?:(?!\b(?>{stop})\b).)+?(?:{wrote})[{_BL}.:>-]*$",
        _IMS,
    )


# "On <date>, <someone> wrote:" in its many languages; may be wrapped over several lines.
ON_DATE_SOMEONE_WROTE = (
    _on_date_wrote("在", "写道", "在|写道"),
    _on_date_wrote("Op", r"het\svolgende\sgeschreven|schreef[^:]+", r"Op|het\svolgende\sgeschreven|schreef"),
    _on_date_wrote("In message", "writes", "In message|writes"),
    _on_date_wrote("On|At", "wrote|writes|says|said", "On|wrote|writes|says|said"),
    _on_date_wrote("Le", r"nous\sa\sdit|a\s+écrit", r"Le|nous\sa\sdit|a\s+écrit"),
    _on_date_wrote("Am", r"schrieben\sSie", r"Am|schrieben\sSie"),
    _on_date_wrote("Am", r"geschrieben|schrieb[^:]+", "Am|geschrieben"),
    _on_date_wrote("Il", r"ha\sscritto", r"Il|ha\sscritto"),
    _on_date_wrote("Dnia|Dňa", r"napisał(?:\(a\))?", "Dnia|Dňa|napisał"),
    _on_date_wrote("Em", "escreveu", "Em|escreveu"),
    _on_date_wrote("El", "escribió", "El|escribió"),
)

_LINE_EMBEDDED: tuple[re.Pattern[str], ...] = (
    # "Am 18.09.2013 um 16:24 schrieb X <x@y>:", "Den 15. jun. 2016 kl. 20.42 skrev X:"
    *(
        re.compile(rf"^[{_BL}>]*{on}\s.+\s{wrote}\s[^:]+:")
        for on, wrote in (("Op", "schreef"), ("Am", "schrieb"), ("Den", "skrev"), (r"søn\.", "skrev"))
    ),
    # "суббота, 14 марта 2015 г. пользователь X написал:", "23 mar 2017 21:25 X napisał(a):"
    re.compile(r"\d{4}.{1,80}пользователь.{0,80}?написал:"),
    re.compile(r"\d{4}.{1,80}?napisał\(a\):"),
    re.compile(r"\d{4}.{1,80}?пише:"),
    # "X <x@y> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:"
    re.compile(r"^.+\bwrote\b\s+\bon\b.+[^:]:"),
    re.compile(r"^.+\bschrieb\b\s+\bam\b.+[^:]:"),
    # "2016-03-03 17:21 GMT+01:00 Some One"
    re.compile(rf"^[{_BL}>]*20\d\d-\d\d-\d\d \d\d:\d\d GMT\+\d\d:\d\d [\w \t]+$"),
    # "codinghorror via Discourse Meta wrote:"
    re.compile(rf"^.+ via .+ (?:wrote|schrieb):?[{_BL}]*$"),
    re.compile(rf"^[{_BL}>]*Posted by .+ on \d{{2}}/\d{{2}}/\d{{4}}$", _I),
    # Forward and "original message" separators of Outlook, Apple Mail, Gmail, Thunderbird.
    re.compile(
        rf"^[{_BL}>]*(?:Begin forwarded message|Inizio messaggio inoltrato|Début du message transféré)\s?:",
        _I,
    ),
    re.compile(
        rf"^[{_BL}>*]*-{{2,}}[{_BL}]*(?:(?:Forwarded|Original|Reply) Message"
        r"|Message transféré|Message d'origine"
        r"|Ursprüngliche Nachricht|Weitergeleitete Nachricht|Mensaje original|Mensaje reenviado"
        r"|Messaggio originale|Messaggio inoltrato|Oorspronkelijk bericht|Doorgestuurd bericht"
        rf"|Originalmeddelande|原始邮件)[{_BL}]*-{{2,}}",
        _I,
    ),
)

# Guarded patterns: only tried when the line holds the marker, since their nested repeats
# would otherwise cost quadratic time on very long lines.
_DATE_SOMEONE_EMAIL = re.compile(r"\d{4}.{1,80}\s?<[^@<>]+@[^@<>.]+\.[^@<>]+>:?$")
_SOMEONE_EMAIL_WROTE = re.compile(r"^.+\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.\w{2,}\b.+wrote:?$")

_HEADER_DATE_NAMES = (
    "Sendt|Sent|Date|Le|Gesendet|Enviada em|Enviado|Fecha|Data|Inviato|Datum|Skickat|发送时间"
)
_HEADER_TEXT_NAMES = (
    "Fra|Til|Emne|From|To|Cc|Reply-To|Subject|De|Expéditeur|À|Destinataire|Répondre à|Objet"
    "|Von|An|Betreff|Para|Assunto|Asunto|Da|Risposta|A|Oggetto|Van|Beantwoorden - Aan|Aan"
    "|Onderwerp|Från|Till|Ämne|发件人|收件人|主题"
)
_HEADERS = (
    re.compile(rf"^[{_BL}*]*(?:{_HEADER_DATE_NAMES})[{_BL}*]*:.*\d"),
    re.compile(rf"^[{_BL}*]*(?:{_HEADER_TEXT_NAMES})[{_BL}*]*:.*\w", _I),
)

# Mobile and client signatures: one line, removed wherever they stand.
_SIGNATURES = re.compile(
    rf"^[{_BL}]*(?:從我的 iPhone 傳送|\w+ from mobile|[(<]*Sent (?:from|via|with|by) .+"
    r"|From my .{1,20}"
    r"|Get Outlook for |Envoyé depuis (?:mon|Yahoo Mail)|Von meinem .+ gesendet"
    r"|Diese Nachricht wurde von .+ gesendet|Inviato da |Sendt fra min |Enviado do meu "
    r"|Enviado desde mi |Verzonden met |Verstuurd vanaf mijn |från min )",
    _I,
)
_MAX_MARKER_LINE = 1000
_DEVICE = re.compile(
    r"iphone|ipad|android|mobile|cell|phone|galaxy|blackberry|samsung|device|tablet|handy|telefon|móvil|cellulare",
    _I,
)
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_DELIMITER = re.compile(rf"^[{_BL}]*[-_,=+~#*ᐧ—]+[{_BL}]*$")
_BLANK = re.compile(rf"^[{_BL}]*$")
_QUOTE = re.compile(rf"^[{_BL}]*>")


def _is_signature(line: str) -> bool:
    """A client's one-line signature ("Sent from my iPhone"), not a sentence that starts alike."""
    line = _MARKDOWN_LINK.sub(r"\1", line)
    if not _SIGNATURES.match(line):
        return False
    # "Sent from my cell, please excuse typos" is a signature; "Sent from my desk, is much
    # easier..." is prose (github corpus): with a comma, the words before it must name a device.
    head = line.split(",", 1)[0]
    return head == line or bool(_DEVICE.search(head))


def _is_embedded(line: str) -> bool:
    """A reply or forward header line ("On ... wrote:", "-----Original Message-----")."""
    if any(r.search(line) for r in (*ON_DATE_SOMEONE_WROTE, *_LINE_EMBEDDED)):
        return True
    if "@" not in line:
        return False
    if "<" in line and _DATE_SOMEONE_EMAIL.search(line):
        return True
    return "wrote" in line and bool(_SOMEONE_EMAIL_WROTE.search(line))


def classify(line: str) -> str:
    """One letter for the kind of line: empty, delimiter, signature, embedded, header, quote, text."""
    if _BLANK.match(line):
        return EMPTY
    if _DELIMITER.match(line):
        return DELIMITER
    if len(line) > _MAX_MARKER_LINE:
        # No reply header or signature is this long; skipping the patterns keeps time linear.
        return QUOTE if _QUOTE.match(line) else TEXT
    if _is_signature(line):
        return SIGNATURE
    if _is_embedded(line):
        return EMBEDDED
    if any(r.match(line) for r in _HEADERS):
        return HEADER
    return QUOTE if _QUOTE.match(line) else TEXT


# Clean-ups before classification (PGP armour, list footers, odd quote styles).
_PGP_HEAD = re.compile(r"\A-----BEGIN PGP SIGNED MESSAGE-----\n(?:Hash: \w+)?\s+", _I)
_PGP_SIGNATURE = re.compile(r"^-----BEGIN PGP SIGNATURE-----$.+?^-----END PGP SIGNATURE-----", re.M | re.S)
_UNSUBSCRIBE = re.compile(r"^Unsubscribe: .+@.+(?:\n.+http:.+)?\s*\Z", re.M | _I)
_ALIAS_QUOTE = re.compile(r'^.*>{5} "[^"\n]+" == .+ writes:', re.M)
_ENCLOSED_NAMED = re.compile(r"^>>> ?(.+) ?>>>$\n(.+?)\n^<<< ?\1 ?<<<$", re.M | re.S)
_ENCLOSED = re.compile(rf"^>{{4,}}[{_BL}]*$\n(.+?)\n^<{{4,}}[{_BL}]*$", re.M | re.S)
_QUOTE_PREFIX = re.compile(rf"^((?:[{_BL}]*[^\W\d_]*[>|])+)", re.M)
_QUOTE_MARK = re.compile(r"[^\W\d_]+>|\|")
_LINE_START = re.compile(r"^", re.M)
_CODE_BLOCK = re.compile(r"^```\w*$\n.*?^```$", re.M | re.S)

# Reply headers a client may have wrapped over a few lines; joined back before classifying.
_WRAPPABLE: tuple[re.Pattern[str], ...] = (
    *ON_DATE_SOMEONE_WROTE,
    # Ruby's `.+[^:]+:` without its backtracking: to the first colon after the line end,
    # else to the last colon on the line.
    re.compile(r"^.+\bwrote\b\s+\bon\b(?:.+\n[^:]*:|.+[^:]:)", re.M),
    re.compile(r"^.+\bschrieb\b\s+\bam\b(?:.+\n[^:]*:|.+[^:]:)", re.M),
    re.compile(r"\d{4}.{1,80}пользователь.{0,80}\n?.{0,80}?написал:"),
    re.compile(r"\d{4}.{1,80}\n?.{0,80}?napisał\(a\):"),
    re.compile(r"\d{4}.{1,80}\n?.{0,80}?пише:"),
    re.compile(r"\d{4}.{1,80}\s?<[^@<>]+@[^@<>.]+\.[^@<>]+>:?$", re.M),
)
# A marker the text must contain before the wrappable regex is worth running (cost guard).
_WRAPPABLE_NEEDS = ("",) * len(ON_DATE_SOMEONE_WROTE) + (
    "wrote",
    "schrieb",
    "написал",
    "napisał",
    "пише",
    "@",
)
_WRAPPED_BREAK = re.compile(r"\n+\s*")


def _quote_enclosed(match: re.Match[str]) -> str:
    """Turn a `>>>>` ... `<<<<` enclosed block into ordinary `> ` quoted lines."""
    return _LINE_START.sub("> ", match.group(match.lastindex or 0))


def _join_wrapped(match: re.Match[str]) -> str:
    """Join a short wrapped header onto one line; long matches are not a header."""
    text = match.group(0)
    return text if text.count("\n") > 4 else _WRAPPED_BREAK.sub(" ", text)


def _preprocess(text: str) -> str:
    """Normalise line endings, quote styles and wrapped reply headers."""
    text = text.replace("\r\n", "\n")
    text = _PGP_HEAD.sub("", text)
    text = _PGP_SIGNATURE.sub("", text)
    text = _UNSUBSCRIBE.sub("", text)
    text = _ALIAS_QUOTE.sub("", text)
    text = _ENCLOSED_NAMED.sub(lambda m: _LINE_START.sub("> ", m.group(2)), text)
    text = _ENCLOSED.sub(_quote_enclosed, text)
    # "Richard> " and "| " are quote marks too (usenet, some webmails)
    text = _QUOTE_PREFIX.sub(lambda m: _QUOTE_MARK.sub(">", m.group(1)), text)
    for regex, needs in zip(_WRAPPABLE, _WRAPPABLE_NEEDS, strict=True):
        if needs in text:
            text = regex.sub(_join_wrapped, text)
    return text.strip()


def _hoist_code_blocks(text: str) -> tuple[str, dict[str, str]]:
    """Replace ``` fenced blocks by tokens so their lines are never taken for quotes."""
    blocks: dict[str, str] = {}

    def stash(match: re.Match[str]) -> str:
        token = "codeblock" + hashlib.sha256(f"{len(blocks)}:{match.group(0)}".encode()).hexdigest()
        blocks[token] = match.group(0)
        return token

    return _CODE_BLOCK.sub(stash, text), blocks


class _Lines:
    """The lines and their class letters, cut and filtered together."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        self.pattern = "".join(classify(line) for line in self.lines)
        self.done = False

    def keep_through(self, index: int) -> None:
        """Keep lines up to and including `index`."""
        self.lines = self.lines[: index + 1]
        self.pattern = self.pattern[: index + 1]

    def keep_before(self, index: int) -> None:
        """Keep lines before `index`."""
        self.lines = self.lines[:index]
        self.pattern = self.pattern[:index]

    def drop(self, kind: str) -> None:
        """Remove every line of one kind."""
        kept = [(ln, k) for ln, k in zip(self.lines, self.pattern, strict=True) if k != kind]
        self.lines = [ln for ln, _ in kept]
        self.pattern = "".join(k for _, k in kept)


def _suffix_start(pattern: str, chars: str, end: int | None = None) -> int:
    """Start of the longest run of `chars` that ends at `end` (default: the end of the pattern)."""
    stop = len(pattern) if end is None else end
    return len(pattern[:stop].rstrip(chars))


def _cut_at_delimiter(doc: _Lines) -> None:
    """Everything after the first delimiter ("-- ", "____") is a signature or history."""
    index = doc.pattern.find(DELIMITER)
    if index >= 0:
        doc.keep_before(index)


def _reply_at_bottom(doc: _Lines) -> None:
    """A bottom-posted reply: header, quote, then the new text."""
    if re.fullmatch(r"b[^t]+t[et]*", doc.pattern):
        doc.lines = doc.lines[_suffix_start(doc.pattern, "te") :]
        doc.done = True


def _cut_at_unquoted_header(doc: _Lines) -> None:
    """Text, then a reply header not followed by any `>` quote: keep the text only."""
    # `te*b[^q]*$` searched from after the last quote line: the same match, in linear time.
    match = re.compile(r"te*b").search(doc.pattern, doc.pattern.rfind(QUOTE) + 1)
    if match:
        doc.keep_through(match.start())


def _cut_at_header_before_quote(doc: _Lines) -> None:
    """Text, a reply header, its quote, then fewer than 7 stray text lines: keep the text."""
    # `te*b[eqbh]*([te]*)$` computed from the suffixes, since regex search is quadratic here.
    tail = _suffix_start(doc.pattern, "te")
    if doc.pattern[tail:].count(TEXT) >= 7:
        return
    body = _suffix_start(doc.pattern, "eqbh", tail)
    for match in re.finditer(r"te*b", doc.pattern):
        if match.end() - 1 >= body - 1:
            doc.keep_through(match.start())
            return


def _cut_trailing_quote_block(doc: _Lines) -> None:
    """Text before a quote that ends the mail: drop the quote (`t?e*[qbe]+$`)."""
    start = _suffix_start(doc.pattern, "qbe")
    if start == len(doc.pattern):
        return
    if start > 0 and doc.pattern[start - 1] == TEXT:
        start -= 1
    doc.keep_through(start)


def _cut_at_header_block(doc: _Lines) -> None:
    """Outlook's `From: / Sent: / To: / Subject:` block ends the reply."""
    wrapped = re.search(r"h+[hte]+h+e", doc.pattern)
    if wrapped:
        start, end = wrapped.span()
        doc.pattern = doc.pattern[:start] + HEADER * (end - start) + doc.pattern[end:]
    block = re.search(r"t[eq]*h{3,}", doc.pattern)
    if block:
        doc.keep_through(block.start())


def _cut_trailing_quote(doc: _Lines) -> None:
    """A quote that ends the mail after some text is history."""
    if TEXT in doc.pattern:
        doc.keep_before(_suffix_start(doc.pattern, "eq"))


_STEPS: tuple[Callable[[_Lines], None], ...] = (
    _cut_at_delimiter,
    lambda doc: doc.drop(SIGNATURE),
    _reply_at_bottom,
    _cut_at_unquoted_header,
    _cut_at_header_before_quote,
    _cut_trailing_quote_block,
    lambda doc: doc.drop(EMBEDDED),
    _cut_at_header_block,
    lambda doc: doc.drop(HEADER),
    _cut_trailing_quote,
)


def visible_text(body: str) -> str:
    """The new text of a reply: quotes, reply headers and signatures removed, then stripped."""
    if not body or body.isspace():
        return ""
    text, blocks = _hoist_code_blocks(_preprocess(body))
    doc = _Lines(text.split("\n"))
    for step in _STEPS:
        if doc.done:
            break
        step(doc)
    trimmed = "\n".join(doc.lines).strip()
    for token, block in blocks.items():
        trimmed = trimmed.replace(token, block)
    return trimmed
