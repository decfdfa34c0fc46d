"""Problem families.

Each family lives in its own module and is registered through the
``executable_cf.families`` entry-point group (see ``setup.cfg``); load them with
``plugins.registry.FAMILIES.get(name)``. This package imports nothing on
purpose, so that listing families never pays for generating code.
"""
