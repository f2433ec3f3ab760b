"""Key-organ auto-search (paper section 2.2, Eq. 4-5, Fig. 3).

* :mod:`deepstationing.backbone.weighting` — the learnable softmax channel weights and the
  training schedule (with the backbone, which trains them);
* :mod:`.ranking` — the ranking of the organs, weight trajectories, top-n channel specs;
* :mod:`.sweep` — retraining the station network with CT + the top-n organs for each n;
* :mod:`.known_answer` — the search on a toy cohort whose informative organs are known.
"""
