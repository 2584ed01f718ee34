"""The rules' vocabulary per language: data, not code, so a phrase is added in one place.

Phrases are compared folded (case and accents ignored: see normalise.fold). A phrase matches whole
words; a phrase ending in "*" matches any word starting with it ("отмен*" = отмена, отменить…).
"""

from __future__ import annotations

from wafleet.actors.assistant.understanding import Intent

LANGUAGES = ("ru", "pt", "en")

# The order is the priority: "хочу отменить запись" is a cancel although it says "запись". Weak
# words ("есть", "tem", "any") ask for free times only when nothing stronger was said.
INTENTS: dict[str, tuple[tuple[Intent, tuple[str, ...]], ...]] = {
    "ru": (
        (Intent.CANCEL, ("отмен*", "отказ*", "не приду")),
        (Intent.RESCHEDULE, ("перенес*", "перенест*", "перезапис*", "поменять время", "изменить время",
                             "сдвин*", "другое время", "полчаса позже", "час позже",
                             "попозже")),
        (Intent.AVAILABILITY, ("свободн*", "окна", "окно", "окошк*", "есть время", "есть ли", "какие часы",
                               "когда можно")),
        (Intent.FAQ, ("сколько стоит", "сколько длится", "сколько по времени", "длится", "стоимост*", "цена",
                      "цены", "прайс", "где", "адрес*", "во сколько", "до скольки", "работаете", "открыва*", "закрыва*", "часы работы",
                      "оплат*", "картой", "парковк*", "как добраться")),
        (Intent.BOOKING, ("запис*", "хочу на", "можно на", "мне бы", "хочу сделать", "забронир*", "хотела бы",
                          "хотел бы")),
        (Intent.AVAILABILITY, ("есть",)),
        (Intent.OTHER, ("до завтра", "до встречи", "до свидания", "пока пока", "спасибо")),
        (Intent.GREETING, ("привет*", "здравств*", "здраст*", "здрась*", "добрый день", "доброе утро", "добрый вечер",
                           "доброго дня")),
    ),
    "pt": (
        (Intent.CANCEL, ("cancel*", "desmarc*", "nao vou poder ir", "nao vou conseguir ir")),
        (Intent.RESCHEDULE, ("remarc*", "mudar", "trocar", "troca", "trocar o horario", "trocar meu horario", "adiar",
                             "pra frente", "hora mais tarde",
                             "outro horario", "reagend*")),
        (Intent.AVAILABILITY, ("vaga", "vagas", "livre", "livres", "disponive*", "disponibilidade",
                               "tem horario", "quais horarios")),
        (Intent.FAQ, ("quanto custa", "quanto fica", "quanto sai", "aberto", "abertos", "aberta", "quanto tempo", "demora", "quanto e", "preco*", "valor", "valores", "onde",
                      "endereco", "localizacao", "funcionamento", "que horas", "abrem", "fecham", "aceitam",
                      "cartao", "pix", "estacionamento")),
        (Intent.BOOKING, ("marcar", "marca", "agend*", "reserv*", "quero fazer", "gostaria", "queria fazer",
                          "quero um", "quero uma", "tem como")),
        (Intent.AVAILABILITY, ("tem", "teria", "teriam", "tem algum", "tem algo")),
        (Intent.OTHER, ("ate amanha", "ate mais", "ate logo", "tchau", "obrigad*", "valeu")),
        (Intent.GREETING, ("oi", "ola", "bom dia", "boa tarde", "boa noite", "tudo bem", "e ai", "eai")),
    ),
    "en": (
        (Intent.CANCEL, ("cancel*", "call off", "cant make it", "can't make it", "wont make it")),
        (Intent.RESCHEDULE, ("reschedul*", "move", "move it", "move my", "change the time", "change my", "change it", "another time",
                             "push it", "postpone")),
        (Intent.AVAILABILITY, ("free", "availab*", "slot", "slots", "what times", "openings", "space")),
        (Intent.FAQ, ("how much", "how long", "price*", "cost*", "where", "address", "located", "location",
                      "opening hours", "what time do you", "open", "close", "closing", "do you take", "card",
                      "pay", "parking")),
        (Intent.BOOKING, ("book*", "appointment", "can i get", "id like", "i'd like", "i would like", "wanna",
                          "want a", "come in", "reserve", "get my", "need a")),
        (Intent.AVAILABILITY, ("any", "anything")),
        (Intent.OTHER, ("see you", "see ya", "bye", "thanks", "thank you", "cheers")),
        (Intent.GREETING, ("hi", "hello", "hey", "hiya", "good morning", "good afternoon", "good evening")),
    ),
}  # fmt: skip

# Emoji that say a word on their own (a wave is a hello); other emoji are dropped.
EMOJI_WORDS = {"👋": " hi ", "🙋": " hi ", "🖐": " hi "}

# Short forms people type, replaced by what the date parser knows (whole words, after folding).
ABBREVIATIONS: dict[str, dict[str, str]] = {
    "ru": {"сег": "сегодня", "седня": "сегодня", "завтро": "завтра", "послезавтро": "послезавтра"},
    "pt": {
        "hj": "hoje", "amnh": "amanha", "seg": "segunda", "qua": "quarta",
        "qui": "quinta", "sex": "sexta", "sab": "sabado", "dom": "domingo",
    },
    "en": {
        "tmrw": "tomorrow", "tmr": "tomorrow", "tmw": "tomorrow", "tomoz": "tomorrow", "2moro": "tomorrow",
        "2morrow": "tomorrow", "tomorow": "tomorrow", "tommorow": "tomorrow", "2day": "today", "tday": "today",
        "thur": "thursday", "thurs": "thursday", "tues": "tuesday", "weds": "wednesday",
    },
}  # fmt: skip

# Days from today said in words, beyond the date parser's own list (which has today, tomorrow…).
RELATIVE_DAYS: dict[str, dict[str, int]] = {
    "ru": {"послезавтра": 2, "после завтра": 2},
    "pt": {"depois de amanha": 2, "depois d amanha": 2},
    "en": {
        "day after tomorrow": 2,
        "day after tmrw": 2,
        "tonight": 0,
        "this evening": 0,
        "this afternoon": 0,
    },
}

# A message with one of these names a day to avoid before the one meant: "не завтра, а в пятницу",
# "amanhã não dá, pode ser sexta?", "can't tomorrow, friday?": the last date it names is meant.
NEGATIONS = ("не", "нет", "нельзя", "nao", "not", "no", "cant", "cannot", "dont", "doesnt", "wont")

# A weekday said with one of these is in next calendar week ("на следующей неделе во вторник").
NEXT_WEEK = ("следующей неделе", "след неделе", "semana que vem", "proxima semana", "next week")

# Weekday abbreviations of the date parser that are everyday words too ("quero ter": to have).
NOT_WEEKDAYS = {"pt": ("ter",), "en": (), "ru": ()}

# Words before a span of time that make it an offset from today ("через неделю", "in a week"),
# unlike "next week", which names no day.
RELATIVE_OFFSET = ("через", "in", "em", "daqui", "dentro de", "within")

# Greetings that name a part of the day without saying when the appointment is ("Boa tarde! … às 11").
GREETINGS_WITH_DAY_PART = (
    "добрый день", "доброе утро", "добрый вечер", "доброго дня", "доброго вечера", "bom dia", "boa tarde",
    "boa noite", "good morning", "good afternoon", "good evening",
)  # fmt: skip

# Words that say which half of the day a bare hour is in.
MORNING = ("утра", "утром", "с утра", "manha", "de manha", "da manha", "morning", "am", "a.m.")
AFTERNOON = (
    "дня", "днем", "вечера", "вечером", "после обеда", "ночи", "tarde", "da tarde", "a tarde", "noite",
    "da noite", "a noite", "afternoon", "evening", "tonight", "pm", "p.m.",
)  # fmt: skip

# Ordinal words that pick one of the offered alternatives (index; -1 is the last one).
ORDINALS: dict[str, int] = {
    "первый": 0, "первая": 0, "первое": 0, "первую": 0, "первого": 0,
    "второй": 1, "вторая": 1, "второе": 1, "вторую": 1, "второго": 1,
    "третий": 2, "третья": 2, "третье": 2, "третью": 2, "третьего": 2,
    "последний": -1, "последняя": -1, "последнее": -1, "последнюю": -1,
    "primeiro": 0, "primeira": 0, "segundo": 1, "segunda": 1, "terceiro": 2, "terceira": 2,
    "ultimo": -1, "ultima": -1,
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "last": -1,
}  # fmt: skip

# Words that mark a message as Portuguese or English when it has no Cyrillic letters.
LANGUAGE_MARKERS: dict[str, frozenset[str]] = {
    "pt": frozenset(
        """
        quero queria gostaria marcar marca agendar desmarcar remarcar cancelar amanha hoje hj pra para
        vc vcs voce voces as ao com um uma meu minha o os da do de dia tem ta esta pode ser bom boa
        oi ola obrigado obrigada valeu tchau sim nao horario horarios corte cabelo unhas fazer quanto
        custa onde fica qual quais que segunda terca quarta quinta sexta sabado domingo manha tarde
        noite semana opcao codigo e salao livre vaga disponivel aceitam cartao fica ate abrem
        """.split()
    ),
    "en": frozenset(
        """
        i i'd id can could get an the to at on in for with my me is it its you your u r do does have
        any anything free tomorrow tmrw 2moro today book booking appointment cancel reschedule please
        pls plz thanks thank cheers bye hi hello hey what when where how much time times is are works
        fine next morning afternoon evening want wanna like need would
        """.split()
    ),
}

# The first letters of month names, enough to tell "7 декабря" or "5 de dez" from an hour.
MONTH_STEMS = (
    r"янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек|jan|fev|feb|mar|abr|apr|mai|may|jun|jul|ago|aug|set|sep"
    r"|out|oct|nov|dez|dec"
)
