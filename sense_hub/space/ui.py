"""The page: the examples, the Gradio layout and handlers, and the two API endpoints `/answer` and `/run_sql`."""

# No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotations of the handlers that
# `build_demo` defines, and those must be real classes.

import logging
import tempfile
from pathlib import Path

from sense_hub.errors import ModelError, UploadError
from sense_hub.models import hub_model_id, is_embedded
from sense_hub.space.assistant import SQLAssistant
from sense_hub.space.config import DIALECTS, DISPLAY_ROWS, SpaceConfig
from sense_hub.space.display import (
    describe_error,
    markdown_text,
    preview_rows,
    result_table,
    schema_markdown,
    table_names,
    transpile_sql,
)
from sense_hub.space.gate import Busy, VisitorGate
from sense_hub.space.uploads import (
    CSV_SUFFIXES,
    SQLITE_SUFFIXES,
    SessionStore,
    UploadLedger,
    latest_upload,
    prepare_database,
)

logger = logging.getLogger(__name__)


def example_databases(root: str | Path | None = None) -> tuple[dict[str, Path], list[dict]]:
    """The bundled sample databases (built once under `root`) and their seed questions.

    Returns:
        `({db_id: path}, [{"db_id", "question", "sql"}, ...])`.
    """
    from sense_hub.sample_data import build_sample_databases, seed_examples

    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "sense-demo-examples"
    paths = build_sample_databases(root)
    return paths, [e for e in seed_examples() if e["db_id"] in paths]


def _pick_examples(seeds: list[dict], *, per_database: int = 2) -> list[dict]:
    picked: dict[str, list[dict]] = {}
    for e in seeds:
        bucket = picked.setdefault(e["db_id"], [])
        if len(bucket) < per_database:
            bucket.append(e)
    return [e for bucket in picked.values() for e in bucket]


# ----------------------------------------------------------------------------------------------- the page

#: Events that may wait in Gradio's queue (uploads, previews); beyond it Gradio answers "Queue is full", 503.
QUEUE_SIZE = 64

CSS = """
#status, #db-status { min-height: 1.5em; }
footer { display: none !important; }
"""


def launch_options(config: SpaceConfig | None = None) -> dict:
    """Keyword arguments for `demo.launch()`: the upload cap, theme and CSS (Gradio 6 takes them at launch)."""
    import gradio as gr

    config = config or SpaceConfig()
    return {
        "max_file_size": config.max_upload_bytes,
        "theme": gr.themes.Soft(),
        "css": CSS,
    }


def serve(demo, config: SpaceConfig | None = None) -> None:
    """Launch `demo` (built by `build_demo`) and block until Ctrl-C or SIGTERM, then delete every visitor's files.

    A Space (or `docker stop`, or systemd) stops the app with SIGTERM, which Python does not turn into an exception
    and `atexit` does not see; here it is handled like Ctrl-C: the server closes, uploads not yet taken and every
    visitor's folder are deleted, and the process exits.
    """
    import signal
    import threading

    def _stop(signum, frame):
        server = getattr(demo, "server", None)
        if server is not None:  # uvicorn would otherwise wait for open connections (clients' event streams)
            server.force_exit = True
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    try:
        demo.launch(**launch_options(config))
    finally:
        cleanup = getattr(demo, "sense_cleanup", None)
        if cleanup is not None:
            cleanup()
        logger.info("visitor files deleted; bye")


def build_demo(
    config: SpaceConfig | None = None,
    *,
    assistant: SQLAssistant | None = None,
    sessions: SessionStore | None = None,
    examples_root: str | Path | None = None,
):
    """The Gradio Blocks app: upload, schema and preview, ask, editable SQL, results, candidates, dialects.

    API endpoints: `/answer` (database file, question) → (SQL text, result table) and `/run_sql` (database file,
    SQL) → result table. `/answer` returns the model's SQL even when it fails, with a one-column `error` table
    saying why; `/run_sql` raises a Gradio error (a human message) for SQL it refuses or cannot run.

    Visitors cannot block or read each other: queries and questions take a turn at a `VisitorGate` (one at a time
    per visitor, a bounded number in all, "busy, try again" beyond) instead of waiting in Gradio's first-come
    queue; each upload is moved into the visitor's private folder as soon as it arrives (`UploadLedger`,
    `SessionStore.take_uploads`), so its path is worthless to anyone else; and results are capped in rows and
    bytes at what a browser table shows.

    Args:
        config: model and limits (default: `SpaceConfig.from_env()`).
        assistant: a ready `SQLAssistant` (default: one built from `config`; the model loads on first use).
        sessions: where visitors' copies live (default: a new temporary folder).
        examples_root: where the example databases are built (default: a folder in the temp dir).
    """
    import gradio as gr

    config = config or (assistant.config if assistant else SpaceConfig.from_env())
    assistant = assistant or SQLAssistant(config)
    sessions = sessions or SessionStore()
    example_paths, seeds = example_databases(examples_root)
    examples = _pick_examples(seeds)
    uploads = UploadLedger()
    queries = VisitorGate(config.max_running_queries, what="query", seconds=config.timeout)
    questions = VisitorGate(config.max_waiting_answers, what="question")

    def _visitor(request: gr.Request) -> str:
        return getattr(request, "session_hash", None) or "anonymous"

    def _own_files(files, request: gr.Request) -> list[Path]:
        return sessions.take_uploads(_visitor(request), files, uploads)

    def _session_db(files, request: gr.Request) -> Path:
        own = _own_files(files, request)
        return prepare_database(own, workdir=sessions.workdir(_visitor(request)), max_bytes=config.max_upload_bytes)

    def _cut_note(result) -> str:
        return (
            f" (cut at {config.max_rows:,} rows / {config.max_result_mb:g} MB, what this Space returns; add a LIMIT)"
            if result.truncated
            else ""
        )

    def _fail(message: str) -> str:
        gr.Warning(message)
        return f"**Error:** {message}"

    # ---- page handlers: they never raise; failures become a warning toast and the status line

    def on_upload(files, request: gr.Request):
        empty = {"headers": [], "data": []}
        cleared = gr.update(choices=[], value=None)
        if not files:
            return gr.update(), None, "Upload a database or pick an example below.", "", cleared, empty
        shown = gr.update()  # the box keeps what the visitor sees; the files themselves are already private copies
        try:
            own = _own_files(files, request)
            kept = latest_upload([str(f) for f in own])
            db = prepare_database(kept, workdir=sessions.workdir(_visitor(request)), max_bytes=config.max_upload_bytes)
            names = table_names(db)
            schema = schema_markdown(db)
        except UploadError as e:
            return shown, None, _fail(str(e)), "", cleared, empty
        except Exception as e:  # never a stack trace in the page
            logger.exception("upload failed")
            return shown, None, _fail(f"The upload failed ({type(e).__name__})."), "", cleared, empty
        first = names[0] if names else None
        preview = preview_rows(db, first, timeout=config.timeout) if first else empty
        status = (
            f"Loaded **{markdown_text(db.stem)}**: {len(names)} table{'s' if len(names) != 1 else ''}. Ask a question."
        )
        return shown, str(db), status, schema, gr.update(choices=names, value=first), preview

    def on_table(db, table):
        if not db or not table:
            return {"headers": [], "data": []}
        return preview_rows(db, table, timeout=config.timeout)

    def _transpiled(sql: str, dialect: str) -> str:
        try:
            return transpile_sql(sql, dialect=dialect)
        except ValueError as e:
            return f"-- {e}"

    def _no_table():
        # hidden, not empty: an empty Dataframe still shows placeholder headers (1 2 3) under the error
        return gr.update(value=None, visible=False)

    def _table(value):
        return gr.update(value=value, visible=True)

    def on_ask(db, question, n, dialect, request: gr.Request):
        empty = _no_table()
        if not db:
            return "", empty, _fail("Upload a database (or pick an example) first."), [], ""
        try:
            with questions.turn(_visitor(request)):
                answer = assistant.answer(question, db, n=int(n))
        except (ValueError, ModelError, Busy) as e:
            return "", empty, _fail(str(e)), [], ""
        except Exception as e:
            logger.exception("answer failed")
            return "", empty, _fail(f"Something went wrong while answering ({type(e).__name__})."), [], ""
        rows = [
            [
                c.votes,
                "yes" if c.result.ok else (c.result.error or "no"),
                c.sql,
                "" if c.result.ok else c.result.message,
            ]
            for c in answer.candidates
        ]
        timing = f"model {answer.generation_s:.1f} s, SQLite {answer.execution_s * 1000:.0f} ms"
        if answer.result.ok or answer.result.truncated:
            table = result_table(answer.result)
            count = len(answer.result.rows)
            more = _cut_note(answer.result)
            if count > DISPLAY_ROWS:
                table["data"] = table["data"][:DISPLAY_ROWS]
                more = f" (showing the first {DISPLAY_ROWS})"
            shown = _table(table)
            status = f"**{count} row{'s' if count != 1 else ''}**{more} · {timing}"
            if answer.repair_note():
                status += f" · {answer.repair_note()}"
        else:
            shown = _no_table()
            status = _fail(f"The model's SQL did not run. {describe_error(answer.result, timeout=config.timeout)}")
            if answer.repair_note():
                status += f" ({answer.repair_note()})"
            status += f" · {timing}"
        return answer.sql, shown, status, rows, _transpiled(answer.sql, dialect)

    def on_run(db, sql, dialect, request: gr.Request):
        empty = _no_table()
        if not db:
            return empty, _fail("Upload a database (or pick an example) first."), ""
        try:
            with queries.turn(_visitor(request)):
                result = assistant.run_sql(sql, db)
        except Busy as e:
            return gr.update(), _fail(str(e)), gr.update()
        if not result.ok and not result.truncated:
            return empty, _fail(describe_error(result, timeout=config.timeout)), _transpiled(sql or "", dialect)
        shown = result_table(result)
        count = len(result.rows)
        more = _cut_note(result)
        if count > DISPLAY_ROWS:
            shown["data"] = shown["data"][:DISPLAY_ROWS]
            more = more or f" (showing the first {DISPLAY_ROWS:,})"
        status = f"**{count:,} row{'s' if count != 1 else ''}**{more} in {result.elapsed * 1000:.0f} ms"
        return _table(shown), status, _transpiled(sql or "", dialect)

    def on_dialect(sql, dialect):
        return _transpiled(sql or "", dialect)

    def on_unload(request: gr.Request):
        session = getattr(request, "session_hash", None)
        if session:
            sessions.drop(session)

    # ---- API handlers: raise gr.Error with a human message

    def api_answer(db_file, question, request: gr.Request):
        """Write SQL for a question about an uploaded SQLite database and run it (read-only).

        Returns the SQL and its result table; when the SQL fails, the table has one `error` column saying why.
        """
        try:
            db = _session_db(db_file, request)
            with questions.turn(_visitor(request)):
                answer = assistant.answer(question, db, n=1)
        except (UploadError, ValueError, ModelError, Busy) as e:
            raise gr.Error(str(e)) from e
        if answer.result.ok:
            return answer.sql, result_table(answer.result)
        return answer.sql, {"headers": ["error"], "data": [[describe_error(answer.result, timeout=config.timeout)]]}

    def api_run_sql(db_file, sql, request: gr.Request):
        """Run one read-only SQL query on an uploaded SQLite database and return SQLite's rows."""
        try:
            db = _session_db(db_file, request)
            with queries.turn(_visitor(request)):
                result = assistant.run_sql(sql, db)
        except (UploadError, Busy) as e:
            raise gr.Error(str(e)) from e
        if not result.ok:
            raise gr.Error(describe_error(result, timeout=config.timeout))
        return result_table(result)

    model_label = assistant.model_name
    if is_embedded(model_label):
        model_label = f"{hub_model_id(model_label).split('/')[-1]} (embedded)"
    with gr.Blocks(title="SENSE text-to-SQL", delete_cache=(3600, 3600)) as demo:
        db_state = gr.State(None)
        gr.Markdown(
            "# SENSE text-to-SQL\n"
            "Upload an SQLite database (or CSV files), ask a question in plain words, and read the SQL the model "
            f"writes and the rows it returns. Model: **{model_label}**. Queries run read-only on your own copy, "
            f"stopped after {config.timeout:g} s."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                upload = gr.File(
                    label=f"Database: .sqlite / .db, or .csv files (up to {config.max_upload_mb} MB)",
                    file_count="multiple",
                    file_types=[*SQLITE_SUFFIXES, *CSV_SUFFIXES],
                    elem_id="db-upload",
                    height=120,
                )
                db_status = gr.Markdown("Upload a database or pick an example below.", elem_id="db-status")
                with gr.Accordion("Schema", open=True):
                    schema = gr.Markdown(elem_id="schema", max_height=420)
                table_pick = gr.Dropdown(label="Preview a table", choices=[], interactive=True, elem_id="table-pick")
                preview = gr.Dataframe(label="First rows", interactive=False, elem_id="preview", max_height=260)
            with gr.Column(scale=3, min_width=420):
                question = gr.Textbox(
                    label="Question", placeholder="e.g. How many customers are there?", lines=2, elem_id="question"
                )
                with gr.Row():
                    n_candidates = gr.Slider(
                        1,
                        config.max_candidates,
                        value=1,
                        step=1,
                        label="Candidates (more than 1: sample and vote by execution result)",
                        scale=3,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                sql = gr.Code(
                    label="SQL (SQLite; edit and run it again)", language="sql", interactive=True, elem_id="sql"
                )
                run = gr.Button("Run SQL", elem_id="run-sql")
                status = gr.Markdown(elem_id="status")
                result = gr.Dataframe(label="Result", interactive=False, elem_id="result", max_height=400)
                with gr.Accordion("Candidates and votes", open=False):
                    candidates = gr.Dataframe(
                        headers=["votes", "executed", "SQL", "error"],
                        interactive=False,
                        elem_id="candidates",
                        wrap=True,
                    )
                with gr.Accordion("The same SQL in another dialect (sqlglot)", open=False):
                    dialect = gr.Dropdown(list(DIALECTS), value="postgres", label="Dialect", elem_id="dialect")
                    transpiled = gr.Code(
                        label="Transpiled SQL", language="sql", interactive=False, elem_id="transpiled"
                    )
        if examples:
            gr.Examples(
                examples=[[[str(example_paths[e["db_id"]])], e["question"]] for e in examples],
                inputs=[upload, question],
                label="Examples: a bundled database and a question",
            )

        # hidden components that carry the API endpoints' values
        with gr.Column(visible=False):
            api_file = gr.File(label="database file", file_count="single")
            api_question = gr.Textbox(label="question")
            api_sql_in = gr.Textbox(label="sql")
            api_sql_out = gr.Textbox(label="sql")
            api_table = gr.Dataframe(label="result table")
            api_answer_btn = gr.Button()
            api_run_btn = gr.Button()

        upload.change(
            on_upload, [upload], [upload, db_state, db_status, schema, table_pick, preview], api_visibility="private"
        )
        table_pick.change(on_table, [db_state, table_pick], [preview], api_visibility="private")
        # queries and questions take turns at the gates, not in Gradio's first-come queue (concurrency_limit=None)
        gr.on(
            [ask.click, question.submit],
            on_ask,
            [db_state, question, n_candidates, dialect],
            [sql, result, status, candidates, transpiled],
            api_visibility="private",
            concurrency_limit=None,
        )
        run.click(
            on_run,
            [db_state, sql, dialect],
            [result, status, transpiled],
            api_visibility="private",
            concurrency_limit=None,
        )
        dialect.change(on_dialect, [sql, dialect], [transpiled], api_visibility="private")
        api_answer_btn.click(
            api_answer, [api_file, api_question], [api_sql_out, api_table], api_name="answer", concurrency_limit=None
        )
        api_run_btn.click(api_run_sql, [api_file, api_sql_in], [api_table], api_name="run_sql", concurrency_limit=None)
        demo.unload(on_unload)
    # Gradio's record of uploads becomes the ledger that lets each upload be used once (then its file is deleted)
    for k, file_set in enumerate(demo.temp_file_sets):
        if file_set is demo.upload_file_set:
            demo.temp_file_sets[k] = uploads
    demo.upload_file_set = uploads
    demo.sense_cleanup = lambda: (uploads.forget_all(), sessions.close())  # `serve` calls it at shutdown
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo
