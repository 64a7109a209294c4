"""Robustness studies: many architectures × training seeds × conditions, on identical data.

``lnn-control study --launch STUDY.yaml --out DIR`` runs a grid of *cells* through the parallel
seam (:mod:`lnn_control.parallel`) and aggregates them into a report:

- :mod:`.config`: the study file (typed, validated before any work starts);
- :mod:`.architectures`: named architectures (LTC/CfC/CT-RNN on the NCP wiring, parameter-matched
  LSTM/GRU, a memory-less CNN, a 64-unit LSTM) and their parameter counts;
- :mod:`.cells`: the cell tasks (collect once, train one model, evaluate one model under one
  condition on one backend), each writing its result file atomically;
- :mod:`.scheduler`: planning, skipping finished cells, scheduling, progress;
- :mod:`.stats`: intervals (seed-level cluster bootstrap, Wilson);
- :mod:`.report`: ``report.json``, ``report.md`` and the PNG plots.
"""
