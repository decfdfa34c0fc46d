"""Imported at interpreter start by ``executable_cf_lmeval.pth``; see ``plugins.lmeval_hook``.

It must never break start-up, so every error is swallowed: the worst case is
that ``lm_eval`` needs ``--include_path`` as without the hook.
"""

try:
    from plugins.lmeval_hook import install as _install

    _install()
    del _install
except Exception:  # pragma: no cover - defensive: start-up must survive anything
    pass
