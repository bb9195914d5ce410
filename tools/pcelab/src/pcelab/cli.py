"""pcelab command line: `serve`, `api-key create`, plus sub-commands endpoint modules add (register_cli)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from pcelab.app import build_app, endpoint_modules
from pcelab.certs import ensure_tls
from pcelab.core import Lab

DEFAULT_LISTEN = "127.0.0.1:8443"
FAULT_RATE_ENV = "PCELAB_FAULT_RATE"
FAULT_STATUS_ENV = "PCELAB_FAULT_STATUS"


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets ([::1]:8443)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen must be HOST:PORT or [IPv6]:PORT, not {text!r}")
    return host, int(port)


def parse_api_key(text: str) -> tuple[str, str]:
    username, sep, secret = text.partition(":")
    if not sep or not username or not secret:
        raise argparse.ArgumentTypeError("--api-key must be USERNAME:SECRET")
    return username, secret


def fault_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("--fault-rate must be a number from 0 to 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcelab", description="Offline Illumio PCE REST API server (lab use only)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    _add_api_key(commands)
    for module in endpoint_modules():
        add = getattr(module, "register_cli", None) or getattr(module, "add_cli", None)
        if add is not None:
            add(commands)
    return parser


def _add_serve(commands) -> None:
    serve = commands.add_parser("serve", help="run the lab PCE until SIGTERM/SIGINT")
    serve.add_argument("--listen", type=parse_listen, default=DEFAULT_LISTEN, help="HOST:PORT (port 0: any free)")
    serve.add_argument("--data-dir", required=True, help="state folder, or :memory: for a throwaway lab")
    serve.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS (not for real use)")
    serve.add_argument("--san", action="append", default=[], help="extra name or IP for the server certificate")
    serve.add_argument("--api-key", action="append", type=parse_api_key, default=[], help="USERNAME:SECRET to accept")
    serve.add_argument("--org-id", type=int, default=1)
    serve.add_argument("--fault-rate", type=fault_rate, default=None, help="fraction of API calls to fail")
    serve.add_argument("--fault-status", type=int, choices=(429, 503), default=None)
    serve.add_argument("--ready-file", help="written (JSON: url, port, ca) once the server listens")
    serve.add_argument("--access-log", action="store_true", help="log method, path and status to stderr")
    serve.add_argument("--pce-fqdn", default=socket.getfqdn(), help="the name events and health report")
    serve.set_defaults(func=serve_command)


def _add_api_key(commands) -> None:
    keys = commands.add_parser("api-key", help="manage API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints USERNAME SECRET (the secret is shown once)")
    create.add_argument("--data-dir", required=True)
    create.set_defaults(func=create_key_command)


def create_key_command(args) -> int:
    if args.data_dir == ":memory:":
        print("pcelab: api-key create needs a real --data-dir", file=sys.stderr)
        return 2
    lab = Lab(args.data_dir)
    try:
        username, secret = lab.create_api_key()
    finally:
        lab.close()
    print(username, secret)
    return 0


def _configure_faults(lab: Lab, args) -> None:
    rate = args.fault_rate if args.fault_rate is not None else float(os.environ.get(FAULT_RATE_ENV, "0") or 0)
    status = args.fault_status or int(os.environ.get(FAULT_STATUS_ENV, "503") or 503)
    lab.faults.configure(rate, status)


def serve_command(args) -> int:
    host, port = args.listen
    lab = Lab(args.data_dir, org_id=args.org_id, pce_fqdn=args.pce_fqdn)
    try:
        _configure_faults(lab, args)
        for username, secret in args.api_key:
            lab.add_api_key(username, secret)
        tls = None if args.http else ensure_tls(Path(lab.data_dir), args.san)
        lab.ca_pem = tls.ca.read_text() if tls else ""
        app = build_app(lab, access_log=args.access_log)
        sock = _listening_socket(host, port)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            timeout_graceful_shutdown=2,
        )
        server = ReadyServer(config, ready=_ready_announcer(sock, tls, args.ready_file))
        # uvicorn re-raises the stop signal once it has shut down; make SIGTERM end like SIGINT does, by an
        # exception, so the cleanup below (closing the database, removing a :memory: lab's folder) still runs.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        pass
    except (OSError, ValueError) as error:
        print(f"pcelab: {error}", file=sys.stderr)
        return 1
    finally:
        lab.close()
    return 0


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _ready_announcer(sock: socket.socket, tls, ready_file: str | None):
    def announce() -> None:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"{'https' if tls else 'http'}://{shown}:{port}"
        ca = str(tls.ca) if tls else None
        print(f"pcelab listening on {url}" + (f" ca={ca}" if ca else " (plain HTTP)"), flush=True)
        if ready_file:
            info = {"url": url, "host": host, "port": port, "ca": ca, "pid": os.getpid()}
            temporary = Path(ready_file).with_suffix(".tmp")
            temporary.write_text(json.dumps(info))
            temporary.replace(ready_file)  # atomic: readers never see half a file

    return announce


class ReadyServer(uvicorn.Server):
    """uvicorn's server, announcing readiness once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, ready):
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started:
            self._ready()

    async def shutdown(self, sockets=None):
        # Idle keep-alive connections are dropped at once: closing them politely over TLS waits for the
        # client's close_notify, which an idle client never sends, and shutdown would hang until its timeout.
        for connection in list(self.server_state.connections):
            cycle, transport = getattr(connection, "cycle", None), getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets=sockets)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
