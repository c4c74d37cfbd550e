"""The photo timeline: the Datastore teaching app, on datastore_lite and Flask.

Each user is the root of an entity group (``User:<name>``); each photo is a child of its
user (``User:<name>/Photo:<id>``). That one design decision gives the two reads of the
lesson:

* a user's stream is an **ancestor query**: strongly consistent, a photo is there the
  moment its post returns (``GET /user/<user>/json/``);
* the "latest photos" page is a **global query** over every group: under the legacy
  default (``Eventual(lag="hrd")``) it is eventually consistent, so a photo just posted may
  be missing for a moment (``GET /latest/``).

Run it (README.md beside this file)::

    flask --app examples/photo_timeline/app.py run
    cd examples/photo_timeline && gunicorn -w 4 'app:create_app()'
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from datastore_lite import Entity, exceptions
from datastore_lite.contrib.flask import DatastoreLite
from datastore_lite.query import Query

HERE = Path(__file__).resolve().parent
#: An entity may hold at most 1 MiB; leave room for the other properties.
MAX_IMAGE_BYTES = 1_000_000
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
LATEST_LIMIT = 20

datastore = DatastoreLite()
timeline = Blueprint("timeline", __name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.

    Args:
        config: Flask config overrides, e.g. ``{"DATASTORE_LITE_URL": "sqlite:///t.db"}``.
            ``DATASTORE_LITE_*`` keys left unset fall back to the environment variables of
            the same name, then to the defaults (SQLite file ``datastore_lite.db`` in the
            working directory, legacy profile, eventually consistent global queries).
    """
    app = Flask(__name__)
    app.config.from_mapping(
        # this app's own index.yaml, wherever the server is started from
        DATASTORE_LITE_INDEX_YAML=os.environ.get(
            "DATASTORE_LITE_INDEX_YAML", str(HERE / "index.yaml")
        ),
        MAX_CONTENT_LENGTH=MAX_IMAGE_BYTES + 64 * 1024,
    )
    if config:
        app.config.update(config)
    datastore.init_app(app)
    app.register_blueprint(timeline)
    app.register_error_handler(exceptions.InvalidArgument, _invalid_argument)
    return app


# -- queries ----------------------------------------------------------------------------------


def user_stream(user: str) -> Query:
    """A user's photos, newest first: an ancestor query (strongly consistent).

    Needs the composite index ``Photo (ancestor: yes, date desc)`` of index.yaml.
    """
    client = datastore.client
    return client.query(kind="Photo", ancestor=client.key("User", user), order=["-date"])


def latest_photos() -> Query:
    """Everyone's photos, newest first: a global query (eventually consistent by default)."""
    return datastore.client.query(kind="Photo", order=["-date"])


def fetch_page(query: Query, limit: int, cursor: str | None) -> tuple[list[Entity], str | None]:
    """One page of ``query`` and the cursor of the next (None when no results are left)."""
    iterator = query.fetch(limit=limit, start_cursor=cursor)
    photos = list(iterator)
    token = iterator.next_page_token
    return photos, token.decode("ascii") if isinstance(token, bytes) else token


def photo_json(photo: Entity) -> dict[str, Any]:
    date: dt.datetime = photo["date"]
    return {
        "image_url": photo["image_url"],
        "caption": photo["caption"],
        "user": photo["user"],
        "date": date.isoformat(),
    }


def _paging() -> tuple[int, str | None]:
    """``?limit=`` (default 10, at most 100) and ``?cursor=`` of the request."""
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        abort(400, f"limit must be an integer, not {raw!r}")
    if not 1 <= limit <= MAX_LIMIT:
        abort(400, f"limit must be between 1 and {MAX_LIMIT}")
    return limit, request.args.get("cursor") or None


def _invalid_argument(exc: exceptions.InvalidArgument) -> tuple[Response, int]:
    # a tampered or foreign ?cursor=, a user name too long for a key, ...
    return jsonify(error=exc.message), 400


# -- routes -----------------------------------------------------------------------------------


@timeline.get("/")
def index() -> Response:
    return redirect(url_for("timeline.latest"))  # type: ignore[return-value]


@timeline.post("/post/<user>/")
def post(user: str) -> Response:
    """Store a photo (multipart ``caption`` and ``image``) in its user's entity group."""
    caption = request.form.get("caption", "").strip()
    image = request.files.get("image")
    if not caption:
        abort(400, "the form needs a non-empty 'caption'")
    if image is None:
        abort(400, "the form needs an 'image' file")
    data = image.read()
    if not data:
        abort(400, "the 'image' file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        abort(413, f"images are limited to {MAX_IMAGE_BYTES:,} bytes")
    client = datastore.client
    # Allocate the id first: image_url names it, and the photo is then stored in one write.
    key = client.allocate_ids(client.key("User", user, "Photo"), 1)[0]
    photo = Entity(key, exclude_from_indexes=("image", "image_url", "content_type"))
    photo.update(
        user=user,
        caption=caption,
        date=dt.datetime.now(dt.UTC),
        image=data,
        content_type=image.mimetype or "application/octet-stream",
        image_url=url_for("timeline.image", user=user, photo_id=key.id),
    )
    client.put(photo)
    return redirect(url_for("timeline.user_json", user=user), code=303)  # type: ignore[return-value]


@timeline.get("/user/<user>/json/")
def user_json(user: str) -> Response:
    """A user's stream: ``{"results": [...], "cursor": ...}``, newest first, always fresh."""
    limit, cursor = _paging()
    photos, next_cursor = fetch_page(user_stream(user), limit, cursor)
    return jsonify(results=[photo_json(p) for p in photos], cursor=next_cursor)


@timeline.get("/user/<user>/")
def user_page(user: str) -> str:
    limit, cursor = _paging()
    photos, next_cursor = fetch_page(user_stream(user), limit, cursor)
    return render_template("user.html", user=user, photos=photos, cursor=next_cursor, limit=limit)


@timeline.get("/latest/json/")
def latest_json() -> Response:
    """Everyone's latest photos: a global query, so a fresh post may be missing."""
    limit, cursor = _paging()
    photos, next_cursor = fetch_page(latest_photos(), limit, cursor)
    return jsonify(results=[photo_json(p) for p in photos], cursor=next_cursor)


@timeline.get("/latest/")
def latest() -> str:
    photos, next_cursor = fetch_page(latest_photos(), LATEST_LIMIT, request.args.get("cursor"))
    client = datastore.client
    # Committed writes the global query above could not see yet (DESIGN.md §7).
    pending = len(client.consistency.pending())
    return render_template(
        "latest.html",
        photos=photos,
        cursor=next_cursor,
        pending=pending,
        policy=client.consistency_policy,
    )


@timeline.get("/image/<user>/<int:photo_id>")
def image(user: str, photo_id: int) -> Response:
    client = datastore.client
    key = client.key("User", user, "Photo", photo_id)
    # eventual=True reads without rolling the user's group forward: loading the thumbnails
    # of /latest/ must not make a just-posted photo visible to global queries as a side
    # effect. A photo not applied yet (only linked from its user's stream) falls back to
    # a strong read.
    photo = client.get(key, eventual=True) or client.get(key)
    if photo is None:
        abort(404)
    response = Response(photo["image"], mimetype=photo.get("content_type"))
    response.cache_control.public = True
    response.cache_control.max_age = 86400  # a photo's bytes never change
    return response
