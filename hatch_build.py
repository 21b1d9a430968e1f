"""The wheel's build step: compile the translation catalogues and fingerprint the static
files, so that installing the wheel is all a server needs (no `make`, no `pybabel`).

The catalogues (.po) are compiled to .mo and the static files copied with an md5 in
their names (Flask-Static-Digest's digester, with gzip copies for nginx's gzip_static and
its ``cache_manifest.json``); both go into the package as ``viihde/translations`` and
``viihde/static``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask_static_digest import digester
from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    """Compiled catalogues and fingerprinted static files into the wheel."""

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        self._built = Path(tempfile.mkdtemp(prefix="viihde-build-"))
        translations = self._built / "translations"
        for po in sorted((root / "translations").glob("*/LC_MESSAGES/messages.po")):
            language = po.parent.parent.name
            with po.open("rb") as source:
                catalog = read_po(source, locale=language)
            mo = translations / language / "LC_MESSAGES" / "messages.mo"
            mo.parent.mkdir(parents=True)
            with mo.open("wb") as target:
                write_mo(target, catalog, use_fuzzy=False)
        static = self._built / "static"
        shutil.copytree(root / "static", static, ignore=_not_sources)
        digester.compile(f"{static}/", f"{static}/", [], True, False)
        build_data["force_include"][str(translations)] = "viihde/translations"
        build_data["force_include"][str(static)] = "viihde/static"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if self.target_name == "wheel":
            shutil.rmtree(self._built, ignore_errors=True)


def _not_sources(directory: str, names: list[str]) -> set[str]:
    """A checkout's own digest output (``flask digest compile``) is made again here."""
    return {name for name in names if name.endswith(".gz") or name == "cache_manifest.json"}
