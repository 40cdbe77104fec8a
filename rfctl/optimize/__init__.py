"""Optimizers: compute continuous array settings (:class:`rfctl.state.ArrayState`).

Optimizers never import the HAL or drivers (an import contract in pyproject.toml says
so). Each returns a result object with the solution, the objective trace, the stopping
reason and the constraint residuals.
"""
