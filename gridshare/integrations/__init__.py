"""gridshare inside other tools: `acnportal` (Caltech's ``acnsim``, optional extra ``acn``)."""
