"""The peer: Flask-Security-Too's sign-in page, the most used ready-made Flask sign-in,
served by the same gunicorn as the app in the same run (``bench/bare.py`` mounts it at
/__peer), so that the app's pages can be read against what a well-kept Flask extension
gives. Its own SQLite register in the temporary directory, one user; nothing of viihde.

Not a dependency of the app: ``bench/http.sh`` installs Flask-Security-Too (the version
below) into the project's venv when it is not there.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask
from flask_security import Security, SQLAlchemyUserDatastore
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

VERSION = "5.9.2"

peer = Flask("peer")
peer.config.update(
    SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
    SECURITY_PASSWORD_SALT=secrets.token_urlsafe(16),
    SQLALCHEMY_DATABASE_URI=f"sqlite:///{Path(tempfile.gettempdir()) / 'bench-peer.db'}",
)
db = SQLAlchemy(peer)
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


security = Security(peer, SQLAlchemyUserDatastore(db, User, Role))

with peer.app_context():
    db.create_all()
