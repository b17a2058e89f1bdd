"""Pools of believable French values the demo samples from with numpy.

Faker ``fr_FR`` supplies the name and street lists once; everything per row is a numpy
draw into these pools, because calling Faker a million times would take minutes.
Cities carry their real postcodes (a Faker city and a Faker postcode never match).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# (city, postcodes, population in thousands): weights for where people live.
CITIES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("Paris", tuple(f"750{i:02d}" for i in range(1, 21)), 2100),
    ("Marseille", tuple(f"130{i:02d}" for i in range(1, 17)), 870),
    ("Lyon", tuple(f"6900{i}" for i in range(1, 10)), 520),
    ("Toulouse", ("31000", "31100", "31200", "31300", "31400", "31500"), 500),
    ("Nice", ("06000", "06100", "06200", "06300"), 340),
    ("Nantes", ("44000", "44100", "44200", "44300"), 320),
    ("Montpellier", ("34000", "34070", "34080", "34090"), 300),
    ("Strasbourg", ("67000", "67100", "67200"), 290),
    ("Bordeaux", ("33000", "33100", "33200", "33300", "33800"), 260),
    ("Lille", ("59000", "59160", "59260", "59777", "59800"), 235),
    ("Rennes", ("35000", "35200", "35700"), 222),
    ("Reims", ("51100",), 180),
    ("Toulon", ("83000", "83100", "83200"), 180),
    ("Saint-Étienne", ("42000", "42100"), 173),
    ("Le Havre", ("76600", "76610", "76620"), 166),
    ("Grenoble", ("38000", "38100"), 158),
    ("Dijon", ("21000",), 159),
    ("Angers", ("49000", "49100"), 157),
    ("Villeurbanne", ("69100",), 156),
    ("Nîmes", ("30000", "30900"), 149),
    ("Aix-en-Provence", ("13080", "13090", "13100", "13290", "13540"), 147),
    ("Clermont-Ferrand", ("63000", "63100"), 147),
    ("Le Mans", ("72000", "72100"), 145),
    ("Brest", ("29200",), 140),
    ("Tours", ("37000", "37100", "37200"), 137),
    ("Amiens", ("80000", "80080", "80090"), 134),
    ("Limoges", ("87000", "87100", "87280"), 130),
    ("Annecy", ("74000", "74370", "74600", "74940", "74960"), 130),
    ("Perpignan", ("66000", "66100"), 120),
    ("Boulogne-Billancourt", ("92100",), 121),
    ("Metz", ("57000", "57050", "57070"), 118),
    ("Besançon", ("25000",), 119),
    ("Orléans", ("45000", "45100"), 116),
    ("Rouen", ("76000", "76100"), 114),
    ("Mulhouse", ("68100", "68200"), 108),
    ("Caen", ("14000",), 106),
    ("Nancy", ("54000", "54100"), 104),
    ("Argenteuil", ("95100",), 110),
    ("Montreuil", ("93100",), 111),
    ("Saint-Denis", ("93200", "93210"), 113),
    ("Roubaix", ("59100",), 98),
    ("Tourcoing", ("59200",), 98),
    ("Avignon", ("84000",), 91),
    ("Versailles", ("78000",), 84),
    ("Poitiers", ("86000",), 89),
    ("Pau", ("64000",), 76),
    ("La Rochelle", ("17000",), 77),
    ("Calais", ("62100",), 67),
    ("Cannes", ("06150", "06400"), 74),
    ("Antibes", ("06160", "06600"), 73),
    ("Colmar", ("68000",), 67),
    ("Bayonne", ("64100",), 51),
    ("Vannes", ("56000",), 54),
    ("Quimper", ("29000",), 63),
    ("Lorient", ("56100",), 57),
    ("Chambéry", ("73000",), 60),
    ("Troyes", ("10000",), 61),
    ("Valence", ("26000",), 64),
    ("Niort", ("79000",), 59),
    ("Ajaccio", ("20000", "20090"), 71),
    ("Bastia", ("20200", "20600"), 48),
    ("Saint-Malo", ("35400",), 47),
    ("Arcachon", ("33120",), 11),
    ("Biarritz", ("64200",), 25),
    ("Chartres", ("28000",), 38),
)

# (store code, label, city): the retailer's shops.
STORES: tuple[tuple[str, str, str], ...] = (
    ("MAG001", "Paris Rivoli", "Paris"),
    ("MAG002", "Paris Saint-Germain", "Paris"),
    ("MAG003", "Lyon Part-Dieu", "Lyon"),
    ("MAG004", "Marseille Prado", "Marseille"),
    ("MAG005", "Bordeaux Sainte-Catherine", "Bordeaux"),
    ("MAG006", "Lille Grand Place", "Lille"),
    ("MAG007", "Nantes Passage Pommeraye", "Nantes"),
    ("MAG008", "Toulouse Capitole", "Toulouse"),
    ("MAG009", "Strasbourg Kléber", "Strasbourg"),
    ("MAG010", "Nice Masséna", "Nice"),
    ("MAG011", "Rennes République", "Rennes"),
    ("MAG012", "Montpellier Comédie", "Montpellier"),
)

# Short forms people write instead of their first name (true name -> forms).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Jean-Baptiste": ("JB", "Jean-Bap"),
    "Catherine": ("Cathy", "Cath"),
    "Alexandre": ("Alex",),
    "Alexandra": ("Alex", "Sandra"),
    "Christophe": ("Chris",),
    "Nicolas": ("Nico",),
    "Frédéric": ("Fred",),
    "Stéphanie": ("Steph", "Stéph"),
    "Sébastien": ("Seb", "Séb"),
    "Maxime": ("Max",),
    "Isabelle": ("Isa",),
    "Valérie": ("Val",),
    "Dominique": ("Dom",),
    "Philippe": ("Phil",),
    "Benjamin": ("Ben",),
    "Thomas": ("Tom",),
    "Anthony": ("Tony",),
    "Véronique": ("Véro",),
    "Caroline": ("Caro",),
    "Emmanuel": ("Manu",),
    "Emmanuelle": ("Manue",),
    "Jean-Pierre": ("JP",),
    "Jean-Philippe": ("JP",),
    "Jean-Christophe": ("JC",),
    "Jean-Michel": ("JM",),
    "Florence": ("Flo",),
    "Florian": ("Flo",),
    "Nathalie": ("Nath",),
    "Delphine": ("Delph",),
    "Élisabeth": ("Babeth", "Élise"),
    "Mathieu": ("Math",),
    "Guillaume": ("Guigui", "Will"),
    "Christine": ("Titine",),
    "Patricia": ("Patou",),
    "Sandrine": ("Sandy",),
    "Marie-Christine": ("Marie-Chris",),
    "Virginie": ("Virgi",),
    "Aurélien": ("Aurel",),
    "Charlotte": ("Charlie",),
    "Margaux": ("Margot",),
}
NICKNAME_GENDER = {
    "Catherine": 0, "Alexandra": 0, "Stéphanie": 0, "Isabelle": 0, "Valérie": 0,
    "Véronique": 0, "Caroline": 0, "Emmanuelle": 0, "Florence": 0, "Nathalie": 0,
    "Delphine": 0, "Élisabeth": 0, "Christine": 0, "Patricia": 0, "Sandrine": 0,
    "Marie-Christine": 0, "Virginie": 0, "Charlotte": 0, "Margaux": 0, "Dominique": 0,
}  # fmt: skip

EMAIL_PROVIDERS = (
    ("gmail.com", 34), ("orange.fr", 14), ("hotmail.fr", 11), ("free.fr", 8), ("yahoo.fr", 7),
    ("laposte.net", 5), ("sfr.fr", 5), ("outlook.fr", 5), ("icloud.com", 5), ("wanadoo.fr", 4),
    ("hotmail.com", 2),
)  # fmt: skip

ADDRESS_LINE2 = (
    "Appartement 12", "Bâtiment B", "Résidence les Tilleuls", "Escalier C", "2e étage",
    "Appt 304", "Porte gauche", "Résidence du Parc", "Bât. A, appt 21", "Chez M. et Mme",
)  # fmt: skip

_PRODUCT_TYPES = (
    # (category, product, min price, max price)
    ("Linge de maison", "Plaid", 39, 129), ("Linge de maison", "Housse de couette", 59, 189),
    ("Linge de maison", "Drap de bain", 19, 49), ("Linge de maison", "Coussin", 19, 59),
    ("Décoration", "Vase", 19, 89), ("Décoration", "Bougie parfumée", 12, 39),
    ("Décoration", "Miroir", 49, 249), ("Décoration", "Cadre photo", 12, 45),
    ("Arts de la table", "Assiette", 8, 24), ("Arts de la table", "Carafe", 19, 49),
    ("Arts de la table", "Bol", 6, 18), ("Arts de la table", "Nappe", 29, 79),
    ("Luminaires", "Lampe à poser", 49, 199), ("Luminaires", "Suspension", 79, 299),
    ("Mode femme", "Robe", 49, 149), ("Mode femme", "Chemise", 39, 99),
    ("Mode femme", "Pull", 49, 129), ("Mode homme", "Chemise", 39, 99),
    ("Mode homme", "Pull", 59, 139), ("Mode homme", "Veste", 99, 249),
    ("Accessoires", "Écharpe", 25, 69), ("Accessoires", "Sac cabas", 39, 119),
)  # fmt: skip
_MATERIALS = ("en lin", "en coton bio", "en laine", "en grès", "en verre soufflé", "en velours",
              "en céramique", "en jute", "en cachemire", "en chanvre")  # fmt: skip
_COLOURS = ("sable", "terracotta", "bleu nuit", "vert sauge", "écru", "ocre", "anthracite",
            "rose poudré", "blanc", "moutarde")  # fmt: skip


def ascii_fold(text: str) -> str:
    """'Hélène Lefèvre' -> 'helene lefevre' (for e-mail local parts)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def zipf_weights(n: int, rng: np.random.Generator, exponent: float = 0.9) -> np.ndarray:
    """Skewed popularity over a shuffled pool: a few very common values, a long tail."""
    w = 1.0 / (np.arange(n) + 8.0) ** exponent
    rng.shuffle(w)
    return w / w.sum()


@dataclass(frozen=True)
class Pools:
    """Every list the generator draws from, as Arrow arrays plus sampling weights."""

    first: pa.Array  # female names then male names
    first_gender: np.ndarray  # 0 female, 1 male
    first_weights: np.ndarray  # per gender, each summing to 1 within its gender
    first_ascii: pa.Array
    nickname_of: np.ndarray  # index into ``nick`` (or -1), per first name
    nick: pa.Array
    nick_counts: np.ndarray
    last: pa.Array
    last_weights: np.ndarray
    last_ascii: pa.Array
    streets: pa.Array
    places_city: pa.Array  # one entry a (city, postcode) pair
    places_postcode: pa.Array
    places_weights: np.ndarray
    places_city_idx: np.ndarray  # index into CITIES
    providers: pa.Array
    provider_weights: np.ndarray
    line2: pa.Array
    products: pa.Array
    product_categories: pa.Array
    product_cents: np.ndarray
    product_weights: np.ndarray


def build_pools(seed: int) -> Pools:
    from faker import Faker
    from faker.providers.person.fr_FR import Provider as Person

    rng = np.random.default_rng([seed, 1])
    female = list(dict.fromkeys([*Person.first_names_female,
                                 *(n for n, g in NICKNAME_GENDER.items() if g == 0)]))
    male = list(dict.fromkeys([*Person.first_names_male,
                               *(n for n in NICKNAMES if n not in NICKNAME_GENDER)]))
    first = female + male
    gender = np.array([0] * len(female) + [1] * len(male), dtype=np.int8)
    weights = np.concatenate([zipf_weights(len(female), rng), zipf_weights(len(male), rng)])
    nick_list: list[str] = []
    nick_start = np.full(len(first), -1, dtype=np.int64)
    nick_counts = np.zeros(len(first), dtype=np.int64)
    for i, name in enumerate(first):
        forms = NICKNAMES.get(name)
        if forms:
            nick_start[i], nick_counts[i] = len(nick_list), len(forms)
            nick_list.extend(forms)
            weights[i] *= 3  # these are common names in France
    for g in (0, 1):
        weights[gender == g] /= weights[gender == g].sum()
    last = list(dict.fromkeys(Person.last_names))
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    streets = sorted({fake.street_name() for _ in range(2500)})
    streets = [s.replace(",", "") for s in streets]
    city, postcode, pweights, cidx = [], [], [], []
    for i, (name, codes, pop) in enumerate(CITIES):
        for code in codes:
            city.append(name)
            postcode.append(code)
            pweights.append(pop / len(codes))
            cidx.append(i)
    pw = np.array(pweights, dtype=float)
    products, cats, cents = [], [], []
    prng = np.random.default_rng([seed, 2])
    for cat, kind, low, high in _PRODUCT_TYPES:
        for material in _MATERIALS[:6] if cat.startswith("Mode") else _MATERIALS:
            for colour in _COLOURS[:5]:
                products.append(f"{kind} {material} {colour}")
                cats.append(cat)
                cents.append(int(prng.integers(low, high + 1)) * 100 - 10)  # 49,90
    return Pools(
        first=pa.array(first),
        first_gender=gender,
        first_weights=weights,
        first_ascii=pa.array([ascii_fold(n).replace(" ", "-") for n in first]),
        nickname_of=nick_start,
        nick=pa.array(nick_list or [""]),
        nick_counts=nick_counts,
        last=pa.array(last),
        last_weights=zipf_weights(len(last), rng, 0.7),
        last_ascii=pa.array([ascii_fold(n).replace(" ", "").replace("'", "") for n in last]),
        streets=pa.array(streets),
        places_city=pa.array(city),
        places_postcode=pa.array(postcode),
        places_weights=pw / pw.sum(),
        places_city_idx=np.array(cidx),
        providers=pa.array([p for p, _ in EMAIL_PROVIDERS]),
        provider_weights=np.array([w for _, w in EMAIL_PROVIDERS], float)
        / sum(w for _, w in EMAIL_PROVIDERS),
        line2=pa.array(ADDRESS_LINE2),
        products=pa.array(products),
        product_categories=pa.array(cats),
        product_cents=np.array(cents, dtype=np.int64),
        product_weights=zipf_weights(len(products), prng, 0.8),
    )
