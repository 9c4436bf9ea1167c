"""Reliability probes: hostile requests and injected faults against a real `respgate serve` process.

Each probe starts its own server (a subprocess on the source tree given by `--src`), with a config that
uses only settings that have defaults, provokes one failure mode, measures what a client, the database
and the process saw, and returns rows for the report. `python -m bench.probes --help` runs them.
"""
