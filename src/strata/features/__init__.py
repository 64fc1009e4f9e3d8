"""Feature types. Each module offers `fit(column, options) -> state` and `transform(column, state)`.

State is plain JSON (numbers, strings, lists), fitted on the training split only.
"""
