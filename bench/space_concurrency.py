"""The Space under many and hostile visitors: fairness, throughput and the timeout, through the real app over HTTP.

Starts the Space's app (`build_demo` + `serve`, as `spaces/sense-demo/app.py` does, without loading a model:
`/run_sql` needs none) in a subprocess on a free loopback port, then, with one `gradio_client.Client` per visitor:

1. fairness: visitor A fires 4 runaway queries at once (`SELECT count(*) FROM t a, t b, t c, t d`, t: 2,000 rows);
   0.5 s later visitor B runs a trivial `/run_sql`. Prints B's latency (target: under 3 s) and what A's 4 got.
2. load: 32 visitors x 5 `/run_sql` each, all at once; every answer compared with sqlite3's own rows. Prints
   exact/total, p50 and p95 latency (target: all exact, p95 under 3 s on 2 busy cores; goal 2 s).
3. the heavy-row query (one 30 MB blob per row) on Spider's concert_singer, if the shared data is there: the
   time until the Space answers "time limit" (target: within its limit + 1 s).

Each figure is printed beside the latency of one trivial `/run_sql` from an idle visitor (10 in a row), so a busy
machine's own slowness shows as such. `--baseline DIR` runs the same measurements on another checkout (for
example the main branch before a change) and prints its figures side by side.

Usage:
    python bench/space_concurrency.py [--clients 32] [--calls 5] [--timeout 10] [--baseline ../main]
"""

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONCERT = ROOT.parent / "shared" / "data" / "spider" / "database" / "concert_singer" / "concert_singer.sqlite"
RUNAWAY = "SELECT count(*) FROM t a, t b, t c, t d"
HEAVY = (
    "SELECT sum(length(hex(zeroblob(30000000 + a.Singer_ID + b.Singer_ID + c.Singer_ID)))) "
    "FROM singer a, singer b, singer c"
)
SERVER = """
import logging, sys
import sense_hub.space as space
logging.basicConfig(level=logging.WARNING)
config = space.SpaceConfig(model="embedded", timeout=float(sys.argv[1]))
demo = space.build_demo(config, assistant=space.SQLAssistant(config), examples_root=sys.argv[2])
if hasattr(space, "serve"):
    space.serve(demo, config)
else:  # an older checkout
    demo.launch(**space.launch_options(config))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def make_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x INTEGER, name TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"name {i}") for i in range(2000)])
    con.commit()
    con.close()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 180.0) -> None:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the Space exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/gradio_api/info", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the Space did not start within {seconds:.0f} s")


def measure(app_root: Path, args, tmp: Path, db: Path) -> dict:
    """Start the Space from `app_root` and take the three measurements; the figures as a dict."""
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    gradio_tmp = tmp / f"gradio-{port}"
    env["GRADIO_TEMP_DIR"] = str(gradio_tmp)
    env["PYTHONPATH"] = f"{app_root}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.timeout), str(tmp / "examples")],
        env=env,
        cwd=app_root,
        stderr=subprocess.DEVNULL,  # Gradio prints every gr.Error's traceback there
    )
    url = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        wait_for(url, proc)
        idle = Client(url, verbose=False)
        single = []
        for _ in range(10):
            t0 = time.perf_counter()
            idle.predict(handle_file(str(db)), "SELECT count(*) FROM t", api_name="/run_sql")
            single.append(time.perf_counter() - t0)
        out["single"] = statistics.median(single[1:])

        # 1. fairness
        a, b = Client(url, verbose=False), Client(url, verbose=False)
        jobs = [a.submit(handle_file(str(db)), RUNAWAY, api_name="/run_sql") for _ in range(4)]
        time.sleep(0.5)
        start = time.perf_counter()
        table = b.predict(handle_file(str(db)), "SELECT count(*) FROM t", api_name="/run_sql")
        out["fair"] = time.perf_counter() - start
        out["fair_ok"] = table["data"] == [[2000]]
        outcomes = []
        for job in jobs:
            try:
                job.result()
                outcomes.append("rows")
            except Exception as e:  # gradio_client raises AppError with the Space's message
                text = str(e)
                outcomes.append(
                    "busy" if "still running" in text else "timeout" if "time limit" in text else text[:40]
                )
        out["a_four"] = ", ".join(outcomes)

        # 2. load
        sqls = [f"SELECT x, name FROM t WHERE x % 97 = {k} ORDER BY x" for k in range(args.calls)]
        con = sqlite3.connect(db)
        expected = [[list(r) for r in con.execute(s).fetchall()] for s in sqls]
        con.close()

        def visitor(_):
            client = Client(url, verbose=False)
            got = []
            for sql, rows in zip(sqls, expected, strict=True):
                t0 = time.perf_counter()
                try:
                    data = client.predict(handle_file(str(db)), sql, api_name="/run_sql")["data"]
                except Exception as e:
                    data = str(e)
                got.append((time.perf_counter() - t0, data == rows))
            return got

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [r for chunk in pool.map(visitor, range(args.clients)) for r in chunk]
        wall = time.perf_counter() - start
        latencies = [t for t, _ in results]
        out["exact"] = f"{sum(ok for _, ok in results)}/{len(results)}"
        out["all_exact"] = all(ok for _, ok in results)
        out["p50"] = statistics.median(latencies)
        out["p95"] = percentile(latencies, 0.95)
        out["rate"] = len(results) / wall

        # 3. the heavy-row query
        if CONCERT.is_file():
            c = Client(url, verbose=False)
            start = time.perf_counter()
            try:
                c.predict(handle_file(str(CONCERT)), HEAVY, api_name="/run_sql")
                out["heavy_said"] = "rows"
            except Exception as e:
                out["heavy_said"] = "time limit" if "time limit" in str(e) else str(e)[:40]
            out["heavy"] = time.perf_counter() - start
    finally:
        proc.terminate()
        start = time.perf_counter()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out["exit_s"] = time.perf_counter() - start
        left = [p for p in gradio_tmp.rglob("*") if p.is_file() and p.name == db.name] if gradio_tmp.exists() else []
        out["left"] = len(left)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0, help="the Space's SENSE_TIMEOUT (default 10)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to measure side by side")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sense-bench-space-"))
    db = make_db(tmp / "bench.sqlite")
    roots = {"this checkout": ROOT}
    if args.baseline is not None:
        roots = {f"baseline {args.baseline}": args.baseline.resolve(), **roots}
    figures = {}
    for name, root in roots.items():
        print(f"measuring {name} ({root}) ...", flush=True)
        figures[name] = measure(root, args, tmp, db)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; Space timeout {args.timeout:g} s")
    rows = [
        ("one trivial /run_sql, idle visitor (median of 9)", lambda f: f"{f['single']:.2f} s"),
        ("B's trivial /run_sql while A runs 4 runaways (< 3 s)", lambda f: f"{f['fair']:.2f} s"),
        ("  ... as a multiple of the idle latency", lambda f: f"{f['fair'] / f['single']:.1f}x"),
        ("A's four runaway queries got", lambda f: f["a_four"]),
        (f"{args.clients} x {args.calls} /run_sql: exact", lambda f: f["exact"]),
        ("  p50", lambda f: f"{f['p50']:.2f} s"),
        ("  p95 (< 3 s, goal 2 s)", lambda f: f"{f['p95']:.2f} s"),
        ("  p95 as a multiple of the idle latency", lambda f: f"{f['p95'] / f['single']:.1f}x"),
        ("  answers per second", lambda f: f"{f['rate']:.1f}"),
        (f"heavy-row query: time to an answer (< {args.timeout + 1:g} s)", lambda f: f"{f.get('heavy', 0):.2f} s"),
        ("  the answer", lambda f: f.get("heavy_said", "skipped")),
        ("SIGTERM: seconds to exit", lambda f: f"{f['exit_s']:.1f} s"),
        ("uploads left in GRADIO_TEMP_DIR after exit", lambda f: str(f["left"])),
    ]
    names = list(figures)
    print("| measurement | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, fmt in rows:
        cells = []
        for n in names:
            try:
                cells.append(fmt(figures[n]))
            except (KeyError, ZeroDivisionError):
                cells.append("-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
