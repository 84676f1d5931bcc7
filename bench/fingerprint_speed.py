"""Do database fingerprints slow `sense-hub eval` down? Eval time with and without them, cold and warm cache.

Workload: the 8 published systems' predictions on the 972 Spider dev questions that have a database (7,776 pairs,
as in bench/eval_speed.py). Each variant runs in this process, interleaved `--repeat` times (best time kept):

  * eval without fingerprints: `read_predictions` + `evaluate_records` (what `sense-hub eval` did before);
  * eval + fingerprints, cold cache: the same plus `input_fingerprints` with an empty on-disk cache (every
    database and the predictions file hashed);
  * eval + fingerprints, warm cache: the same with the cache the cold run left (a repeated eval).

Spider dev's databases are small (about 1 MB here), so `--big-mb N` also times hashing one N MB SQLite file
(BIRD dev's databases are about 1.4 GB together) cold and warm, to show what the cache saves on large databases.

Usage:
    python bench/fingerprint_speed.py [--data ../shared/data] [--repeat 3] [--big-mb 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from eval_speed import SYSTEMS, load_predictions

from sense_hub.evaluation import evaluate_records, input_fingerprints, read_predictions
from sense_hub.fingerprints import FingerprintCache


def timed(fn) -> tuple[float, float, object]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def eval_once(path: Path, db_root: Path, *, cache_file: Path | None) -> tuple[float, float, int, int]:
    """One eval; with `cache_file`, fingerprints too. Returns (wall, CPU, correct, files hashed)."""

    def run():
        records = read_predictions(path)
        hashed = 0
        if cache_file is not None:
            cache = FingerprintCache(cache_file)
            input_fingerprints(records, db_root=db_root, predictions=path, cache=cache)
            hashed = cache.hashed
        _, verdicts = evaluate_records(records, db_root=db_root, metric="spider")
        return sum(v.correct for v in verdicts), hashed

    wall, cpu, (correct, hashed) = timed(run)
    return wall, cpu, correct, hashed


def big_database(path: Path, megabytes: int) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    chunk = os.urandom(1 << 16)
    con.executemany("INSERT INTO t (payload) VALUES (?)", ((chunk,) for _ in range(megabytes * 16)))
    con.commit()
    con.close()
    old = time.time() - 60  # an existing database, not one written a moment ago (see fingerprints.RACY_SECONDS)
    os.utime(path, (old, old))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant; the best time is reported")
    parser.add_argument("--big-mb", type=int, default=256, help="also hash one database this large (0: skip)")
    args = parser.parse_args()
    db_root = args.data / "spider" / "database"
    gold, preds = load_predictions(args.data)
    keep = [i for i, (_, db) in enumerate(gold) if (db_root / db).is_dir()]
    records = [
        {"system": name, "index": i, "db_id": gold[i][1], "gold": gold[i][0], "pred": preds[name][i]}
        for name in SYSTEMS
        for i in keep
    ]
    print(
        f"machine: {sys.platform}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, python "
        f"{sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "records.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        old = time.time() - 60
        os.utime(path, (old, old))
        runs: dict[str, list[tuple[float, float]]] = {"without": [], "cold": [], "warm": []}
        hashed: dict[str, int] = {}
        correct = set()
        for k in range(args.repeat):  # interleaved, so load on the machine hits all alike
            cache_file = tmp / f"cache-{k}.json"
            for variant, cache in (("without", None), ("cold", cache_file), ("warm", cache_file)):
                wall, cpu, ok, n_hashed = eval_once(path, db_root, cache_file=cache)
                runs[variant].append((wall, cpu))
                hashed[variant] = n_hashed
                correct.add(ok)
        assert len(correct) == 1, correct
        n_files = len(json.loads(cache_file.read_text())["entries"])
        print(
            f"\nSpider dev, 8 published systems: {len(records)} pairs over {len({gold[i][1] for i in keep})} "
            f"databases, {correct.pop()} correct; {n_files} files fingerprinted (databases + the predictions file; "
            f"best of {args.repeat}; CPU s of this process, execution workers not counted)"
        )
        print(f"  {'':38s}  wall s   CPU s   files hashed   wall vs. without")
        base_wall = min(runs["without"])[0]
        for variant, label in (
            ("without", "eval without fingerprints"),
            ("cold", "eval + fingerprints, cold cache"),
            ("warm", "eval + fingerprints, warm cache"),
        ):
            wall, cpu = min(runs[variant])
            print(f"  {label:38s} {wall:7.3f} {cpu:7.3f}   {hashed[variant]:12d}   {wall / base_wall:6.3f}x")
        spread = [w for w, _ in runs["without"]]
        print(f"  (runs of eval without fingerprints spread {min(spread):.3f}-{max(spread):.3f} s: the noise floor)")

        if args.big_mb > 0:
            big_root = tmp / "big"
            (big_root / "big").mkdir(parents=True)
            db = big_database(big_root / "big" / "big.sqlite", args.big_mb)
            size = db.stat().st_size / 1e6
            cache_file = tmp / "big-cache.json"
            cold_runs, warm_runs = [], []
            for _ in range(args.repeat):
                cache_file.unlink(missing_ok=True)
                cold_runs.append(timed(lambda: _save(cache_file, db))[:2])
                warm_runs.append(timed(lambda: FingerprintCache(cache_file).sha256(db))[:2])
            cold = min(cold_runs)
            warm = min(warm_runs)
            print(f"\none {size:.0f} MB database (best of {args.repeat})")
            print(f"  {'':38s}  wall s   CPU s")
            print(f"  {'fingerprint, cold cache (hash + save)':38s} {cold[0]:7.3f} {cold[1]:7.3f}")
            print(f"  {'fingerprint, warm cache (stat + load)':38s} {warm[0]:7.4f} {warm[1]:7.4f}   "
                  f"{cold[0] / warm[0]:.0f}x faster")  # fmt: skip


def _save(cache_file: Path, db: Path) -> str:
    cache = FingerprintCache(cache_file)
    digest = cache.sha256(db)
    cache.save()
    return digest


if __name__ == "__main__":
    main()
