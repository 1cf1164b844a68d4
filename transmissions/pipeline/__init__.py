"""The pipeline: from a stored document to a settled send, through any channel.

- ``sweep``: the preparation hand-off (sending from the same task) and the sweep
  that queues due work nothing else queued (``pipeline_dispatch_due``).
- ``converting``: the isolated conversion step (HTML and images), bounded in time,
  CPU, memory and pages, in few slots, then sending from the same task.
- ``sending``: check, route (``channels.registry``), hand to the channel; resend
  and resolve through the channel a document last reached. Its docstring says
  where a send is retried.
- ``settling``: hand uncertain sends to the channel they went by.
- ``clock``: each second, queue what came due (retries, circuit trials, lost first
  sends, the settling of expired claims and unknown outcomes).
- ``tracker``: the one loop that tracks (each channel's round) while anything is
  on its way, and keeps the clock.
"""
