"""One FastAPI router per page of the web app; :func:`labelsieve.app.server.create_app` assembles them.

``pages`` (HTML pages and static files), ``items`` (project info, thumbnails, item detail: shared
by every page), ``label``, ``review``, ``dashboard``, ``map`` and ``boxes``. Handlers get the shared
:class:`~labelsieve.app.routers.common.AppState` through the ``get_state`` dependency, parse the
request, call :mod:`labelsieve.store.queries` (or the labeling session / box store) and return JSON.
"""
