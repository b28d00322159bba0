"""Only what pyproject.toml cannot say without listing every package by hand.

The migrations stay in the repository's top-level ``alembic/`` (the agreed layout), but
a wheel must carry them: they ship as ``storage/_alembic``, data of the storage package
that storage/migrations.py finds with importlib.resources. Never as a top-level
``alembic`` package, which would shadow the Alembic library. Everything else about the
project is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["chatroom", "chatroom.*", "storage", "storage.*"]),
        "storage._alembic",
        "storage._alembic.versions",
    ],
    package_dir={"storage._alembic": "alembic"},
    package_data={"storage._alembic": ["script.py.mako"]},
)
