"""Evaluation shared by training and benchmarks: TREC runs and qrels (`runs`) -> metrics (`metrics`, ranx) ->
paired significance tests with multiple-comparison correction (`significance`)."""
