"""Faults during a run, split as Jepsen splits a test: `schedule` reads what to do and when (a YAML
file), `nemesis` does it while the load runs and records every step in the history, `measures`
reads the history back and says what each fault cost (pure)."""
