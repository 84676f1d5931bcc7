"""The sample databases shipped with sense-hub: small domains with realistic data and foreign keys.

They are built from code (deterministic, seeded) rather than shipped as binary files, so the repository stays
reviewable and every build is byte-for-byte reproducible. `seed_examples()` gives hand-written questions with
gold SQL over them; the quickstart uses them as the weak model's questions and the Space as examples.

A fourth database, `ADAPT_DB_ID` (`warehouse_ops`, an inventory and purchasing schema named the way ERP exports
are: `po_hdr`, `WH_LOCATION`, `qty_on_hand`, status codes such as 'OPN'), is not among `SAMPLE_DB_IDS`: it is
built only when named, and `heldout_examples()` gives its hand-written held-out questions, used to measure how
much adapting a model to one database helps on that database.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

SAMPLE_DB_IDS = ("bookshop", "cycling_club", "city_transit")
# A fourth database, not among SAMPLE_DB_IDS: ERP-style naming, with held-out questions (`heldout_examples`) to
# measure how much adapting a model to this one database helps on its own questions.
ADAPT_DB_ID = "warehouse_ops"

_FIRST = [
    "Amara",
    "Bruno",
    "Chen",
    "Dalia",
    "Emil",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kemal",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
_LAST = [
    "Almeida",
    "Berg",
    "Castro",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ito",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
]
_COUNTRIES = ["Portugal", "Norway", "France", "Japan", "Brazil", "Germany", "Nigeria", "Croatia", "Canada", "Italy"]
_CITIES = ["Lisbon", "Oslo", "Lyon", "Osaka", "Recife", "Hamburg", "Lagos", "Zagreb", "Toronto", "Turin"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _bookshop(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript(
        """
        CREATE TABLE author (
            author_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, birth_year INTEGER
        );
        CREATE TABLE book (
            book_id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL, genre TEXT,
            published_year INTEGER, price REAL, pages INTEGER,
            FOREIGN KEY (author_id) REFERENCES author(author_id)
        );
        CREATE TABLE customer (
            customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, joined_year INTEGER
        );
        CREATE TABLE purchase (
            purchase_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, book_id INTEGER NOT NULL,
            quantity INTEGER NOT NULL, purchase_date TEXT,
            FOREIGN KEY (customer_id) REFERENCES customer(customer_id),
            FOREIGN KEY (book_id) REFERENCES book(book_id)
        );
        """
    )
    authors = [(i, _name(rng), rng.choice(_COUNTRIES), rng.randint(1930, 1995)) for i in range(1, 31)]
    con.executemany("INSERT INTO author VALUES (?, ?, ?, ?)", authors)
    genres = ["fantasy", "mystery", "history", "science", "poetry", "romance", "travel"]
    words = ["Silent", "River", "Glass", "North", "Garden", "Winter", "Paper", "Stone", "Hidden", "Golden", "Salt"]
    nouns = ["Harbor", "Letters", "Machine", "Island", "Orchard", "Empire", "Lantern", "Atlas", "Voyage", "Tide"]
    books, titles = [], set()
    while len(books) < 80:
        title = f"The {rng.choice(words)} {rng.choice(nouns)}"
        if title in titles:
            continue
        titles.add(title)
        books.append(
            (
                len(books) + 1,
                title,
                rng.randint(1, 30),
                rng.choice(genres),
                rng.randint(1965, 2024),
                round(rng.uniform(6, 45), 2),
                rng.randint(90, 820),
            )
        )
    con.executemany("INSERT INTO book VALUES (?, ?, ?, ?, ?, ?, ?)", books)
    customers = [(i, _name(rng), rng.choice(_CITIES), rng.randint(2012, 2024)) for i in range(1, 61)]
    con.executemany("INSERT INTO customer VALUES (?, ?, ?, ?)", customers)
    purchases = [
        (
            i,
            rng.randint(1, 60),
            rng.randint(1, 80),
            rng.choice([1, 1, 1, 2, 2, 3]),
            f"{rng.randint(2021, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        for i in range(1, 301)
    ]
    con.executemany("INSERT INTO purchase VALUES (?, ?, ?, ?, ?)", purchases)


def _cycling_club(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript(
        """
        CREATE TABLE team (team_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, founded INTEGER);
        CREATE TABLE rider (
            rider_id INTEGER PRIMARY KEY, name TEXT NOT NULL, team_id INTEGER, nationality TEXT,
            age INTEGER, weight_kg REAL,
            FOREIGN KEY (team_id) REFERENCES team(team_id)
        );
        CREATE TABLE race (
            race_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, distance_km REAL, year INTEGER,
            terrain TEXT
        );
        CREATE TABLE result (
            race_id INTEGER NOT NULL, rider_id INTEGER NOT NULL, position INTEGER, time_minutes REAL,
            PRIMARY KEY (race_id, rider_id),
            FOREIGN KEY (race_id) REFERENCES race(race_id),
            FOREIGN KEY (rider_id) REFERENCES rider(rider_id)
        );
        """
    )
    team_names = [
        "Atlantic Wheels",
        "Fjord Riders",
        "Rhone Velo",
        "Kansai Sprint",
        "Selva Cycling",
        "Elbe Express",
        "Savanna Pro",
        "Adriatic Climb",
    ]
    teams = [(i + 1, n, _COUNTRIES[i], rng.randint(1985, 2018)) for i, n in enumerate(team_names)]
    con.executemany("INSERT INTO team VALUES (?, ?, ?, ?)", teams)
    riders = [
        (i, _name(rng), rng.randint(1, 8), rng.choice(_COUNTRIES), rng.randint(19, 38), round(rng.uniform(55, 82), 1))
        for i in range(1, 61)
    ]
    con.executemany("INSERT INTO rider VALUES (?, ?, ?, ?, ?, ?)", riders)
    races = []
    for i in range(1, 17):
        terrain = rng.choice(["flat", "hilly", "mountain", "cobbles"])
        races.append(
            (
                i,
                f"Grand Prix of {_CITIES[i % 10]} {2019 + i % 6}",
                _COUNTRIES[i % 10],
                round(rng.uniform(120, 260), 1),
                2019 + i % 6,
                terrain,
            )
        )
    con.executemany("INSERT INTO race VALUES (?, ?, ?, ?, ?, ?)", races)
    results = []
    for race_id, *_rest in races:
        field = rng.sample(range(1, 55), 12)  # riders 55-60 are reserves who never raced
        base = rng.uniform(170, 380)
        for pos, rider_id in enumerate(field, 1):
            results.append((race_id, rider_id, pos, round(base + pos * rng.uniform(0.1, 1.5), 2)))
    con.executemany("INSERT INTO result VALUES (?, ?, ?, ?)", results)


def _city_transit(con: sqlite3.Connection, rng: random.Random) -> None:
    con.executescript(
        """
        CREATE TABLE line (line_id INTEGER PRIMARY KEY, name TEXT NOT NULL, mode TEXT, opened_year INTEGER);
        CREATE TABLE station (
            station_id INTEGER PRIMARY KEY, name TEXT NOT NULL, district TEXT, accessible INTEGER
        );
        CREATE TABLE stop (
            line_id INTEGER NOT NULL, station_id INTEGER NOT NULL, stop_order INTEGER NOT NULL,
            PRIMARY KEY (line_id, station_id),
            FOREIGN KEY (line_id) REFERENCES line(line_id),
            FOREIGN KEY (station_id) REFERENCES station(station_id)
        );
        CREATE TABLE ridership (
            station_id INTEGER NOT NULL, month TEXT NOT NULL, entries INTEGER,
            PRIMARY KEY (station_id, month),
            FOREIGN KEY (station_id) REFERENCES station(station_id)
        );
        """
    )
    lines = [
        (1, "Red", "metro", 1978),
        (2, "Blue", "metro", 1985),
        (3, "Green", "tram", 1996),
        (4, "Harbour", "ferry", 2004),
        (5, "Airport", "rail", 2012),
        (6, "Orange", "tram", 2019),
    ]
    con.executemany("INSERT INTO line VALUES (?, ?, ?, ?)", lines)
    districts = ["Old Town", "Riverside", "Northgate", "Harbourfront", "University", "Westfield"]
    prefixes = ["Market", "Cathedral", "Park", "Museum", "Central", "Bridge", "Mill", "Garden", "Tower", "Dock"]
    suffixes = ["Square", "Street", "Hill", "Gate", "Road"]
    names = [f"{p} {s}" for p in prefixes for s in suffixes]
    rng.shuffle(names)
    stations = [(i, names[i - 1], rng.choice(districts), rng.choice([0, 1, 1])) for i in range(1, 41)]
    con.executemany("INSERT INTO station VALUES (?, ?, ?, ?)", stations)
    stops = []
    for line_id, *_rest in lines:
        for order, station_id in enumerate(rng.sample(range(1, 41), rng.randint(6, 12)), 1):
            stops.append((line_id, station_id, order))
    con.executemany("INSERT INTO stop VALUES (?, ?, ?)", stops)
    months = [f"2024-{m:02d}" for m in range(1, 7)]
    rows = [(s, m, rng.randint(800, 25000)) for s in range(1, 41) for m in months]
    con.executemany("INSERT INTO ridership VALUES (?, ?, ?)", rows)


# (supp_cd, supp_nm, ctry_cd, categories it sells)
_WH_SUPPLIERS = [
    ("S-1001", "Kessler Industriebedarf GmbH", "DE", ("FAST", "TOOL")),
    ("S-1002", "Nordhafen Verpackung GmbH", "DE", ("PKG",)),
    ("S-1003", "Rhein-Werkzeug AG", "DE", ("TOOL",)),
    ("S-1004", "Atlas Fastener Corp", "US", ("FAST",)),
    ("S-1005", "Great Lakes Safety Supply", "US", ("SAFE",)),
    ("S-1006", "Pioneer Electric Supply Inc", "US", ("ELEC",)),
    ("S-1007", "Ningbo Harbor Packaging Co", "CN", ("PKG",)),
    ("S-1008", "Shenzhen Brightline Electronics", "CN", ("ELEC",)),
    ("S-1009", "Qingdao Ocean Tools Co", "CN", ("TOOL", "FAST")),
    ("S-1010", "Ferragens do Norte Lda", "PT", ("FAST", "TOOL")),
    ("S-1011", "Lusoquimica SA", "PT", ("CHEM", "CLN")),
    ("S-1012", "Osaka Precision Parts KK", "JP", ("TOOL",)),
    ("S-1013", "Tokai Cleaning Products KK", "JP", ("CLN",)),
    ("S-1014", "Monterrey Industrial SA de CV", "MX", ("SAFE", "TOOL")),
    ("S-1015", "Baja Packaging SA de CV", "MX", ("PKG",)),
    ("S-1016", "Polmet Sp z o.o.", "PL", ("FAST",)),
    ("S-1017", "Wisla Chemia Sp z o.o.", "PL", ("CHEM",)),
    ("S-1018", "Milano Utensili SpA", "IT", ("TOOL",)),
    ("S-1019", "Torino Sicurezza Srl", "IT", ("SAFE",)),
    ("S-1020", "Taipei Circuit Components", "TW", ("ELEC",)),
    ("S-1021", "Formosa Fasteners Ltd", "TW", ("FAST",)),
    ("S-1022", "Brabant Safety BV", "NL", ("SAFE",)),
    ("S-1023", "Delta Clean Supplies BV", "NL", ("CLN", "CHEM")),
    ("S-1024", "Northwind Tools Ltd", "GB", ("TOOL",)),
    ("S-1025", "Pennine Lubricants Ltd", "GB", ("CHEM",)),
]
_WH_SITES = [
    (1, "WH-LIS", "Lisbon", "PT", 4000, "2012-03-01", "Rosa Almeida"),
    (2, "WH-HAM", "Hamburg", "DE", 9000, "2009-06-15", "Sven Fischer"),
    (3, "WH-ROT", "Rotterdam", "NL", 12000, "2015-09-01", None),
    (4, "WH-LYO", "Lyon", "FR", 5000, "2018-04-16", "Emil Dubois"),
    (5, "WH-POZ", "Poznan", "PL", 7000, "2021-10-04", "Nadia Kowalski"),
    (6, "WH-MIL", "Milan", "IT", 3500, "2024-09-02", None),
]
_WH_CATEGORIES = [
    ("ELEC", "Electrical"),
    ("FAST", "Fasteners"),
    ("PKG", "Packaging"),
    ("SAFE", "Safety equipment"),
    ("TOOL", "Hand tools"),
    ("CHEM", "Chemicals and lubricants"),
    ("CLN", "Cleaning supplies"),
    ("OFF", "Office supplies"),
]
# category -> (base description, unit of measure, base unit cost in USD, variants)
_WH_PRODUCTS = {
    "ELEC": [
        ("LED tube T8", "EA", 6.5, ["600mm", "1200mm", "1500mm"]),
        ("Circuit breaker", "EA", 11.0, ["10A", "16A", "32A"]),
        ("Extension cord", "EA", 9.0, ["5m", "10m", "25m"]),
        ("Junction box", "EA", 4.2, ["IP55", "IP65"]),
        ("Motion sensor", "EA", 18.0, ["indoor", "outdoor"]),
        ("Power cable H07RN-F", "M", 2.4, ["3G1.5", "3G2.5"]),
    ],
    "FAST": [
        ("Hex bolt M8", "BOX", 7.5, ["x30", "x50", "x80"]),
        ("Wood screw", "BOX", 5.0, ["4x40", "5x60"]),
        ("Washer M10", "BOX", 3.1, ["zinc", "stainless"]),
        ("Anchor plug", "BOX", 4.0, ["6mm", "8mm", "10mm"]),
        ("Blind rivet", "BOX", 6.0, ["4x10", "5x12"]),
    ],
    "PKG": [
        ("Carton box", "EA", 0.9, ["S", "M", "L", "XL"]),
        ("Stretch film", "ROL", 14.0, ["17mu", "23mu"]),
        ("Packing tape", "ROL", 1.8, ["48mm clear", "48mm brown"]),
        ("Bubble wrap", "M", 0.6, ["500mm", "1000mm"]),
        ("Wooden pallet", "EA", 11.0, ["EUR", "half"]),
    ],
    "SAFE": [
        ("Safety gloves", "EA", 3.2, ["S", "M", "L", "XL"]),
        ("Hard hat", "EA", 12.0, ["white", "yellow"]),
        ("Safety goggles", "EA", 5.5, ["clear", "tinted"]),
        ("Hi-vis vest", "EA", 4.5, ["M", "L", "XL"]),
        ("Ear plugs 200 pk", "BOX", 21.0, ["foam"]),
    ],
    "TOOL": [
        ("Claw hammer", "EA", 14.0, ["450g", "600g"]),
        ("Screwdriver set", "EA", 19.0, ["6 pc", "12 pc"]),
        ("Tape measure", "EA", 7.0, ["5m", "8m"]),
        ("Utility knife", "EA", 4.0, ["18mm", "25mm"]),
        ("Pallet jack", "EA", 310.0, ["2.5t"]),
    ],
    "CHEM": [
        ("Machine oil", "L", 4.8, ["ISO VG 32", "ISO VG 68"]),
        ("Grease cartridge", "EA", 6.3, ["400g"]),
        ("Degreaser", "L", 3.9, ["citrus", "solvent-free"]),
        ("Threadlocker", "EA", 9.5, ["50ml"]),
    ],
    "CLN": [
        ("Floor cleaner", "L", 2.2, ["neutral", "alkaline"]),
        ("Paper towel roll", "ROL", 1.3, ["2-ply"]),
        ("Absorbent granules", "KG", 1.1, ["20kg"]),
        ("Mop head", "EA", 3.6, ["cotton", "microfibre"]),
    ],
}
_WH_BUYERS = ["Lena Berg", "Mateo Silva", "Priya Ito", "Oskar Novak"]


def _quarter(usd: float) -> float:
    """Round a price to a quarter dollar: exact in binary floating point, so sums of prices times quantities do not
    depend on the order SQLite adds them in (its sum() is plain floating-point addition before 3.43), and an
    equivalent query always gives exactly the gold answer."""
    return max(0.25, round(usd * 4) / 4)


def _warehouse_ops(con: sqlite3.Connection, rng: random.Random) -> None:
    """An inventory / purchasing database named the way real ERP exports are: abbreviated and mixed-style."""
    con.executescript(
        """
        CREATE TABLE supp (
            supp_id INTEGER PRIMARY KEY, supp_cd TEXT NOT NULL UNIQUE, supp_nm TEXT NOT NULL, ctry_cd TEXT,
            lead_tm_days INTEGER, is_active INTEGER NOT NULL, email TEXT
        );
        CREATE TABLE WH_LOCATION (
            LOC_ID INTEGER PRIMARY KEY, LOC_CD TEXT NOT NULL UNIQUE, CITY TEXT, CTRY_CD TEXT, CAP_PALLETS INTEGER,
            OPEN_DT TEXT, MGR_NM TEXT
        );
        CREATE TABLE item_cat (cat_cd TEXT PRIMARY KEY, cat_desc TEXT NOT NULL);
        CREATE TABLE inv_item (
            itm_id INTEGER PRIMARY KEY, itm_cd TEXT NOT NULL UNIQUE, descr TEXT NOT NULL, cat_cd TEXT NOT NULL,
            uom TEXT NOT NULL, unit_cost_usd REAL, qty_on_hand INTEGER NOT NULL, reorder_pt INTEGER,
            pref_supp_id INTEGER, home_loc_id INTEGER, is_active INTEGER NOT NULL,
            FOREIGN KEY (cat_cd) REFERENCES item_cat(cat_cd),
            FOREIGN KEY (pref_supp_id) REFERENCES supp(supp_id),
            FOREIGN KEY (home_loc_id) REFERENCES WH_LOCATION(LOC_ID)
        );
        CREATE TABLE po_hdr (
            po_id INTEGER PRIMARY KEY, po_no TEXT NOT NULL UNIQUE, supp_id INTEGER NOT NULL,
            ship_to_loc_id INTEGER NOT NULL, po_dt TEXT NOT NULL, exp_dlv_dt TEXT, sts TEXT NOT NULL, BuyerNm TEXT,
            FOREIGN KEY (supp_id) REFERENCES supp(supp_id),
            FOREIGN KEY (ship_to_loc_id) REFERENCES WH_LOCATION(LOC_ID)
        );
        CREATE TABLE po_line (
            po_id INTEGER NOT NULL, ln_no INTEGER NOT NULL, itm_id INTEGER NOT NULL, qty_ord INTEGER NOT NULL,
            qty_rcvd INTEGER NOT NULL, unit_price_usd REAL NOT NULL,
            PRIMARY KEY (po_id, ln_no),
            FOREIGN KEY (po_id) REFERENCES po_hdr(po_id),
            FOREIGN KEY (itm_id) REFERENCES inv_item(itm_id)
        );
        CREATE TABLE stock_mvmt (
            mvmt_id INTEGER PRIMARY KEY, itm_id INTEGER NOT NULL, loc_id INTEGER NOT NULL, mvmt_type TEXT NOT NULL,
            qty INTEGER NOT NULL, mvmt_dt TEXT NOT NULL, ref_po_id INTEGER,
            FOREIGN KEY (itm_id) REFERENCES inv_item(itm_id),
            FOREIGN KEY (loc_id) REFERENCES WH_LOCATION(LOC_ID),
            FOREIGN KEY (ref_po_id) REFERENCES po_hdr(po_id)
        );
        """
    )
    far_east = {"CN", "TW", "JP"}
    suppliers = []
    for i, (code, name, ctry, _cats) in enumerate(_WH_SUPPLIERS, 1):
        lead = rng.randint(35, 70) if ctry in far_east else rng.randint(5, 30)
        active = 0 if rng.random() < 0.15 else 1
        email = None if rng.random() < 0.2 else f"orders@{name.split()[0].lower()}.example.com"
        suppliers.append((i, code, name, ctry, lead, active, email))
    con.executemany("INSERT INTO supp VALUES (?, ?, ?, ?, ?, ?, ?)", suppliers)
    con.executemany("INSERT INTO WH_LOCATION VALUES (?, ?, ?, ?, ?, ?, ?)", _WH_SITES)
    con.executemany("INSERT INTO item_cat VALUES (?, ?)", _WH_CATEGORIES)

    by_cat = {cat: [i for i, spec in enumerate(_WH_SUPPLIERS, 1) if cat in spec[3]] for cat, _ in _WH_CATEGORIES}
    items = []
    for cat, products in _WH_PRODUCTS.items():
        for base, uom, cost, variants in products:
            for k, variant in enumerate(variants):
                itm_id = len(items) + 1
                stock_levels = [0, rng.randint(5, 60), rng.randint(5, 60), rng.randint(60, 400), rng.randint(60, 400)]
                stock_levels.append(rng.randint(400, 2500))
                items.append(
                    (
                        itm_id,
                        f"ITM-{10000 + itm_id * 7}",
                        f"{base} {variant}",
                        cat,
                        uom,
                        _quarter(cost * (1 + 0.35 * k) * rng.uniform(0.85, 1.15)),
                        rng.randint(0, 12) if cost > 100 else rng.choice(stock_levels),
                        None
                        if rng.random() < 0.12
                        else rng.choice([2, 5] if cost > 100 else [20, 50, 100, 150, 200, 300]),
                        None if rng.random() < 0.1 else rng.choice(by_cat[cat]),
                        rng.randint(1, 5),
                        0 if rng.random() < 0.08 else 1,
                    )
                )
    con.executemany("INSERT INTO inv_item VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", items)

    start, end = dt.date(2023, 1, 2), dt.date(2024, 12, 31)
    po_dates = sorted(start + dt.timedelta(days=rng.randint(0, (end - start).days)) for _ in range(110))
    no_orders = {suppliers[-1][0], suppliers[12][0]}  # never ordered from (inactive suppliers only get 2023 orders)
    headers, lines, moves = [], [], []
    for po_id, po_dt in enumerate(po_dates, 1):
        supp = rng.choice([s for s in suppliers if s[0] not in no_orders and (s[5] or po_dt.year == 2023)])
        cats = _WH_SUPPLIERS[supp[0] - 1][3]
        sites = [s[0] for s in _WH_SITES if s[5] <= po_dt.isoformat()]
        ship_to = rng.choice(sites)
        exp = po_dt + dt.timedelta(days=supp[4])
        arrival = exp + dt.timedelta(days=rng.randint(-3, 9))
        if arrival > end or (po_dt.isoformat() >= "2024-09-01" and rng.random() < 0.4):
            sts = "CXL" if rng.random() < 0.08 else "OPN"
        else:
            sts = "CXL" if rng.random() < 0.1 else "CLS"
        headers.append(
            (
                po_id,
                f"PO-{po_dt.year % 100}{po_id:04d}",
                supp[0],
                ship_to,
                po_dt.isoformat(),
                None if rng.random() < 0.05 else exp.isoformat(),
                sts,
                None if rng.random() < 0.1 else rng.choice(_WH_BUYERS),
            )
        )
        choices = [it for it in items if it[3] in cats and it[10] == 1]
        for ln_no, item in enumerate(rng.sample(choices, min(len(choices), rng.randint(1, 4))), 1):
            qty = rng.choice([10, 20, 25, 50, 100, 200, 500])
            rcvd = {"CLS": qty if rng.random() < 0.85 else qty - rng.randint(1, qty // 2), "CXL": 0}.get(sts, 0)
            if sts == "OPN" and arrival <= end and rng.random() < 0.6:
                rcvd = rng.randint(1, qty - 1)
            price = _quarter(item[5] * rng.uniform(0.9, 1.1))
            lines.append((po_id, ln_no, item[0], qty, rcvd, price))
            if rcvd:
                moves.append((min(arrival, end).isoformat(), item[0], ship_to, "RCV", rcvd, po_id))
    con.executemany("INSERT INTO po_hdr VALUES (?, ?, ?, ?, ?, ?, ?, ?)", headers)
    con.executemany("INSERT INTO po_line VALUES (?, ?, ?, ?, ?, ?)", lines)

    mv_start = dt.date(2023, 3, 1)
    for _ in range(190):
        item = rng.choice(items)
        day = mv_start + dt.timedelta(days=rng.randint(0, (end - mv_start).days))
        moves.append((day.isoformat(), item[0], item[9], "ISS", rng.choice([1, 2, 5, 10, 20, 40, 100]), None))
    for _ in range(28):
        item = rng.choice(items)
        day = mv_start + dt.timedelta(days=rng.randint(0, (end - mv_start).days))
        moves.append((day.isoformat(), item[0], item[9], "ADJ", rng.choice([-12, -5, -3, -2, -1, 1, 2, 4, 8]), None))
    moves.sort(key=lambda m: (m[0], m[1], m[3]))
    con.executemany(
        "INSERT INTO stock_mvmt VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i, itm, loc, typ, qty, day, po) for i, (day, itm, loc, typ, qty, po) in enumerate(moves, 1)],
    )


_BUILDERS = {
    "bookshop": _bookshop,
    "cycling_club": _cycling_club,
    "city_transit": _city_transit,
    ADAPT_DB_ID: _warehouse_ops,
}


def build_sample_databases(out_root: str | Path, *, db_ids: tuple[str, ...] = SAMPLE_DB_IDS) -> dict[str, Path]:
    """Write the sample databases as `<out_root>/<db_id>/<db_id>.sqlite` (Spider layout).

    Existing files are kept as they are (the content is deterministic), so calling this twice is cheap.

    Args:
        out_root: the folder that will hold one sub-folder per database.
        db_ids: which databases to build (default: `SAMPLE_DB_IDS`; `ADAPT_DB_ID` is built only when named).

    Returns:
        `{db_id: path}` for each database.

    Raises:
        ValueError: an unknown db_id.
    """
    out_root = Path(out_root)
    paths: dict[str, Path] = {}
    for db_id in db_ids:
        if db_id not in _BUILDERS:
            raise ValueError(f"unknown sample database {db_id!r}; choose from {list(_BUILDERS)}")
        path = out_root / db_id / f"{db_id}.sqlite"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".sqlite.tmp")
            tmp.unlink(missing_ok=True)
            con = sqlite3.connect(tmp)
            try:
                _BUILDERS[db_id](con, random.Random(f"sense-hub/{db_id}"))
                con.commit()
            finally:
                con.close()
            tmp.replace(path)
        paths[db_id] = path
    return paths


_SEEDS: dict[str, list[tuple[str, str]]] = {
    "bookshop": [
        ("How many books are there?", "SELECT count(*) FROM book"),
        ("List the titles of books in the poetry genre.", "SELECT title FROM book WHERE genre = 'poetry'"),
        ("What is the average price of a book?", "SELECT avg(price) FROM book"),
        ("Which authors are from Japan?", "SELECT name FROM author WHERE country = 'Japan'"),
        ("How many books are there in each genre?", "SELECT genre, count(*) FROM book GROUP BY genre"),
        ("What is the title of the most expensive book?", "SELECT title FROM book ORDER BY price DESC LIMIT 1"),
        ("List the titles of books published after 2015.", "SELECT title FROM book WHERE published_year > 2015"),
        (
            "What are the names of customers who live in Oslo?",
            "SELECT name FROM customer WHERE city = 'Oslo'",
        ),
        (
            "Show the title of each book together with its author's name.",
            "SELECT T1.title, T2.name FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id",
        ),
        (
            "How many copies were sold in total for each genre?",
            "SELECT T2.genre, sum(T1.quantity) FROM purchase AS T1 JOIN book AS T2 ON T1.book_id = T2.book_id "
            "GROUP BY T2.genre",
        ),
        (
            "Which customers have never made a purchase?",
            "SELECT name FROM customer WHERE customer_id NOT IN (SELECT customer_id FROM purchase)",
        ),
        (
            "Which authors have written more than three books?",
            "SELECT T2.name FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id "
            "GROUP BY T1.author_id HAVING count(*) > 3",
        ),
        # the held-out database of the quickstart: 44 questions in all, so its score means something (issue 28)
        ("How many authors are there?", "SELECT count(*) FROM author"),
        ("How many customers are there?", "SELECT count(*) FROM customer"),
        ("What is the total number of pages of all books?", "SELECT sum(pages) FROM book"),
        ("What is the price of the cheapest book?", "SELECT min(price) FROM book"),
        ("What is the title of the book with the most pages?", "SELECT title FROM book ORDER BY pages DESC LIMIT 1"),
        ("List the names of authors born before 1950.", "SELECT name FROM author WHERE birth_year < 1950"),
        ("How many books cost more than 30?", "SELECT count(*) FROM book WHERE price > 30"),
        ("What are the distinct genres of books?", "SELECT DISTINCT genre FROM book"),
        ("How many customers joined in 2020?", "SELECT count(*) FROM customer WHERE joined_year = 2020"),
        ("How many authors are there from each country?", "SELECT country, count(*) FROM author GROUP BY country"),
        ("How many customers live in each city?", "SELECT city, count(*) FROM customer GROUP BY city"),
        (
            "What is the average number of pages of books in each genre?",
            "SELECT genre, avg(pages) FROM book GROUP BY genre",
        ),
        ("Which genre has the fewest books?", "SELECT genre FROM book GROUP BY genre ORDER BY count(*) ASC LIMIT 1"),
        (
            "List the titles and prices of mystery books, cheapest first.",
            "SELECT title, price FROM book WHERE genre = 'mystery' ORDER BY price ASC",
        ),
        ("What is the name of the oldest author?", "SELECT name FROM author ORDER BY birth_year ASC LIMIT 1"),
        ("List the titles of books with fewer than 200 pages.", "SELECT title FROM book WHERE pages < 200"),
        ("What is the average price of history books?", "SELECT avg(price) FROM book WHERE genre = 'history'"),
        ("How many purchases were made in 2023?", "SELECT count(*) FROM purchase WHERE purchase_date LIKE '2023%'"),
        ("What is the total quantity of books bought?", "SELECT sum(quantity) FROM purchase"),
        (
            "List the titles of books written by authors from Norway.",
            "SELECT T1.title FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id WHERE T2.country = 'Norway'",
        ),
        (
            "How many books has each author written? Show the author's name and the count.",
            "SELECT T2.name, count(*) FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id GROUP BY T1.author_id",
        ),
        (
            "What are the names of customers who bought the book titled 'The Silent Harbor'?",
            "SELECT DISTINCT T1.name FROM customer AS T1 JOIN purchase AS T2 ON T1.customer_id = T2.customer_id JOIN book AS T3 ON T2.book_id = T3.book_id WHERE T3.title = 'The Silent Harbor'",
        ),
        (
            "How many purchases has each customer made? Show the customer's name and the count.",
            "SELECT T1.name, count(*) FROM customer AS T1 JOIN purchase AS T2 ON T1.customer_id = T2.customer_id GROUP BY T1.customer_id",
        ),
        (
            "Which customer bought the most copies in total?",
            "SELECT T1.name FROM customer AS T1 JOIN purchase AS T2 ON T1.customer_id = T2.customer_id GROUP BY T1.customer_id ORDER BY sum(T2.quantity) DESC LIMIT 1",
        ),
        (
            "What is the title of the best-selling book by copies sold?",
            "SELECT T2.title FROM purchase AS T1 JOIN book AS T2 ON T1.book_id = T2.book_id GROUP BY T1.book_id ORDER BY sum(T1.quantity) DESC LIMIT 1",
        ),
        (
            "Which books have never been bought?",
            "SELECT title FROM book WHERE book_id NOT IN (SELECT book_id FROM purchase)",
        ),
        (
            "Which authors have not written any book?",
            "SELECT name FROM author WHERE author_id NOT IN (SELECT author_id FROM book)",
        ),
        (
            "What is the average price of books written by authors from Italy?",
            "SELECT avg(T1.price) FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id WHERE T2.country = 'Italy'",
        ),
        (
            "List the titles of books that cost more than the average price.",
            "SELECT title FROM book WHERE price > (SELECT avg(price) FROM book)",
        ),
        ("Which genres have more than 12 books?", "SELECT genre FROM book GROUP BY genre HAVING count(*) > 12"),
        (
            "What are the names of customers from Lisbon who joined after 2018?",
            "SELECT name FROM customer WHERE city = 'Lisbon' AND joined_year > 2018",
        ),
        (
            "What is the total revenue from purchases, counting price times quantity?",
            "SELECT sum(T1.quantity * T2.price) FROM purchase AS T1 JOIN book AS T2 ON T1.book_id = T2.book_id",
        ),
    ],
    "cycling_club": [
        ("How many riders are there?", "SELECT count(*) FROM rider"),
        ("What are the names of the teams?", "SELECT name FROM team"),
        ("What is the average age of riders?", "SELECT avg(age) FROM rider"),
        ("List the names of races on mountain terrain.", "SELECT name FROM race WHERE terrain = 'mountain'"),
        ("Which race is the longest?", "SELECT name FROM race ORDER BY distance_km DESC LIMIT 1"),
        ("How many riders does each team have?", "SELECT team_id, count(*) FROM rider GROUP BY team_id"),
        ("What are the names of riders older than 30?", "SELECT name FROM rider WHERE age > 30"),
        (
            "List the names of riders in the team Fjord Riders.",
            "SELECT T1.name FROM rider AS T1 JOIN team AS T2 ON T1.team_id = T2.team_id "
            "WHERE T2.name = 'Fjord Riders'",
        ),
        (
            "Which riders won at least one race?",
            "SELECT DISTINCT T1.name FROM rider AS T1 JOIN result AS T2 ON T1.rider_id = T2.rider_id "
            "WHERE T2.position = 1",
        ),
        (
            "How many races took place in each year?",
            "SELECT year, count(*) FROM race GROUP BY year",
        ),
        (
            "What is the name of the lightest rider?",
            "SELECT name FROM rider ORDER BY weight_kg ASC LIMIT 1",
        ),
        (
            "Which riders never finished a race?",
            "SELECT name FROM rider WHERE rider_id NOT IN (SELECT rider_id FROM result)",
        ),
    ],
    "city_transit": [
        ("How many stations are there?", "SELECT count(*) FROM station"),
        ("List the names of tram lines.", "SELECT name FROM line WHERE mode = 'tram'"),
        ("Which line opened first?", "SELECT name FROM line ORDER BY opened_year ASC LIMIT 1"),
        ("How many stations are accessible?", "SELECT count(*) FROM station WHERE accessible = 1"),
        (
            "How many stations are there in each district?",
            "SELECT district, count(*) FROM station GROUP BY district",
        ),
        (
            "What are the names of stations in the Old Town district?",
            "SELECT name FROM station WHERE district = 'Old Town'",
        ),
        (
            "What is the total number of entries at each station?",
            "SELECT station_id, sum(entries) FROM ridership GROUP BY station_id",
        ),
        (
            "How many stops does the Red line have?",
            "SELECT count(*) FROM stop AS T1 JOIN line AS T2 ON T1.line_id = T2.line_id WHERE T2.name = 'Red'",
        ),
        (
            "List the names of stations served by the Airport line.",
            "SELECT T3.name FROM stop AS T1 JOIN line AS T2 ON T1.line_id = T2.line_id "
            "JOIN station AS T3 ON T1.station_id = T3.station_id WHERE T2.name = 'Airport'",
        ),
        (
            "Which station had the most entries in 2024-03?",
            "SELECT T2.name FROM ridership AS T1 JOIN station AS T2 ON T1.station_id = T2.station_id "
            "WHERE T1.month = '2024-03' ORDER BY T1.entries DESC LIMIT 1",
        ),
        (
            "Which stations are not served by any line?",
            "SELECT name FROM station WHERE station_id NOT IN (SELECT station_id FROM stop)",
        ),
        (
            "What is the average number of monthly entries?",
            "SELECT avg(entries) FROM ridership",
        ),
    ],
}


def seed_examples(db_ids: tuple[str, ...] = SAMPLE_DB_IDS) -> list[dict]:
    """Hand-written questions with gold SQL over the sample databases: `{"db_id", "question", "sql"}` dicts."""
    return [{"db_id": db_id, "question": question, "sql": sql} for db_id in db_ids for question, sql in _SEEDS[db_id]]


# Held-out questions over ADAPT_DB_ID, written the way its users would ask them (plain English, no column names),
# with gold SQL. They are never in `_SEEDS`, so nothing trained from the seeds sees them. Every gold query returns
# rows, and every ORDER BY ... LIMIT 1 has no tie in the data (tests/test_sample_data.py checks both). Money
# columns hold quarter dollars, so float sums are exact and any equivalent query reproduces the gold numbers.
_HELDOUT: dict[str, list[tuple[str, str]]] = {
    ADAPT_DB_ID: [
        # easy: one table, a filter on a coded value or flag, a NULL check, one aggregate
        ("Which suppliers are based in Germany?", "SELECT supp_nm FROM supp WHERE ctry_cd = 'DE'"),
        ("How many suppliers are inactive?", "SELECT count(*) FROM supp WHERE is_active = 0"),
        ("How many purchase orders are still open?", "SELECT count(*) FROM po_hdr WHERE sts = 'OPN'"),
        ("List the PO numbers of all cancelled purchase orders.", "SELECT po_no FROM po_hdr WHERE sts = 'CXL'"),
        (
            "What is the description of the item with the highest unit cost?",
            "SELECT descr FROM inv_item ORDER BY unit_cost_usd DESC LIMIT 1",
        ),
        ("How many items are completely out of stock?", "SELECT count(*) FROM inv_item WHERE qty_on_hand = 0"),
        (
            "What are the codes of the warehouses that have no manager recorded?",
            "SELECT LOC_CD FROM WH_LOCATION WHERE MGR_NM IS NULL",
        ),
        (
            "What are the names of the suppliers that have no email address on file?",
            "SELECT supp_nm FROM supp WHERE email IS NULL",
        ),
        ("What is the average supplier lead time in days?", "SELECT avg(lead_tm_days) FROM supp"),
        ("How many items are counted in boxes?", "SELECT count(*) FROM inv_item WHERE uom = 'BOX'"),
        ("In which city is the warehouse with code WH-ROT?", "SELECT CITY FROM WH_LOCATION WHERE LOC_CD = 'WH-ROT'"),
        (
            "In which city is the warehouse with the largest capacity in pallets?",
            "SELECT CITY FROM WH_LOCATION ORDER BY CAP_PALLETS DESC LIMIT 1",
        ),
        (
            "How many purchase orders were placed in 2023?",
            "SELECT count(*) FROM po_hdr WHERE po_dt BETWEEN '2023-01-01' AND '2023-12-31'",
        ),
        ("List the descriptions of inactive items.", "SELECT descr FROM inv_item WHERE is_active = 0"),
        ("How many items have no preferred supplier?", "SELECT count(*) FROM inv_item WHERE pref_supp_id IS NULL"),
        (
            "What is the code of the warehouse that opened most recently?",
            "SELECT LOC_CD FROM WH_LOCATION ORDER BY OPEN_DT DESC LIMIT 1",
        ),
        ("How many purchase orders have no buyer recorded?", "SELECT count(*) FROM po_hdr WHERE BuyerNm IS NULL"),
        (
            "List the names of suppliers whose lead time is longer than 40 days.",
            "SELECT supp_nm FROM supp WHERE lead_tm_days > 40",
        ),
        (
            "What are the descriptions of items that cost more than 25 dollars per unit?",
            "SELECT descr FROM inv_item WHERE unit_cost_usd > 25",
        ),
        (
            "What are the PO numbers of purchase orders with no expected delivery date?",
            "SELECT po_no FROM po_hdr WHERE exp_dlv_dt IS NULL",
        ),
        # medium: GROUP BY / HAVING, one join, date ranges on TEXT dates, NOT IN
        ("How many purchase orders are there in each status?", "SELECT sts, count(*) FROM po_hdr GROUP BY sts"),
        ("How many suppliers are there in each country?", "SELECT ctry_cd, count(*) FROM supp GROUP BY ctry_cd"),
        (
            "List the descriptions of items whose quantity on hand is below their reorder point.",
            "SELECT descr FROM inv_item WHERE qty_on_hand < reorder_pt",
        ),
        (
            "What are the descriptions of the items in the Packaging category?",
            "SELECT T1.descr FROM inv_item AS T1 JOIN item_cat AS T2 ON T1.cat_cd = T2.cat_cd WHERE T2.cat_desc = 'Packaging'",
        ),
        ("How many items are there in each category code?", "SELECT cat_cd, count(*) FROM inv_item GROUP BY cat_cd"),
        (
            "What is the total quantity ordered on purchase order PO-240050?",
            "SELECT sum(T1.qty_ord) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.po_no = 'PO-240050'",
        ),
        (
            "List the PO numbers of open purchase orders shipping to the Poznan warehouse.",
            "SELECT T1.po_no FROM po_hdr AS T1 JOIN WH_LOCATION AS T2 ON T1.ship_to_loc_id = T2.LOC_ID WHERE T2.CITY = 'Poznan' AND T1.sts = 'OPN'",
        ),
        (
            "What is the name of the supplier with the longest lead time?",
            "SELECT supp_nm FROM supp ORDER BY lead_tm_days DESC LIMIT 1",
        ),
        (
            "Which buyer placed the most purchase orders?",
            "SELECT BuyerNm FROM po_hdr WHERE BuyerNm IS NOT NULL GROUP BY BuyerNm ORDER BY count(*) DESC LIMIT 1",
        ),
        (
            "How many purchase orders were placed with suppliers based in China?",
            "SELECT count(*) FROM po_hdr AS T1 JOIN supp AS T2 ON T1.supp_id = T2.supp_id WHERE T2.ctry_cd = 'CN'",
        ),
        (
            "What is the average unit cost of items in each category code?",
            "SELECT cat_cd, avg(unit_cost_usd) FROM inv_item GROUP BY cat_cd",
        ),
        (
            "List the codes of warehouses that opened before 2015.",
            "SELECT LOC_CD FROM WH_LOCATION WHERE OPEN_DT < '2015-01-01'",
        ),
        (
            "How many stock issue movements were recorded in 2024?",
            "SELECT count(*) FROM stock_mvmt WHERE mvmt_type = 'ISS' AND mvmt_dt BETWEEN '2024-01-01' AND '2024-12-31'",
        ),
        (
            "How many purchase orders were placed in the first quarter of 2024?",
            "SELECT count(*) FROM po_hdr WHERE po_dt BETWEEN '2024-01-01' AND '2024-03-31'",
        ),
        (
            "What is the total value of all stock on hand, valued at unit cost?",
            "SELECT sum(qty_on_hand * unit_cost_usd) FROM inv_item",
        ),
        (
            "Which suppliers have we never placed a purchase order with?",
            "SELECT supp_nm FROM supp WHERE supp_id NOT IN (SELECT supp_id FROM po_hdr)",
        ),
        (
            "List the descriptions of items whose preferred supplier is Atlas Fastener Corp.",
            "SELECT T1.descr FROM inv_item AS T1 JOIN supp AS T2 ON T1.pref_supp_id = T2.supp_id WHERE T2.supp_nm = 'Atlas Fastener Corp'",
        ),
        (
            "How many stock movements are there of each movement type?",
            "SELECT mvmt_type, count(*) FROM stock_mvmt GROUP BY mvmt_type",
        ),
        (
            "How many open purchase orders are expected to be delivered in 2025?",
            "SELECT count(*) FROM po_hdr WHERE sts = 'OPN' AND exp_dlv_dt >= '2025-01-01'",
        ),
        (
            "What are the cities of the warehouses with a capacity of at least 7000 pallets?",
            "SELECT CITY FROM WH_LOCATION WHERE CAP_PALLETS >= 7000",
        ),
        (
            "How many lines does purchase order PO-240091 have?",
            "SELECT count(*) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.po_no = 'PO-240091'",
        ),
        (
            "What is the total value of purchase order PO-230016, counting ordered quantity times unit price?",
            "SELECT sum(T1.qty_ord * T1.unit_price_usd) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.po_no = 'PO-230016'",
        ),
        (
            "Which item categories have no items? Give the category description.",
            "SELECT cat_desc FROM item_cat WHERE cat_cd NOT IN (SELECT cat_cd FROM inv_item)",
        ),
        (
            "Which items have never appeared on a purchase order? Give their descriptions.",
            "SELECT descr FROM inv_item WHERE itm_id NOT IN (SELECT itm_id FROM po_line)",
        ),
        (
            "List the names of active suppliers based in the Netherlands.",
            "SELECT supp_nm FROM supp WHERE ctry_cd = 'NL' AND is_active = 1",
        ),
        (
            "What are the descriptions of the items whose home location is the Lisbon warehouse?",
            "SELECT T1.descr FROM inv_item AS T1 JOIN WH_LOCATION AS T2 ON T1.home_loc_id = T2.LOC_ID WHERE T2.CITY = 'Lisbon'",
        ),
        (
            "How many stock adjustments reduced the quantity?",
            "SELECT count(*) FROM stock_mvmt WHERE mvmt_type = 'ADJ' AND qty < 0",
        ),
        (
            "List the PO numbers and order dates of purchase orders placed in December 2024, oldest first.",
            "SELECT po_no, po_dt FROM po_hdr WHERE po_dt BETWEEN '2024-12-01' AND '2024-12-31' ORDER BY po_dt ASC",
        ),
        (
            "How many purchase orders did Priya Ito place in 2024?",
            "SELECT count(*) FROM po_hdr WHERE BuyerNm = 'Priya Ito' AND po_dt BETWEEN '2024-01-01' AND '2024-12-31'",
        ),
        (
            "Which countries have more than two suppliers?",
            "SELECT ctry_cd FROM supp GROUP BY ctry_cd HAVING count(*) > 2",
        ),
        (
            "What is the name of the supplier of purchase order PO-240085?",
            "SELECT T2.supp_nm FROM po_hdr AS T1 JOIN supp AS T2 ON T1.supp_id = T2.supp_id WHERE T1.po_no = 'PO-240085'",
        ),
        (
            "What is the total quantity received on purchase order PO-240091?",
            "SELECT sum(T1.qty_rcvd) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.po_no = 'PO-240091'",
        ),
        (
            "How many purchase orders has each buyer placed? Leave out orders with no buyer.",
            "SELECT BuyerNm, count(*) FROM po_hdr WHERE BuyerNm IS NOT NULL GROUP BY BuyerNm",
        ),
        ("What is the average ordered quantity per purchase order line?", "SELECT avg(qty_ord) FROM po_line"),
        (
            "List the descriptions and quantities on hand of active items with more than 1500 units on hand.",
            "SELECT descr, qty_on_hand FROM inv_item WHERE is_active = 1 AND qty_on_hand > 1500",
        ),
        # hard: two or more joins, grouped ORDER BY ... LIMIT 1, correlated subqueries, derived quantities
        (
            "Which supplier has the largest total order value (quantity ordered times unit price), not counting cancelled purchase orders?",
            "SELECT T3.supp_nm FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id JOIN supp AS T3 ON T2.supp_id = T3.supp_id WHERE T2.sts != 'CXL' GROUP BY T3.supp_id ORDER BY sum(T1.qty_ord * T1.unit_price_usd) DESC LIMIT 1",
        ),
        (
            "For each warehouse code that has open purchase orders shipping to it, how many open purchase orders are there?",
            "SELECT T2.LOC_CD, count(*) FROM po_hdr AS T1 JOIN WH_LOCATION AS T2 ON T1.ship_to_loc_id = T2.LOC_ID WHERE T1.sts = 'OPN' GROUP BY T2.LOC_CD",
        ),
        (
            "Which warehouses had no purchase orders shipped to them in 2023? Give the warehouse codes.",
            "SELECT LOC_CD FROM WH_LOCATION WHERE LOC_ID NOT IN (SELECT ship_to_loc_id FROM po_hdr WHERE po_dt BETWEEN '2023-01-01' AND '2023-12-31')",
        ),
        (
            "List the descriptions of active items that are below their reorder point and have no preferred supplier.",
            "SELECT descr FROM inv_item WHERE is_active = 1 AND qty_on_hand < reorder_pt AND pref_supp_id IS NULL",
        ),
        (
            "For each item category description that has items, what is the total value of stock on hand at unit cost?",
            "SELECT T2.cat_desc, sum(T1.qty_on_hand * T1.unit_cost_usd) FROM inv_item AS T1 JOIN item_cat AS T2 ON T1.cat_cd = T2.cat_cd GROUP BY T2.cat_desc",
        ),
        (
            "Which items were issued from stock more than 6 times? Give their descriptions.",
            "SELECT T2.descr FROM stock_mvmt AS T1 JOIN inv_item AS T2 ON T1.itm_id = T2.itm_id WHERE T1.mvmt_type = 'ISS' GROUP BY T1.itm_id HAVING count(*) > 6",
        ),
        (
            "Which open purchase orders include an item that is currently out of stock? Give the PO numbers.",
            "SELECT DISTINCT T1.po_no FROM po_hdr AS T1 JOIN po_line AS T2 ON T1.po_id = T2.po_id JOIN inv_item AS T3 ON T2.itm_id = T3.itm_id WHERE T1.sts = 'OPN' AND T3.qty_on_hand = 0",
        ),
        (
            "How many lines on closed purchase orders received less than the quantity ordered?",
            "SELECT count(*) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.sts = 'CLS' AND T1.qty_rcvd < T1.qty_ord",
        ),
        (
            "Which German suppliers have at least one open purchase order?",
            "SELECT DISTINCT T2.supp_nm FROM po_hdr AS T1 JOIN supp AS T2 ON T1.supp_id = T2.supp_id WHERE T2.ctry_cd = 'DE' AND T1.sts = 'OPN'",
        ),
        (
            "For each buyer, what is the total value (quantity ordered times unit price) of their closed purchase orders? Leave out orders with no buyer.",
            "SELECT T1.BuyerNm, sum(T2.qty_ord * T2.unit_price_usd) FROM po_hdr AS T1 JOIN po_line AS T2 ON T1.po_id = T2.po_id WHERE T1.sts = 'CLS' AND T1.BuyerNm IS NOT NULL GROUP BY T1.BuyerNm",
        ),
        (
            "In which city is the warehouse that issued the largest total quantity from stock in 2024?",
            "SELECT T2.CITY FROM stock_mvmt AS T1 JOIN WH_LOCATION AS T2 ON T1.loc_id = T2.LOC_ID WHERE T1.mvmt_type = 'ISS' AND T1.mvmt_dt BETWEEN '2024-01-01' AND '2024-12-31' GROUP BY T2.LOC_ID ORDER BY sum(T1.qty) DESC LIMIT 1",
        ),
        (
            "Which suppliers that we have ordered from have only closed purchase orders?",
            "SELECT supp_nm FROM supp WHERE supp_id IN (SELECT supp_id FROM po_hdr) AND supp_id NOT IN (SELECT supp_id FROM po_hdr WHERE sts != 'CLS')",
        ),
        (
            "How many items in the Safety equipment category are below their reorder point?",
            "SELECT count(*) FROM inv_item AS T1 JOIN item_cat AS T2 ON T1.cat_cd = T2.cat_cd WHERE T2.cat_desc = 'Safety equipment' AND T1.qty_on_hand < T1.reorder_pt",
        ),
        (
            "What is the average unit cost of items whose preferred supplier is inactive?",
            "SELECT avg(T1.unit_cost_usd) FROM inv_item AS T1 JOIN supp AS T2 ON T1.pref_supp_id = T2.supp_id WHERE T2.is_active = 0",
        ),
        (
            "Which items had goods received into stock in November 2024? Give their descriptions.",
            "SELECT DISTINCT T2.descr FROM stock_mvmt AS T1 JOIN inv_item AS T2 ON T1.itm_id = T2.itm_id WHERE T1.mvmt_type = 'RCV' AND T1.mvmt_dt BETWEEN '2024-11-01' AND '2024-11-30'",
        ),
        (
            "Which open purchase orders have already been partly received? Give the PO numbers.",
            "SELECT DISTINCT T1.po_no FROM po_hdr AS T1 JOIN po_line AS T2 ON T1.po_id = T2.po_id WHERE T1.sts = 'OPN' AND T2.qty_rcvd > 0",
        ),
        (
            "What is the total quantity still outstanding (ordered minus received) on open purchase orders?",
            "SELECT sum(T1.qty_ord - T1.qty_rcvd) FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id WHERE T2.sts = 'OPN'",
        ),
        (
            "Which items cost more per unit than the average unit cost of their own category? Give their descriptions.",
            "SELECT T1.descr FROM inv_item AS T1 WHERE T1.unit_cost_usd > (SELECT avg(T2.unit_cost_usd) FROM inv_item AS T2 WHERE T2.cat_cd = T1.cat_cd)",
        ),
        (
            "What is the description of the item received in the largest total quantity according to the stock movements?",
            "SELECT T2.descr FROM stock_mvmt AS T1 JOIN inv_item AS T2 ON T1.itm_id = T2.itm_id WHERE T1.mvmt_type = 'RCV' GROUP BY T1.itm_id ORDER BY sum(T1.qty) DESC LIMIT 1",
        ),
        (
            "How many units of Safety gloves L have been issued from stock in total?",
            "SELECT sum(T1.qty) FROM stock_mvmt AS T1 JOIN inv_item AS T2 ON T1.itm_id = T2.itm_id WHERE T2.descr = 'Safety gloves L' AND T1.mvmt_type = 'ISS'",
        ),
        (
            "Which purchase orders include a line priced more than 8 percent above the item's unit cost? Give the PO numbers.",
            "SELECT DISTINCT T1.po_no FROM po_hdr AS T1 JOIN po_line AS T2 ON T1.po_id = T2.po_id JOIN inv_item AS T3 ON T2.itm_id = T3.itm_id WHERE T2.unit_price_usd > T3.unit_cost_usd * 1.08",
        ),
        (
            "What is the name of the supplier on the purchase order line with the highest unit price?",
            "SELECT T3.supp_nm FROM po_line AS T1 JOIN po_hdr AS T2 ON T1.po_id = T2.po_id JOIN supp AS T3 ON T2.supp_id = T3.supp_id ORDER BY T1.unit_price_usd DESC LIMIT 1",
        ),
        (
            "List each warehouse code with the number of items that have it as their home location, leaving out warehouses that are home to no items.",
            "SELECT T2.LOC_CD, count(*) FROM inv_item AS T1 JOIN WH_LOCATION AS T2 ON T1.home_loc_id = T2.LOC_ID GROUP BY T2.LOC_CD",
        ),
        (
            "How many items in the Electrical category have a preferred supplier based in China?",
            "SELECT count(*) FROM inv_item AS T1 JOIN item_cat AS T2 ON T1.cat_cd = T2.cat_cd JOIN supp AS T3 ON T1.pref_supp_id = T3.supp_id WHERE T2.cat_desc = 'Electrical' AND T3.ctry_cd = 'CN'",
        ),
    ],
}


def heldout_examples(db_id: str = ADAPT_DB_ID) -> list[dict]:
    """Hand-written held-out questions with gold SQL: `{"db_id", "question", "sql", "question_id"}` dicts.

    Raises:
        ValueError: a database without held-out questions.
    """
    if db_id not in _HELDOUT:
        raise ValueError(f"no held-out questions for {db_id!r}; choose from {list(_HELDOUT)}")
    return [
        {"db_id": db_id, "question": question, "sql": sql, "question_id": f"{db_id}-{i:03d}"}
        for i, (question, sql) in enumerate(_HELDOUT[db_id], 1)
    ]
