"""A page that says which machine served it and that MarkupSafe's C extension did the escaping."""

import os
import platform

from flask import Flask
from markupsafe import _speedups, escape  # _speedups: the C extension (a .so for this machine)

app = Flask(__name__)


@app.route("/")
def index() -> str:
    speedups = os.path.basename(_speedups.__file__ or "")
    return f"<p>hello from {escape(platform.machine())} ({escape('<flask>')}, speedups: {speedups})</p>\n"


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    run_simple("0.0.0.0", 8080, app)
