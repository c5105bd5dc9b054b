"""The conversation store: conversations and their messages, through SQLAlchemy.

A SQLite file by default; any SQLAlchemy URL (PostgreSQL: ``postgresql+psycopg://…``) by
configuration. The schema is created and upgraded by Alembic migrations (``migrations/``) when
the store opens, so an old database is brought forward and nothing is dropped. SQLite runs in
WAL mode with a busy timeout, so concurrent writers wait instead of failing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
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


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("openmuse.server").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


class Store:
    def __init__(self, url: str):
        self.url = url
        migrate(url)
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
    def create(self, title: str) -> dict[str, Any]:
        with self.session.begin() as s:
            c = Conversation(title=title[:200] or "New conversation")
            s.add(c)
            s.flush()
            return _conv(c)

    def list(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(select(Conversation).order_by(Conversation.updated_at.desc()).limit(limit))
            return [_conv(c) for c in rows]

    def get(self, cid: str) -> dict[str, Any] | None:
        with self.session() as s:
            c = s.get(Conversation, cid)
            if c is None:
                return None
            out = _conv(c)
            out["messages"] = [_msg(m) for m in c.messages]
            return out

    def rename(self, cid: str, title: str) -> dict[str, Any] | None:
        with self.session.begin() as s:
            c = s.get(Conversation, cid)
            if c is None:
                return None
            c.title = title[:200]
            c.updated_at = _now()
            return _conv(c)

    def delete(self, cid: str) -> bool:
        with self.session.begin() as s:
            c = s.get(Conversation, cid)
            if c is None:
                return False
            s.delete(c)
            return True

    def exists(self, cid: str) -> bool:
        with self.session() as s:
            return s.get(Conversation, cid) is not None

    # -- messages ---------------------------------------------------------------------------
    def add_messages(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Append messages to a conversation in one transaction."""
        with self.session.begin() as s:
            c = s.get(Conversation, cid)
            if c is None:
                raise KeyError(cid)
            for m in messages:
                s.add(StoredMessage(conversation_id=cid, **m))
            c.updated_at = _now()


def _conv(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "object": "conversation", "title": c.title,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


def _msg(m: StoredMessage) -> dict[str, Any]:
    return {"id": m.id, "role": m.role, "content": m.content, "reasoning": m.reasoning, "mode": m.mode,
            "model": m.model, "usage": m.usage, "agents": m.agents, "extra": m.extra,
            "created_at": m.created_at.isoformat()}
