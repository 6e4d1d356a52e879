"""Continuous training: triggers → retrain → gate → rollout.

The story, by module:

* :mod:`.policy` parses the ``[loop.models.NAME]`` tables of ``livemodel.toml``;
* :mod:`.triggers` decides, from monitoring results and the loop's history, whether to
  retrain (pure);
* :mod:`.data` builds the retraining frame from the labelled log and pins it as an artifact;
* :mod:`.retrain` calls the user's ``module:function`` and registers the candidate with its
  lineage;
* :mod:`.bootstrap` and :mod:`.gate` compare candidate and champion offline (pure);
* :mod:`.history` reads the loop's state back from the audit log;
* :mod:`.controller` runs it all, one controller at a time;
* :mod:`.replay` rebuilds a version from its lineage and checks the predictions match.
"""
