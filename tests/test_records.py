"""Record files: CSV rows with strict quoting (an unclosed quote names its line instead of swallowing the file)."""

from __future__ import annotations

import sqlite3

import pytest

from sense_hub.databases import import_csv
from sense_hub.errors import DatabaseError, MissingFileError, RecordError
from sense_hub.records import read_csv_rows


def test_csv_rows_keep_quoted_commas_and_newlines(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text('\ufeffid,name,note\n1,"Ada, Countess","two\nlines"\n2,Linus,"say ""hi"""\n', encoding="utf-8")
    assert read_csv_rows(path) == [
        ["id", "name", "note"],
        ["1", "Ada, Countess", "two\nlines"],
        ["2", "Linus", 'say "hi"'],
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('id,name\n1,"Ada\n2,Linus\n3,Grace\n', 2),  # the rest of the file would become one cell
        ('id,note\n1,"two\nlines"\n2,"open\n3,x\n', 4),  # the line where the row starts, after a multi-line cell
        ('id,name\n1,"Ada"x\n', 2),  # text right after a closing quote
    ],
)
def test_malformed_quotes_name_the_line(tmp_path, text, line):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecordError, match=rf"bad\.csv:{line}: malformed CSV"):
        read_csv_rows(path)


def test_missing_csv_is_named(tmp_path):
    with pytest.raises(MissingFileError, match="none.csv"):
        read_csv_rows(tmp_path / "none.csv")


def test_import_csv_refuses_an_unclosed_quote(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text('id,name\n1,"Ada\n2,Linus\n', encoding="utf-8")
    with pytest.raises(DatabaseError, match=r"people\.csv:2: malformed CSV \(a quote opened here is never closed\)"):
        import_csv(path, tmp_path / "db.sqlite")
    assert not (tmp_path / "db.sqlite").exists()
    path.write_text('id,name\n1,"Ada"\n2,Linus\n', encoding="utf-8")
    con = sqlite3.connect(import_csv(path, tmp_path / "db.sqlite"))
    assert con.execute("SELECT name FROM people ORDER BY id").fetchall() == [("Ada",), ("Linus",)]
    con.close()
