"""The production site file (deploy/nginx/viihde.conf) as nginx runs it: its access lines
keep no preference token. Every SMS link is <site>/<token>, and nginx's own "combined"
format would log each one whole; a log reader could then act as the person. Needs
Debian's nginx and openssl (prod-up installs nginx); skipped without them."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from .helpers import SIGNATURE, TOKEN, WRITTEN, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") and shutil.which("openssl")), reason="needs nginx and openssl"
)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    """The site file rendered as prod-up renders it, in front of an upstream that is down
    (every proxied request answers 502, and is logged as any other); its access log."""
    run = tmp_path_factory.mktemp("nginx")
    for folder in ("spool", "sites", "static"):
        (run / folder).mkdir()
    subprocess.run(  # noqa: S603
        [shutil.which("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(run / "key.pem"), "-out", str(run / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    https, http_port = free_port(), free_port()
    access_log = run / "access.log"
    shutil.copy(ROOT / "deploy/nginx/proxy_params", run / "proxy_params")
    site = subprocess.run(  # noqa: S603
        [str(ROOT / "deploy/nginx/render")],
        env=os.environ | {
            "HTTPS_LISTEN": f"127.0.0.1:{https}", "HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "SERVER_NAME": "127.0.0.1", "CERT": str(run / "cert.pem"), "KEY": str(run / "key.pem"),
            "PUBLIC_ORIGIN": f"https://127.0.0.1:{https}",
            "PACKAGE": str(run), "UPSTREAMS": f"server 127.0.0.1:{free_port()};",
            "PROXY_PARAMS": str(run / "proxy_params"), "ACCESS_LOG": str(access_log),
        },
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    (run / "sites/viihde.conf").write_text(site)
    # Its workers read the static files under the test's private directory as its master's
    # user (as root, nginx would run them as nobody).
    user = "user root;" if os.geteuid() == 0 else ""
    (run / "nginx.conf").write_text(
        f"""daemon off;
{user}
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {run}/default-access.log;
    client_body_temp_path {run}/spool/body;
    proxy_temp_path {run}/spool/proxy;
    fastcgi_temp_path {run}/spool/fastcgi;
    uwsgi_temp_path {run}/spool/uwsgi;
    scgi_temp_path {run}/spool/scgi;
    include {run}/sites/*.conf;
}}
"""
    )
    server = subprocess.Popen(  # noqa: S603
        [shutil.which("nginx"), "-c", str(run / "nginx.conf"), "-p", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(100):
            if server.poll() is not None:
                pytest.fail(f"nginx did not start: {server.stderr.read().decode()}")
            try:
                http.client.HTTPConnection("127.0.0.1", http_port, timeout=1).connect()
                break
            except OSError:
                time.sleep(0.05)
        yield https, http_port, access_log
    finally:
        server.terminate()
        server.wait(timeout=10)


def logged(access_log: Path, request_id: str) -> str:
    """The access line of the request that carried ``request_id`` in its user agent."""
    for _ in range(50):  # nginx writes the line once the answer is sent
        lines = [line for line in access_log.read_text().splitlines() if request_id in line]
        if lines:
            return lines[0]
        time.sleep(0.02)
    raise AssertionError(f"no access line for {request_id}")


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("path", WRITTEN.values(), ids=WRITTEN.keys())
def test_nginx_access_lines_never_show_a_preference_token(nginx, scheme, path):
    """Over HTTPS (proxied) and plain HTTP (redirected), however the link was written: the
    line keeps the subscriber part for tracing and loses the signature."""
    https, http_port, access_log = nginx
    if scheme == "https":
        context = ssl._create_unverified_context()  # noqa: S323  # the test's own certificate
        connection = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=5)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    agent = f"nginx-test-{scheme}-{abs(hash(path))}"
    connection.request("GET", path, headers={"User-Agent": agent})
    status = connection.getresponse().status
    assert status == (502 if scheme == "https" else 301)
    line = logged(access_log, agent)
    assert SIGNATURE not in line and SIGNATURE not in unquote(line)
    assert ".[token]" in line
    assert '"GET /' in line and f" {status} " in line


def test_nginx_access_lines_keep_the_referrer_without_its_token(nginx):
    """A page's request names the page it came from; that address loses its token too, an
    address without one is logged as it came, and none at all as "-" (as nginx's own
    formats write it, which log tools expect)."""
    https, _, access_log = nginx
    context = ssl._create_unverified_context()  # noqa: S323
    for referrer, agent, written in [
        (f"https://127.0.0.1/{TOKEN}", "nginx-test-referrer-token", "https://127.0.0.1/AQ.[token]"),
        ("https://127.0.0.1/privacy", "nginx-test-referrer-plain", "https://127.0.0.1/privacy"),
        (None, "nginx-test-referrer-none", "-"),
    ]:
        connection = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=5)
        headers = {"User-Agent": agent} | ({"Referer": referrer} if referrer else {})
        connection.request("GET", "/privacy", headers=headers)
        connection.getresponse().read()
        line = logged(access_log, agent)
        assert '"GET /privacy HTTP/1.1" 502' in line
        assert f'"{written}" "{agent}"' in line
        assert SIGNATURE not in line


def test_nginx_says_a_compressed_answer_varies_with_accept_encoding(nginx):
    """A fingerprinted static file is public for a year and nginx gzips it for a browser
    that asks: a cache in between must keep the plain copy apart from the gzipped one
    (Vary: Accept-Encoding), or a client that cannot unzip gets the zipped one."""
    https, _, _ = nginx
    static = nginx[2].parent / "static" / "css"
    static.mkdir(parents=True, exist_ok=True)
    name = "site-" + "0" * 32 + ".css"
    (static / name).write_text("body { margin: 0; padding: 0; } " * 20)
    context = ssl._create_unverified_context()  # noqa: S323  # the test's own certificate
    connection = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=5)
    connection.request("GET", f"/static/css/{name}", headers={"Accept-Encoding": "gzip"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200 and response.getheader("Content-Encoding") == "gzip"
    assert "public" in response.getheader("Cache-Control")
    assert "Accept-Encoding" in response.getheader("Vary", "")


def test_plain_http_is_sent_to_the_public_address_with_its_port(nginx):
    """Not to whatever Host the client sent, nor to port 443 when the public address has
    another: PUBLIC_ORIGIN, the path and query kept."""
    https, http_port, _ = nginx
    connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    connection.request("GET", "/privacy?lang=sv", headers={"Host": "evil.example"})
    response = connection.getresponse()
    response.read()
    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{https}/privacy?lang=sv"


def test_tls_offers_only_ciphers_with_forward_secrecy_and_no_tickets(nginx):
    """TLS 1.2 with a static-RSA suite (no forward secrecy) is refused; an ECDHE one is
    taken, and no session ticket comes with it."""
    https, _, _ = nginx

    def handshake(ciphers: str) -> ssl.SSLSocket:
        context = ssl._create_unverified_context()  # noqa: S323  # the test's own certificate
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
        raw = socket.create_connection(("127.0.0.1", https), timeout=5)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    with pytest.raises(ssl.SSLError):
        handshake("AES128-GCM-SHA256")
    with handshake("ECDHE-RSA-AES128-GCM-SHA256") as tls:
        assert tls.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        assert not tls.session.has_ticket


def test_static_files_carry_hsts_as_the_apps_pages_do(nginx):
    """nginx answers static files itself: they carry the app's HSTS."""
    https, _, _ = nginx
    static = nginx[2].parent / "static" / "css"
    static.mkdir(parents=True, exist_ok=True)
    (static / "plain.css").write_text("body { margin: 0; }")
    context = ssl._create_unverified_context()  # noqa: S323  # the test's own certificate
    for path in ("/static/css/plain.css", "/static/css/site-" + "1" * 32 + ".css"):
        if "site-" in path:
            (static / path.rsplit("/", 1)[1]).write_text("body { margin: 0; }")
        connection = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=5)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert response.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains"
        )
