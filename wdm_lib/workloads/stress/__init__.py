"""The stress scenario, one job per module:

scenario    the parameters (StressScenario, Distributed) and parsing of durations, steps and gates
gates       k6-style thresholds: parsed before the load, judged on the raw rows after it
locust      Locust's command line and its process (Locust itself runs in a subprocess)
locust_csv  Locust's CSV files: their names, columns and numbers, read in one place
live        the progress line a terminal shows while the load runs
figures     raw rows and Locust's CSVs -> summary.json's figures (exact percentiles, corrected latency)
workers     whether the run lost load: workers gone missing, users below target
shop        batch init, reachability, and --verify's read-back of every balance
run         `wdm stress init` / `wdm stress run`: the orchestration, the Run folder, the verdict
table       the lines a terminal shows at the end

The load itself is ../locustfile.py (standalone: it never imports wdm_lib), with the raw rows'
columns and outcome names in ../shop_rows.py beside it. Nothing here imports locust, which would
monkey-patch this interpreter with gevent.
"""
