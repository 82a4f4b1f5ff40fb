"""The search worker and the code it shares with the web, grouped by role:

- `worker.core`: what the web imports too (settings, storage, queueing, the web<->worker
  contract, banks, catalogue, metrics, image validation). TensorFlow-free.
- `worker.pipeline`: the stages: preprocess -> extract -> ranking -> grid/render (plus the
  descriptors, weights, thumbnails and the coarse index). Only `extract` imports TensorFlow.
- `worker.service`: the worker process (`python -m worker`): engine, batching, the job.
- `worker.indexing`: building the banks and editing the catalogue (offline, with the model).
- `worker.dev`: what a developer's machine runs: the sample catalogue, a local redis-server.
- `worker.cli`: the commands a person types (`python -m worker.cli.<name>`).
"""
