"""Maps the repository's top-level folders into the one import package ``edgesplit``.

The product card fixes the folders ``runtime/``, ``codegen/``, ``policies_lite/`` and
``board_configs/``; installed, they are ``edgesplit.runtime``, ``edgesplit.codegen``, ... so no
generic top-level name (``runtime`` and ``codegen`` are unrelated PyPI packages) lands in
site-packages. ``edgesplit`` itself is an implicit namespace package. pyproject.toml holds
everything else; setuptools cannot prefix discovered packages from pyproject alone, hence this file.
"""
from setuptools import find_packages, setup

FOLDERS = ("runtime", "codegen", "policies_lite", "board_configs")

packages = []
package_dir = {}
for folder in FOLDERS:
    package_dir["edgesplit." + folder] = folder
    packages += ["edgesplit." + name for name in find_packages(include=[folder, folder + ".*"])]

setup(packages=packages, package_dir=package_dir)
