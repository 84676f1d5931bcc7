"""The logic of the `sense-demo` Gradio Space: upload a database, ask a question, see the SQL and its rows.

`spaces/sense-demo/app.py` only calls `build_demo()` and `launch_options()`; everything here is importable and
tested without a browser. The pieces:

- `prepare_database` checks an upload (size, SQLite header or CSV) and copies it into a visitor's own folder
  (`SessionStore`), read-only; CSV files become tables of a new SQLite file.
- `SQLAssistant` writes SQL with the one prompt (`sense_hub.prompts`) and a generator (`sense_hub.generation`:
  the embedded model, a model folder, or a TGI / vLLM / OpenAI-compatible endpoint), executes every candidate
  read-only with a timeout (`sense_hub.execution`) and picks the answer by execution voting (`vote`).
- `build_demo` lays out the page and the two API endpoints, `/answer` and `/run_sql`.

Configuration comes from environment variables (`SpaceConfig.from_env`):

    SENSE_MODEL           "embedded:qwen2.5-coder-0.5b" (default, on a Hugging Face Space too; "embedded" = SmolLM2-135M),
                          a model folder or Hub id, or the model name an endpoint serves
    SENSE_BACKEND         "transformers" (default for local models), "openai" (vLLM, SGLang, llama.cpp, ...), "tgi"
    SENSE_BASE_URL        the endpoint URL (".../v1" for OpenAI-compatible servers)
    SENSE_API_KEY         the endpoint's key, if it needs one
    SENSE_MAX_NEW_TOKENS  tokens per answer (default 96)
    SENSE_TIMEOUT         seconds a query may run (default 10)
    SENSE_MAX_UPLOAD_MB   largest upload in MB (default 200)

Modules: `config` (SpaceConfig, from environment variables), `uploads` (visitor folders, the upload ledger, upload
checks), `gate` (one request per visitor at a time, a bounded number in all),
`display` (schema, tables, error text, transpiling), `assistant` (SQLAssistant: generate, run, vote), `ui` (the
page and its API).
"""

from sense_hub.errors import ModelError, UploadError
from sense_hub.space.assistant import Answer, Candidate, SQLAssistant, vote
from sense_hub.space.config import DEFAULT_MODEL, DIALECTS, DISPLAY_ROWS, HUB_MODEL, MAX_QUESTION_CHARS, SpaceConfig
from sense_hub.space.display import (
    describe_error,
    preview_rows,
    result_table,
    schema_markdown,
    table_names,
    transpile_sql,
)
from sense_hub.space.gate import Busy, VisitorGate
from sense_hub.space.ui import build_demo, example_databases, launch_options, serve
from sense_hub.space.uploads import SessionStore, UploadLedger, latest_upload, prepare_database

__all__ = [
    "DIALECTS",
    "Answer",
    "Busy",
    "Candidate",
    "DEFAULT_MODEL",
    "DISPLAY_ROWS",
    "HUB_MODEL",
    "MAX_QUESTION_CHARS",
    "ModelError",
    "SQLAssistant",
    "SessionStore",
    "UploadLedger",
    "VisitorGate",
    "SpaceConfig",
    "UploadError",
    "build_demo",
    "describe_error",
    "example_databases",
    "latest_upload",
    "launch_options",
    "prepare_database",
    "preview_rows",
    "result_table",
    "serve",
    "schema_markdown",
    "table_names",
    "transpile_sql",
    "vote",
]
