"""The domain: share requests, who may ask, share and decide, the share service, the worker.

Nothing here knows Slack or HTTP: handlers and the worker call it with plain values,
and `bot.slack` renders what it returns. Its values (`values.py`, `request.py`) import
nothing of the project, so storage returns them; `records.py` is what handlers read.
"""
