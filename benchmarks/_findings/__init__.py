"""The findings page's machinery: the runs each finding needs (`runs`), their statistics
(`stats`), the findings themselves (`findings`), their figures (`figures`) and the page (`page`).
`benchmarks/findings.py` is the command that drives them."""
