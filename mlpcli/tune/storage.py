"""Where a study lives: an SQLite file in the study folder, or a database server's URL.

By default a study is an SQLite file, ``STUDY_DIR/study.db``: nothing to set up, and the
processes of ``--workers K`` on one machine share it. For many machines, one PostgreSQL (or
MySQL) server holds the study and every machine runs the same command with ``--storage URL``,
better given as the environment variable ``MLPCLI_TUNE_STORAGE`` so that the password stays
out of the shell history and the process list.

A URL's password is never shown: ``Storage.shown`` masks it as SQLAlchemy does
(``postgresql://user:***@host/db``) and ``Storage.scrub`` removes it from any text a database
error carries, before that text is printed.

Each worker beats a heartbeat into the database while it runs a trial (Optuna's RDB heartbeat).
A trial whose heartbeat has stopped for two intervals — its worker was killed, its machine
lost — is marked failed by the next worker that looks, and queued to run again with the same
parameters (Optuna's retry callback).
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from mlpcli.errors import ConfigError, MlpcliError, require
from mlpcli.tune import STORAGE_ENV as ENV

DB_FILE = "study.db"
SQLITE_TIMEOUT = 20.0  # seconds a worker waits on another's write before "locked"
CONNECT_TIMEOUT = 10  # seconds to reach a database server
MAX_RETRY = 3  # runs of a trial whose worker died, after the first
# Database drivers SQLAlchemy may import, and the package that installs each from wheels
# (SQLAlchemy 2.1 reads postgresql:// with psycopg 3; 2.0 with psycopg2).
DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL",
           "MySQLdb": "mysqlclient"}


# scheme://user:PASSWORD@rest (or, the scheme forgotten, user:PASSWORD@rest): the password up to
# the LAST @, so that a malformed one is masked whole
CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:)(.*)@([^@]*)$", re.S)
BARE_CREDENTIALS = re.compile(r"^([^:/?#@]*:)(.*)@([^@]*)$", re.S)


class StorageError(MlpcliError):
    """The study's database cannot be reached, opened or written."""


@dataclass(frozen=True)
class Storage:
    """A study database's URL (``url`` holds the password: never print it; ``shown`` is
    what messages say)."""

    url: str

    @classmethod
    def in_folder(cls, study_dir: Path) -> "Storage":
        return cls("sqlite:///" + quote(str(Path(study_dir).resolve() / DB_FILE), safe="/:\\ "))

    @property
    def shown(self) -> str:
        return masked(self.url)

    @property
    def password(self) -> str | None:
        """Everything between ``user:`` and the last ``@`` (decoded): an unencoded ``@`` or
        ``/`` in a password cannot make part of it pass for the host."""
        found = _credentials(self.url)
        return unquote(found.group(2)) if found else None

    def check(self) -> None:
        """A password SQLAlchemy would read otherwise (an unencoded ``@`` or ``/`` in it) is
        a ConfigError: trying it would show the rest of it as the host name."""
        from sqlalchemy.engine import make_url

        try:
            host = make_url(self.url).host or ""
        except Exception:  # noqa: BLE001 — ArgumentError and the like: database_errors says it
            return
        if "@" in host:  # SQLAlchemy cut at the password's first @
            raise ConfigError(f"--storage {self.shown}: the password holds a character a URL reserves",
                              "percent-encode it: @ as %40, / as %2F, : as %3A, % as %25")

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite:")

    def scrub(self, text: str) -> str:
        """``text`` with the URL shown masked and every copy of the password cut out."""
        text = text.replace(self.url, self.shown)
        secret = self.password
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "***")
        return text


def masked(url: str) -> str:
    """``url`` with its password as ``***``, as SQLAlchemy shows it (``postgresql://user:***@host/db``)."""
    found = _credentials(url)
    return f"{found.group(1)}***@{found.group(3)}" if found else url


def _credentials(url: str):
    """The match of (before the password, the password, after its @), or None: no password
    (SQLite URLs hold none: a file name with @ in it is not one)."""
    if url.startswith("sqlite:"):
        return None
    return (CREDENTIALS if "://" in url else BARE_CREDENTIALS).match(url)


def open_storage(storage: Storage, heartbeat: int):
    """Optuna's RDB storage for ``storage``, with the heartbeat and the retry of trials whose
    worker died; a database error is one ``StorageError``."""
    optuna = require("optuna", "mlpcli tune", extra="tune")
    storages = optuna.storages
    if storage.is_sqlite:
        engine = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    elif storage.url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    else:
        engine = {"pool_pre_ping": True}
    storage.check()
    with database_errors(storage), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat, since Optuna 2.9
        # Optuna 4.9 renamed RetryFailedTrialCallback and the argument it goes to.
        retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        callback = ({"heartbeat_stale_trial_callback": retry(max_retry=MAX_RETRY)} if retry is not None
                    else {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)})
        for attempt in range(3):
            try:
                return storages.RDBStorage(storage.url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                           grace_period=2 * heartbeat, **callback)
            except Exception as error:  # noqa: BLE001 — two workers creating the tables at once
                if attempt == 2 or type(error).__name__ not in ("IntegrityError", "ProgrammingError"):
                    raise


@contextmanager
def database_errors(storage: Storage):
    """Any database error in the block becomes one line naming the storage (masked)."""
    try:
        yield
    except ImportError as error:
        missing = error.__cause__ if isinstance(error.__cause__, ImportError) else error  # Optuna wraps it
        driver = (missing.name or "").split(".")[0]
        if driver not in DRIVERS:
            raise
        raise ConfigError(f"the study database {storage.shown} needs the Python driver {driver}, which is not "
                          "installed", f"install it with: pip install {DRIVERS[driver]}") from None
    except Exception as error:  # noqa: BLE001 — SQLAlchemy's errors, without importing it first
        mapped = _mapped(error, storage)
        if mapped is None:
            raise
        raise mapped from None


def _mapped(error: BaseException | None, storage: Storage) -> MlpcliError | None:
    # Optuna wraps SQLAlchemy's errors (StorageInternalError): the cause says what happened
    while error is not None and not (type(error).__module__ or "").startswith("sqlalchemy"):
        error = error.__cause__ or error.__context__
    if error is None:
        return None
    name, where = type(error).__name__, storage.shown
    text = str(getattr(error, "orig", None) or error).strip()
    first = storage.scrub(text.splitlines()[0]) if text else name
    if name in ("ArgumentError", "NoSuchModuleError"):
        return ConfigError(f"--storage {where} is not a database URL SQLAlchemy knows: {first}",
                           "e.g. postgresql://USER@HOST/DB, mysql+pymysql://USER@HOST/DB or sqlite:///FILE")
    if "locked" in first:
        return StorageError(f"the study database {where} is locked: another program held it for over "
                            f"{SQLITE_TIMEOUT:g} s", "wait for it to finish, or give this study another --out; "
                            "for many workers use a database server (--storage postgresql://…)")
    if name == "OperationalError":
        return StorageError(f"cannot reach the study database {where}: {first}",
                            f"start the database server, or check --storage (or {ENV})")
    return StorageError(f"the study database {where} failed: {first}", "run the command again; if it fails "
                        "again, check the database server")
