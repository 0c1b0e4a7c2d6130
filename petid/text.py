"""The listing text a model encodes, and the personal data stripped out of it first.

:func:`strip_pii` removes contact details from free text: phone numbers (Russian ``+7``/``8`` forms with any
spacing, brackets, dots or dashes; bare ten-digit mobiles ``9xx…``; bracketed area codes ``(495) 123-45-67``;
seven-digit city numbers written ``123-45-67``; international ``+<country> …``), URLs (``http(s)://…``, ``www.…``
and bare domains such as ``vk.com/xyz`` or ``t.me/xyz``), e-mail addresses, ``@handles`` (Telegram, VK,
Instagram) and 16-digit card numbers. Each is removed outright (no placeholder token: a token would only tell a
model that the listing had a contact, which says nothing about the animal), together with a contact label
directly before it (``тел.:``, ``WhatsApp``, ``e-mail:``, ``vk:`` …); any 6–15 digits right after a phone label or
"звоните" go too, however grouped. A common first name next to a removed contact ("Анна, 8 916 …", "… 45-67,
спросить Анну") or after "спросить", "звоните", "хозяйка" is removed as a signature; a line left with nothing but
how to reach the author ("Звоните:", "WhatsApp, Telegram") is dropped; separators left dangling are tidied and
whitespace is collapsed. Numbers that describe the animal or the event stay: ages (``2 года``), dates
(``12.05.2024``), weights (``5 кг``), house numbers (``д. 12``), microchip numbers (15 digits, no ``+``).
Other personal names (a name anywhere else, a surname) are not detected.

:func:`listing_text` builds the one text per listing from its structured fields and its description.

Pure Python (``re`` only), so every layer may use it.
"""

from __future__ import annotations

import re

__all__ = ["listing_text", "strip_pii"]

_CUT = "\x00"  # marks where something was removed, until the tidy-up pass

# One separator between digit groups: spaces, or a dash/dot (with optional spaces around it).
_S = r"(?:[ \t\u00a0]*[-.\u2010-\u2015][ \t\u00a0]*|[ \t\u00a0]+)?"
_PHONE_PATTERNS = (
    # Russian with a country/trunk prefix: +7 916 123-45-67, 8 (916) 123 45 67, 89161234567, +7(916)1234567
    rf"(?<![\d+])(?:\+[ \t]?7|8|7){_S}\(?{_S}\d{{3}}{_S}\)?{_S}\d{{3}}{_S}\d{{2}}{_S}\d{{2}}(?!\d)",
    rf"(?<![\d+])(?:\+[ \t]?7|8|7){_S}\(?{_S}\d{{3}}{_S}\)?{_S}\d{{3}}{_S}\d{{4}}(?!\d)",
    # A bare Russian mobile: 916 123-45-67, (916) 1234567, 9161234567
    rf"(?<![\d+])\(?9\d{{2}}\)?{_S}\d{{3}}{_S}\d{{2}}{_S}\d{{2}}(?!\d)",
    rf"(?<![\d+])\(?9\d{{2}}\)?{_S}\d{{3}}{_S}\d{{4}}(?!\d)",
    # A bracketed area code: (495) 123-45-67, (4812) 12-34-56
    rf"(?<![\d+])\(\d{{3,5}}\){_S}\d{{1,3}}{_S}\d{{2}}{_S}\d{{2}}(?!\d)",
    # A seven-digit city number, only in its dashed form (so "123 45 67" counts stay): 123-45-67
    r"(?<![\d\-.])\d{3}-\d{2}-\d{2}(?![\d\-])",
)
# International: "+" and 8-15 digits in groups (checked by _international). Other countries' numbers go before the
# Russian patterns (so none of those starts inside one); "+7" numbers the Russian patterns miss go after them.
_INTERNATIONAL = rf"(?<![\w+])\+{{}}\d{{{{1,3}}}}(?:{_S}\(?\d{{{{1,5}}}}\)?){{{{1,6}}}}(?!\d)"
_FOREIGN = re.compile(_INTERNATIONAL.format("(?!7)"))
_ANY_INTERNATIONAL = re.compile(_INTERNATIONAL.format(""))
_PHONE = re.compile("|".join(f"(?:{p})" for p in _PHONE_PATTERNS))
_CARD = re.compile(r"(?<![\d\-])(?:\d{4}([ \-]?)\d{4}\1\d{4}\1\d{4})(?![\d\-])")
_EMAIL = re.compile(r"(?<![\w.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,24}\b")
_TLDS = ("ru", "рф", "su", "com", "net", "org", "me", "io", "info", "biz", "pro", "site", "online", "app", "ly",
         "ua", "by", "kz", "uz", "tv", "cc", "ai", "co", "de", "uk", "eu", "us", "link", "club", "shop", "store")
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'«»]+"  # scheme or www.: up to the next space
    r"|(?<![\w@.\-/])(?:[a-zа-яё0-9](?:[a-zа-яё0-9\-]{0,61}[a-zа-яё0-9])?\.)+"
    rf"(?:{'|'.join(_TLDS)})\b(?![.\-]?[\w])(?:[/?#][^\s<>\"'«»]*)?",
    re.IGNORECASE,
)
_HANDLE = re.compile(r"(?<![\w@.])@[A-Za-z][A-Za-z0-9_.]{1,31}(?<![.])")
# A contact label directly before what was removed: "тел.:", "WhatsApp", "e-mail -", "вк:"
_LABEL = re.compile(
    r"(?i)(?<![\w])(?:тел(?:ефон)?|т|моб(?:ильный)?|сот(?:овый)?|tel|phone|ph|mob|whats\s?app|ватсап|вацап|вотсап"
    r"|viber|вайбер|telegram|телеграм+|тг|tg|e-?mail|email|эл\.?\s?почта|почта|mail|вк|vk|vkontakte|вконтакте"
    r"|instagram|инстаграм|инста|inst|insta|сайт|site|карта|card|сбер|сбербанк|номер(?:\s+карты)?)"
    r"\.?[ \t]*[:\-–—]?[ \t]*(?=" + _CUT + ")"
)
# Words that only lead up to a removed contact: "пишите в <cut>", "звоните или <cut>", "по номеру <cut>".
_LEAD_IN = re.compile(
    r"(?i)(?<![\w])(?:в|на|по|через|или|и|а\s+также|пишите|напишите|писать|звоните|позвоните|звонить|обращайтесь"
    r"|номеру|телефону|номер)[ \t]*[,:\-–—]?[ \t]*(?=" + _CUT + ")"
)
# A line left with only these words after a removal said nothing but how to reach the author: it is dropped.
_CONTACT_WORDS = frozenset(
    "звоните звонить позвоните звонок пишите писать напишите обращайтесь обращаться контакты контакт связь связи для"
    " по номеру номер телефону телефон тел т моб в на и или личку лс личные сообщения whatsapp viber telegram ватсап"
    " вайбер телеграм тг смс sms сюда мне нам сразу любое время круглосуточно".split())
# Any 6-15 digits right after a phone label or "звоните" are a number, however grouped: "тел. 22 33 44".
_LABELLED_NUMBER = re.compile(
    r"(?i)((?<![\w])(?:тел(?:ефон)?|т|моб(?:ильный)?|сот(?:овый)?|номер\s+телефона|звоните|звонить|позвоните"
    r"|whats\s?app|ватсап|вотсап|viber|вайбер)\.?[ \t]*(?:по\s+(?:номеру|телефону)[ \t]*)?[:\-–—]?[ \t]*)"
    r"(\+?(?:\d[ \t\-.()]{0,2}){5,14}\d)(?![\w])"
)
# Common first names in their usual cases: a signature next to a removed contact ("Анна, 8 916 …", "+7 … Сергей"),
# or after "спросить"/"звоните"/"хозяйка" ("спросить Анну").
_FEMININE_A = ("Анн Ольг Марин Елен Светлан Татьян Ирин Екатерин Людмил Галин Надежд Вер Оксан Алён Ален Кристин"
               " Полин Валентин Тамар Ларис Нин Жанн Яросла Алин Анжелик Эльвир Диан Элин").split()
_FEMININE_IA = "Натал Юли Мари Дар Ксени Софи Анастаси Евгени Валери Виктори Таис Ульян Лиди".split()
_MASCULINE = ("Иван Александр Михаил Максим Владимир Артём Артем Роман Олег Виктор Антон Денис Кирилл Станислав Вадим"
              " Борис Глеб Егор Руслан Тимур Фёдор Федор Богдан Степан Семён Семен Леонид Вячеслав Ярослав").split()
_MASCULINE_I = "Серге Дмитри Андре Алексе Никола Юри Геннади Евгени Васили Анатоли Валери Арсени Григори Матве".split()
_NAME_FORMS = sorted(
    {f"{stem}{end}" for stem in _FEMININE_A for end in ("а", "у", "е", "ы", "и", "ой")}
    | {f"{stem}{end}" for stem in _FEMININE_IA for end in ("ия", "ья", "ию", "ью", "ии", "ьи", "ией", "ьей", "ье")}
    | {f"{stem}{end}" for stem in _MASCULINE for end in ("", "а", "у", "ом", "е")}
    | {f"{stem}{end}" for stem in _MASCULINE_I for end in ("й", "я", "ю", "ем", "е")}
    | {"Павел", "Павла", "Павлу", "Павлом", "Илья", "Ильи", "Илье", "Илью", "Ильёй", "Лев", "Льва", "Любовь", "Любови"},
    key=len, reverse=True)
_NAME = "(?:" + "|".join(_NAME_FORMS) + r")(?![\w])"
_NAME_BY_CUT = re.compile(
    rf"(?<![\w]){_NAME}[ \t]*[,:\-–—]?[ \t]*(?={_CUT})"  # "Анна, <cut>"
    rf"|(?<={_CUT})[ \t]*[,\-–—(]?[ \t]*(?:(?i:спросить|спрашивать)[ \t]+)?{_NAME}\)?"  # "<cut>, спросить Анну"
)
_NAME_AFTER_WORD = re.compile(
    rf"(?i:(?<![\w])(спросить|спрашивать|звоните|звонить|обращаться к|обращайтесь к|хозяйка|хозяин|волонт[её]р))"
    rf"[ \t]+{_NAME}"
)
_TRAILING_CUT = re.compile(_CUT + r"(?:[ \t]*(?:[,;/|]|или|и|or)[ \t]*" + _CUT + r")+")


def _international(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return _CUT if 8 <= digits <= 15 else match.group(0)


def _tidy(text: str) -> str:
    """Drop the removal marks with the labels and separators they leave dangling; collapse whitespace."""
    text = _TRAILING_CUT.sub(_CUT, text)
    for _ in range(4):  # "пишите в Telegram <cut>", "звоните или WhatsApp: <cut>": everything leading up to it
        text = _LEAD_IN.sub("", _LABEL.sub("", text))
    text = re.sub(r"\(\s*(?:[,;:/|\-–]\s*)*" + _CUT + r"(?:\s*[,;:/|\-–])*\s*\)", "", text)  # "(<cut>)"
    lines = []
    for line in text.splitlines():
        cut = _CUT in line
        line = re.sub(r"[ \t]*[:\-–—]?[ \t]*" + _CUT + r"[ \t]*(?:[,;/|][ \t]*)?", " ", line)
        line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
        line = re.sub(r" ([,;:.!?)])", r"\1", line)  # "слово ," left by a removal
        line = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", line)  # ", ," → ","
        line = re.sub(r"^[,;:/|\-–—]+\s*", "", line)
        line = re.sub(r"\s*[,;:/|\-–—]+$", "", line)
        line = re.sub(r"[,;:]\s*([.!?])", r"\1", line)
        line = re.sub(r"([.!?])\s*[,;:]+", r"\1", line)
        line = re.sub(r"\(\s*\)", "", line).strip()
        if cut and {w.lower() for w in re.findall(r"\w+", line)} <= _CONTACT_WORDS:
            continue  # "Звоните:", "WhatsApp, Telegram" — nothing but how to reach the author
        if line and not re.fullmatch(r"[\W_]+", line):
            lines.append(line)
    return "\n".join(lines)


def strip_pii(text: str) -> str:
    """``text`` without phone numbers, URLs, e-mail addresses, ``@handles`` and card numbers (see the module
    docstring for the forms); each is removed with a contact label right before it (``тел.``, ``WhatsApp:`` …) and a
    first name signed next to it, not replaced by a token. Whitespace is collapsed within lines, blank lines are
    dropped; numbers describing the animal (ages, dates, weights, house numbers) are kept. Never raises; ``""`` for
    ``""``."""
    if not text:
        return ""
    text = _EMAIL.sub(_CUT, text)
    text = _URL.sub(_CUT, text)
    text = _CARD.sub(_CUT, text)
    text = _FOREIGN.sub(_international, text)
    text = _PHONE.sub(_CUT, text)
    text = _ANY_INTERNATIONAL.sub(_international, text)
    text = _HANDLE.sub(_CUT, text)
    text = _LABELLED_NUMBER.sub(lambda m: m.group(1) + _CUT, text)
    text = _NAME_BY_CUT.sub(_CUT, text)
    text = _NAME_AFTER_WORD.sub(lambda m: "" if m.group(1).lower() in ("спросить", "спрашивать") else m.group(1),
                                text)  # "спросить Анну" goes whole, "звоните Анне" keeps "звоните"
    return _tidy(text)


# ------------------------------------------------------------------------------------------------ listing text

_SPECIES = {"cat": "кошка", "dog": "собака", "other": "животное"}
_SEX = {"male": "самец", "female": "самка"}
# Title words that say what kind of listing it is (lost/found), not what the animal is like.
_KIND_WORDS = re.compile(
    r"(?i)(?<![\w])(?:пропал[аи]?|потерял(?:ся|ась|ись)|потеряшка|найден[аы]?|нашл(?:ась|ся|ись|и)|нашёлся|нашелся"
    r"|ищу|ищем|ищет|убежал[аи]?|сбежал[аи]?|помогите(?:\s+найти)?|срочно|внимание)(?![\w])[!?.,]*"
)
# Where an address starts in a title: the rest of the title is dropped from there.
_ADDRESS_START = re.compile(
    r"(?i)(?:\s*(?:,|\b(?:на|в\s+районе|в|возле|около|у|рядом\s+с|недалеко\s+от)\b))?\s*"
    r"(?<![\w])(?:ул\.|улиц[аеы]|пр-т|пр-кт|просп\.|проспект[аеу]?|пр\.|пер\.|переул(?:ок|ке)|ш\.|шоссе|б-р"
    r"|бульвар[аеу]?|наб\.|набережн\w*|пл\.|площад[иь]|проезд[аеу]?|мкр\.?|микрорайон[аеу]?|м\.|метро|ст\.\s?м\."
    r"|д\.|дом[аеу]?|тупик[аеу]?|аллея|аллее|пос\.|посёлок|поселок|дер\.|деревня|снт|жк)(?![\w])"
)
_ON_PLACE = re.compile(r"\s*(?<![\w])(?:на|в\s+районе|возле|около|рядом\s+с)\s+(?=[А-ЯЁ0-9])")  # "на Вернадского"
_NOUNS = {"кошка", "кот", "котик", "кошечка", "котёнок", "котенок", "собака", "пёс", "пес", "щенок", "собачка",
          "песик", "пёсик", "животное", "питомец", "кота", "кошку", "собаку", "пса"}


def _either_case(words: str) -> str:
    """``"ул\\.|улица"`` → ``"[Уу]л\\.|[Уу]лица"``: street words may open a sentence, names must be capitalised."""
    return "|".join(f"[{w[0].upper()}{w[0]}]{w[1:]}" for w in words.split("|"))


_STREET_TYPE = _either_case(
    r"ул\.|улиц[аеыу]|пр-т[аеу]?|пр-кт[аеу]?|просп\.|проспект[аеу]?|пер\.|переул(?:ок|ка|ке)|ш\.|шоссе|б-р|бульвар[аеу]?|наб\."
    r"|набережн[а-я]+|пл\.|площад[иь]|проезд[аеу]?|мкр\.?|микрорайон[аеу]?|тупик[аеу]?|аллея|аллее")
_NAME_WORD = r"(?:[А-ЯЁA-Z][\w\-]*\.?|\d{1,2}-?[а-я]{0,2})"  # "Брянский", "А.", "1-я"
_HOUSE = r"(?:,?\s*(?:[Дд]\.|дом)?\s*\d{1,4}[а-яА-Я]?(?:\s*(?:к|корп\.?|с|стр\.?)\s*\d{1,3}[а-яА-Я]?)?(?![\w.,]\d))"
_STREET = (rf"(?:(?:{_NAME_WORD}\s+){{1,3}}(?:{_STREET_TYPE})|(?:{_STREET_TYPE})\s*(?:{_NAME_WORD}\s*){{1,4}})"
           rf"{_HOUSE}?(?![\w])")
_PLACE = re.compile(
    r"(?:(?<![\w])(?:в\s+районе|на\s+пересечении|на\s+углу|недалеко\s+от|рядом\s+с|на|у|возле|около|по|в)\s+)?"
    rf"(?<![\w]){_STREET}(?:\s*(?:,|и)\s*{_STREET})*"
)
_MONTHS = ("января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря")
_DATE = re.compile(
    r"(?<![\w.])(?:\d{1,2}[./]\d{1,2}[./](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}"
    rf"|\d{{1,2}}\s+(?:{_MONTHS})(?:\s+\d{{4}})?)(?:\s*(?:г\.|года?)(?![\w]))?(?![\w.]\d)"
)


def _drop_places_and_dates(text: str) -> str:
    """Street addresses (a street word and its name, the house number with it) and calendar dates, removed like
    contacts: they tell listings apart by where and when, not by the animal."""
    return _tidy(_DATE.sub(_CUT, _PLACE.sub(_CUT, text)))


def _city_stem(city: str) -> str:
    city = city.strip()
    return city[:-1] if len(city) > 4 and city[-1].lower() in "аяоеьый" else city


def _clean_title(title: str, city: str | None, known: str = "") -> str | None:
    """The part of a title that may describe the animal: without the lost/found words, the address (from its first
    street marker on) and the city; None when nothing is left but species nouns and words of ``known`` (the
    header: a title "Немецкая овчарка" under "порода: Немецкая овчарка" adds nothing)."""
    text = strip_pii(title)
    for pattern in (_ADDRESS_START, _ON_PLACE):
        if match := pattern.search(text):
            text = text[: match.start()]
    text = _KIND_WORDS.sub(" ", text)
    if city and city.strip():
        stem = re.escape(_city_stem(city))
        text = re.sub(rf"(?i)(?:\b(?:в|г\.|город[ае]?)\s*)?(?<![\w]){stem}\w*", " ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,;:.!?])", r"\1", text)
    text = re.sub(r"^[\s,;:.!?\-–—]+|[\s,;:\-–—]+$", "", text).rstrip(".")
    words = {w.lower() for w in re.findall(r"[\wё-]+", text)}
    if not words or words <= _NOUNS | {w.lower() for w in re.findall(r"[\wё-]+", known)}:
        return None
    return text


def _field(value: str | None) -> str | None:
    if value is None:
        return None
    value = strip_pii(str(value)).replace("\n", " ").strip(" ;")
    return value or None


def listing_text(*, species: str | None = None, breed: str | None = None, sex: str | None = None,
                 colour: str | None = None, title: str | None = None, description: str | None = None,
                 city: str | None = None, max_chars: int = 1000) -> str | None:
    """The text a model encodes for one listing or post, or None when nothing is left.

    Layout: a header line of the structured fields that describe the animal itself — ``species`` (``cat`` →
    "кошка", ``dog`` → "собака", ``other`` → "животное"; any other value verbatim), ``порода: <breed>``, ``пол:
    самец|самка`` (``sex`` ``male``/``female``; another value verbatim), ``окрас: <colour>`` — joined by "; "; then
    the title, reduced to what may describe the animal; then the description. For example::

        кошка; порода: Британская короткошерстная кошка; пол: самка
        кошка Муся, серая британка
        Пепельная (серая) британка. Глаза Жёлто-оранжевые. …

    What is left out, and why: the lost/found kind (a lost and a found listing of one animal differ in it, so it
    is anti-signal for re-identification), dates, the address and coordinates (places and times are the matcher's
    filters, not the animal; in text they would teach a model that listings of one place are one animal), and
    contact details. Accordingly the title loses its lost/found words ("Пропала", "Найден"…), everything from its
    first street marker on ("ул.", "на пр-те", "д." …) and ``city`` (``city`` is used only for that: it is never
    written itself); a title that is then nothing but species nouns and words of the header is dropped. The
    description is kept as written, minus personal data and minus street addresses (a street word with its name
    and house number: "в районе ул. Гарибальди, 90", "Рогожский Вал улица, д.11 к2") and calendar dates
    ("07.02.2025", "12 мая"), which only tell one listing from another; cities, metro stations and landmarks in the
    owner's words stay (a Telegram post has no other place, and the matcher reads its city from the text). Every
    part goes through :func:`strip_pii` (which itself keeps dates and house numbers: it removes personal data
    only). The result is cut to at most ``max_chars`` characters, at a word boundary where one lies in the last
    fifth (``max_chars`` must be positive).
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, not {max_chars}")
    breed, colour = _field(breed), _field(colour)
    sex = _field(_SEX.get(sex, sex) if sex else None)
    header = [_field(_SPECIES.get(species, species) if species else None),
              f"порода: {breed}" if breed else None, f"пол: {sex}" if sex else None,
              f"окрас: {colour}" if colour else None]
    header = [part for part in header if part]
    lines = ["; ".join(header)] if header else []
    if title and (cleaned := _clean_title(title, city, " ".join(header))):
        lines.append(cleaned)
    if description and (body := _drop_places_and_dates(strip_pii(description))):
        lines.append(body)
    text = "\n".join(lines).strip()
    if not text:
        return None
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = max(cut.rfind(" "), cut.rfind("\n"))
        text = (cut[:space] if space >= max_chars * 0.8 else cut).rstrip(" \n,;:")
    return text or None
