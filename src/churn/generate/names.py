"""Who the synthetic customers are: the markets they live in (region, country, language) and their names,
native spelling and ASCII for e-mail addresses, per language.
"""

from __future__ import annotations

import numpy as np

from churn.generate.planted import Planted

# Synthetic names per language: (native spelling, ASCII for e-mail addresses).
_NAMES: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "en": (
        [("James", "james"), ("Mary", "mary"), ("Robert", "robert"), ("Patricia", "patricia"),
         ("John", "john"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
         ("David", "david"), ("Elizabeth", "elizabeth"), ("Olivia", "olivia"), ("Ethan", "ethan")],
        [("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
         ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
         ("Wilson", "wilson"), ("Anderson", "anderson"), ("Taylor", "taylor"), ("Moore", "moore")],
    ),
    "de": (
        [("Lukas", "lukas"), ("Anna", "anna"), ("Jürgen", "juergen"), ("Sophie", "sophie"),
         ("Maximilian", "maximilian"), ("Lena", "lena"), ("Jörg", "joerg"), ("Marie", "marie"),
         ("Felix", "felix"), ("Hannah", "hannah"), ("Günther", "guenther"), ("Käthe", "kaethe")],
        [("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"), ("Fischer", "fischer"),
         ("Weber", "weber"), ("Meyer", "meyer"), ("Wagner", "wagner"), ("Becker", "becker"),
         ("Schulz", "schulz"), ("Hoffmann", "hoffmann"), ("Groß", "gross"), ("Köhler", "koehler")],
    ),
    "sl": (
        [("Luka", "luka"), ("Nina", "nina"), ("Žiga", "ziga"), ("Maja", "maja"), ("Jure", "jure"),
         ("Špela", "spela"), ("Matej", "matej"), ("Ana", "ana"), ("Nejc", "nejc"), ("Urška", "urska"),
         ("Tadej", "tadej"), ("Eva", "eva")],
        [("Novak", "novak"), ("Horvat", "horvat"), ("Kovačič", "kovacic"), ("Krajnc", "krajnc"),
         ("Zupančič", "zupancic"), ("Potočnik", "potocnik"), ("Kovač", "kovac"), ("Mlakar", "mlakar"),
         ("Vidmar", "vidmar"), ("Golob", "golob"), ("Turk", "turk"), ("Kos", "kos")],
    ),
    "lv": (
        [("Jānis", "janis"), ("Anna", "anna"), ("Andris", "andris"), ("Līga", "liga"),
         ("Mārtiņš", "martins"), ("Ilze", "ilze"), ("Edgars", "edgars"), ("Kristīne", "kristine"),
         ("Raivis", "raivis"), ("Inese", "inese"), ("Artūrs", "arturs"), ("Zane", "zane")],
        [("Bērziņš", "berzins"), ("Kalniņš", "kalnins"), ("Ozoliņš", "ozolins"), ("Jansons", "jansons"),
         ("Ozols", "ozols"), ("Liepiņš", "liepins"), ("Krūmiņš", "krumins"), ("Balodis", "balodis"),
         ("Eglītis", "eglitis"), ("Zariņš", "zarins"), ("Pētersons", "petersons"), ("Vītols", "vitols")],
    ),
    "lt": (
        [("Lukas", "lukas"), ("Emilija", "emilija"), ("Matas", "matas"), ("Gabija", "gabija"),
         ("Jonas", "jonas"), ("Austėja", "austeja")],
        [("Kazlauskas", "kazlauskas"), ("Jankauskas", "jankauskas"), ("Petrauskas", "petrauskas"),
         ("Stankevičius", "stankevicius"), ("Vasiliauskas", "vasiliauskas"), ("Žukauskas", "zukauskas")],
    ),
    "et": (
        [("Rasmus", "rasmus"), ("Maria", "maria"), ("Martin", "martin"), ("Sofia", "sofia"),
         ("Robin", "robin"), ("Eliise", "eliise")],
        [("Tamm", "tamm"), ("Saar", "saar"), ("Sepp", "sepp"), ("Mägi", "magi"), ("Kask", "kask"),
         ("Kukk", "kukk")],
    ),
    "tr": (
        [("Mehmet", "mehmet"), ("Ayşe", "ayse"), ("Mustafa", "mustafa"), ("Fatma", "fatma"),
         ("Ahmet", "ahmet"), ("Emine", "emine"), ("Ali", "ali"), ("Zeynep", "zeynep"),
         ("Hüseyin", "huseyin"), ("Elif", "elif"), ("Çağrı", "cagri"), ("Gökhan", "gokhan")],
        [("Yılmaz", "yilmaz"), ("Kaya", "kaya"), ("Demir", "demir"), ("Şahin", "sahin"),
         ("Çelik", "celik"), ("Yıldız", "yildiz"), ("Yıldırım", "yildirim"), ("Öztürk", "ozturk"),
         ("Aydın", "aydin"), ("Özdemir", "ozdemir"), ("Arslan", "arslan"), ("Doğan", "dogan")],
    ),
    "fa": (
        [("علی", "ali"), ("زهرا", "zahra"), ("محمد", "mohammad"), ("فاطمه", "fatemeh"),
         ("حسین", "hossein"), ("مریم", "maryam"), ("رضا", "reza"), ("سارا", "sara"),
         ("امیر", "amir"), ("نگار", "negar"), ("مهدی", "mehdi"), ("شیرین", "shirin")],
        [("رضایی", "rezaei"), ("محمدی", "mohammadi"), ("حسینی", "hosseini"), ("احمدی", "ahmadi"),
         ("کریمی", "karimi"), ("موسوی", "mousavi"), ("جعفری", "jafari"), ("صادقی", "sadeghi"),
         ("کاظمی", "kazemi"), ("رحیمی", "rahimi"), ("نوری", "nouri"), ("طاهری", "taheri")],
    ),
}
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

def _markets(p: Planted) -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray]:
    regions = [r for r, _, _ in p.region_channels]
    region_of = np.array([regions.index(m[0]) for m in p.markets])
    w = np.array([m[3] for m in p.markets])
    return regions, [m[1] for m in p.markets], [m[2] for m in p.markets], region_of, w / w.sum()


_NameList = list[tuple[str, str]]


def _name_tables() -> tuple[dict[str, tuple[int, int, int, int]], _NameList, _NameList]:
    offsets: dict[str, tuple[int, int, int, int]] = {}
    firsts: list[tuple[str, str]] = []
    lasts: list[tuple[str, str]] = []
    for lang, (f, last) in _NAMES.items():
        offsets[lang] = (len(firsts), len(f), len(lasts), len(last))
        firsts += f
        lasts += last
    return offsets, firsts, lasts
