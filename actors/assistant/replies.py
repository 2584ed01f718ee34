"""What the assistant says, per language: templates filled from the engine's results.

Policy as data: one table of sentences per language (ru, pt, en); the dialog picks a key and
the facts (a code, times, a service), never free text from a model for anything it decided.
"""

from __future__ import annotations

import datetime as dt

TEMPLATES: dict[str, dict[str, str]] = {
    "ru": {
        "greeting": "Здравствуйте! Я помощник «{business}». Могу записать вас, отменить или перенести запись. Услуги: {services}.",
        "help": "Я могу записать вас, отменить или перенести запись. Например: «запишите на {example} завтра в 14:00». Услуги: {services}.",
        "ask_service": "На какую услугу вас записать? {services}.",
        "ask_date": "На какой день записать на «{service}»?",
        "ask_time": "Во сколько? {day} свободно: {times}.",
        "day_full": "{day} свободного времени нет.",
        "booked": "Готово! «{service}», {when}, мастер {resource}. Код записи: {code}. Чтобы отменить, напишите «отменить {code}».",
        "slot_taken": "{when} уже занято.",
        "past": "{when} уже прошло.",
        "closed_day": "{day} мы не работаем.",
        "outside_hours": "{when} — вне часов работы.",
        "beyond_horizon": "Так далеко вперёд мы пока не записываем.",
        "offer": "Свободно: {times}. Какое время выбрать?",
        "no_offer": "В ближайшие дни свободного времени нет.",
        "ask_code": "Напишите код записи (6 символов).",
        "your_bookings": "Ваши записи: {list}.",
        "not_found": "Не нашёл записи с кодом {code} на ваш номер.",
        "cancelled": "Запись {code} («{service}», {when}) отменена.",
        "ask_new_date": "На какой день перенести запись {code}?",
        "rescheduled": "Запись {code} перенесена: «{service}», {when}, мастер {resource}.",
        "faq_unknown": "На этот вопрос я не знаю ответа, передам администратору.",
        "at": "в",
    },
    "pt": {
        "greeting": "Olá! Sou o assistente de {business}. Posso marcar, desmarcar ou remarcar o seu horário. Serviços: {services}.",
        "help": "Posso marcar, desmarcar ou remarcar horários. Por exemplo: «quero marcar {example} amanhã às 14h». Serviços: {services}.",
        "ask_service": "Qual serviço quer marcar? {services}.",
        "ask_date": "Para que dia quer marcar «{service}»?",
        "ask_time": "A que horas? {day} temos livre: {times}.",
        "day_full": "{day} não há horários livres.",
        "booked": "Pronto! «{service}», {when}, com {resource}. Código da marcação: {code}. Para desmarcar, escreva «desmarcar {code}».",
        "slot_taken": "{when} já está ocupado.",
        "past": "{when} já passou.",
        "closed_day": "{day} estamos fechados.",
        "outside_hours": "{when} é fora do horário de funcionamento.",
        "beyond_horizon": "Ainda não marcamos com tanta antecedência.",
        "offer": "Temos livre: {times}. Qual prefere?",
        "no_offer": "Não há horários livres nos próximos dias.",
        "ask_code": "Qual é o código da marcação (6 caracteres)?",
        "your_bookings": "As suas marcações: {list}.",
        "not_found": "Não encontrei nenhuma marcação com o código {code} para o seu número.",
        "cancelled": "A marcação {code} («{service}», {when}) foi desmarcada.",
        "ask_new_date": "Para que dia quer remarcar {code}?",
        "rescheduled": "A marcação {code} foi remarcada: «{service}», {when}, com {resource}.",
        "faq_unknown": "Não sei responder a isso; vou passar ao atendimento.",
        "at": "às",
    },
    "en": {
        "greeting": "Hello! I'm the assistant of {business}. I can book, cancel or reschedule an appointment. Services: {services}.",
        "help": "I can book, cancel or reschedule appointments. For example: \"book {example} tomorrow at 2pm\". Services: {services}.",
        "ask_service": "Which service would you like? {services}.",
        "ask_date": "For which day shall I book \"{service}\"?",
        "ask_time": "What time? {day} we have: {times}.",
        "day_full": "{day} is fully booked.",
        "booked": "Done! \"{service}\", {when}, with {resource}. Your booking code: {code}. To cancel, write \"cancel {code}\".",
        "slot_taken": "{when} is already taken.",
        "past": "{when} is in the past.",
        "closed_day": "We are closed {day}.",
        "outside_hours": "{when} is outside our opening hours.",
        "beyond_horizon": "We don't take bookings that far ahead yet.",
        "offer": "Free: {times}. Which one would you like?",
        "no_offer": "There are no free times in the next days.",
        "ask_code": "What is your booking code (6 characters)?",
        "your_bookings": "Your bookings: {list}.",
        "not_found": "I found no booking with code {code} for your number.",
        "cancelled": "Booking {code} (\"{service}\", {when}) is cancelled.",
        "ask_new_date": "To which day shall I move booking {code}?",
        "rescheduled": "Booking {code} is moved: \"{service}\", {when}, with {resource}.",
        "faq_unknown": "I don't know the answer to that; I'll pass it on to the staff.",
        "at": "at",
    },
}  # fmt: skip

WEEKDAY_NAMES = {
    "ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"),
    "pt": ("seg", "ter", "qua", "qui", "sex", "sáb", "dom"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _lang(lang: str) -> str:
    return lang if lang in TEMPLATES else "en"


def say(lang: str, key: str, **facts: object) -> str:
    return TEMPLATES[_lang(lang)][key].format(**facts)


def day(lang: str, d: dt.date) -> str:
    lang = _lang(lang)
    weekday = WEEKDAY_NAMES[lang][d.weekday()]
    if lang == "en":
        return f"{weekday} {d.day} {MONTHS_EN[d.month - 1]}"
    if lang == "pt":
        return f"{weekday} {d.day:02d}/{d.month:02d}"
    return f"{weekday} {d.day:02d}.{d.month:02d}"


def when(lang: str, moment: dt.datetime) -> str:
    return f"{day(lang, moment.date())} {TEMPLATES[_lang(lang)]['at']} {moment:%H:%M}"


def times(lang: str, moments: list[dt.datetime]) -> str:
    """Times of one day as "10:00, 10:15"; of several days with the day before each."""
    if len({m.date() for m in moments}) <= 1:
        return ", ".join(f"{m:%H:%M}" for m in moments)
    return ", ".join(when(lang, m) for m in moments)


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
