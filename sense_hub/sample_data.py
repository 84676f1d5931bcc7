"""The sample databases shipped with sense-hub: three small domains with realistic data and foreign keys.

They are built from code (deterministic, seeded) rather than shipped as binary files, so the repository stays
reviewable and every build is byte-for-byte reproducible. `seed_examples()` gives hand-written questions with
gold SQL over them; the quickstart uses them as the weak model's questions and the Space as examples.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

SAMPLE_DB_IDS = ("bookshop", "cycling_club", "city_transit")

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


_BUILDERS = {"bookshop": _bookshop, "cycling_club": _cycling_club, "city_transit": _city_transit}


def build_sample_databases(out_root: str | Path, *, db_ids: tuple[str, ...] = SAMPLE_DB_IDS) -> dict[str, Path]:
    """Write the sample databases as `<out_root>/<db_id>/<db_id>.sqlite` (Spider layout).

    Existing files are kept as they are (the content is deterministic), so calling this twice is cheap.

    Args:
        out_root: the folder that will hold one sub-folder per database.
        db_ids: which databases to build (default: all of them).

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
