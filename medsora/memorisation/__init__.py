"""Memorisation audit: is a generated clip a copy of a training clip? (``python -m medsora.audit``)

Clips of the training set, of real held-out videos and of the generated set are mapped to
one feature space (:mod:`.features`), features are cached (:mod:`.store`), every clip's
nearest training clips are found by a chunked matrix-multiply search (:mod:`.search`),
the copy threshold is calibrated on the held-out clips (:mod:`.calibrate`) and the
results are written as a table, a summary and a contact sheet (:mod:`.report`).
"""
