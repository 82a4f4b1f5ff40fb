"""The search worker: preprocess -> extract -> bank search -> render.

Importing this package must stay cheap and TensorFlow-free: the web process imports
`worker.settings` and `worker.preprocess`. TensorFlow is imported only by `worker.extract`.
"""
