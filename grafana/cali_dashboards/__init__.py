"""CALI's Grafana dashboards and alert rules as code (grafana-foundation-sdk typed builders).

One module per dashboard (``operations``, ``incidents``, ``pipeline_health``), the alert
rules in ``alerts``, shared datasources and builders in ``common``, and ``render`` turning
them into the exact JSON/YAML committed under ``grafana/``. ``grafana/build.py`` is the
entry point that writes or checks those files.
"""
