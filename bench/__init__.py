"""The benchmark of the share-image bot: `python bench/run.py` or `python -m bench`.

It serves the real bot (`python -m bot`, HTTP mode under gunicorn, with its worker
process) against a fake Slack Web API and the cloud API sandbox, fires a burst of
signed `/share-image` commands, and compares the acks with a bare Bolt app served the
same way. A micro-benchmark times the storage calls on the ack path on a large database.

    run.py       the command line, the scenarios and the report
    load.py      signed slash commands, fired at once from many threads
    fakes.py     FakeSlack and the sandbox, in a helper process (or inline)
    procs.py     starting, watching (peak memory) and stopping process trees
    bare_app.py  the floor: a Bolt app that only acks, served like the bot
    soak.py      `python -m bench soak`: minutes of load, memory and threads per minute
    micro.py     Grants.roles and ShareRequests.record on 10k grants / 100k requests
"""
