"""Alembic's migration environment for Operator's SQL tables, shipped inside the package.

A package (not a loose directory) so `importlib.resources` finds it wherever Operator is installed, and
no `alembic.ini` is needed: `bot.db.migrate` configures Alembic in code and hands `env.py` its connection.
"""
