"""Flask extensions, created once and bound to the app in ``create_app``."""

from flask_babel import Babel
from flask_caching import Cache
from flask_caching.backends import SimpleCache
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_static_digest import FlaskStaticDigest
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()
login_manager = LoginManager()
# Fingerprinted static URLs (static_url_for) from the wheel's cache_manifest.json; a
# checkout has none, and its URLs stay plain.
static_digest = FlaskStaticDigest()
# Per process: rendered page texts and the landing page's budget hint; never personal data.
cache = Cache()


#: What ``ProcessCache`` keeps: values no request can change for the next.
_IMMUTABLE = (str, bytes, int, float, bool, type(None), tuple, frozenset)


class _AsIs:
    """A cachelib serializer that keeps a value as it is (an immutable one only)."""

    @staticmethod
    def dumps(value):
        if not isinstance(value, _IMMUTABLE):
            raise TypeError(f"the process cache keeps immutable values, not {type(value)}")
        return value

    @staticmethod
    def loads(value):
        return value


class ProcessCache(SimpleCache):
    """Flask-Caching's in-process cache (``CACHE_TYPE``), each value kept as it is given.
    cachelib's pickles what it keeps and unpickles it on every get, a copy each time: 16 µs
    for a rendered page of 16 KB, a seventh of the landing page's CPU (issue 18). What the
    app keeps in it is immutable (rendered texts, tuples of frozen values): one object
    shared by every request of the process is safe."""

    serializer = _AsIs()
