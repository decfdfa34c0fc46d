"""Reports over lm-eval outputs of the executable counterfactual tasks.

``loader`` reads lm-eval result/sample files, ``tables`` aggregates them,
``plot`` draws the counterfactual-vs-interventional chart, ``tags`` and
``judge`` analyse reasoning traces, ``cli`` is ``cf-report``. Nothing is
imported here so that ``import cf_tasks.report.loader`` stays light.
"""
