"""The evaluation of a model under attack, as plain torch; import from the module that defines a name.

- `run`: `evaluate`, the protocol's loop over eps: clean predictions, the cascade of attacks and
  white noise at each eps, each beat's smallest breaking eps, the noise stress test, the masking
  checks.
- `cascade`: the protocol's attacks by name, the cascade's state, bisection of breaking eps.
- `batching`: running a model or an attack over samples in batches; the samples on the device.
- `stress`: white noise and the noise stress test.
- `masking`: the checks that flag a masked gradient.
- `multilabel`: the evaluation of label sets (multi-label CPSC2018 models).
- `scores`: summary statistics of predictions, and how a sample is scored.
- `result`: `EvalResult`, and the one place it is assembled.
- `finalist`: a study's finalist evaluated again, with intervals by record.
"""
