"""MG-FM-RGB: the VideoMAE student (``student.py``), its frozen per-frame teachers (``teacher.py``) and the
SMILE target normalisation (``targets.py``)."""
