"""SENSE text-to-SQL demo: upload a database, ask a question, see the SQL and its rows.

Usage:
    python spaces/sense-demo/app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_PORT / GRADIO_SERVER_NAME)
    SENSE_MODEL=/path/to/model python spaces/sense-demo/app.py
    SENSE_BACKEND=openai SENSE_BASE_URL=http://localhost:8000/v1 SENSE_MODEL=my-model python spaces/sense-demo/app.py

API endpoints: /answer (database file, question) -> (SQL, table), /run_sql (database file, SQL) -> table.
The logic lives in `sense_hub.space`.
"""

import logging
import os
import sys

from sense_hub.space import SpaceConfig, SQLAssistant, build_demo, serve

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

config = SpaceConfig.from_env()
assistant = SQLAssistant(config)
demo = build_demo(config, assistant=assistant)

if __name__ == "__main__":
    assistant.warm_up()  # load the model once, before the first visitor asks
    serve(demo, config)  # Ctrl-C or SIGTERM: closes the server and deletes every visitor's files
    # Nothing is left to save; the interpreter's own teardown (torch's thread pools) can take 20 s on a busy CPU,
    # and a Space that does not exit within its grace period is killed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
