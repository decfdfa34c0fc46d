"""``python -m cf_tasks.lmeval ARGS``: lm-eval's CLI with our tasks and reference models registered.

The start-up hook (``executable_cf_lmeval.pth``) registers them whenever
Python processes site-packages, which is every ordinary ``python`` and the
``lm_eval`` console script. Some installs skip ``.pth`` files: a package put on
``PYTHONPATH`` by ``pip install --target``, an embedded interpreter, or
``python -S``. This entry point installs the same hook explicitly first, so
``--model cf_oracle`` and ``--tasks executable_cf`` work there too.
"""

from __future__ import annotations


def main() -> None:
    from plugins.lmeval_hook import install

    install()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
