"""What each built-in trait means, in English and French: the glossary shows the text of the
project's language (``locale`` of passerelle.yml, or ``passerelle glossary --lang``)."""

from __future__ import annotations

LANGUAGES = ("en", "fr")

BUILTIN_DEFINITIONS: dict[str, dict[str, str]] = {
    "rfm": {
        "en": "Recency, frequency and monetary scores from 1 to 5 (quintiles of the customers "
              "who bought), and their code: 555 are the best customers.",
        "fr": "Scores de récence, fréquence et montant de 1 à 5 (quintiles des clients "
              "acheteurs) et leur code : 555 désigne les meilleurs clients.",
    },
    "clv": {
        "en": "Spend expected over the horizon (12 months by default): purchases predicted by "
              "BG/NBD times the average basket predicted by Gamma-Gamma.",
        "fr": "Dépense attendue sur l'horizon (12 mois par défaut) : achats prédits par "
              "BG/NBD multipliés par le panier moyen prédit par Gamma-Gamma.",
    },
    "churn_risk": {
        "en": "Probability that the customer has stopped buying: 1 − P(alive) under BG/NBD.",
        "fr": "Probabilité que le client ait cessé d'acheter : 1 − P(actif) selon BG/NBD.",
    },
    "days_since_last_visit": {
        "en": "Whole days since the person's last web or app event.",
        "fr": "Nombre de jours entiers depuis le dernier événement web ou app de la personne.",
    },
    "favourite_category": {
        "en": "Product category the person bought most often (order lines).",
        "fr": "Catégorie de produits que la personne achète le plus souvent (lignes de "
              "commande).",
    },
    "favourite_channel": {
        "en": "Channel (web, app, store...) the person bought through most often.",
        "fr": "Canal (web, app, magasin...) par lequel la personne achète le plus souvent.",
    },
}


def language_of(lang: str | None, default: str) -> str:
    """``lang`` when given (``fr``, ``en``, or a locale such as ``fr_BE``), else ``default``;
    a language without texts falls back to English."""
    code = (lang or default or "en").replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else "en"


def builtin_definition(builtin: str, lang: str) -> str | None:
    texts = BUILTIN_DEFINITIONS.get(builtin)
    return texts[language_of(lang, "en")] if texts else None
