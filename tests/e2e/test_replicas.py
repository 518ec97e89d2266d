"""Several replicas behind a load balancer (issue 18): two superpos servers on loopback behind Debian's nginx with
sticky ``ip_hash`` upstreams, started and stopped here; a gradio_client user is answered through it.

Gradio's queue keeps each request's progress on the server that took it (the request is sent, then its results
are streamed back over a second connection), so a browser must keep talking to one replica: ``ip_hash`` routes
each client address to one server. The app itself keeps nothing per user that another replica would need.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from gradio_client import Client

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow  # serves the app twice: not in the quick run (-m "not slow")

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream superpos {{
        ip_hash;  # each client address always reaches the same replica: Gradio's queue needs it
        server 127.0.0.1:{first};
        server 127.0.0.1:{second};
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://superpos;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_buffering off;  # results are streamed back as they come
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def test_two_replicas_behind_nginx_with_sticky_routing_answer_a_client(tmp_path):
    import app

    assert os.path.exists(NGINX), "this test needs Debian's nginx (apt-get install nginx)"
    replicas = [app.build_app("cpu") for _ in range(2)]
    ports = [free_port() for _ in replicas]
    for blocks, port in zip(replicas, ports):
        blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS)
    front = free_port()
    (tmp_path / "nginx.conf").write_text(CONFIG.format(root=tmp_path, first=ports[0], second=ports[1], port=front))
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.PIPE)
    try:
        wait_for(front)
        client = Client(f"http://127.0.0.1:{front}/", verbose=False, ssl_verify=False)
        toy = client.predict(5, 2, 0.99, 1.0, 1000, 0, api_name="/toy")[0]
        assert len(toy["feature_norms"]) == 5 and min(toy["feature_norms"]) >= 0.9  # the pentagon
        text = "Two replicas, one answer."
        lm = client.predict(text, "smollm2-135m-offline", 10, "most variable 64 dimensions", api_name="/lm")[0]
        assert "".join(lm["tokens"]) == text and len(lm["next_tokens"]) == 5
        # Each replica answers the same request the same way: nothing one keeps is needed by the other.
        direct = [
            Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False).predict(
                text, "smollm2-135m-offline", 10, "most variable 64 dimensions", api_name="/lm"
            )[0]
            for port in ports
        ]
        assert direct[0] == direct[1] == lm
        served = (tmp_path / "access.log").read_text()
        assert "POST /gradio_api/queue/join" in served or "/gradio_api/call/" in served  # it went through nginx
    finally:
        nginx.terminate()
        nginx.wait(10)
        for blocks in replicas:
            blocks.close()
