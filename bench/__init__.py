"""The benchmark of the share-image bot: `python bench/run.py` or `python -m bench`.

It serves the real bot (`python -m bot` in HTTP mode, measured from outside as a process
tree) against a fake Slack Web API and the cloud API sandbox, fires bursts of signed
`/share-image` commands, and compares the acks with two bare Bolt apps that only ack.
Further phases hold slow connections against it, stop it with SIGTERM during a burst,
soak it for minutes, or kill it during bursts. A micro-benchmark times the storage calls
on the ack path on a large database.

    run.py       the command line, the burst scenario and its report; dispatches the phases
    load.py      signed slash commands, fired at once from many threads
    fakes.py     FakeSlack and the sandbox, in a helper process (or inline)
    procs.py     starting, watching (peak memory, Python processes) and stopping process trees
    bare_app.py  the floors: a sync App under gunicorn, an AsyncApp on aiohttp, both only ack
    slow.py      `python -m bench slow`: slow-header and slow-body connections, signed meanwhile
    sigterm.py   `python -m bench sigterm`: SIGTERM during a burst, the restart, the count
    soak.py      `python -m bench soak`: minutes of load, growth per 1,000 commands
    crash.py     `python -m bench crash-rounds`: SIGKILL during bursts, what was said twice
    micro.py     Grants.roles and ShareRequests.record on 10k grants / 100k requests
"""
