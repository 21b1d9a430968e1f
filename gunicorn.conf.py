"""gunicorn settings for production: `gunicorn app:app` in a checkout picks this file up
by itself; the wheel carries it as viihde/gunicorn.conf.py, for `gunicorn -c
<site-packages>/viihde/gunicorn.conf.py 'viihde:create_app()'` on a server. It imports
nothing of the app: the master process stays small, and only workers load it."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Sync workers: each request is short; two per core plus one is gunicorn's advice.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Restart workers now and then, so that a slow leak never grows.
# (0 turns it off: the benchmark measures steady workers.)
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# Access lines go to stdout; the app redacts preference tokens from them.
accesslog = "-"
errorlog = "-"
# TLS ends at the proxy in front; trust its X-Forwarded-* only from there (see PROXY_COUNT).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# No control socket (gunicorn 25.1+, under $HOME by default): supervisord and
# deploy/instance run the instances, the service account has no home to put it in, and
# two instances on one machine would share its one path.
control_socket_disable = True


def post_worker_init(worker):
    """The app is loaded in this worker: its objects (modules, phonenumbers' metadata,
    SQLAlchemy's and Babel's tables: 150,000 of them) go out of the garbage collector's
    sight. Otherwise every full collection walks them all, 115-300 ms with the CPU
    shared, and the workers, started together and served alike, each ran one at about
    the same request (bench/http.sh's paced writes: every worker paused at once)."""
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    """A worker ended (recycled or killed): with PROMETHEUS_MULTIPROC_DIR set, its live
    gauges stop counting in /metrics; its counters stay in the totals, as they should."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
