"""Rehearsals: drive the Connect simulator into one failure, run the pipeline, check
that the expected incidents, work items and halts happened (one alert per incident
opening), then restore normal behaviour.

Only against the simulator on loopback: its control API (/_sim) does not exist at
Connect, and a rehearsal must never touch real practices.

- ``simulator``: the simulator's control API (loopback only).
- ``scenarios``: what each rehearsal breaks and what it expects.
- ``checks``: what happened since a rehearsal began, against what it expected.
- ``runner``: begin, submit, drive the pipeline in this process, restore, report.
"""
