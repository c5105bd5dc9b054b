"""The conversation store: conversations and their messages, through SQLAlchemy.

A SQLite file by default; any SQLAlchemy URL (PostgreSQL: ``postgresql+psycopg://…``) by
configuration. The schema is created and upgraded by Alembic migrations (``migrations/``) when
the store opens, so an old database is brought forward and nothing is dropped. SQLite runs in
WAL mode with a busy timeout, so concurrent writers wait instead of failing; its file is created
(or tightened to) mode 0600.

Owners: every conversation belongs to an owner, the SHA-256 of the API key that created it
(``owner_of``; the key itself is never stored), or ``LOCAL_OWNER`` when the server runs without
keys. Every method takes the owner and every query filters on it, so one key never lists, reads,
renames, deletes or appends to another key's conversation: to the caller it does not exist. This
guards the conversations from other keys of the same server; it does not guard the database
file from someone who can read it (that is the file mode's job), nor encrypt anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

LOCAL_OWNER = "local"  # the one owner of a server without API keys


log = logging.getLogger("openmuse.server.store")

def owner_of(key: str | None) -> str:
    """The owner recorded for ``key``: its SHA-256 (hex), or ``LOCAL_OWNER`` without a key."""
    return hashlib.sha256(key.encode()).hexdigest() if key else LOCAL_OWNER


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200), default="New conversation")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    messages: Mapped[list[StoredMessage]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="StoredMessage.id"
    )


class StoredMessage(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    usage: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    agents: Mapped[list | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")


def migrate(url: str, legacy_owner: str = LOCAL_OWNER) -> None:
    """Bring the database at ``url`` to the newest schema (Alembic ``upgrade head``).
    Conversations stored before owners existed are given ``legacy_owner``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("openmuse.server").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["legacy_owner"] = legacy_owner
    command.upgrade(cfg, "head")


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file of ``url`` readable by its owner only (0600, its new folder 0700),
    or tighten an existing one to 0600. Other databases and ``:memory:`` are left alone."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return
    path = os.path.abspath(u.database)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for p in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.path.exists(p) and os.stat(p).st_uid == os.getuid():
                os.chmod(p, 0o600)
            elif os.path.exists(p):  # shared on purpose (a group-writable file of another user): leave it
                log.warning("store file %s belongs to another user; its mode is left as it is", p)
        except (OSError, AttributeError) as e:  # AttributeError: no getuid (Windows)
            log.warning("could not make %s private: %s", p, e)


class Store:
    """The conversations of every owner; each method acts only on ``owner``'s own."""

    def __init__(self, url: str, legacy_owner: str = LOCAL_OWNER):
        self.url = url
        _private_sqlite_file(url)
        migrate(url, legacy_owner)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _pragmas(conn, _record):
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    # -- conversations ----------------------------------------------------------------------
    def _own(self, s, owner: str, cid: str) -> Conversation | None:
        """``cid`` if ``owner`` owns it; None for another owner's as for a missing one."""
        return s.scalars(select(Conversation).where(Conversation.id == cid,
                                                    Conversation.owner == owner)).first()

    def create(self, title: str, *, owner: str) -> dict[str, Any]:
        with self.session.begin() as s:
            c = Conversation(title=title[:200] or "New conversation", owner=owner)
            s.add(c)
            s.flush()
            return _conv(c)

    def list(self, *, owner: str, limit: int = 200) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(select(Conversation).where(Conversation.owner == owner)
                             .order_by(Conversation.updated_at.desc()).limit(limit))
            return [_conv(c) for c in rows]

    def get(self, cid: str, *, owner: str) -> dict[str, Any] | None:
        with self.session() as s:
            c = self._own(s, owner, cid)
            if c is None:
                return None
            out = _conv(c)
            out["messages"] = [_msg(m) for m in c.messages]
            return out

    def rename(self, cid: str, title: str, *, owner: str) -> dict[str, Any] | None:
        with self.session.begin() as s:
            c = self._own(s, owner, cid)
            if c is None:
                return None
            c.title = title[:200]
            c.updated_at = _now()
            return _conv(c)

    def delete(self, cid: str, *, owner: str) -> bool:
        with self.session.begin() as s:
            c = self._own(s, owner, cid)
            if c is None:
                return False
            s.delete(c)
            return True

    def exists(self, cid: str, *, owner: str) -> bool:
        with self.session() as s:
            return self._own(s, owner, cid) is not None

    # -- messages ---------------------------------------------------------------------------
    def add_messages(self, cid: str, messages: list[dict[str, Any]], *, owner: str) -> list[int]:
        """Append messages to ``owner``'s conversation in one transaction; their ids. KeyError
        when it is not there (deleted meanwhile, or another owner's)."""
        with self.session.begin() as s:
            c = self._own(s, owner, cid)
            if c is None:
                raise KeyError(cid)
            rows = [StoredMessage(conversation_id=cid, **m) for m in messages]
            s.add_all(rows)
            c.updated_at = _now()
            s.flush()
            return [r.id for r in rows]


def _conv(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "object": "conversation", "title": c.title,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


def _msg(m: StoredMessage) -> dict[str, Any]:
    return {"id": m.id, "role": m.role, "content": m.content, "reasoning": m.reasoning, "mode": m.mode,
            "model": m.model, "usage": m.usage, "agents": m.agents, "extra": m.extra,
            "created_at": m.created_at.isoformat()}
