"""Which language a dataset's texts are mostly in, cheaply: writing system first, then common-word counts.

No model and no new dependency: a few hundred texts and short stop-word lists tell English from German,
French, Spanish, Italian, Portuguese, Dutch, and scripts such as Cyrillic or CJK from Latin. Used to suggest
the multilingual model on the Train page and to offer demo sentences in the users' own language.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.data.storage import load_split
from db.enums import TaskKind

SAMPLE_TEXTS = 300
MIN_WORDS = 20  # below this there is too little to say anything
MULTILINGUAL_MODEL_ID = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"

# The most frequent short function words of each language; words shared by two lists count for neither.
_STOPWORDS = {
    "en": "the and is it to of was this that for with not but have you are my on in be they",
    "de": "der die das und ist nicht ich es zu mit ein eine sehr den auf für war sich auch aber",
    "fr": "le la les et est pas je il de un une des très pour que qui avec sur ce mais du au",
    "es": "el la los las y es no que de un una muy para con por pero lo se del al su",
    "it": "il la che e è non di un una per con sono ma molto gli le del della questo ho",
    "pt": "o a os as e é não que de um uma muito para com por mas do da em se",
    "nl": "de het een en is niet ik dat van te met op voor zijn maar ook heel was er",
}
_WORDS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
_SHARED = {w for lang, ws in _WORDS.items() for w in ws if sum(w in other for other in _WORDS.values()) > 1}
_UNIQUE = {lang: ws - _SHARED for lang, ws in _WORDS.items()}

NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
         "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "ar": "Arabic", "he": "Hebrew",
         "hi": "Hindi", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "th": "Thai", "other": "not English"}
# Writing systems by the first word of their Unicode character names.
_SCRIPTS = {"CYRILLIC": "ru", "GREEK": "el", "ARABIC": "ar", "HEBREW": "he", "DEVANAGARI": "hi",
            "CJK": "zh", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "THAI": "th"}
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True)
class LanguageGuess:
    code: str  # "en", "de", ... or "other" (not English, not one we can name)
    share: float  # share of the sampled evidence that points to it (0..1)

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)

    @property
    def is_english(self) -> bool:
        return self.code == "en"


def detect_language(texts: Iterable[str], sample: int = SAMPLE_TEXTS) -> LanguageGuess | None:
    """The language most of `texts` are in, or None when there is too little text to tell."""
    chosen = [str(t) for _, t in zip(range(sample), texts, strict=False)]
    letters = Counter()
    for text in chosen:
        for ch in text[:2000]:
            if ch.isalpha():
                letters[_script(ch)] += 1
    total = sum(letters.values())
    if total < MIN_WORDS * 3:
        return None
    script, count = letters.most_common(1)[0]
    if script != "LATIN":
        code = _SCRIPTS.get(script, "other")
        if code == "zh" and letters.get("HIRAGANA", 0) + letters.get("KATAKANA", 0) > 0.05 * total:
            code = "ja"  # Japanese mixes kanji (CJK) with kana
        return LanguageGuess(code, round(count / total, 3))
    return _latin_language(chosen)


def _script(ch: str) -> str:
    if ch.isascii():
        return "LATIN"
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "OTHER"


def _latin_language(texts: Sequence[str]) -> LanguageGuess | None:
    hits: Counter[str] = Counter()
    words = 0
    for text in texts:
        for token in _TOKEN.findall(text[:2000].lower()):
            words += 1
            for lang, unique in _UNIQUE.items():
                if token in unique:
                    hits[lang] += 1
    evidence = sum(hits.values())
    if words < MIN_WORDS or evidence < 5:
        return None
    lang, count = hits.most_common(1)[0]
    return LanguageGuess(lang, round(count / evidence, 3))


def dataset_language(dataset: Any) -> LanguageGuess | None:
    """The language of a classification dataset's training texts (a sample); None for interactions or little text."""

    if dataset.task != TaskKind.CLASSIFICATION:
        return None
    texts = load_split(dataset, "train")["text"].dropna().astype(str)
    if len(texts) > SAMPLE_TEXTS:
        texts = texts.sample(SAMPLE_TEXTS, random_state=0)
    return detect_language(texts.tolist())


def suggested_model_id(guess: LanguageGuess | None) -> str | None:
    """The multilingual model for texts that are mostly not English; None keeps the default (English) one."""
    return MULTILINGUAL_MODEL_ID if guess is not None and not guess.is_english else None


# Demo sentences (very positive, negative, neutral, mixed) in the languages we can name.
EXAMPLES = {
    "en": ("Absolutely love it: setup took two minutes and support was brilliant.",
           "The app keeps crashing and nobody answers my emails.",
           "It arrived on Tuesday, in a brown box.",
           "Not bad at all, though the battery could last longer."),
    "de": ("Absolut begeistert: in zwei Minuten eingerichtet, und der Support war großartig.",
           "Die App stürzt ständig ab und niemand beantwortet meine E-Mails.",
           "Es kam am Dienstag an, in einem braunen Karton.",
           "Gar nicht schlecht, nur der Akku könnte länger halten."),
    "fr": ("Je l'adore : installé en deux minutes et un support formidable.",
           "L'application plante sans arrêt et personne ne répond à mes e-mails.",
           "Il est arrivé mardi, dans une boîte marron.",
           "Pas mal du tout, même si la batterie pourrait durer plus longtemps."),
    "es": ("Me encanta: se instaló en dos minutos y el soporte fue genial.",
           "La aplicación se cuelga todo el rato y nadie responde a mis correos.",
           "Llegó el martes, en una caja marrón.",
           "Nada mal, aunque la batería podría durar más."),
    "it": ("Lo adoro: installato in due minuti e l'assistenza è stata fantastica.",
           "L'app continua a bloccarsi e nessuno risponde alle mie email.",
           "È arrivato martedì, in una scatola marrone.",
           "Niente male, anche se la batteria potrebbe durare di più."),
    "pt": ("Adorei: instalei em dois minutos e o suporte foi excelente.",
           "O aplicativo trava o tempo todo e ninguém responde aos meus e-mails.",
           "Chegou na terça-feira, numa caixa marrom.",
           "Nada mal, embora a bateria pudesse durar mais."),
    "nl": ("Helemaal geweldig: in twee minuten geïnstalleerd en de support was top.",
           "De app crasht steeds en niemand beantwoordt mijn e-mails.",
           "Het kwam dinsdag aan, in een bruine doos.",
           "Helemaal niet slecht, al zou de batterij langer mogen meegaan."),
    "ru": ("Просто в восторге: настроил за две минуты, а поддержка была замечательной.",
           "Приложение постоянно вылетает, и никто не отвечает на мои письма.",
           "Он пришёл во вторник в коричневой коробке.",
           "Совсем неплохо, хотя батарея могла бы держать дольше."),
}


def example_sentences(guess: LanguageGuess | None) -> tuple[str, ...]:
    """Demo sentences in the guessed language (English when it is English, unknown, or one we have none for)."""
    return EXAMPLES.get(guess.code if guess is not None else "en", EXAMPLES["en"])
