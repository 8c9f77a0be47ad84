"""UI strings in English and Italian; the agent's `language` picks one (login: Accept-Language)."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "it")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "app": "Hotel hub", "login": "Sign in", "email": "Email", "password": "Password",
        "login_failed": "Wrong email or password.", "logout": "Sign out",
        "mine": "Mine", "unassigned": "Unassigned", "team": "My teams", "all": "All",
        "complaints": "Complaints", "search": "Search messages…", "filters": "Filters", "any": "any",
        "status": "Status", "channel": "Channel", "priority": "Priority", "tag": "Tag", "apply": "Apply",
        "open": "Open", "pending": "Pending", "snoozed": "Snoozed", "resolved": "Resolved",
        "low": "low", "normal": "normal", "high": "high", "urgent": "urgent",
        "no_conversations": "No conversations here.", "pick_conversation": "Pick a conversation on the left.",
        "assign": "Assign", "assign_to_me": "Assign to me", "nobody": "nobody", "resolve": "Resolve",
        "reopen": "Reopen", "reply": "Reply", "note": "Note", "send": "Send", "add_note": "Add note",
        "reply_placeholder": "Write a reply… (type / for canned responses)",
        "note_placeholder": "Internal note, @name to mention…", "to": "To",
        "show_quote": "show quoted text", "show_html": "show formatted email", "call": "Call",
        "duration": "duration", "viewing": "is viewing", "typing": "is typing…",
        "identities": "Identities", "stage": "Stage", "stage_history": "Stage history", "case": "Case",
        "next_states": "Move to", "interventions": "Interventions", "tags": "Tags", "attributes": "Attributes",
        "due": "due", "none": "none", "older": "Load older", "shortcuts": "Keyboard shortcuts",
        "k_next": "next conversation", "k_prev": "previous conversation", "k_open": "open the selected one",
        "k_reply": "reply", "k_note": "note", "k_resolve": "resolve", "k_select": "select for bulk actions",
        "k_search": "search", "k_help": "this help", "close": "Close", "selected": "selected",
        "bulk_resolve": "Resolve selected", "bulk_mine": "Assign selected to me",
        "new_activity": "New activity", "private": "Conversations are visible to service staff only.",
        "sent": "Queued for sending", "customer": "Customer", "save": "Save", "merge_into": "Merge customer #",
        "merge": "Merge", "language": "Language", "opened": "opened", "complaint": "Complaint",
        "intervention": "Intervention", "status_change": "Status", "assignment": "Assignment",
    },
    "it": {
        "app": "Hub dell'hotel", "login": "Accedi", "email": "Email", "password": "Password",
        "login_failed": "Email o password errate.", "logout": "Esci",
        "mine": "Mie", "unassigned": "Non assegnate", "team": "I miei team", "all": "Tutte",
        "complaints": "Reclami", "search": "Cerca nei messaggi…", "filters": "Filtri", "any": "tutti",
        "status": "Stato", "channel": "Canale", "priority": "Priorità", "tag": "Etichetta", "apply": "Applica",
        "open": "Aperta", "pending": "In attesa", "snoozed": "Posticipata", "resolved": "Risolta",
        "low": "bassa", "normal": "normale", "high": "alta", "urgent": "urgente",
        "no_conversations": "Nessuna conversazione.", "pick_conversation": "Scegli una conversazione a sinistra.",
        "assign": "Assegna", "assign_to_me": "Assegna a me", "nobody": "nessuno", "resolve": "Risolvi",
        "reopen": "Riapri", "reply": "Rispondi", "note": "Nota", "send": "Invia", "add_note": "Aggiungi nota",
        "reply_placeholder": "Scrivi una risposta… (digita / per le risposte pronte)",
        "note_placeholder": "Nota interna, @nome per menzionare…", "to": "A",
        "show_quote": "mostra il testo citato", "show_html": "mostra l'email formattata", "call": "Chiamata",
        "duration": "durata", "viewing": "sta guardando", "typing": "sta scrivendo…",
        "identities": "Recapiti", "stage": "Fase", "stage_history": "Storico fasi", "case": "Pratica",
        "next_states": "Passa a", "interventions": "Interventi", "tags": "Etichette", "attributes": "Attributi",
        "due": "scadenza", "none": "nessuno", "older": "Carica i precedenti", "shortcuts": "Scorciatoie da tastiera",
        "k_next": "conversazione successiva", "k_prev": "conversazione precedente", "k_open": "apri la selezionata",
        "k_reply": "rispondi", "k_note": "nota", "k_resolve": "risolvi", "k_select": "seleziona per azioni multiple",
        "k_search": "cerca", "k_help": "questo aiuto", "close": "Chiudi", "selected": "selezionate",
        "bulk_resolve": "Risolvi selezionate", "bulk_mine": "Assegna a me le selezionate",
        "new_activity": "Nuova attività", "private": "Le conversazioni sono visibili solo al personale di servizio.",
        "sent": "In coda per l'invio", "customer": "Cliente", "save": "Salva", "merge_into": "Unisci il cliente n.",
        "merge": "Unisci", "language": "Lingua", "opened": "aperto", "complaint": "Reclamo",
        "intervention": "Intervento", "status_change": "Stato", "assignment": "Assegnazione",
    },
}


def language_of(preferred: str | None, accept_language: str = "") -> str:
    """The agent's language when we have it, else the first supported one the browser asks for."""
    if preferred and preferred[:2] in LANGUAGES:
        return preferred[:2]
    for part in accept_language.split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return "en"


def translator(language: str) -> Callable[[str], str]:
    """A `t(key)` function for templates; a missing key shows the English text, then the key itself."""
    table, fallback = STRINGS.get(language, STRINGS["en"]), STRINGS["en"]

    def t(key: str) -> str:
        return table.get(key) or fallback.get(key) or key

    return t
