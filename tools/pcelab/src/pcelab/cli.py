"""pcelab command line: `serve` (also `--background`), `stop`, `api-key create`, `demo-org`, plus sub-commands
endpoint modules add (register_cli)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from pcelab import background, demo_org
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
    _add_stop(commands)
    _add_api_key(commands)
    _add_demo_org(commands)
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
    serve.add_argument("--ready-file", help="written (JSON: url, host, port, ca, pid, org_id) once the server listens")
    serve.add_argument("--access-log", action="store_true", help="log method, path and status to stderr")
    serve.add_argument("--pce-fqdn", default=socket.getfqdn(), help="the name events and health report")
    serve.add_argument(
        "--background",
        action="store_true",
        help="run detached (log in DATA_DIR/pcelab.log); return once it listens; `pcelab stop` ends it",
    )
    serve.set_defaults(func=serve_command)


def _add_stop(commands) -> None:
    stop = commands.add_parser("stop", help="stop the server `serve --background` started for a data dir")
    stop.add_argument("--data-dir", required=True)
    stop.set_defaults(func=stop_command)


def _add_demo_org(commands) -> None:
    demo = commands.add_parser(
        "demo-org",
        help="seed the lab with the demo org's labels and workloads (idempotent)",
        description="Seed the lab PCE named by the ILLUMIO_* environment variables (as `api-key create --env`"
        " prints them) with the demo org: labels, unmanaged workloads and one managed workload.",
    )
    demo.set_defaults(func=demo_org.command)


def _add_api_key(commands) -> None:
    keys = commands.add_parser("api-key", help="manage API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints USERNAME SECRET (the secret is shown once)")
    create.add_argument("--data-dir", required=True)
    create.add_argument(
        "--env",
        action="store_true",
        help="print `export ILLUMIO_...=...` for the collection instead (for eval), with this lab's host and CA",
    )
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
    if not args.env:
        print(username, secret)
        return 0
    data_dir = background.folder(args.data_dir)
    host, port, org_id = _connection(data_dir)
    variables = {
        "ILLUMIO_PCE_HOST": host,
        "ILLUMIO_PCE_PORT": str(port),
        "ILLUMIO_PCE_ORG_ID": str(org_id),
        "ILLUMIO_API_KEY_USERNAME": username,
        "ILLUMIO_API_KEY_SECRET": secret,
        "ILLUMIO_PCE_CA_PATH": str(data_dir / "ca.pem"),
    }
    print("export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items()))
    return 0


def _connection(data_dir: Path) -> tuple[str, int, int]:
    """Host, port and org of the server running for DATA_DIR (its ready file), else of a default `serve`."""
    running = background.running_server(data_dir)
    info = running[1] if running else None
    if info and isinstance(info.get("port"), int):
        host, port, org_id = str(info.get("host", "")), info["port"], info.get("org_id", 1)
    else:
        print(f"pcelab: no running server recorded in {data_dir}; using {DEFAULT_LISTEN}", file=sys.stderr)
        (host, port), org_id = parse_listen(DEFAULT_LISTEN), 1
    # Loopback or any-address listeners are reached as localhost, a name the lab certificate always has.
    if host in ("127.0.0.1", "::1", "0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        host = "localhost"
    return host, port, org_id


def stop_command(args) -> int:
    if args.data_dir == ":memory:":
        print("pcelab: stop needs the --data-dir the server was started with", file=sys.stderr)
        return 2
    return background.stop(background.folder(args.data_dir))


def _configure_faults(lab: Lab, args) -> None:
    rate = args.fault_rate if args.fault_rate is not None else float(os.environ.get(FAULT_RATE_ENV, "0") or 0)
    status = args.fault_status or int(os.environ.get(FAULT_STATUS_ENV, "503") or 503)
    lab.faults.configure(rate, status)


def serve_command(args) -> int:
    if args.background:
        return _serve_in_background(args)
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
        server = ReadyServer(config, ready=_ready_announcer(sock, tls, args.ready_file, args.org_id))
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


def _serve_in_background(args) -> int:
    if args.data_dir == ":memory:":
        print("pcelab: --background needs a real --data-dir (its pid, log and state live there)", file=sys.stderr)
        return 2
    data_dir = background.folder(args.data_dir)
    if args.api_key:
        # Stored now, as `serve` stores them: the secrets stay off the long-lived server's command line.
        lab = Lab(str(data_dir))
        try:
            for username, secret in args.api_key:
                lab.add_api_key(username, secret)
        except ValueError as error:
            print(f"pcelab: {error}", file=sys.stderr)
            return 1
        finally:
            lab.close()
    try:
        return background.start(serve_arguments(args), data_dir, args.ready_file)
    except OSError as error:
        print(f"pcelab: {error}", file=sys.stderr)
        return 1


def serve_arguments(args) -> list[str]:
    """`serve` options that run a server like ARGS, except --data-dir, --ready-file, --api-key, --background."""
    host, port = args.listen
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    arguments = ["--listen", listen, "--org-id", str(args.org_id), "--pce-fqdn", args.pce_fqdn]
    for name in args.san:
        arguments += ["--san", name]
    if args.fault_rate is not None:
        arguments += ["--fault-rate", repr(args.fault_rate)]
    if args.fault_status is not None:
        arguments += ["--fault-status", str(args.fault_status)]
    arguments += [flag for flag, wanted in (("--http", args.http), ("--access-log", args.access_log)) if wanted]
    return arguments


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _ready_announcer(sock: socket.socket, tls, ready_file: str | None, org_id: int = 1):
    def announce() -> None:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"{'https' if tls else 'http'}://{shown}:{port}"
        ca = str(tls.ca) if tls else None
        info = {"url": url, "host": host, "port": port, "ca": ca, "pid": os.getpid(), "org_id": org_id}
        print(background.listening_line(info), flush=True)
        if ready_file:
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
