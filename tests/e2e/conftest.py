"""A real superpos server on a free loopback port, shared by the end-to-end tests."""
from __future__ import annotations

import os
import socket

import pytest

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_url():
    import app

    blocks = app.build_app("cpu")
    blocks.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, css=app.CSS, max_file_size=app.MAX_FILE_SIZE)
    yield blocks.local_url
    blocks.close()
