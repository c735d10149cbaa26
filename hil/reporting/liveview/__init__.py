"""The live view: a static page in the browser, fed over a WebSocket, that shows a run as it
goes (the plant drawn as it moves, scrolling plots, loop health, the run id and latest state).

- `feed`: where the figures come from. `RecordingFeed` tails a run folder's plant.rec and
  logs as they are written (what `hil run --watch` and `hil watch --run` use): the loops pay
  nothing, not even a copy. `Snapshot`s are plain JSON-able dicts, decimated for a screen.
- `server`: `LiveViewServer` serves `static/` and the WebSocket from a thread of its own,
  bounded in clients, in what it reads from them and in what it queues for each.
- `static/`: index.html, live.js and plant.js (the plant drawing, shared with report.html's
  replay). No build step, no network: everything the page needs is in this package.
"""
