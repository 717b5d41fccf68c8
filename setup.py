"""Build hook: ship the project's defaults inside the package.

`params.yaml` and `data/reference/` are written once, in the project; a wheel (or any non-editable
install) carries a copy under `crs_settings/defaults/`, so the installed `crs` works from any folder
with the same defaults (`crs_settings.defaults_dir`). Editable installs read the checkout directly.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "crs_settings" / "defaults"
        shutil.rmtree(target, ignore_errors=True)
        (target / "data").mkdir(parents=True)
        shutil.copy2(HERE / "params.yaml", target / "params.yaml")
        shutil.copytree(HERE / "data" / "reference", target / "data" / "reference")


setup(cmdclass={"build_py": BuildWithDefaults})
