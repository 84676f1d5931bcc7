"""The Space under careless and hostile visitors: turns, uploads nobody else can use, caps, and a clean shutdown.

The app is launched for real (Gradio over HTTP on 127.0.0.1, real SQLite); the model is a canned stand-in where a
question is asked, and the SIGTERM test runs `spaces/sense-demo/app.py` itself in a subprocess with a tiny model.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_space import CannedGenerator

from sense_hub.space import Busy, SessionStore, SpaceConfig, SQLAssistant, UploadError, UploadLedger, VisitorGate

ROOT = Path(__file__).resolve().parents[1]
RUNAWAY = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
HEAVY_ROWS = "SELECT sum(length(hex(zeroblob(10000000 + a.x + b.x + c.x + d.x)))) FROM six a, six b, six c, six d"


def make_db(path: Path, *, rows: int = 6, secret: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE six (x INTEGER, note TEXT)")
    con.executemany("INSERT INTO six VALUES (?, ?)", [(i, secret or f"row {i}") for i in range(rows)])
    con.commit()
    con.close()
    return path


# ----------------------------------------------------------------------------------------------- the gate


def test_gate_gives_each_visitor_one_turn_and_bounds_the_total():
    gate = VisitorGate(2, what="query", seconds=10)
    with gate.turn("a"):
        with pytest.raises(Busy, match="previous query is still running"):
            with gate.turn("a"):
                pass
        with gate.turn("b"):
            with pytest.raises(Busy, match="busy .*try again"):
                with gate.turn("c"):
                    pass
            assert gate.running == 2
    assert gate.running == 0
    with gate.turn("a"):  # a turn ends with its block, also when the block raised
        pass
    with pytest.raises(ValueError):
        VisitorGate(0)


# ----------------------------------------------------------------------------------------------- uploads


def test_an_upload_is_used_once_then_gone_and_never_by_another_visitor(tmp_path):
    raw = make_db(tmp_path / "gradio" / "abc123" / "a_secret.sqlite", secret="A's data")
    ledger = UploadLedger()
    ledger.update([str(raw)])  # what Gradio's /upload route does
    store = SessionStore(tmp_path / "sessions")
    (mine,) = store.take_uploads("visitor-a", [str(raw)], ledger)
    assert not raw.exists() and not raw.parent.exists()  # moved into A's folder: nothing left to fetch by path
    assert mine.is_file() and store.workdir("visitor-a") in mine.parents
    assert store.take_uploads("visitor-a", [str(raw)], ledger) == [mine]  # A's page may name it again
    with pytest.raises(UploadError, match="could not be found"):
        store.take_uploads("visitor-b", [str(raw)], ledger)
    store.drop("visitor-a")
    assert not mine.exists()


def test_two_visitors_who_upload_the_same_bytes_each_get_their_copy(tmp_path):
    raw = make_db(tmp_path / "gradio" / "samehash" / "db.sqlite")
    ledger = UploadLedger()
    ledger.update([str(raw)])
    ledger.update([str(raw)])  # Gradio stores identical bytes under one path
    store = SessionStore(tmp_path / "sessions")
    (a,) = store.take_uploads("a", [str(raw)], ledger)
    assert raw.exists()  # B's upload is still pending
    (b,) = store.take_uploads("b", [str(raw)], ledger)
    assert not raw.exists() and a != b and a.read_bytes() == b.read_bytes()
    with pytest.raises(UploadError):
        store.take_uploads("c", [str(raw)], ledger)


def test_a_visitors_copy_is_never_seen_half_written(tmp_path, monkeypatch):
    """One visitor's concurrent requests (four runaway queries at once) name the same upload and share its copy:
    while one request is still writing it, another may already open it. The copy is renamed into place whole."""
    import shutil
    import threading

    raw = make_db(tmp_path / "gradio" / "h" / "t.sqlite", rows=2000)
    whole = raw.read_bytes()
    ledger = UploadLedger()
    ledger.update([str(raw)])
    ledger.update([str(raw)])  # two of A's requests, each with its own upload of the same bytes
    store = SessionStore(tmp_path / "sessions")
    half_written, checked = threading.Event(), threading.Event()

    def slow_copy(src, dst, **kwargs):  # the first half, a pause while the other request looks, the rest
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fout.write(fin.read(len(whole) // 2))
            fout.flush()
            half_written.set()
            checked.wait(10)
            fout.write(fin.read())
        return dst

    monkeypatch.setattr(shutil, "copyfile", slow_copy)
    first = threading.Thread(target=store.take_uploads, args=("visitor-a", [str(raw)], ledger))
    first.start()
    assert half_written.wait(10)
    target = store.workdir("visitor-a") / "uploads"
    seen = [p.read_bytes() for p in target.rglob("t.sqlite")]  # what a second request would open now
    checked.set()
    first.join(10)
    assert all(b == whole for b in seen), [len(b) for b in seen]  # absent or whole, never half
    (mine,) = store.take_uploads("visitor-a", [str(raw)], ledger)
    assert mine.read_bytes() == whole and not list(mine.parent.glob("*.part"))


def test_paths_that_are_not_uploads_pass_through(tmp_path):
    example = make_db(tmp_path / "examples" / "e.sqlite")
    store = SessionStore(tmp_path / "sessions")
    assert store.take_uploads("a", [str(example)], UploadLedger()) == [example]
    assert example.exists()  # the bundled examples are shared, never deleted


def test_idle_sessions_are_removed_while_the_space_is_used(tmp_path):
    store = SessionStore(tmp_path / "sessions", max_age_s=0.0)
    old = store.workdir("old")
    (old / "x.sqlite").write_bytes(b"x")
    past = time.time() - 10
    os.utime(old, (past, past))
    store._last_expiry = 0.0
    store.workdir("new")
    assert not old.exists()
    store.close()
    assert not any((tmp_path / "sessions").iterdir())


# ----------------------------------------------------------------------------------------------- through HTTP


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    from sense_hub.space import build_demo, launch_options

    config = SpaceConfig(timeout=3.0, max_rows=500, max_result_mb=0.05)
    assistant = SQLAssistant(config, generator=CannedGenerator({"how many": ["SELECT count(*) FROM six"]}))
    root = tmp_path_factory.mktemp("space-visitors")
    sessions = SessionStore(root / "sessions")
    demo = build_demo(config, assistant=assistant, sessions=sessions, examples_root=root / "examples")
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(config))
    yield url.rstrip("/"), sessions
    demo.close()


def upload(url: str, path: Path) -> str:
    import httpx

    with path.open("rb") as f:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, f)}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


def call(url: str, endpoint: str, data: list) -> tuple[str, object]:
    """One call of the REST API (`/gradio_api/call/<endpoint>`): ("complete", output) or ("error", message)."""
    import httpx

    response = httpx.post(f"{url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/{endpoint}/{event_id}", timeout=60).text
    event = data_line = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data_line = line.split(":", 1)[1].strip()
    return event or "", json.loads(data_line) if data_line else None


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def test_a_raw_upload_path_is_worthless_to_a_second_visitor(space, tmp_path):
    import httpx

    url, sessions = space
    db = make_db(tmp_path / "a_secret.sqlite", secret="A's secret")
    raw = upload(url, db)
    event, out = call(url, "run_sql", [file_data(raw), "SELECT note FROM six LIMIT 1"])
    assert event == "complete" and out[0]["data"] == [["A's secret"]]
    assert not Path(raw).exists()  # deleted as soon as it was copied into A's folder
    event, out = call(url, "run_sql", [file_data(raw), "SELECT note FROM six LIMIT 1"])  # a second visitor
    assert event == "error" and "A's secret" not in json.dumps(out)
    fetched = httpx.get(f"{url}/gradio_api/file={raw}", timeout=30)
    assert fetched.status_code in (403, 404) and b"A's secret" not in fetched.content
    private = next(sessions.root.rglob("a_secret.sqlite"))  # A's own copy cannot be named either
    event, out = call(url, "run_sql", [file_data(str(private)), "SELECT note FROM six LIMIT 1"])
    assert event == "error" and "A's secret" not in json.dumps(out)


def test_a_visitor_running_runaway_queries_blocks_nobody_else(space, tmp_path):
    from gradio_client import Client, handle_file

    url, _ = space
    db = make_db(tmp_path / "t.sqlite")
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    jobs = [a.submit(handle_file(str(db)), RUNAWAY, api_name="/run_sql") for _ in range(4)]
    time.sleep(0.5)
    start = time.perf_counter()
    table = b.predict(handle_file(str(db)), "SELECT count(*) FROM six", api_name="/run_sql")
    waited = time.perf_counter() - start
    running = sum(not job.done() for job in jobs)
    messages = []
    for job in jobs:
        with pytest.raises(Exception) as info:  # noqa: PT011 (gradio_client's AppError)
            job.result()
        messages.append(str(info.value))
    assert table["data"] == [[6]]
    assert running >= 1 and waited < 3.0  # B answered while A's runaway still ran: not queued behind it
    assert sum("time limit" in m for m in messages) == 1
    assert sum("still running" in m for m in messages) == 3  # A's others were refused politely, at once


def test_the_heavy_row_query_stops_at_the_space_limit(space, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _ = space
    db = make_db(tmp_path / "six.sqlite")
    start = time.perf_counter()
    with pytest.raises(AppError, match="time limit"):
        Client(url, verbose=False).predict(handle_file(str(db)), HEAVY_ROWS, api_name="/run_sql")
    assert time.perf_counter() - start < 3.0 + 3.0  # the limit, plus HTTP; without the watchdog: ~15 s


def test_results_are_capped_at_what_a_browser_shows(space, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _ = space
    db = make_db(tmp_path / "many.sqlite", rows=2000)
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="500 rows.*what a browser table shows"):
        client.predict(handle_file(str(db)), "SELECT * FROM six", api_name="/run_sql")
    with pytest.raises(AppError, match="browser"):  # bytes: one 1 MB value is over the 0.05 MB cap
        client.predict(handle_file(str(db)), "SELECT hex(zeroblob(500000))", api_name="/run_sql")
    assert len(client.predict(handle_file(str(db)), "SELECT * FROM six LIMIT 400", api_name="/run_sql")["data"]) == 400


def test_no_server_path_in_what_a_visitor_sees(space, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, sessions = space
    db = make_db(tmp_path / "p.sqlite")
    client = Client(url, verbose=False)
    seen = []
    for sql in ["PRAGMA database_list", "SELECT * FROM pragma_database_list", "SELECT nope FROM six", "SELEC 1"]:
        with pytest.raises(AppError) as info:
            client.predict(handle_file(str(db)), sql, api_name="/run_sql")
        seen.append(str(info.value))
    table = client.predict(handle_file(str(db)), "SELECT name FROM pragma_table_info('six')", api_name="/run_sql")
    assert table["data"] == [["x"], ["note"]]
    assert "Refused" in seen[0] and "Refused" in seen[1]
    for text in seen:
        assert str(sessions.root) not in text and str(tmp_path) not in text and "/tmp" not in text


# ----------------------------------------------------------------------------------------------- shutdown


@pytest.mark.slow
def test_sigterm_closes_the_app_and_leaves_no_visitor_file(tmp_path, tiny_model_dir):
    from gradio_client import Client, handle_file

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp, gradio_temp = tmp_path / "tmp", tmp_path / "gradio"
    temp.mkdir()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_TEMP_DIR": str(gradio_temp),
        "TMPDIR": str(temp),
        "SENSE_MODEL": str(tiny_model_dir),
        "SENSE_MAX_NEW_TOKENS": "4",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "spaces" / "sense-demo" / "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        client = None
        while client is None:
            assert proc.poll() is None, "the app exited early"
            assert time.monotonic() < deadline, "the app did not start"
            try:
                client = Client(url, verbose=False)
            except Exception:  # not listening yet
                time.sleep(1)
        used = make_db(tmp_path / "visitor_secret.sqlite", secret="s")
        assert client.predict(handle_file(str(used)), "SELECT count(*) FROM six", api_name="/run_sql")["data"] == [[6]]
        upload(url, make_db(tmp_path / "pending_secret.sqlite", secret="p"))  # uploaded, never used
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        proc.wait(timeout=15)
        assert time.monotonic() - start < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [p for folder in (temp, gradio_temp) for p in folder.rglob("*_secret.sqlite*")]
    assert left == []
    assert not list(temp.glob("sense-demo-sessions-*"))


def test_one_query_per_visitor_in_the_library_gate_under_threads():
    gate = VisitorGate(8)
    inside, refused = [], []
    barrier = threading.Barrier(5)

    def visit():
        barrier.wait()
        try:
            with gate.turn("same visitor"):
                inside.append(1)
                time.sleep(0.3)
        except Busy:
            refused.append(1)

    threads = [threading.Thread(target=visit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inside) == 1 and len(refused) == 4
