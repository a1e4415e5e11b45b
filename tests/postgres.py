"""A real, throwaway PostgreSQL server for the test session (Debian's server binaries).

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user in a
``mkdtemp`` folder it owns; it listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.peers import missing_peer


def _pg_bin() -> Path | None:
    base = Path("/usr/lib/postgresql")
    versions = sorted(base.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]), reverse=True)
    if versions:
        return versions[0].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        missing_peer("PostgreSQL server binaries not found (run: make sysdeps)")
    assert pg_bin is not None
    as_root = os.geteuid() == 0
    run_as: list[str] = []
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            missing_peer("no 'postgres' user to run the server as (run: make sysdeps)")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="dicomhaven-pg-"))
    if as_root:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    base.chmod(0o700)
    data = base / "data"
    port = _free_port()
    try:
        subprocess.run(
            [*run_as, str(pg_bin / "initdb"), "-D", str(data), "-U", "test", "--auth=trust",
             "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [*run_as, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"),
             "-w", "-t", "30", "-o", options, "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield PostgresServer(host="127.0.0.1", port=port, user="test")
        finally:
            subprocess.run(
                [*run_as, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
