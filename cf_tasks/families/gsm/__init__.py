"""GSM-style counterfactual word problems (the ``gsm`` family plugin).

Modules: :mod:`.graph` (quantity graphs as JSON, exact evaluation),
:mod:`.templates` (story domains and rendering), :mod:`.solver` (exact
abduction with sympy on our own expressions), :mod:`.family` (config, levels,
generation, reference solvers).
"""

from .family import FAMILY, LEVELS, GsmConfig, GsmFamily

__all__ = ["FAMILY", "LEVELS", "GsmConfig", "GsmFamily"]
