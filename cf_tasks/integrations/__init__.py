"""Adapters that put executable-cf inside other frameworks: reasoning-gym, verl and inspect_ai.

One module per framework, each small: they translate our items and scores into
the framework's conventions and never score anything themselves. Every adapter
goes through :mod:`cf_tasks.integrations.common`, which calls the same
generator (``cf_tasks.lmeval.dataset.generate_items``, the function lm-eval's
loader uses), the same parser and the same per-family scorer
(``cf_tasks.scoring.scorer_for``) as lm-eval and the TRL trainers. So item ``i``
of ``(family, variant, level, seed)`` is the same item in every framework, and a
response gets the same score everywhere.

Nothing is imported here: each framework package is an optional extra
(``pip install "executable-cf[reasoning-gym]"``, ``[inspect]``, ``[verl]``) and
is imported only by its own adapter.

- :mod:`cf_tasks.integrations.reasoning_gym`: ``import`` it once and every family
  and variant is a reasoning-gym dataset (``executable_cf_while``, ...).
- :mod:`cf_tasks.integrations.verl`: train/test parquet files in verl's RL layout
  and ``compute_score`` for ``custom_reward_function`` (``cf-tasks export --format verl``).
- :mod:`cf_tasks.integrations.inspect_ai`: inspect tasks ``executable_cf/<family>``
  (registered through the ``inspect_ai`` entry point, see :mod:`executable_cf`).
"""
