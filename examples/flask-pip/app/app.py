"""A small Flask service. `python3 app.py` serves on :8080; `--once` prints one response."""

import platform
import sys
from importlib.metadata import version

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return f"hello from Flask {version('flask')} on {platform.machine()}\n"


if __name__ == "__main__":
    if "--once" in sys.argv:
        print(app.test_client().get("/").get_data(as_text=True), end="")
    else:
        app.run(host="0.0.0.0", port=8080)
