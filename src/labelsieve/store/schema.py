"""Tables of a project store and their ordered migrations (SQLAlchemy Core, SQLite or PostgreSQL).

Nothing in ``events`` is ever updated or deleted. ``current_label`` is a materialised view of
``events`` (the winning event of each item by precedence, then recency) that every write keeps
up to date in the same transaction; :func:`labelsieve.store.core.current_by_window` recomputes it
from the events alone, and the tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

#: Who produced a label event, and how strongly it defines the item's current label.
#: ``vote`` (one labeler's answer in the app) never does by itself: votes are aggregated, and the
#: aggregate is its own event.
PRECEDENCE: dict[str, int] = {
    "vote": 0,
    "auto": 1,
    "salutary": 1,
    "human": 2,
    "aggregate": 2,
    "import": 2,
    "review": 3,
}
#: Sources of events that are never a label (migration 5): a labeler passed on an item (``note``:
#: why), and the cancelling of one earlier event (``target``: its seq; the undo of a vote or a
#: skip, the un-reject of a review). Their precedence is 0: they never win a current label.
UNLABELED_SOURCES = ("skip", "withdraw")
EVENT_PRECEDENCE: dict[str, int] = {**PRECEDENCE, **dict.fromkeys(UNLABELED_SOURCES, 0)}
SOURCES = tuple(EVENT_PRECEDENCE)
ACTIONS = ("label", "accept", "reject", "relabel", "skip", "withdraw")

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

project_meta = sa.Table(
    "project_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

classes = sa.Table(
    "classes",
    metadata,
    sa.Column("code", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False, unique=True),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),  # row of features.npy
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.String(10), nullable=False),  # image | text | none
    sa.Column("source", sa.Text, nullable=False),  # the text, an image path, or "raw.npy#<row>"
    sa.Column("features_ref", sa.Text, nullable=False),  # "features.npy#<row>"
    sa.Column("split", sa.String(20), nullable=False, server_default="pool"),
)

labelers = sa.Table(
    "labelers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # human | model | aggregator | salutary
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("gold_accuracy", sa.Float, nullable=True),
    sa.Column("accuracy_lower", sa.Float, nullable=True),
    sa.Column("accuracy_upper", sa.Float, nullable=True),
    sa.Column("n_gold", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Float, nullable=False),
)
#: added by migration 4 (``ALTER TABLE``), so it is not part of the v1 table that ``_v1`` creates
LABELER_ROLE = sa.Column("role", sa.String(20), nullable=False, server_default="labeler")
labelers.append_column(LABELER_ROLE)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | waiting | complete
    sa.Column("last_round", sa.Integer, nullable=False, server_default="-1"),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("finished", sa.Float, nullable=True),
)

run_rounds = sa.Table(
    "run_rounds",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stats", sa.Text, nullable=False),  # JSON: coverage, error_bound, thresholds, ...
    sa.Column("committed", sa.Float, nullable=False),
)

# the answers a run used, so that a resumed run replays exactly what it saw
run_answers = sa.Table(
    "run_answers",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), primary_key=True),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("event_seq", sa.Integer, nullable=True),
)

# items a run (or the owner) asked humans to label in the web app
queue = sa.Table(
    "queue",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), nullable=False, unique=True),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("round", sa.Integer, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), nullable=False),
    sa.Column("code", sa.Integer, nullable=True),  # NULL: a review rejected the item's label
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("precedence", sa.SmallInteger, nullable=False),
    sa.Column("action", sa.String(10), nullable=False, server_default="label"),
    sa.Column("who", sa.String(200), nullable=False),  # labeler id / model name / aggregator
    sa.Column("version", sa.String(100), nullable=False, server_default=""),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("round", sa.Integer, nullable=True),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("key", sa.String(200), nullable=True, unique=True),  # idempotency key
)
sa.Index("ix_events_item", events.c.item)
sa.Index("ix_events_source", events.c.source)
#: added by migration 5 (``ALTER TABLE`` on older stores): the seq a ``withdraw`` event cancels
#: (a withdrawn event no longer counts anywhere, and is never deleted), and a short text (a skip's reason)
EVENT_TARGET = sa.Column("target", sa.Integer, nullable=True)
EVENT_NOTE = sa.Column("note", sa.Text, nullable=True)
events.append_column(EVENT_TARGET)
events.append_column(EVENT_NOTE)
sa.Index("ix_events_target", events.c.target)

current_label = sa.Table(
    "current_label",
    metadata,
    sa.Column("item", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("precedence", sa.SmallInteger, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("round", sa.Integer, nullable=True),
)

V1_TABLES = [schema_version, project_meta, classes, items, labelers, runs, run_rounds, run_answers, queue, events]

#: The backfill of migration 2 (its events have no ``target`` column yet).
_UPSERT_CURRENT_V2 = """
INSERT INTO current_label (item, seq, code, precedence, source, who, confidence, round)
SELECT item, seq, code, precedence, source, who, confidence, round FROM (
    SELECT item, seq, code, precedence, source, who, confidence, round,
           ROW_NUMBER() OVER (PARTITION BY item ORDER BY precedence DESC, seq DESC) AS rn
    FROM events WHERE seq > :lo AND precedence > 0
) AS ranked WHERE rn = 1
ON CONFLICT (item) DO UPDATE SET seq = excluded.seq, code = excluded.code, precedence = excluded.precedence,
    source = excluded.source, who = excluded.who, confidence = excluded.confidence, round = excluded.round
WHERE excluded.precedence > current_label.precedence
   OR (excluded.precedence = current_label.precedence AND excluded.seq > current_label.seq)
"""

#: Events that define current labels: precedence > 0 and not cancelled by a ``withdraw`` event.
_LIVE = "e.precedence > 0 AND NOT EXISTS (SELECT 1 FROM events w WHERE w.target = e.seq)"
_RANKED = f"""
SELECT item, seq, code, precedence, source, who, confidence, round FROM (
    SELECT e.item, e.seq, e.code, e.precedence, e.source, e.who, e.confidence, e.round,
           ROW_NUMBER() OVER (PARTITION BY e.item ORDER BY e.precedence DESC, e.seq DESC) AS rn
    FROM events e WHERE {{where}} AND {_LIVE}
) AS ranked WHERE rn = 1"""
#: SQL shared by the migration backfill and every write: the winning event per item among events
#: with ``seq > :lo`` (window query), merged into current_label unless a stronger event is there.
UPSERT_CURRENT = "INSERT INTO current_label (item, seq, code, precedence, source, who, confidence, round)" + \
    _RANKED.format(where="e.seq > :lo") + """
ON CONFLICT (item) DO UPDATE SET seq = excluded.seq, code = excluded.code, precedence = excluded.precedence,
    source = excluded.source, who = excluded.who, confidence = excluded.confidence, round = excluded.round
WHERE excluded.precedence > current_label.precedence
   OR (excluded.precedence = current_label.precedence AND excluded.seq > current_label.seq)
"""
#: A withdrawal can demote an item's winner, which an upsert cannot: the items it touches are
#: recomputed from all their live events (delete, then insert; ``:items`` is an expanding list).
CURRENT_OF_ITEMS = ("INSERT INTO current_label (item, seq, code, precedence, source, who, confidence, round)"
                    + _RANKED.format(where="e.item IN :items"))


def _v1(conn: sa.Connection) -> None:
    """Base tables: items, classes, labelers, runs, append-only events."""
    for t in V1_TABLES:
        if t is labelers:  # the v1 columns only: later migrations add theirs
            v1 = sa.Table("labelers", sa.MetaData(), *[c._copy() for c in t.columns if c.name != "role"])
            v1.create(conn, checkfirst=True)
        else:
            t.create(conn, checkfirst=True)


def _v2(conn: sa.Connection) -> None:
    """Materialised current labels, backfilled from the existing events."""
    current_label.create(conn, checkfirst=True)
    conn.execute(sa.text(_UPSERT_CURRENT_V2), {"lo": -1})


# ---------------------------------------------------------------------------------- v3: boxes
#: Where a box came from (``boxes.source``) and who may decide about it (``box_events.source``).
BOX_SOURCES = ("model", "import", "human")
#: A box decision's strength: a review beats an automatic acceptance whatever their order, as for
#: item events (same numbers as :data:`PRECEDENCE`); among equals the latest event wins.
BOX_EVENT_PRECEDENCE: dict[str, int] = {"auto": PRECEDENCE["auto"], "review": PRECEDENCE["review"]}
BOX_ACTIONS = ("accept", "reject", "relabel")

# the images a detector ran on (or an import listed), with the size its boxes were made for
box_images = sa.Table(
    "box_images",
    metadata,
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), primary_key=True, autoincrement=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)

# proposed boxes (and masks): immutable once written; decisions about them are box_events
boxes = sa.Table(
    "boxes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), nullable=False),  # the image
    sa.Column("x1", sa.Float, nullable=False),
    sa.Column("y1", sa.Float, nullable=False),
    sa.Column("x2", sa.Float, nullable=False),
    sa.Column("y2", sa.Float, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),  # proposed class (project class code)
    sa.Column("score", sa.Float, nullable=True),  # NULL: a box without a score (human / ground truth)
    sa.Column("mask", sa.Text, nullable=True),  # COCO RLE JSON {"size": [h, w], "counts": str}
    sa.Column("source", sa.String(10), nullable=False),  # model | import | human
    sa.Column("who", sa.String(200), nullable=False),  # model name / file
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),  # same box imported twice: one row
    sa.Column("created", sa.Float, nullable=False),
)
sa.Index("ix_boxes_item", boxes.c.item)

# append-only decisions about boxes; a box's status is its winning event (precedence, then seq)
box_events = sa.Table(
    "box_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("box", sa.Integer, sa.ForeignKey("boxes.id"), nullable=False),
    sa.Column("action", sa.String(10), nullable=False),  # accept | reject | relabel
    sa.Column("code", sa.Integer, nullable=True),  # the class accepted / relabeled to; NULL for reject
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),  # review | auto
    sa.Column("precedence", sa.SmallInteger, nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),  # auto: the box's score
    sa.Column("threshold", sa.Float, nullable=True),  # auto: the threshold it passed
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("key", sa.String(200), nullable=True, unique=True),  # idempotency key
)
sa.Index("ix_box_events_box", box_events.c.box)


def _v3(conn: sa.Connection) -> None:
    """Boxes and masks of image items, and append-only box review events."""
    for t in (box_images, boxes, box_events):
        t.create(conn, checkfirst=True)


# ---------------------------------------------------------------------------------- v4: accounts
#: What a labeler may do in the web app once accounts are on (see :mod:`labelsieve.app.security`):
#: a labeler votes; a reviewer also reviews items and boxes; an admin may do everything.
ROLES = ("labeler", "reviewer", "admin")
#: ``token``: the labeler's API token (header); ``login``: a one-time login link's code, spent when
#: used; ``session``: the cookie secret a login link was exchanged for.
CREDENTIAL_KINDS = ("token", "login", "session")

# only hashes (SHA-256 of 256-bit random secrets) are stored; the secrets are shown once
credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("labeler", sa.String(200), sa.ForeignKey("labelers.id"), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("used", sa.Float, nullable=True),  # login codes: when spent
    sa.Column("revoked", sa.Float, nullable=True),
)
sa.Index("ix_credentials_labeler", credentials.c.labeler)


def _v4(conn: sa.Connection) -> None:
    """Accounts: a role per labeler and hashed credentials (API tokens, login codes, sessions)."""
    if "role" not in {c["name"] for c in sa.inspect(conn).get_columns("labelers")}:
        conn.execute(sa.text("ALTER TABLE labelers ADD COLUMN role VARCHAR(20) NOT NULL DEFAULT 'labeler'"))
    credentials.create(conn, checkfirst=True)


# ---------------------------------------------------------------------------------- v5: labeling session
# comments on items: append-only, like events (a comment is never edited or deleted)
comments = sa.Table(
    "comments",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item", sa.Integer, sa.ForeignKey("items.pos"), nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("key", sa.String(200), nullable=True, unique=True),  # idempotency key
)
sa.Index("ix_comments_item", comments.c.item)


def _v5(conn: sa.Connection) -> None:
    """Skips and withdrawals as events (``events.target``, ``events.note``), comments on items."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("events")}
    if "target" not in have:
        conn.execute(sa.text("ALTER TABLE events ADD COLUMN target INTEGER"))
    if "note" not in have:
        conn.execute(sa.text("ALTER TABLE events ADD COLUMN note TEXT"))
    if "ix_events_target" not in {ix["name"] for ix in sa.inspect(conn).get_indexes("events")}:
        conn.execute(sa.text("CREATE INDEX ix_events_target ON events (target)"))
    comments.create(conn, checkfirst=True)


# what a run's last certifying round certified on and applied to (migration 6): the threshold page
# recomputes the coverage-bound curve from it; ``meta`` (JSON) holds the certifier's parameters,
# ``data`` an .npz of the validation points (as given to the certifier) and the pool's scores
run_evidence = sa.Table(
    "run_evidence",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def _v6(conn: sa.Connection) -> None:
    """The evidence of a run's certification (``run_evidence``), for the threshold page."""
    run_evidence.create(conn, checkfirst=True)


#: Ordered migrations: ``MIGRATIONS[i]`` brings a store from version i to i + 1.
MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
SCHEMA_VERSION = len(MIGRATIONS)


def get_version(conn: sa.Connection) -> int:
    """Schema version of the database behind ``conn`` (0 when empty)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    v = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    return int(v or 0)


def migrate(conn: sa.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to ``target`` inside the caller's transaction; new version."""
    v = get_version(conn)
    for step in range(v, target):
        MIGRATIONS[step](conn)
        conn.execute(sa.delete(schema_version))
        conn.execute(sa.insert(schema_version).values(version=step + 1))
    return max(v, target)
