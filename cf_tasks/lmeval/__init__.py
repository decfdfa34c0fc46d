"""lm-evaluation-harness glue: dataset loaders, ``process_results`` and the reference-solver models.

Imported only by lm-eval through the task YAMLs' ``!function`` tags and the
``lm_eval.models`` entry points; nothing here runs at import time.
"""
