"""The churn model registry: training as an operation, the registered versions, promotion."""
