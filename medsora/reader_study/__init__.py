"""A blinded reader study in the browser: real vs generated clips, answers kept in SQLite, results with intervals.

``python -m medsora.reader_study create | serve | results`` (see ``__main__``). Parts: questions
(``questions.py``), the clip sets (``clip_sets.py``), transcoding (``transcode.py``), the draw
(``create.py``), the database (``db.py``), the web page (``app.py``, ``templates/``), the server
(``serve.py``) and the analysis (``stats.py``, ``results.py``).
"""
