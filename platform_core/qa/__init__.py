"""QA runs: scripted spoken scenarios played as real calls, checked turn by turn, reported (docs/qa.md).

`scenario.py` the model, `loader.py` the YAML files and their JSON Schema, `conditions.py` the audio
conditions, `driver.py` one scenario as one WebRTC call, `results.py` + `expectations.py` + `judge.py`
the verdicts, `targets.py` the platform called (embedded or running) and the agents started,
`runner.py` a suite, `reports/` JUnit, JSON and HTML, `command.py` the `test` command.
"""
