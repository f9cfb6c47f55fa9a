"""A study's results as plain data, with numpy only (never torch, Ray or MLflow), so that fronts,
tables and reports can be read and drawn in a light environment; import from the module that
defines a name.

- `record`: a study as it was started and what every trial reported.
- `pareto`: non-dominated ranks, the front and its hypervolume: the one place a front is decided.
- `front`: the study's validation front, its table and CSV.
- `flags`: the masking flags a trial's evaluation raised, as reports and tags carry them.
- `finalists`: who the finalists are, and the front drawn again on their final numbers.
- `bootstrap`: intervals that resample records (patients), from each beat's outcome.
- `report`: the data of a study's report.
"""
